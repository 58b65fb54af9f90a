//! Rows of jobs and their attempts, and what several concerns share about
//! them: making a job (submissions, schedules, webhooks, pipelines, Iron
//! tasks), reading one with its attempts and why it waits, and queueing the
//! notifications a job or run asks for when it ends.

use crate::error::{Error, Result};
use crate::NOW;
use deadpool_postgres::GenericClient;
use gantry_core::{ErrorKind, JobError, JobId, JobStatus, ProjectId};
use gantry_store::rules::{self, NOTIFY_DEADLINE_MS};
use gantry_store::{Attempt, Job, NewJob, Trigger, Waiting, GONE_AFTER_MS};
use serde_json::Value;
use tokio_postgres::Row;

// ---- conversions shared by every module

/// A stored name of an enum, or `Corrupt`.
pub(crate) fn parse_str<T: std::str::FromStr>(s: &str) -> Result<T> {
    s.parse()
        .map_err(|_| Error::Corrupt(format!("unknown value '{s}'")))
}

/// A stored id (`JobId`, `ProjectId`, ...), or `Corrupt`.
pub(crate) fn parse<T: std::str::FromStr<Err = String>>(s: String) -> Result<T> {
    s.parse().map_err(Error::Corrupt)
}

pub(crate) fn json(s: &str) -> Result<Value> {
    serde_json::from_str(s).map_err(|e| Error::Corrupt(e.to_string()))
}

/// A non-negative stored integer as the record's width, or `Corrupt`.
pub(crate) fn num<T: TryFrom<i64>>(v: i64) -> Result<T> {
    T::try_from(v).map_err(|_| Error::Corrupt(format!("number {v} out of range")))
}

pub(crate) fn opt_num<T: TryFrom<i64>>(v: Option<i64>) -> Result<Option<T>> {
    v.map(num).transpose()
}

pub(crate) fn job_error(kind: Option<String>, message: Option<String>) -> Result<Option<JobError>> {
    match kind {
        Some(k) => Ok(Some(JobError {
            kind: parse::<ErrorKind>(k)?,
            message: message.unwrap_or_default(),
        })),
        None => Ok(None),
    }
}

/// The database's clock now (when this statement started), in ms.
pub(crate) async fn now(c: &impl GenericClient) -> Result<i64> {
    Ok(c.query_one(&format!("SELECT {NOW}"), &[]).await?.get(0))
}

// ---- jobs

pub(crate) const JOB_COLS: &str = "id, project_id, config_id, status, spec, attempt, max_attempts, error_kind, error_message, \
     exit_code, worker_id, image_digest, limits, cancel_requested, queued_at, started_at, finished_at, \
     priority, run_after, concurrency_key, concurrency_limit, trigger, token_id, token_desc";

pub(crate) fn job_from_row(r: &Row) -> Result<Job> {
    Ok(Job {
        id: parse(r.try_get(0)?)?,
        project: parse(r.try_get(1)?)?,
        config_id: r.try_get::<_, Option<String>>(2)?.map(parse).transpose()?,
        status: parse(r.try_get(3)?)?,
        spec: json(r.try_get::<_, &str>(4)?)?,
        attempt: num(r.try_get(5)?)?,
        max_attempts: num(r.try_get(6)?)?,
        error: job_error(r.try_get(7)?, r.try_get(8)?)?,
        exit_code: r.try_get(9)?,
        worker_id: r.try_get(10)?,
        image_digest: r.try_get(11)?,
        limits: r
            .try_get::<_, Option<&str>>(12)?
            .map(serde_json::from_str::<Option<_>>)
            .transpose()
            .map_err(|e| Error::Corrupt(format!("limits: {e}")))?
            .flatten(),
        cancel_requested: r.try_get(13)?,
        queued_at: r.try_get(14)?,
        started_at: r.try_get(15)?,
        finished_at: r.try_get(16)?,
        token_id: r.try_get(22)?,
        token_desc: r.try_get(23)?,
        attempts: Vec::new(),
        priority: num(r.try_get(17)?)?,
        run_after: r.try_get(18)?,
        concurrency: match (
            r.try_get::<_, Option<String>>(19)?,
            r.try_get::<_, Option<i64>>(20)?,
        ) {
            (Some(k), Some(l)) => Some((k, num(l)?)),
            _ => None,
        },
        waiting: None,
        trigger: r
            .try_get::<_, Option<&str>>(21)?
            .map(|t| serde_json::from_str(t).map_err(|e| Error::Corrupt(e.to_string())))
            .transpose()?,
    })
}

