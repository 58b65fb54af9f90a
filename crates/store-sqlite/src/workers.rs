//! SQLite rows of the fleet's workers (see `gantry_store::WorkerStore`).

use super::{collect_rows, immediate, SqliteStore, NOW};
use crate::error::{Error, Result};
use gantry_core::WorkerId;
use gantry_store::{Job, NewWorker, Waiting, WorkerInfo, WorkerState, WorkerStore, GONE_AFTER_MS};
use rusqlite::{params, Connection, OptionalExtension, Row};

fn state(s: &str) -> Result<WorkerState> {
    s.parse()
        .map_err(|_| Error::Corrupt(format!("unknown worker state '{s}'")))
}

fn tags(s: &str) -> Result<Vec<String>> {
    serde_json::from_str(s).map_err(|e| Error::Corrupt(e.to_string()))
}

/// A worker's tags (a JSON array) and stored state, for its claims; a
/// worker that never registered has no tags and is active.
pub(crate) fn tags_and_state(c: &Connection, id: &str) -> Result<(String, WorkerState)> {
    let row: Option<(String, String)> = c
        .prepare_cached("SELECT tags, state FROM workers WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match row {
        Some((t, s)) => Ok((t, state(&s)?)),
        None => Ok(("[]".into(), WorkerState::Active)),
    }
}

/// A queued job that asks for tags no live, active worker has all of.
pub(crate) fn no_worker_for(c: &Connection, job: &Job) -> Result<Option<Waiting>> {
    let asked: Option<String> = c
        .prepare_cached("SELECT worker_tags FROM jobs WHERE id = ?1")?
        .query_row([job.id.to_string()], |r| r.get(0))
        .optional()?
        .flatten();
    let Some(asked) = asked else {
        return Ok(None);
    };
    let wanted = tags(&asked)?;
    if wanted.is_empty() {
        return Ok(None);
    }
    let able: bool = c
        .prepare_cached(&format!(
            "SELECT EXISTS (SELECT 1 FROM workers w WHERE w.state = 'active' \
             AND w.last_seen >= {NOW} - ?2 \
             AND NOT EXISTS (SELECT 1 FROM json_each(?1) t \
                 WHERE t.value NOT IN (SELECT value FROM json_each(w.tags))))"
        ))?
        .query_row(params![asked, GONE_AFTER_MS], |r| r.get(0))?;
    Ok((!able).then_some(Waiting::NoWorker { tags: wanted }))
}

const WORKER_COLS: &str =
    "w.id, w.host, w.version, w.tags, w.slots, w.state, w.started_at, w.last_seen, \
     (SELECT COUNT(*) FROM jobs j WHERE j.status = 'running' AND j.worker_id = w.id)";

fn worker_from_row(r: &Row<'_>, now: i64) -> Result<WorkerInfo> {
    let last_seen: i64 = r.get(7)?;
    Ok(WorkerInfo {
        id: crate::parse(r.get(0)?)?,
        host: r.get(1)?,
        version: r.get(2)?,
        tags: tags(&r.get::<_, String>(3)?)?,
        slots: r.get(4)?,
        state: WorkerState::at(state(&r.get::<_, String>(5)?)?, last_seen, now),
        started_at: r.get(6)?,
        last_seen,
        running: r.get(8)?,
    })
}

fn load_worker(c: &Connection, id: &str) -> Result<WorkerInfo> {
    let now: i64 = c.query_row(&format!("SELECT {NOW}"), [], |r| r.get(0))?;
    c.prepare_cached(&format!(
        "SELECT {WORKER_COLS} FROM workers w WHERE w.id = ?1"
    ))?
    .query_row([id], |r| Ok(worker_from_row(r, now)))
    .optional()?
    .ok_or_else(|| {
        Error::NotFound(format!(
            "worker {}",
            id.chars().take(64).collect::<String>()
        ))
    })?
}

#[async_trait::async_trait]
impl WorkerStore for SqliteStore {
    async fn register_worker(&self, w: NewWorker) -> gantry_store::Result<WorkerInfo> {
        let tags = serde_json::to_string(&w.tags).map_err(|e| Error::Internal(e.to_string()))?;
        self.write(move |c| {
            immediate(c, |tx: &Connection| {
                tx.execute(
                    &format!(
                        "INSERT INTO workers (id, host, version, tags, slots, state, started_at, last_seen) \
                         VALUES (?1, ?2, ?3, ?4, ?5, 'active', {NOW}, {NOW}) \
                         ON CONFLICT (id) DO UPDATE SET host = excluded.host, version = excluded.version, \
                         tags = excluded.tags, slots = excluded.slots, state = 'active', \
                         started_at = excluded.started_at, last_seen = excluded.last_seen"
                    ),
                    params![w.id.as_str(), w.host, w.version, tags, w.slots],
                )?;
                load_worker(tx, w.id.as_str())
            })
        })
        .await
    }

    async fn worker_beat(&self, id: &WorkerId) -> gantry_store::Result<WorkerState> {
        let id = id.to_string();
        self.write(move |c| {
            let n = c.execute(
                &format!("UPDATE workers SET last_seen = {NOW} WHERE id = ?1"),
                [&id],
            )?;
            if n == 0 {
                return Err(Error::NotFound(format!("worker {id}")));
            }
            Ok(tags_and_state(c, &id)?.1)
        })
        .await
    }

    async fn list_workers(&self) -> gantry_store::Result<Vec<WorkerInfo>> {
        self.read(|c| {
            let now: i64 = c.query_row(&format!("SELECT {NOW}"), [], |r| r.get(0))?;
            // Workers gone for a day are forgotten in listings.
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {WORKER_COLS} FROM workers w WHERE w.last_seen >= {NOW} - 86400000 \
                 ORDER BY w.started_at DESC, w.id"
            ))?;
            let rows = stmt.query([])?;
            collect_rows(rows, |r| worker_from_row(r, now))
        })
        .await
    }

    async fn drain_worker(&self, id: &WorkerId) -> gantry_store::Result<WorkerInfo> {
        let id = id.to_string();
        self.write(move |c| {
            immediate(c, |tx: &Connection| {
                let n = tx.execute(
                    "UPDATE workers SET state = 'draining' WHERE id = ?1 AND state = 'active'",
                    [&id],
                )?;
                let w = load_worker(tx, &id)?;
                if n == 0 && w.state == WorkerState::Gone {
                    return Err(Error::Conflict(format!("worker {id} is gone")));
                }
                Ok(w)
            })
        })
        .await
    }

    async fn worker_stopped(&self, id: &WorkerId) -> gantry_store::Result<()> {
        let id = id.to_string();
        self.write(move |c| {
            c.execute(
                &format!("UPDATE workers SET state = 'gone', last_seen = {NOW} WHERE id = ?1"),
                [&id],
            )?;
            Ok(())
        })
        .await
    }
}
