//! The durable job queue on Postgres: enqueue, claim (`FOR UPDATE SKIP
//! LOCKED` inside a `SERIALIZABLE` transaction, in the order and with the
//! hold-back rules of SQLite's `NEXT_CLAIMABLE`), leases by the database's
//! clock, fenced attempt ends, recovery of lost attempts.

use crate::catalog::{apply_table_write, insert_file};
use crate::error::Result;
use crate::jobs::*;
use crate::workers::tags_and_state;
use crate::{locked, serializable, PgStore, NOW};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use gantry_core::job::Outcome;
use gantry_core::{JobId, JobStatus, ProjectId, WorkerId};
use gantry_store::rules::{self, AGING_STEP_MS};
use gantry_store::*;
use serde_json::Value;
use std::time::Duration;

/// Whether a queued job `j` may run now as far as the jobs running beside
/// it go (see SQLite's `NEXT_CLAIMABLE`, whose rules these are): its
/// configuration's lock, its concurrency key's limit, its project's
/// `max_running`.
const NOT_HELD_BACK: &str = "(j.config_id IS NULL OR j.concurrency_key IS NOT NULL OR NOT EXISTS ( \
         SELECT 1 FROM jobs r WHERE r.status = 'running' AND r.project_id = j.project_id AND r.config_id = j.config_id)) \
     AND (j.concurrency_key IS NULL OR ( \
         SELECT COUNT(*) FROM jobs r WHERE r.status = 'running' AND r.project_id = j.project_id \
         AND r.concurrency_key = j.concurrency_key) < j.concurrency_limit) \
     AND (NOT EXISTS (SELECT 1 FROM projects p WHERE p.id = j.project_id AND p.max_running IS NOT NULL) OR ( \
         SELECT COUNT(*) FROM jobs r WHERE r.status = 'running' AND r.project_id = j.project_id) < ( \
         SELECT max_running FROM projects p WHERE p.id = j.project_id))";

/// The due queued jobs to claim next, in order: highest effective
/// priority, then oldest, skipping jobs held back ([`NOT_HELD_BACK`]) or
/// whose tags the worker lacks; rows another claimer holds are skipped,
/// never waited on. Besides the id: whether claiming it can hold any other
/// back, and the keys it would be held back by (project, configuration,
/// concurrency key, whether its project is capped).
fn next_claimable() -> String {
    format!(
        "SELECT j.id, j.config_id IS NULL AND j.concurrency_key IS NULL AND NOT EXISTS ( \
             SELECT 1 FROM projects p WHERE p.id = j.project_id AND p.max_running IS NOT NULL), \
             j.project_id, j.config_id, j.concurrency_key, \
             EXISTS (SELECT 1 FROM projects p WHERE p.id = j.project_id AND p.max_running IS NOT NULL) \
         FROM jobs j \
         WHERE j.status = 'queued' AND j.run_after <= gantry_now_ms() AND {NOT_HELD_BACK} \
         AND (CASE WHEN jsonb_typeof(j.worker_tags) = 'array' THEN NOT EXISTS ( \
             SELECT 1 FROM jsonb_array_elements_text(j.worker_tags) t(v) \
             WHERE t.v NOT IN (SELECT jsonb_array_elements_text($2::TEXT::JSONB))) ELSE TRUE END) \
         ORDER BY j.eff_priority DESC, j.run_after, j.id LIMIT $1 \
         FOR UPDATE OF j SKIP LOCKED"
    )
}

/// A candidate of [`next_claimable`].
struct Candidate {
    id: String,
    free: bool,
    project: String,
    config: Option<String>,
    key: Option<String>,
    capped: bool,
}

impl Candidate {
    /// The advisory locks under which claiming it is decided: claimers of
    /// jobs that can hold each other back take them in turn (and pass over
    /// a job whose lock another claimer holds), so the count each one reads
    /// includes the others' claims.
    fn locks(&self) -> Vec<String> {
        let mut out = Vec::new();
        match (&self.config, &self.key) {
            (_, Some(k)) => out.push(format!("key\u{1f}{}\u{1f}{k}", self.project)),
            (Some(c), None) => out.push(format!("config\u{1f}{}\u{1f}{c}", self.project)),
            (None, None) => {}
        }
        if self.capped {
            out.push(format!("cap\u{1f}{}", self.project));
        }
        out
    }
}