const INSERT_JOB: &str = "INSERT INTO jobs (id, project_id, config_id, status, spec, max_attempts, backoff_ms, \
     priority, eff_priority, concurrency_key, concurrency_limit, trigger, schedule_id, token_id, token_desc, run_after, queued_at) \
     VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7, $7, $8, $9, $12, $13, $14, $15, \
     GREATEST(gantry_now_ms() + $10, COALESCE($11::BIGINT, 0)), gantry_now_ms())";

/// Inserts a queued job made from `job` under `id` (inside the caller's
/// transaction). Announcing `Enqueued` after the commit is the caller's.
pub(crate) async fn insert_job(c: &impl GenericClient, id: &JobId, job: &NewJob) -> Result<()> {
    let stmt = c.prepare_cached(INSERT_JOB).await?;
    c.execute(&stmt, &job_params(id, job).as_params()).await?;
    Ok(())
}

/// [`insert_job`], answering the job as stored (without its attempts).
pub(crate) async fn insert_job_returning(
    c: &impl GenericClient,
    id: &JobId,
    job: &NewJob,
) -> Result<Job> {
    let stmt = c
        .prepare_cached(&format!("{INSERT_JOB} RETURNING {JOB_COLS}"))
        .await?;
    let row = c.query_one(&stmt, &job_params(id, job).as_params()).await?;
    job_from_row(&row)
}

/// The parameters of [`INSERT_JOB`], owned.
struct JobParams {
    id: String,
    project: String,
    config: Option<String>,
    spec: String,
    max_attempts: i64,
    backoff_ms: i64,
    priority: i64,
    key: Option<String>,
    limit: Option<i64>,
    delay_ms: i64,
    run_at: Option<i64>,
    trigger: Option<String>,
    schedule: Option<String>,
    token_id: Option<String>,
    token_desc: Option<String>,
}

impl JobParams {
    fn as_params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 15] {
        [
            &self.id,
            &self.project,
            &self.config,
            &self.spec,
            &self.max_attempts,
            &self.backoff_ms,
            &self.priority,
            &self.key,
            &self.limit,
            &self.delay_ms,
            &self.run_at,
            &self.trigger,
            &self.schedule,
            &self.token_id,
            &self.token_desc,
        ]
    }
}

fn job_params(id: &JobId, job: &NewJob) -> JobParams {
    JobParams {
        id: id.to_string(),
        project: job.project.as_str().to_string(),
        config: job.config_id.as_ref().map(|c| c.as_str().to_string()),
        spec: job.spec.to_string(),
        max_attempts: i64::from(job.max_attempts),
        backoff_ms: job.backoff.as_millis() as i64,
        priority: i64::from(job.priority),
        key: job.concurrency.as_ref().map(|(k, _)| k.clone()),
        limit: job.concurrency.as_ref().map(|(_, l)| i64::from(*l)),
        delay_ms: job.delay.as_millis() as i64,
        run_at: job.run_at,
        trigger: job
            .trigger
            .as_ref()
            .and_then(|t| serde_json::to_string(t).ok()),
        schedule: job
            .trigger
            .as_ref()
            .and_then(Trigger::schedule_id)
            .map(|i| i.to_string()),
        token_id: job.token_id.clone(),
        token_desc: job.token_desc.clone(),
    }
}

