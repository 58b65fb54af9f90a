//! Retention on Postgres: the same policy and the same decisions as the
//! SQLite backend's `retention` (what each project's [`Retention`] removes
//! as of a given time; finished jobs with their attempts and events; table
//! versions beyond the newest K or older than N days, never the current one
//! nor a pinned one; files older than N days unless IronWorker still needs
//! them; versions and files left alone while a job of the project runs).
//! One `SERIALIZABLE` transaction (run again on a serialization failure); a
//! dry run rolls it back. The objects no remaining row names are returned
//! for the caller to delete after the commit.

use crate::error::{Error, Result};
use crate::PgStore;
use deadpool_postgres::GenericClient;
use gantry_store::retention::Removed;
use gantry_store::{Retention, Segment};
use std::collections::HashSet;

const DAY_MS: i64 = 86_400_000;

impl PgStore {
    /// Applies every project's policy as of `now_ms`.
    pub async fn retention(
        &self,
        now_ms: i64,
        dry_run: bool,
    ) -> gantry_store::Result<Vec<Removed>> {
        let mut tries = 0;
        loop {
            match self.retention_once(now_ms, dry_run).await {
                Err(e) if e.is_transient() && tries < crate::max_tries() => {
                    tries += 1;
                    crate::contention_pause(tries).await;
                }
                other => return Ok(other?),
            }
        }
    }

    async fn retention_once(&self, now_ms: i64, dry_run: bool) -> Result<Vec<Removed>> {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::Serializable)
            .start()
            .await?;
        let projects = tx
            .query("SELECT id, retention FROM projects ORDER BY id", &[])
            .await?;
        let mut all = Vec::new();
        for r in projects {
            let (project, policy): (String, Option<String>) = (r.try_get(0)?, r.try_get(1)?);
            let policy: Retention = match policy {
                Some(j) => serde_json::from_str(&j)
                    .map_err(|e| Error::Corrupt(format!("project retention: {e}")))?,
                None => Retention::default(),
            };
            all.push(apply(&tx, &project, &policy.effective(), now_ms).await?);
        }
        if dry_run {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
        Ok(all)
    }
}

fn keys(segments: &str) -> Result<Vec<String>> {
    let s: Vec<Segment> = serde_json::from_str(segments)
        .map_err(|e| Error::Corrupt(format!("segments of a version: {e}")))?;
    Ok(s.into_iter().map(|s| s.key).collect())
}

async fn apply(c: &impl GenericClient, project: &str, p: &Retention, now: i64) -> Result<Removed> {
    let mut out = Removed {
        project: project.to_string(),
        ..Default::default()
    };
    let days = |d: Option<u32>| d.filter(|&d| d > 0).map(|d| now - i64::from(d) * DAY_MS);

    if let Some(cutoff) = days(p.jobs_days) {
        let ids = crate::configs::strings(
            c,
            "SELECT id FROM jobs WHERE project_id = $1 \
             AND status IN ('succeeded', 'failed', 'cancelled', 'timed_out') AND finished_at < $2",
            &[&project, &cutoff],
        )
        .await?;
        for id in ids {
            out.events += c
                .execute("DELETE FROM events WHERE job_id = $1", &[&id])
                .await?;
            c.execute("DELETE FROM attempts WHERE job_id = $1", &[&id])
                .await?;
            // An IronWorker task's own fields go with its job.
            c.execute("DELETE FROM iron_tasks WHERE job_id = $1", &[&id])
                .await?;
            out.jobs += c.execute("DELETE FROM jobs WHERE id = $1", &[&id]).await?;
        }
    }

    let running: i64 = c
        .query_one(
            "SELECT COUNT(*) FROM jobs WHERE project_id = $1 AND status = 'running'",
            &[&project],
        )
        .await?
        .try_get(0)?;
    let (keep_n, cutoff) = (p.versions.filter(|&n| n > 0), days(p.versions_days));
    let files_cutoff = days(p.files_days);
    if running > 0 {
        out.postponed = keep_n.is_some() || cutoff.is_some() || files_cutoff.is_some();
        return Ok(out);
    }

    if keep_n.is_some() || cutoff.is_some() {
        let tables = c
            .query(
                "SELECT id, version FROM storage_tables WHERE project_id = $1",
                &[&project],
            )
            .await?;
        for t in tables {
            let (table, current): (String, i64) = (t.try_get(0)?, t.try_get(1)?);
            let versions = c
                .query(
                    "SELECT version, created_at, pinned, segments FROM table_versions \
                     WHERE project_id = $1 AND table_id = $2 ORDER BY version DESC",
                    &[&project, &table],
                )
                .await?;
            let (mut kept, mut dropped) = (HashSet::new(), Vec::new());
            for (rank, v) in versions.iter().enumerate() {
                let (version, created_at, pinned, segments): (i64, i64, bool, &str) =
                    (v.try_get(0)?, v.try_get(1)?, v.try_get(2)?, v.try_get(3)?);
                let too_many = keep_n.is_some_and(|n| rank >= n as usize);
                let too_old = cutoff.is_some_and(|t| created_at < t);
                if version == current || pinned || !(too_many || too_old) {
                    kept.extend(keys(segments)?);
                } else {
                    c.execute(
                        "DELETE FROM table_versions WHERE project_id = $1 AND table_id = $2 AND version = $3",
                        &[&project, &table, &version],
                    )
                    .await?;
                    out.versions.push((table.clone(), version as u64));
                    dropped.extend(keys(segments)?);
                }
            }
            let mut gone: Vec<String> = dropped.into_iter().filter(|k| !kept.contains(k)).collect();
            gone.sort();
            gone.dedup();
            out.objects.extend(gone);
        }
    }

    if let Some(cutoff) = files_cutoff {
        // Files still needed are kept whatever their age: an IronWorker
        // schedule's payload, a code revision's config or zip, the payload of
        // a task not yet ended.
        let files = c
            .query(
                "SELECT id, name, object_key FROM files WHERE project_id = $1 AND created_at < $2 \
                 AND id::TEXT NOT IN (SELECT f FROM ( \
                     SELECT doc::JSONB #>> '{payload_file,id}' AS f FROM iron_schedules \
                         WHERE project_id = $1 AND NOT cancelled \
                     UNION SELECT doc::JSONB #>> '{config_file,id}' FROM iron_code_revisions WHERE project_id = $1 \
                     UNION SELECT doc::JSONB #>> '{zip_file}' FROM iron_code_revisions WHERE project_id = $1 \
                     UNION SELECT t.doc::JSONB #>> '{payload_file,id}' FROM iron_tasks t \
                         JOIN jobs j ON j.id = t.job_id WHERE t.project_id = $1 AND j.status IN ('queued', 'running') \
                 ) needed WHERE f IS NOT NULL)",
                &[&project, &cutoff],
            )
            .await?;
        for f in files {
            let (id, name, key): (i64, String, String) =
                (f.try_get(0)?, f.try_get(1)?, f.try_get(2)?);
            c.execute("DELETE FROM file_tags WHERE file_id = $1", &[&id])
                .await?;
            c.execute("DELETE FROM files WHERE id = $1", &[&id]).await?;
            out.files.push((gantry_core::FileId(id), name));
            out.objects.push(key);
        }
    }
    Ok(out)
}
