//! Retention: what each project's policy ([`Retention`]) removes as of a
//! given time (the caller's clock, so tests can move it). Finished jobs go
//! with their attempts and events (the versions and files they made stay);
//! table versions beyond the newest K or older than N days go, never the
//! current one nor a pinned one; files older than N days go. While a job of
//! the project runs, its versions and files are left for the next run (a
//! running job may be reading them). One transaction; a dry run rolls it
//! back. The objects no remaining row names are returned for the caller to
//! delete after the commit (a crash in between leaves them to the sweep).

use crate::error::{Error as StoreError, Result};
use gantry_store::{Retention, Segment};
use rusqlite::{params, Connection, OpenFlags, TransactionBehavior};
use std::collections::HashSet;
use std::path::Path;

const DAY_MS: i64 = 86_400_000;

pub use gantry_store::retention::Removed;

/// Applies every project's policy as of `now_ms` to the database at `db`
/// (which a running Gantry may be using).
pub fn run(db: &Path, now_ms: i64, dry_run: bool) -> gantry_store::Result<Vec<Removed>> {
    Ok(run_sql(db, now_ms, dry_run)?)
}

fn run_sql(db: &Path, now_ms: i64, dry_run: bool) -> Result<Vec<Removed>> {
    let mut c = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(std::time::Duration::from_secs(30))?;
    c.pragma_update(None, "foreign_keys", "ON")?;
    c.pragma_update(None, "synchronous", "FULL")?;
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let projects: Vec<(String, Option<String>)> = {
        let mut stmt = tx.prepare("SELECT id, retention FROM projects ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut all = Vec::new();
    for (project, policy) in projects {
        let policy: Retention = match policy {
            Some(j) => serde_json::from_str(&j)
                .map_err(|e| StoreError::Corrupt(format!("project retention: {e}")))?,
            None => Retention::default(),
        };
        all.push(apply(&tx, &project, &policy.effective(), now_ms)?);
    }
    if dry_run {
        tx.rollback()?;
    } else {
        tx.commit()?;
    }
    Ok(all)
}

fn apply(c: &Connection, project: &str, p: &Retention, now: i64) -> Result<Removed> {
    let mut out = Removed {
        project: project.to_string(),
        ..Default::default()
    };
    let days = |d: Option<u32>| d.filter(|&d| d > 0).map(|d| now - i64::from(d) * DAY_MS);

    if let Some(cutoff) = days(p.jobs_days) {
        let ids: Vec<String> = {
            let mut stmt = c.prepare(
                "SELECT id FROM jobs WHERE project_id = ?1 \
                 AND status IN ('succeeded', 'failed', 'cancelled', 'timed_out') AND finished_at < ?2",
            )?;
            let rows = stmt.query_map(params![project, cutoff], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for id in ids {
            out.events += c.execute("DELETE FROM events WHERE job_id = ?1", [&id])? as u64;
            c.execute("DELETE FROM attempts WHERE job_id = ?1", [&id])?;
            // An IronWorker task's own fields go with its job.
            c.execute("DELETE FROM iron_tasks WHERE job_id = ?1", [&id])?;
            out.jobs += c.execute("DELETE FROM jobs WHERE id = ?1", [&id])? as u64;
        }
    }

    let running: i64 = c.query_row(
        "SELECT COUNT(*) FROM jobs WHERE project_id = ?1 AND status = 'running'",
        [project],
        |r| r.get(0),
    )?;
    let (keep_n, cutoff) = (p.versions.filter(|&n| n > 0), days(p.versions_days));
    let files_cutoff = days(p.files_days);
    if running > 0 {
        out.postponed = keep_n.is_some() || cutoff.is_some() || files_cutoff.is_some();
        return Ok(out);
    }

    if keep_n.is_some() || cutoff.is_some() {
        let tables: Vec<(String, i64)> = {
            let mut stmt =
                c.prepare("SELECT id, version FROM storage_tables WHERE project_id = ?1")?;
            let rows = stmt.query_map([project], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for (table, current) in tables {
            let versions: Vec<(i64, i64, bool, String)> = {
                let mut stmt = c.prepare(
                    "SELECT version, created_at, pinned, segments FROM table_versions \
                     WHERE project_id = ?1 AND table_id = ?2 ORDER BY version DESC",
                )?;
                let rows = stmt.query_map(params![project, table], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? != 0, r.get(3)?))
                })?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let keys = |segments: &str| -> Result<Vec<String>> {
                let s: Vec<Segment> = serde_json::from_str(segments)
                    .map_err(|e| StoreError::Corrupt(format!("segments of a version: {e}")))?;
                Ok(s.into_iter().map(|s| s.key).collect())
            };
            let (mut kept, mut dropped) = (HashSet::new(), Vec::new());
            for (rank, (version, created_at, pinned, segments)) in versions.iter().enumerate() {
                let too_many = keep_n.is_some_and(|n| rank >= n as usize);
                let too_old = cutoff.is_some_and(|t| *created_at < t);
                if *version == current || *pinned || !(too_many || too_old) {
                    kept.extend(keys(segments)?);
                } else {
                    c.execute(
                        "DELETE FROM table_versions WHERE project_id = ?1 AND table_id = ?2 AND version = ?3",
                        params![project, table, version],
                    )?;
                    out.versions.push((table.clone(), *version as u64));
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
        let files: Vec<(i64, String, String)> = {
            // Files still needed are kept whatever their age: an IronWorker
            // schedule's payload, a code revision's config or zip, the payload
            // of a task not yet ended.
            let mut stmt = c.prepare(
                "SELECT id, name, object_key FROM files WHERE project_id = ?1 AND created_at < ?2 \
                 AND id NOT IN (SELECT f FROM ( \
                     SELECT json_extract(doc, '$.payload_file.id') AS f FROM iron_schedules \
                         WHERE project_id = ?1 AND cancelled = 0 \
                     UNION SELECT json_extract(doc, '$.config_file.id') FROM iron_code_revisions WHERE project_id = ?1 \
                     UNION SELECT json_extract(doc, '$.zip_file') FROM iron_code_revisions WHERE project_id = ?1 \
                     UNION SELECT json_extract(t.doc, '$.payload_file.id') FROM iron_tasks t \
                         JOIN jobs j ON j.id = t.job_id WHERE t.project_id = ?1 AND j.status IN ('queued', 'running') \
                 ) WHERE f IS NOT NULL)",
            )?;
            let rows = stmt.query_map(params![project, cutoff], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for (id, name, key) in files {
            c.execute("DELETE FROM file_tags WHERE file_id = ?1", [id])?;
            c.execute("DELETE FROM files WHERE id = ?1", [id])?;
            out.files.push((gantry_core::FileId(id), name));
            out.objects.push(key);
        }
    }
    Ok(out)
}