/// A job without its attempts (`project: None` finds it in any project).
pub(crate) async fn load_job(
    c: &impl GenericClient,
    project: Option<&ProjectId>,
    id: JobId,
) -> Result<Job> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {JOB_COLS} FROM jobs WHERE id = $1 AND ($2::TEXT IS NULL OR project_id = $2)"
        ))
        .await?;
    match c
        .query_opt(&stmt, &[&id.to_string(), &project.map(|p| p.as_str())])
        .await?
    {
        Some(row) => job_from_row(&row),
        None => Err(Error::NotFound(format!("job {id}"))),
    }
}

pub(crate) async fn load_attempts(c: &impl GenericClient, id: JobId) -> Result<Vec<Attempt>> {
    let stmt = c
        .prepare_cached(
            "SELECT number, worker_id, status, error_kind, error_message, exit_code, image_digest, started_at, finished_at \
             FROM attempts WHERE job_id = $1 ORDER BY number",
        )
        .await?;
    c.query(&stmt, &[&id.to_string()])
        .await?
        .iter()
        .map(|r| {
            Ok(Attempt {
                number: num(r.try_get(0)?)?,
                worker_id: r.try_get(1)?,
                status: parse_str(r.try_get::<_, &str>(2)?)?,
                error: job_error(r.try_get(3)?, r.try_get(4)?)?,
                exit_code: r.try_get(5)?,
                image_digest: r.try_get(6)?,
                started_at: r.try_get(7)?,
                finished_at: r.try_get(8)?,
            })
        })
        .collect()
}

/// A job as the API shows it: with its attempts and, if queued, why it waits.
pub(crate) async fn load_full_job(
    c: &impl GenericClient,
    project: Option<&ProjectId>,
    id: JobId,
) -> Result<Job> {
    let mut job = load_job(c, project, id).await?;
    job.attempts = load_attempts(c, id).await?;
    fill_waiting(c, &mut job).await?;
    Ok(job)
}

/// Why a queued job waits (the same rules as the claim), for views.
pub(crate) async fn waiting_reason(c: &impl GenericClient, job: &Job) -> Result<Option<Waiting>> {
    let now = now(c).await?;
    if job.run_after > now {
        return Ok(Some(Waiting::Delayed {
            until: job.run_after,
        }));
    }
    match (&job.config_id, &job.concurrency) {
        (Some(cfg), None) => {
            let holder: Option<String> = c
                .query_opt(
                    "SELECT id FROM jobs WHERE status = 'running' AND project_id = $1 AND config_id = $2 LIMIT 1",
                    &[&job.project.as_str(), &cfg.as_str()],
                )
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
            if let Some(h) = holder {
                return Ok(Some(Waiting::ConfigLock {
                    job: parse(h)?,
                    config: cfg.clone(),
                }));
            }
        }
        (_, Some((key, limit))) => {
            let running: Vec<String> = c
                .query(
                    "SELECT id FROM jobs WHERE status = 'running' AND project_id = $1 AND concurrency_key = $2 ORDER BY id",
                    &[&job.project.as_str(), key],
                )
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<std::result::Result<_, _>>()?;
            if running.len() as u64 >= u64::from(*limit) {
                return Ok(Some(Waiting::ConcurrencyKey {
                    key: key.clone(),
                    limit: *limit,
                    running: running.into_iter().map(parse).collect::<Result<_>>()?,
                }));
            }
        }
        (None, None) => {}
    }
    // Running jobs are counted only for a capped project.
    let cap = c
        .query_opt(
            "SELECT max_running FROM projects WHERE id = $1 AND max_running IS NOT NULL",
            &[&job.project.as_str()],
        )
        .await?;
    if let Some(r) = cap {
        let limit: i64 = r.try_get(0)?;
        let n: i64 = c
            .query_one(
                "SELECT COUNT(*) FROM jobs WHERE status = 'running' AND project_id = $1",
                &[&job.project.as_str()],
            )
            .await?
            .try_get(0)?;
        {
            if n >= limit {
                return Ok(Some(Waiting::ProjectLimit {
                    project: job.project.clone(),
                    limit: num(limit)?,
                }));
            }
        }
    }
    no_worker_for(c, job).await
}

