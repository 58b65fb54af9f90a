//! Readiness and figures for metrics on Postgres.

use crate::error::{Error, Result};
use crate::jobs::parse;
use crate::{serializable, snapshot, PgStore, NOW};
use async_trait::async_trait;
use gantry_core::JobStatus;
use gantry_store::{HealthStore, QueueStat, StorageStat, StoreFigures};

#[async_trait]
impl HealthStore for PgStore {
    async fn check_writable(&self) -> gantry_store::Result<()> {
        Ok(serializable!(self, |tx| {
            // A write transaction that takes a lock and changes nothing.
            tx.batch_execute("LOCK TABLE gantry_schema IN ROW EXCLUSIVE MODE")
                .await?;
        })?)
    }

    async fn count_by_status(&self) -> gantry_store::Result<Vec<(JobStatus, u64)>> {
        let c = self.client().await?;
        let rows = c
            .query("SELECT status, COUNT(*) FROM jobs GROUP BY status", &[])
            .await
            .map_err(Error::from)?;
        let out: Result<Vec<_>> = rows
            .iter()
            .map(|r| Ok((parse(r.try_get(0)?)?, r.try_get::<_, i64>(1)? as u64)))
            .collect();
        Ok(out?)
    }

    async fn figures(&self) -> gantry_store::Result<StoreFigures> {
        Ok(snapshot!(self, |tx| {
            let by_status = tx
                .query("SELECT status, COUNT(*) FROM jobs GROUP BY status", &[])
                .await?
                .iter()
                .map(|r| Ok((parse(r.try_get(0)?)?, r.try_get::<_, i64>(1)? as u64)))
                .collect::<Result<Vec<_>>>()?;
            let queues = tx
                .query(
                    &format!(
                        "SELECT project_id,
                                COUNT(*) FILTER (WHERE status = 'queued'),
                                COUNT(*) FILTER (WHERE status = 'running'),
                                COALESCE(MAX(CASE WHEN status = 'queued' AND run_after <= {NOW}
                                             THEN {NOW} - run_after END), 0)
                         FROM jobs WHERE status IN ('queued', 'running')
                         GROUP BY project_id"
                    ),
                    &[],
                )
                .await?
                .iter()
                .map(|r| {
                    Ok(QueueStat {
                        project: parse(r.try_get(0)?)?,
                        queued: r.try_get::<_, i64>(1)? as u64,
                        running: r.try_get::<_, i64>(2)? as u64,
                        oldest_due_ms: r.try_get::<_, i64>(3)?.max(0) as u64,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let storage = tx
                .query(
                    "SELECT p.id,
                            (SELECT COALESCE(SUM(v.bytes), 0)::BIGINT FROM storage_tables t
                               JOIN table_versions v ON v.project_id = t.project_id
                                AND v.table_id = t.id AND v.version = t.version
                              WHERE t.project_id = p.id),
                            (SELECT COUNT(*) FROM table_versions v WHERE v.project_id = p.id),
                            (SELECT COALESCE(SUM(size), 0)::BIGINT FROM files f WHERE f.project_id = p.id),
                            (SELECT COUNT(*) FROM files f WHERE f.project_id = p.id)
                     FROM projects p ORDER BY p.id",
                    &[],
                )
                .await?
                .iter()
                .map(|r| {
                    Ok(StorageStat {
                        project: parse(r.try_get(0)?)?,
                        table_bytes: r.try_get::<_, i64>(1)? as u64,
                        table_versions: r.try_get::<_, i64>(2)? as u64,
                        file_bytes: r.try_get::<_, i64>(3)? as u64,
                        files: r.try_get::<_, i64>(4)? as u64,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            StoreFigures {
                by_status,
                queues,
                storage,
            }
        })?)
    }
}
