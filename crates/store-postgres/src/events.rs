//! A job's log lines and system events on Postgres.

use crate::error::{Error, Result};
use crate::jobs::{json, num, parse_str};
use crate::{locked, PgStore};
use async_trait::async_trait;
use gantry_core::events::LogLine;
use gantry_core::{JobId, ProjectId};
use gantry_store::{Change, Event, EventStore, LogLevel};

#[async_trait]
impl EventStore for PgStore {
    async fn append_events(
        &self,
        id: JobId,
        attempt: u32,
        lines: &[LogLine],
    ) -> gantry_store::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let (job, attempt, n) = (id.to_string(), i64::from(attempt), lines.len() as i64);
        locked!(self, |tx| {
            // A log batch need not wait for its fsync (as SQLite's skips it):
            // a database crash may drop the last batch, never a job's state.
            tx.batch_execute("SET LOCAL synchronous_commit = off")
                .await?;
            let first: i64 = tx
                .query_one(
                    "UPDATE jobs SET event_seq = event_seq + $2 WHERE id = $1 RETURNING event_seq - $2",
                    &[&job, &n],
                )
                .await?
                .try_get(0)?;
            let insert = tx
                .prepare_cached(
                    "INSERT INTO events (job_id, seq, attempt, time, stream, level, message, data) \
                     SELECT $1, $2 + i, $3, $4, s, l, m, d \
                     FROM unnest($5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[]) WITH ORDINALITY AS x(s, l, m, d, i)",
                )
                .await?;
            let streams: Vec<&str> = lines.iter().map(|l| l.stream.as_str()).collect();
            // A level outside the four is stored as `info`, as
            // gantry_core::events reads unknown ones.
            let levels: Vec<&str> = lines
                .iter()
                .map(|l| {
                    l.level
                        .parse::<LogLevel>()
                        .unwrap_or(LogLevel::Info)
                        .as_str()
                })
                .collect();
            let messages: Vec<&str> = lines.iter().map(|l| l.message.as_str()).collect();
            let data: Vec<Option<String>> = lines
                .iter()
                .map(|l| l.data.as_ref().map(|d| d.to_string()))
                .collect();
            tx.execute(
                &insert,
                &[
                    &job, &first, &attempt, &now, &streams, &levels, &messages, &data,
                ],
            )
            .await?;
        })?;
        self.announce(Change::Events(id));
        Ok(())
    }

    async fn list_events(
        &self,
        project: &ProjectId,
        id: JobId,
        after: u64,
        limit: usize,
    ) -> gantry_store::Result<Vec<Event>> {
        let c = self.client().await?;
        let job = id.to_string();
        let exists = c
            .query_opt(
                "SELECT 1 FROM jobs WHERE id = $1 AND project_id = $2",
                &[&job, &project.as_str()],
            )
            .await
            .map_err(Error::from)?
            .is_some();
        if !exists {
            return Err(Error::NotFound(format!("job {id}")).into());
        }
        let stmt = c
            .prepare_cached(
                "SELECT seq, attempt, time, stream, level, message, data FROM events \
                 WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            )
            .await
            .map_err(Error::from)?;
        let rows = c
            .query(&stmt, &[&job, &(after as i64), &(limit as i64)])
            .await
            .map_err(Error::from)?;
        let out: Result<Vec<Event>> = rows
            .iter()
            .map(|r| {
                Ok(Event {
                    seq: r.try_get::<_, i64>(0)? as u64,
                    attempt: num(r.try_get(1)?)?,
                    time: r.try_get(2)?,
                    stream: r.try_get(3)?,
                    level: parse_str(r.try_get::<_, &str>(4)?)?,
                    message: r.try_get(5)?,
                    data: r.try_get::<_, Option<&str>>(6)?.map(json).transpose()?,
                })
            })
            .collect();
        Ok(out?)
    }
}