pub(crate) async fn fill_waiting(c: &impl GenericClient, job: &mut Job) -> Result<()> {
    if job.status == JobStatus::Queued {
        job.waiting = waiting_reason(c, job).await?;
    }
    Ok(())
}

/// A queued job that asks for tags no live, active worker has all of.
async fn no_worker_for(c: &impl GenericClient, job: &Job) -> Result<Option<Waiting>> {
    if job.spec.get("worker_tags").is_none() {
        return Ok(None);
    }
    let asked: Option<Value> = c
        .query_opt(
            "SELECT worker_tags FROM jobs WHERE id = $1",
            &[&job.id.to_string()],
        )
        .await?
        .map(|r| r.try_get::<_, Option<Value>>(0))
        .transpose()?
        .flatten();
    let Some(asked) = asked else {
        return Ok(None);
    };
    let wanted: Vec<String> = serde_json::from_value(asked.clone())?;
    if wanted.is_empty() {
        return Ok(None);
    }
    let able: bool = c
        .query_one(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM workers w WHERE w.state = 'active' \
                 AND w.last_seen >= {NOW} - $2 \
                 AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text($1::TEXT::JSONB) t(value) \
                     WHERE t.value NOT IN (SELECT jsonb_array_elements_text(w.tags::JSONB))))"
            ),
            &[&asked.to_string(), &GONE_AFTER_MS],
        )
        .await?
        .try_get(0)?;
    Ok((!able).then_some(Waiting::NoWorker { tags: wanted }))
}

// ---- notifications

/// Queues the notifications a job or run asks for now that it has ended
/// with `status`; inside the caller's transaction.
pub(crate) async fn queue_notifications(
    c: &impl GenericClient,
    project: &str,
    kind: &str,
    subject: &str,
    status: &str,
    notify: Option<&Value>,
    body: &Value,
) -> Result<()> {
    for n in rules::notifications_due(status, notify) {
        c.execute(
            &format!(
                "INSERT INTO notifications (project_id, subject_kind, subject_id, url, secret, body, status, next_at, deadline, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'pending', {NOW}, {NOW} + $7, {NOW})"
            ),
            &[
                &project,
                &kind,
                &subject,
                &n.url,
                &n.secret_sealed,
                &body.to_string(),
                &NOTIFY_DEADLINE_MS,
            ],
        )
        .await?;
    }
    Ok(())
}

/// Queues a job's notifications if it has ended (inside the caller's
/// transaction).
pub(crate) async fn notify_job(c: &impl GenericClient, id: JobId) -> Result<()> {
    // Most jobs ask for no notification: say so without reading the job.
    let asks: Option<bool> = c
        .query_opt(
            "SELECT jsonb_typeof(spec::JSONB -> 'notify') = 'array' FROM jobs WHERE id = $1",
            &[&id.to_string()],
        )
        .await?
        .map(|r| r.try_get::<_, Option<bool>>(0))
        .transpose()?
        .flatten();
    if asks != Some(true) {
        return Ok(());
    }
    let job = load_job(c, None, id).await?;
    if !job.status.is_terminal() {
        return Ok(());
    }
    let body = serde_json::json!({
        "type": "job.ended",
        "job": {
            "id": job.id.to_string(),
            "project": job.project.as_str(),
            "config": job.config_id.as_ref().map(|c| c.as_str()),
            "status": job.status.as_str(),
            "error": job.error.as_ref().map(|e| serde_json::json!({"kind": e.kind.as_str(), "message": e.message})),
            "exit_code": job.exit_code,
            "attempt": job.attempt,
            "trigger": job.trigger,
            "queued_at": job.queued_at,
            "started_at": job.started_at,
            "finished_at": job.finished_at,
        }
    });
    queue_notifications(
        c,
        job.project.as_str(),
        "job",
        &id.to_string(),
        job.status.as_str(),
        job.spec.get("notify"),
        &body,
    )
    .await
}