/// Takes back one job whose attempt was lost (inside the caller's
/// transaction): the attempt is `lost`; the job queued again or ended per
/// `rules::after_lost_lease`.
async fn take_back(tx: &impl GenericClient, id: &str, lost: rules::LeaseLost) -> Result<JobStatus> {
    let reason = lost.reason();
    let r = tx
        .query_one(
            "SELECT attempt, cancel_requested, \
             CASE WHEN jsonb_typeof(spec::JSONB #> '{retry,lost_attempts}') = 'number' \
                  THEN (spec::JSONB #>> '{retry,lost_attempts}')::NUMERIC::BIGINT END \
             FROM jobs WHERE id = $1",
            &[&id],
        )
        .await?;
    let (attempt, cancel, max_lost): (i64, bool, Option<i64>) =
        (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
    tx.execute(
        &format!(
            "UPDATE attempts SET status = 'lost', error_kind = 'infrastructure', error_message = $3, finished_at = {NOW} \
             WHERE job_id = $1 AND number = $2"
        ),
        &[&id, &attempt, &reason],
    )
    .await?;
    let lost_so_far: i64 = tx
        .query_one(
            "SELECT COUNT(*) FROM attempts WHERE job_id = $1 AND status = 'lost'",
            &[&id],
        )
        .await?
        .try_get(0)?;
    let max_lost = match max_lost {
        Some(n) => num(n)?,
        None => rules::DEFAULT_MAX_LOST,
    };
    let status = rules::after_lost_lease(num(lost_so_far)?, max_lost, cancel);
    if status == JobStatus::Queued {
        tx.execute(
            &format!(
                "UPDATE jobs SET status = 'queued', worker_id = NULL, lease_expires = NULL, \
                 run_after = {NOW} WHERE id = $1"
            ),
            &[&id],
        )
        .await?;
    } else {
        let (kind, msg) = if status == JobStatus::Failed {
            (Some("infrastructure"), Some(lost.exhausted(max_lost)))
        } else {
            (None, None)
        };
        tx.execute(
            &format!(
                "UPDATE jobs SET status = $2, lease_expires = NULL, error_kind = $3, \
                 error_message = $4, finished_at = {NOW} WHERE id = $1"
            ),
            &[&id, &status.as_str(), &kind, &msg],
        )
        .await?;
        notify_job(tx, parse(id.to_string())?).await?;
    }
    Ok(status)
}

impl PgStore {
    /// Takes back every running job matching `condition` (`$1` is `arg`).
    async fn take_back_where(
        &self,
        condition: &str,
        arg: Option<&str>,
        lost: rules::LeaseLost,
    ) -> gantry_store::Result<Vec<JobId>> {
        let sql = format!(
            "SELECT id FROM jobs WHERE status = 'running' AND {condition} FOR UPDATE SKIP LOCKED"
        );
        let taken = locked!(self, |tx| {
            let rows = match arg {
                Some(a) => tx.query(&sql, &[&a]).await?,
                None => tx.query(&sql, &[]).await?,
            };
            let mut out = Vec::new();
            for r in rows {
                let id: String = r.try_get(0)?;
                let status = take_back(&tx, &id, lost).await?;
                out.push((parse::<JobId>(id)?, status));
            }
            out
        })?;
        self.announce_all(rules::announce_taken(&taken));
        Ok(taken.into_iter().map(|(id, _)| id).collect())
    }
}

/// What a claimed job's container needs besides the job: its
/// configuration's state, its webhook delivery, its project's number.
async fn claimed(
    tx: &impl GenericClient,
    job: Job,
    numbers: &mut std::collections::HashMap<ProjectId, i64>,
) -> Result<ClaimedJob> {
    let state = match &job.config_id {
        Some(cfg) => tx
            .query_opt(
                "SELECT state FROM configs WHERE project_id = $1 AND id = $2",
                &[&job.project.as_str(), &cfg.as_str()],
            )
            .await?
            .map(|r| json(r.try_get::<_, &str>(0)?))
            .transpose()?
            .unwrap_or_else(|| Value::Object(Default::default())),
        None => Value::Object(Default::default()),
    };
    let delivery = match &job.trigger {
        Some(Trigger::Webhook { id: hook, delivery }) => {
            tx.query_opt(
                "SELECT body, manifest FROM hook_deliveries WHERE hook_id = $1 AND delivery_id = $2",
                &[hook, delivery],
            )
            .await?
        }
        // Every task of a run a webhook started sees its delivery.
        Some(Trigger::Pipeline { run, .. }) => {
            tx.query_opt(
                "SELECT d.body, d.manifest FROM pipeline_runs r JOIN hook_deliveries d \
                 ON d.hook_id = r.hook_id AND d.delivery_id = r.delivery_id WHERE r.id = $1",
                &[run],
            )
            .await?
        }
        _ => None,
    };
    let webhook = match delivery {
        Some(r) => Some(WebhookPayload {
            body: r.try_get(0)?,
            manifest: json(r.try_get::<_, &str>(1)?)?,
        }),
        None => None,
    };
    let project_number = match numbers.get(&job.project) {
        Some(n) => *n,
        None => {
            let n: i64 = tx
                .query_one(
                    "SELECT number FROM projects WHERE id = $1",
                    &[&job.project.as_str()],
                )
                .await?
                .try_get(0)?;
            numbers.insert(job.project.clone(), n);
            n
        }
    };
    Ok(ClaimedJob {
        job,
        state,
        project_number,
        webhook,
    })
}

#[async_trait]
impl QueueStore for PgStore {
    async fn enqueue(&self, job: NewJob) -> gantry_store::Result<Job> {
        let id = JobId::new();
        let job = locked!(self, |tx| {
            let mut job = insert_job_returning(&tx, &id, &job).await?;
            fill_waiting(&tx, &mut job).await?;
            job
        })?;
        self.announce(Change::Enqueued);
        Ok(job)
    }

    async fn enqueue_batch(&self, jobs: Vec<NewJob>) -> gantry_store::Result<Vec<JobId>> {
        let ids: Vec<JobId> = jobs.iter().map(|_| JobId::new()).collect();
        locked!(self, |tx| {
            for (id, job) in ids.iter().zip(&jobs) {
                insert_job(&tx, id, job).await?;
            }
        })?;
        if !ids.is_empty() {
            self.announce(Change::Enqueued);
        }
        Ok(ids)
    }

    async fn get_job(&self, project: &ProjectId, id: JobId) -> gantry_store::Result<Job> {
        Ok(crate::snapshot!(self, |tx| {
            load_full_job(&tx, Some(project), id).await?
        })?)
    }

    async fn list_jobs(
        &self,
        project: &ProjectId,
        filter: &JobFilter,
    ) -> gantry_store::Result<Vec<Job>> {
        Ok(crate::snapshot!(self, |tx| {
            let stmt = tx
                .prepare_cached(&format!(
                    "SELECT {JOB_COLS} FROM jobs WHERE project_id = $1 AND ($2::TEXT IS NULL OR status = $2) \
                     AND ($3::TEXT IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
                ))
                .await?;
            let rows = tx
                .query(
                    &stmt,
                    &[
                        &project.as_str(),
                        &filter.status.map(|s| s.as_str()),
                        &filter.before.map(|b| b.to_string()),
                        &(filter.limit as i64),
                    ],
                )
                .await?;
            let mut jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>>>()?;
            for job in &mut jobs {
                fill_waiting(&tx, job).await?;
            }
            jobs
        })?)
    }

    async fn request_cancel(&self, project: &ProjectId, id: JobId) -> gantry_store::Result<Job> {
        let job = serializable!(self, |tx| {
            let job = load_job(&tx, Some(project), id).await?;
            match job.status {
                JobStatus::Queued => {
                    tx.execute(
                        &format!(
                            "UPDATE jobs SET status = 'cancelled', cancel_requested = TRUE, finished_at = {NOW} WHERE id = $1"
                        ),
                        &[&id.to_string()],
                    )
                    .await?;
                    notify_job(&tx, id).await?;
                }
                JobStatus::Running => {
                    tx.execute(
                        "UPDATE jobs SET cancel_requested = TRUE WHERE id = $1",
                        &[&id.to_string()],
                    )
                    .await?;
                }
                _ => {}
            }
            load_job(&tx, None, id).await?
        })?;
        self.announce_all(rules::announce_cancel(id, job.status));
        Ok(job)
    }

    async fn claim(
        &self,
        worker: &WorkerId,
        max: usize,
        lease: Duration,
    ) -> gantry_store::Result<Claim> {
        let worker = worker.as_str();
        let lease_ms = lease.as_millis() as i64;
        let claim = locked!(self, |tx| {
            let mut jobs = Vec::with_capacity(max);
            // A drained worker claims nothing; a worker's tags (none for one
            // that never registered) pick the jobs it may take.
            let (tags, state) = tags_and_state(&tx, worker).await?;
            let max = if state == WorkerState::Draining {
                0
            } else {
                max
            };
            let mut numbers = std::collections::HashMap::new();
            let mut next: std::collections::VecDeque<Candidate> = Default::default();
            let pick = tx.prepare_cached(&next_claimable()).await?;
            let lock = tx
                .prepare_cached("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))")
                .await?;
            let still = tx
                .prepare_cached(&format!(
                    "SELECT EXISTS (SELECT 1 FROM jobs j WHERE j.id = $1 AND j.status = 'queued' AND {NOT_HELD_BACK})"
                ))
                .await?;
            let take = tx
                .prepare_cached(&format!(
                    "UPDATE jobs SET status = 'running', attempt = attempt + 1, worker_id = $2, \
                     lease_expires = {NOW} + $3, started_at = {NOW} WHERE id = $1 RETURNING {JOB_COLS}"
                ))
                .await?;
            let attempt = tx
                .prepare_cached(&format!(
                    "INSERT INTO attempts (job_id, number, worker_id, status, started_at) \
                     VALUES ($1, $2, $3, 'running', {NOW})"
                ))
                .await?;
            let mut passed: std::collections::HashSet<String> = Default::default();
            while jobs.len() < max {
                if next.is_empty() {
                    next = tx
                        .query(&pick, &[&((max - jobs.len() + passed.len()) as i64), &tags])
                        .await?
                        .iter()
                        .map(|r| {
                            Ok(Candidate {
                                id: r.try_get(0)?,
                                free: r.try_get(1)?,
                                project: r.try_get(2)?,
                                config: r.try_get(3)?,
                                key: r.try_get(4)?,
                                capped: r.try_get(5)?,
                            })
                        })
                        .collect::<Result<std::collections::VecDeque<_>>>()?
                        .into_iter()
                        .filter(|c| !passed.contains(&c.id))
                        .collect();
                    if next.is_empty() {
                        break;
                    }
                }
                let Some(c) = next.pop_front() else { break };
                if !c.free {
                    // Decided under its locks, with what other claimers did
                    // committed; one whose lock another claimer holds waits
                    // for the next claim.
                    let mut ours = true;
                    for l in c.locks() {
                        if !tx.query_one(&lock, &[&l]).await?.try_get::<_, bool>(0)? {
                            ours = false;
                            break;
                        }
                    }
                    let ok = ours
                        && tx
                            .query_one(&still, &[&c.id])
                            .await?
                            .try_get::<_, bool>(0)?;
                    // Claiming it (or not) may change what comes after it.
                    next.clear();
                    if !ok {
                        passed.insert(c.id);
                        continue;
                    }
                }
                let row = tx.query_one(&take, &[&c.id, &worker, &lease_ms]).await?;
                let job = job_from_row(&row)?;
                tx.execute(&attempt, &[&c.id, &i64::from(job.attempt), &worker])
                    .await?;
                jobs.push(claimed(&tx, job, &mut numbers).await?);
            }
            // Jobs due but held back wake the worker when a job ends, not here.
            let next_due: Option<i64> = tx
                .query_one(
                    &format!(
                        "SELECT MIN(run_after) - {NOW} FROM jobs WHERE status = 'queued' AND run_after > {NOW}"
                    ),
                    &[],
                )
                .await?
                .try_get(0)?;
            Claim {
                jobs,
                next_due: next_due.map(|ms| Duration::from_millis(ms.max(0) as u64)),
            }
        })?;
        for j in &claim.jobs {
            self.announce(Change::Status(j.job.id, JobStatus::Running));
        }
        Ok(claim)
    }

    async fn age_queue(&self) -> gantry_store::Result<u64> {
        let aged = format!("LEAST(2, priority + ({NOW} - run_after) / {AGING_STEP_MS})");
        let sql = format!(
            "UPDATE jobs SET eff_priority = {aged} WHERE status = 'queued' AND eff_priority < 2 \
             AND run_after <= {NOW} - {AGING_STEP_MS} AND {aged} > eff_priority"
        );
        Ok(locked!(self, |tx| { tx.execute(&sql, &[]).await? })?)
    }

    async fn heartbeat(
        &self,
        worker: &WorkerId,
        lease: Duration,
    ) -> gantry_store::Result<Vec<JobId>> {
        let worker = worker.as_str();
        let lease_ms = lease.as_millis() as i64;
        Ok(locked!(self, |tx| {
            let renew = tx
                .prepare_cached(&format!(
                    "UPDATE jobs SET lease_expires = {NOW} + $2 WHERE status = 'running' AND worker_id = $1 \
                     RETURNING id, cancel_requested"
                ))
                .await?;
            let mut cancels = Vec::new();
            for r in tx.query(&renew, &[&worker, &lease_ms]).await? {
                if r.try_get::<_, bool>(1)? {
                    cancels.push(parse::<JobId>(r.try_get(0)?)?);
                }
            }
            cancels
        })?)
    }

    async fn record_attempt(
        &self,
        id: JobId,
        attempt: u32,
        info: &AttemptInfo,
    ) -> gantry_store::Result<()> {
        let limits = info
            .limits
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| crate::error::Error::Internal(format!("limits: {e}")))?;
        let (id, attempt) = (id.to_string(), i64::from(attempt));
        Ok(locked!(self, |tx| {
            tx.execute(
                "UPDATE jobs SET image_digest = COALESCE($3, image_digest), limits = COALESCE($4, limits) \
                 WHERE id = $1 AND attempt = $2",
                &[&id, &attempt, &info.image_digest, &limits],
            )
            .await?;
            tx.execute(
                "UPDATE attempts SET image_digest = COALESCE($3, image_digest) WHERE job_id = $1 AND number = $2",
                &[&id, &attempt, &info.image_digest],
            )
            .await?;
        })?)
    }

    async fn finish_attempt(
        &self,
        id: JobId,
        attempt: u32,
        worker: &WorkerId,
        outcome: &Outcome,
        new_state: Option<&Value>,
        outputs: &Outputs,
    ) -> gantry_store::Result<Finish> {
        let worker = worker.as_str();
        let new_state = new_state.map(|s| s.to_string());
        let (job_id, number) = (id.to_string(), i64::from(attempt));
        let finish = locked!(self, |tx| {
            let fence = tx
                .prepare_cached(
                    "SELECT failures, max_attempts, backoff_ms, config_id, project_id, \
                     jsonb_typeof(spec::JSONB -> 'notify') = 'array' FROM jobs \
                     WHERE id = $1 AND attempt = $2 AND worker_id = $3 AND status = 'running' FOR UPDATE",
                )
                .await?;
            let Some(row) = tx.query_opt(&fence, &[&job_id, &number, &worker]).await? else {
                return Ok(Finish::Stale);
            };
            let (failures, max_attempts, backoff_ms): (i64, i64, i64) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            let config_id: Option<String> = row.try_get(3)?;
            let project: String = row.try_get(4)?;
            let notify: Option<bool> = row.try_get(5)?;
            // Outputs become visible in the same transaction as the status.
            let project_id: ProjectId = parse(project.clone())?;
            for write in &outputs.tables {
                apply_table_write(&tx, &project_id, write, Some(id)).await?;
            }
            for file in &outputs.files {
                insert_file(&tx, &project_id, file, Some(id)).await?;
            }
            let (kind, message) = match &outcome.error {
                Some(e) => (Some(e.kind.as_str()), Some(e.message.as_str())),
                None => (None, None),
            };
            let end = tx
                .prepare_cached(&format!(
                    "UPDATE attempts SET status = $3, error_kind = $4, error_message = $5, exit_code = $6, finished_at = {NOW} \
                     WHERE job_id = $1 AND number = $2"
                ))
                .await?;
            tx.execute(
                &end,
                &[
                    &job_id,
                    &number,
                    &AttemptStatus::ended(outcome.status).as_str(),
                    &kind,
                    &message,
                    &outcome.exit_code,
                ],
            )
            .await?;
            let next = rules::after_attempt(
                outcome,
                rules::Attempts {
                    failures: num(failures)?,
                    max_attempts: num(max_attempts)?,
                },
                Duration::from_millis(backoff_ms.max(0) as u64),
            );
            if let rules::AfterAttempt::Retry { backoff } = next {
                let retry = tx
                    .prepare_cached(&format!(
                        "UPDATE jobs SET status = 'queued', failures = failures + 1, worker_id = NULL, lease_expires = NULL, \
                         run_after = {NOW} + $2, error_kind = $3, error_message = $4, exit_code = $5 WHERE id = $1"
                    ))
                    .await?;
                tx.execute(
                    &retry,
                    &[&job_id, &backoff_ms, &kind, &message, &outcome.exit_code],
                )
                .await?;
                Finish::Retrying { after: backoff }
            } else {
                let done = tx
                    .prepare_cached(&format!(
                        "UPDATE jobs SET status = $2, failures = failures + $3, lease_expires = NULL, error_kind = $4, \
                         error_message = $5, exit_code = $6, finished_at = {NOW} WHERE id = $1"
                    ))
                    .await?;
                let failed = i64::from(matches!(
                    next,
                    rules::AfterAttempt::End { failed: true, .. }
                ));
                tx.execute(
                    &done,
                    &[
                        &job_id,
                        &outcome.status.as_str(),
                        &failed,
                        &kind,
                        &message,
                        &outcome.exit_code,
                    ],
                )
                .await?;
                if matches!(
                    next,
                    rules::AfterAttempt::End {
                        save_state: true,
                        ..
                    }
                ) {
                    if let (Some(cfg), Some(state)) = (&config_id, &new_state) {
                        tx.execute(
                            "UPDATE configs SET state = $3 WHERE project_id = $1 AND id = $2",
                            &[&project, cfg, state],
                        )
                        .await?;
                    }
                }
                if notify == Some(true) {
                    notify_job(&tx, id).await?;
                }
                Finish::Done(outcome.status)
            }
        })?;
        self.announce_all(rules::announce_finish(id, &finish));
        Ok(finish)
    }

    async fn hand_back(
        &self,
        id: JobId,
        attempt: u32,
        worker: &WorkerId,
    ) -> gantry_store::Result<()> {
        let worker = worker.as_str();
        let (job_id, number) = (id.to_string(), i64::from(attempt));
        let n = locked!(self, |tx| {
            let n = tx
                .execute(
                    &format!(
                        "UPDATE jobs SET status = 'queued', worker_id = NULL, lease_expires = NULL, run_after = {NOW} \
                         WHERE id = $1 AND attempt = $2 AND worker_id = $3 AND status = 'running'"
                    ),
                    &[&job_id, &number, &worker],
                )
                .await?;
            if n > 0 {
                tx.execute(
                    &format!(
                        "UPDATE attempts SET status = 'handed_back', finished_at = {NOW} WHERE job_id = $1 AND number = $2"
                    ),
                    &[&job_id, &number],
                )
                .await?;
            }
            n
        })?;
        if n > 0 {
            self.announce_all(rules::announce_handed_back(id));
        }
        Ok(())
    }

    async fn recover_expired(&self) -> gantry_store::Result<Vec<JobId>> {
        self.take_back_where(
            &format!("lease_expires < {NOW}"),
            None,
            rules::LeaseLost::Expired,
        )
        .await
    }

    async fn recover_worker(&self, worker: &WorkerId) -> gantry_store::Result<Vec<JobId>> {
        let worker = worker.as_str();
        self.take_back_where(
            "worker_id = $1",
            Some(worker),
            rules::LeaseLost::WorkerRestarted,
        )
        .await
    }
}
