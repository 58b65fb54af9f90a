//! The fleet's workers on Postgres (see `gantry_store::WorkerStore`).

use crate::error::{Error, Result};
use crate::jobs::{now, num, parse};
use crate::{serializable, PgStore, NOW};
use deadpool_postgres::GenericClient;
use gantry_core::WorkerId;
use gantry_store::{NewWorker, WorkerInfo, WorkerState, WorkerStore};
use tokio_postgres::Row;

fn state(s: &str) -> Result<WorkerState> {
    s.parse()
        .map_err(|_| Error::Corrupt(format!("unknown worker state '{s}'")))
}

fn tags(s: &str) -> Result<Vec<String>> {
    serde_json::from_str(s).map_err(|e| Error::Corrupt(e.to_string()))
}

/// A worker's tags (a JSON array) and stored state, for its claims; a
/// worker that never registered has no tags and is active.
pub(crate) async fn tags_and_state(
    c: &impl GenericClient,
    id: &str,
) -> Result<(String, WorkerState)> {
    let stmt = c
        .prepare_cached("SELECT tags, state FROM workers WHERE id = $1")
        .await?;
    match c.query_opt(&stmt, &[&id]).await? {
        Some(r) => Ok((r.try_get(0)?, state(r.try_get::<_, &str>(1)?)?)),
        None => Ok(("[]".into(), WorkerState::Active)),
    }
}

const WORKER_COLS: &str =
    "w.id, w.host, w.version, w.tags, w.slots, w.state, w.started_at, w.last_seen, \
     (SELECT COUNT(*) FROM jobs j WHERE j.status = 'running' AND j.worker_id = w.id)";

fn worker_from_row(r: &Row, now: i64) -> Result<WorkerInfo> {
    let last_seen: i64 = r.try_get(7)?;
    Ok(WorkerInfo {
        id: parse(r.try_get(0)?)?,
        host: r.try_get(1)?,
        version: r.try_get(2)?,
        tags: tags(r.try_get::<_, &str>(3)?)?,
        slots: num(r.try_get(4)?)?,
        state: WorkerState::at(state(r.try_get::<_, &str>(5)?)?, last_seen, now),
        started_at: r.try_get(6)?,
        last_seen,
        running: num(r.try_get(8)?)?,
    })
}

async fn load_worker(c: &impl GenericClient, id: &str) -> Result<WorkerInfo> {
    let now = now(c).await?;
    match c
        .query_opt(
            &format!("SELECT {WORKER_COLS} FROM workers w WHERE w.id = $1"),
            &[&id],
        )
        .await?
    {
        Some(r) => worker_from_row(&r, now),
        None => Err(Error::NotFound(format!(
            "worker {}",
            id.chars().take(64).collect::<String>()
        ))),
    }
}

#[async_trait::async_trait]
impl WorkerStore for PgStore {
    async fn register_worker(&self, w: NewWorker) -> gantry_store::Result<WorkerInfo> {
        let tags = serde_json::to_string(&w.tags).map_err(|e| Error::Internal(e.to_string()))?;
        let slots = i64::from(w.slots);
        Ok(serializable!(self, |tx| {
            tx.execute(
                &format!(
                    "INSERT INTO workers (id, host, version, tags, slots, state, started_at, last_seen) \
                     VALUES ($1, $2, $3, $4, $5, 'active', {NOW}, {NOW}) \
                     ON CONFLICT (id) DO UPDATE SET host = excluded.host, version = excluded.version, \
                     tags = excluded.tags, slots = excluded.slots, state = 'active', \
                     started_at = excluded.started_at, last_seen = excluded.last_seen"
                ),
                &[&w.id.as_str(), &w.host, &w.version, &tags, &slots],
            )
            .await?;
            load_worker(&tx, w.id.as_str()).await?
        })?)
    }

    async fn worker_beat(&self, id: &WorkerId) -> gantry_store::Result<WorkerState> {
        let id = id.as_str();
        Ok(serializable!(self, |tx| {
            let n = tx
                .execute(
                    &format!("UPDATE workers SET last_seen = {NOW} WHERE id = $1"),
                    &[&id],
                )
                .await?;
            if n == 0 {
                return Err(Error::NotFound(format!("worker {id}")));
            }
            tags_and_state(&tx, id).await?.1
        })?)
    }

    async fn list_workers(&self) -> gantry_store::Result<Vec<WorkerInfo>> {
        let c = self.client().await?;
        let now = now(&c).await?;
        // Workers gone for a day are forgotten in listings.
        let rows = c
            .query(
                &format!(
                    "SELECT {WORKER_COLS} FROM workers w WHERE w.last_seen >= {NOW} - 86400000 \
                     ORDER BY w.started_at DESC, w.id"
                ),
                &[],
            )
            .await
            .map_err(Error::from)?;
        Ok(rows
            .iter()
            .map(|r| worker_from_row(r, now))
            .collect::<Result<Vec<_>>>()?)
    }

    async fn drain_worker(&self, id: &WorkerId) -> gantry_store::Result<WorkerInfo> {
        let id = id.as_str();
        Ok(serializable!(self, |tx| {
            let n = tx
                .execute(
                    "UPDATE workers SET state = 'draining' WHERE id = $1 AND state = 'active'",
                    &[&id],
                )
                .await?;
            let w = load_worker(&tx, id).await?;
            if n == 0 && w.state == WorkerState::Gone {
                return Err(Error::Conflict(format!("worker {id} is gone")));
            }
            w
        })?)
    }

    async fn worker_stopped(&self, id: &WorkerId) -> gantry_store::Result<()> {
        let id = id.as_str();
        Ok(serializable!(self, |tx| {
            tx.execute(
                &format!("UPDATE workers SET state = 'gone', last_seen = {NOW} WHERE id = $1"),
                &[&id],
            )
            .await?;
        })?)
    }
}
