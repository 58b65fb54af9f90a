//! The embedded SQLite backend of Gantry's store (`gantry_store::Store`).
//! SQL and row mapping only: the domain decisions are
//! `gantry_store::rules`, called inside each transaction.
//!
//! One writer connection owned by a writer thread, and one reader connection
//! behind a mutex used from blocking threads. WAL lets reads run beside
//! writes. Job state changes commit with `synchronous=FULL`; log batches
//! alone with `NORMAL`, which in WAL mode survives a process crash (only
//! power loss can drop the last batch).
//!
//! Group commit: writes that queue up while the writer thread is busy (an
//! fsync takes most of a commit) run together in one transaction, each in
//! its own savepoint, and share one fsync. Nobody waits on purpose: a group
//! is simply what arrived during the previous commit. A write is answered
//! only after the commit that holds it, so nothing acknowledged can be lost.

#![forbid(unsafe_code)]

pub mod backup;
mod error;
pub mod retention;

use async_trait::async_trait;
use error::{Error, Result};
use gantry_core::events::LogLine;
use gantry_core::job::Outcome;
use gantry_core::spec::Loosening;
use gantry_core::{
    ConfigId, ErrorKind, FileId, JobError, JobId, JobStatus, PipelineId, ProjectId, ScheduleId,
    TableId, TokenId, WorkerId,
};
use gantry_store::migrate::{self, Migration};
use gantry_store::rules::{self, AGING_STEP_MS, NOTIFY_DEADLINE_MS};
use gantry_store::*;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

mod images;
mod iron;
mod workers;

/// Milliseconds since the epoch, by the database's clock.
const NOW: &str = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";

/// The schema, one `.sql` file per step; `PRAGMA user_version` records
/// the last applied (the numbering of the array these files came from, so
/// databases made before keep their version).
pub const MIGRATIONS: &[Migration] = gantry_store::migrations!(
    "../migrations",
    1 "0001_initial.sql",
    2 "0002_storage.sql",
    3 "0003_project_allow.sql",
    4 "0004_keboola_ids.sql",
    5 "0005_lifecycle.sql",
    6 "0006_priority_concurrency.sql",
    7 "0007_schedules.sql",
    8 "0008_hooks.sql",
    9 "0009_pipelines.sql",
    10 "0010_notifications.sql",
    11 "0011_iron.sql",
    12 "0012_workers.sql",
    13 "0013_images.sql",
    14 "0014_sparse_job_indexes.sql",
);

/// Called once the group holding a write has committed (`None`) or failed.
type Finisher = Box<dyn FnOnce(Option<&str>) + Send>;
/// A write to run on the writer thread; returns how to answer its caller.
type WriteJob = Box<dyn FnOnce(&mut Connection) -> Finisher + Send>;

/// Most writes one commit may carry.
const MAX_GROUP: usize = 512;

/// The writer thread: owns the writer connection and commits in groups.
fn writer_thread(mut conn: Connection, rx: std::sync::mpsc::Receiver<WriteJob>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if batch.len() == 1 || conn.execute_batch("BEGIN IMMEDIATE").is_err() {
            for job in batch {
                job(&mut conn)(None);
            }
            continue;
        }
        let mut done = Vec::with_capacity(batch.len());
        let mut rest = Vec::new();
        for job in batch {
            // Some errors (a full disk, an I/O error) end the transaction
            // itself; what comes after must not run in autocommit unseen.
            if conn.is_autocommit() {
                rest.push(job);
            } else {
                done.push(job(&mut conn));
            }
        }
        let failure = if conn.is_autocommit() {
            Some("the transaction was aborted".to_string())
        } else {
            match conn.execute_batch("COMMIT") {
                Ok(()) => None,
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    Some(e.to_string())
                }
            }
        };
        for finish in done {
            finish(failure.as_deref());
        }
        for job in rest {
            job(&mut conn)(None);
        }
    }
}

/// Queues the notifications a job or run asks for now that it has ended
/// with `status`; inside the caller's transaction.
fn queue_notifications(
    tx: &Connection,
    project: &str,
    kind: &str,
    subject: &str,
    status: &str,
    notify: Option<&Value>,
    body: &Value,
) -> Result<()> {
    for n in rules::notifications_due(status, notify) {
        tx.execute(
            &format!(
                "INSERT INTO notifications (project_id, subject_kind, subject_id, url, secret, body, status, next_at, deadline, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', {NOW}, {NOW} + ?7, {NOW})"
            ),
            params![
                project,
                kind,
                subject,
                n.url,
                n.secret_sealed,
                body.to_string(),
                NOTIFY_DEADLINE_MS
            ],
        )?;
    }
    Ok(())
}

/// Queues a job's notifications if it has ended.
fn notify_job(tx: &Connection, id: &str) -> Result<()> {
    // Most jobs ask for no notification: say so without reading the job.
    let asks: bool = tx
        .prepare_cached("SELECT json_type(spec, '$.notify') = 'array' FROM jobs WHERE id = ?1")?
        .query_row([id], |r| Ok(r.get::<_, Option<bool>>(0)?.unwrap_or(false)))?;
    if !asks {
        return Ok(());
    }
    let job = load_job(tx, None, parse(id.to_string())?)?;
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
        tx,
        job.project.as_str(),
        "job",
        id,
        job.status.as_str(),
        job.spec.get("notify"),
        &body,
    )
}

/// Queues a pipeline run's notifications (the pipeline's `notify`).
fn notify_run(tx: &Connection, id: &str) -> Result<()> {
    let run = load_run(tx, None, id)?;
    let doc: Option<String> = tx
        .prepare_cached("SELECT doc FROM pipelines WHERE project_id = ?1 AND id = ?2")?
        .query_row(params![run.project.as_str(), run.pipeline.as_str()], |r| {
            r.get(0)
        })
        .optional()?;
    let Some(doc) = doc else { return Ok(()) };
    let doc = json(&doc)?;
    let body = serde_json::json!({
        "type": "pipeline_run.ended",
        "run": {
            "id": run.id,
            "project": run.project.as_str(),
            "pipeline": run.pipeline.as_str(),
            "status": run.status,
            "error": run.error,
            "tasks": run.tasks,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
        }
    });
    queue_notifications(
        tx,
        run.project.as_str(),
        "pipeline_run",
        id,
        &run.status,
        doc.get("notify"),
        &body,
    )
}

const RUN_COLS: &str = "id, project_id, pipeline_id, status, phase, phases, cancel_requested, error, created_at, started_at, finished_at, trigger";

fn load_run(c: &Connection, project: Option<&ProjectId>, id: &str) -> Result<PipelineRun> {
    let mut run = c
        .prepare_cached(&format!(
            "SELECT {RUN_COLS} FROM pipeline_runs WHERE id = ?1 AND (?2 IS NULL OR project_id = ?2)"
        ))?
        .query_row(params![id, project.map(|p| p.as_str())], |r| {
            Ok(run_from_row(r))
        })
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("pipeline run {id}")))??;
    let mut stmt = c.prepare_cached(
        "SELECT t.phase, t.task, t.config_id, t.continue_on_failure, COALESCE(j.status, t.status), t.job_id, \
         COALESCE(t.error, j.error_message) FROM pipeline_tasks t LEFT JOIN jobs j ON j.id = t.job_id \
         WHERE t.run_id = ?1 ORDER BY t.phase, t.task",
    )?;
    let rows = stmt.query([id])?;
    run.tasks = collect_rows(rows, |r| {
        Ok(RunTask {
            phase: r.get(0)?,
            task: r.get(1)?,
            config_id: parse(r.get(2)?)?,
            continue_on_failure: r.get(3)?,
            status: r.get(4)?,
            job_id: r.get::<_, Option<String>>(5)?.map(parse).transpose()?,
            error: r.get(6)?,
        })
    })?;
    Ok(run)
}

fn run_from_row(r: &Row<'_>) -> Result<PipelineRun> {
    Ok(PipelineRun {
        id: r.get(0)?,
        project: parse(r.get(1)?)?,
        pipeline: parse(r.get(2)?)?,
        status: r.get(3)?,
        phase: r.get(4)?,
        phases: r.get(5)?,
        cancel_requested: r.get(6)?,
        error: r.get(7)?,
        created_at: r.get(8)?,
        started_at: r.get(9)?,
        finished_at: r.get(10)?,
        tasks: Vec::new(),
        trigger: r
            .get::<_, Option<String>>(11)?
            .map(|t| serde_json::from_str(&t).map_err(|e| Error::Corrupt(e.to_string())))
            .transpose()?,
    })
}

/// What advancing a run did, for announcements after the commit.
#[derive(Default)]
struct Advanced {
    changed: bool,
    enqueued: bool,
    cancel: Vec<JobId>,
}

/// The job of one task: the configuration's stored spec with the task's
/// parameters merged over its own. `Err` is a reason the task fails at once.
fn task_job(
    tx: &Connection,
    project: &ProjectId,
    run: &str,
    phase: u32,
    task: u32,
    config: &str,
    overrides: &str,
) -> Result<std::result::Result<NewJob, String>> {
    let config: ConfigId = parse(config.to_string())?;
    let stored = match load_config(tx, project, &config) {
        Ok(c) => c.spec,
        Err(Error::NotFound(_)) => return Ok(Err(format!("configuration {config} not found"))),
        Err(e) => return Err(e),
    };
    let mut spec = stored;
    if let (Some(params), Value::Object(over)) = (
        spec.as_object_mut().map(|o| {
            o.entry("parameters")
                .or_insert_with(|| Value::Object(Default::default()))
        }),
        json(overrides)?,
    ) {
        if let Some(p) = params.as_object_mut() {
            p.extend(over);
        }
    }
    let validated = match gantry_core::Spec::from_value(spec.clone()) {
        Ok((_, v)) => v,
        Err(e) => return Ok(Err(format!("configuration {config}: {e}"))),
    };
    let mut job = NewJob::from_spec(project.clone(), Some(config), spec, &validated);
    job.trigger = Some(Trigger::Pipeline {
        run: run.to_string(),
        phase,
        task,
    });
    Ok(Ok(job))
}

/// Starts a run of a pipeline inside the caller's transaction.
fn start_run_tx(
    tx: &Connection,
    project: &ProjectId,
    id: &PipelineId,
    trigger: Option<&Trigger>,
) -> Result<(String, Advanced)> {
    let p = load_pipeline(tx, project, id)?;
    let doc: gantry_core::pipeline::PipelineDoc =
        serde_json::from_value(p.doc).map_err(|e| Error::Corrupt(format!("pipeline {id}: {e}")))?;
    let run = JobId::new().to_string();
    tx.execute(
        &format!(
            "INSERT INTO pipeline_runs (id, project_id, pipeline_id, status, phases, trigger, schedule_id, created_at) \
             VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6, {NOW})"
        ),
        params![
            run,
            project.as_str(),
            id.as_str(),
            doc.phases.len() as u32,
            trigger.and_then(|t| serde_json::to_string(t).ok()),
            trigger.and_then(Trigger::schedule_id).map(|s| s.to_string()),
        ],
    )?;
    for (i, phase) in doc.phases.iter().enumerate() {
        for (j, t) in phase.tasks.iter().enumerate() {
            tx.execute(
                "INSERT INTO pipeline_tasks (run_id, phase, task, config_id, continue_on_failure, parameters, status) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending')",
                params![
                    run,
                    i as u32,
                    j as u32,
                    t.config,
                    t.continue_on_failure,
                    Value::Object(t.parameters.clone()).to_string()
                ],
            )?;
        }
    }
    let adv = advance_run(tx, &run)?;
    Ok((run, adv))
}

const TERMINAL_RUN: [&str; 4] = ["succeeded", "warning", "failed", "cancelled"];

/// Moves one run on from what its jobs did; idempotent.
fn advance_run(tx: &Connection, id: &str) -> Result<Advanced> {
    let mut out = Advanced::default();
    let row: Option<(String, String, u32, u32, bool, u32)> = tx
        .prepare_cached(
            "SELECT project_id, status, phase, phases, cancel_requested, warnings FROM pipeline_runs WHERE id = ?1",
        )?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
        .optional()?;
    let Some((project, status, mut phase, phases, cancel, mut warnings)) = row else {
        return Ok(out);
    };
    if TERMINAL_RUN.contains(&status.as_str()) {
        return Ok(out);
    }
    let project: ProjectId = parse(project)?;
    // Task statuses follow their jobs.
    tx.prepare_cached(
        "UPDATE pipeline_tasks SET status = (SELECT j.status FROM jobs j WHERE j.id = pipeline_tasks.job_id) \
         WHERE run_id = ?1 AND job_id IS NOT NULL",
    )?
    .execute([id])?;
    let finish = |tx: &Connection, status: &str, error: Option<String>| -> Result<()> {
        tx.prepare_cached(&format!(
            "UPDATE pipeline_runs SET status = ?2, error = COALESCE(?3, error), finished_at = {NOW} WHERE id = ?1"
        ))?
        .execute(params![id, status, error])?;
        notify_run(tx, id)
    };
    if cancel {
        let active: Vec<(String, String)> = tx
            .prepare_cached(
                "SELECT job_id, status FROM pipeline_tasks WHERE run_id = ?1 AND status IN ('queued', 'running')",
            )?
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut still_running = false;
        for (job, st) in active {
            if st == "queued" {
                tx.execute(
                    &format!("UPDATE jobs SET status = 'cancelled', cancel_requested = 1, finished_at = {NOW} WHERE id = ?1 AND status = 'queued'"),
                    [&job],
                )?;
                tx.execute(
                    "UPDATE pipeline_tasks SET status = 'cancelled' WHERE job_id = ?1",
                    [&job],
                )?;
            } else {
                let n = tx.execute(
                    "UPDATE jobs SET cancel_requested = 1 WHERE id = ?1 AND status = 'running' AND cancel_requested = 0",
                    [&job],
                )?;
                if n > 0 {
                    out.cancel.push(parse(job)?);
                }
                still_running = true;
            }
        }
        tx.execute(
            "UPDATE pipeline_tasks SET status = 'skipped' WHERE run_id = ?1 AND status = 'pending'",
            [id],
        )?;
        if !still_running {
            finish(tx, "cancelled", None)?;
        }
        out.changed = true;
        return Ok(out);
    }
    loop {
        let tasks: Vec<(u32, String, bool, String, String, Option<String>)> = tx
            .prepare_cached(
                "SELECT task, config_id, continue_on_failure, status, parameters, error FROM pipeline_tasks \
                 WHERE run_id = ?1 AND phase = ?2 ORDER BY task",
            )?
            .query_map(params![id, phase], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        if tasks.iter().any(|t| t.3 == "pending") {
            // Start the phase: every task at once.
            for (task, config, _, st, overrides, _) in &tasks {
                if st != "pending" {
                    continue;
                }
                match task_job(tx, &project, id, phase, *task, config, overrides)? {
                    Ok(job) => {
                        let jid = JobId::new();
                        tx.prepare_cached(INSERT_JOB)?
                            .execute(job_params(&jid, &job))?;
                        tx.execute(
                            "UPDATE pipeline_tasks SET status = 'queued', job_id = ?4 WHERE run_id = ?1 AND phase = ?2 AND task = ?3",
                            params![id, phase, task, jid.to_string()],
                        )?;
                        out.enqueued = true;
                    }
                    Err(why) => {
                        tx.execute(
                            "UPDATE pipeline_tasks SET status = 'failed', error = ?4 WHERE run_id = ?1 AND phase = ?2 AND task = ?3",
                            params![id, phase, task, why],
                        )?;
                    }
                }
            }
            tx.execute(
                &format!("UPDATE pipeline_runs SET status = 'running', phase = ?2, started_at = COALESCE(started_at, {NOW}) WHERE id = ?1"),
                params![id, phase],
            )?;
            out.changed = true;
            // A phase whose tasks all failed at once ends now: look again.
            if out.enqueued {
                return Ok(out);
            }
            continue;
        }
        if tasks.iter().any(|t| t.3 == "queued" || t.3 == "running") {
            return Ok(out);
        }
        let hard = tasks.iter().find(|t| t.3 != "succeeded" && !t.2);
        if let Some((task, config, _, st, _, err)) = hard {
            tx.execute(
                "UPDATE pipeline_tasks SET status = 'skipped' WHERE run_id = ?1 AND status = 'pending'",
                [id],
            )?;
            let why = format!(
                "phase {phase} task {task} (configuration {config}) ended {st}{}",
                err.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
            );
            finish(tx, "failed", Some(why))?;
            out.changed = true;
            return Ok(out);
        }
        warnings += tasks.iter().filter(|t| t.3 != "succeeded").count() as u32;
        phase += 1;
        tx.execute(
            "UPDATE pipeline_runs SET phase = ?2, warnings = ?3 WHERE id = ?1",
            params![id, phase.min(phases.saturating_sub(1)), warnings],
        )?;
        out.changed = true;
        if phase >= phases {
            finish(tx, if warnings > 0 { "warning" } else { "succeeded" }, None)?;
            return Ok(out);
        }
    }
}

const HOOK_COLS: &str = "project_id, id, config_id, auth, secret, old_secret, old_until, max_body, rate_per_min, created_at, pipeline_id";

fn hook_from_row(r: &Row<'_>) -> Result<HookRow> {
    Ok(HookRow {
        project: parse(r.get(0)?)?,
        id: r.get(1)?,
        config_id: r.get::<_, Option<String>>(2)?.map(parse).transpose()?,
        pipeline_id: r.get::<_, Option<String>>(10)?.map(parse).transpose()?,
        auth: r.get(3)?,
        secret_sealed: r.get(4)?,
        old_secret_sealed: r.get(5)?,
        old_until: r.get(6)?,
        max_body: r.get::<_, i64>(7)? as u64,
        rate_per_min: r.get(8)?,
        created_at: r.get(9)?,
    })
}

fn pipeline_from_row(r: &Row<'_>) -> Result<PipelineRow> {
    Ok(PipelineRow {
        project: parse(r.get(0)?)?,
        id: parse(r.get(1)?)?,
        doc: json(&r.get::<_, String>(2)?)?,
        version: r.get(3)?,
        created_at: r.get(4)?,
        updated_at: r.get(5)?,
    })
}

fn load_pipeline(c: &Connection, project: &ProjectId, id: &PipelineId) -> Result<PipelineRow> {
    c.prepare_cached(
        "SELECT project_id, id, doc, version, created_at, updated_at FROM pipelines WHERE project_id = ?1 AND id = ?2",
    )?
    .query_row(params![project.as_str(), id.as_str()], |r| Ok(pipeline_from_row(r)))
    .optional()?
    .ok_or_else(|| Error::NotFound(format!("pipeline {id}")))?
}

fn load_hook(c: &Connection, project: Option<&ProjectId>, id: &str) -> Result<HookRow> {
    c.prepare_cached(&format!(
        "SELECT {HOOK_COLS} FROM hooks WHERE id = ?1 AND (?2 IS NULL OR project_id = ?2)"
    ))?
    .query_row(params![id, project.map(|p| p.as_str())], |r| {
        Ok(hook_from_row(r))
    })
    .optional()?
    .ok_or_else(|| Error::NotFound(format!("webhook {id}")))?
}

/// The due queued jobs to claim next, in order: highest effective priority,
/// then oldest, skipping (never stopping at) jobs held back by a
/// configuration lock, a concurrency key or their project's `max_running`.
/// Evaluated inside the claim's transaction, so jobs claimed just before
/// count; `free` says whether claiming the job can hold any other back (it
/// has a configuration, a key, or a capped project): the claim takes a run
/// of jobs that are free and evaluates again after one that is not, so each
/// pick is what a one-at-a-time evaluation would pick.
pub const NEXT_CLAIMABLE: &str = "SELECT j.id, j.config_id IS NULL AND j.concurrency_key IS NULL AND NOT EXISTS ( \
         SELECT 1 FROM projects p WHERE p.id = j.project_id AND p.max_running IS NOT NULL) \
     FROM jobs j INDEXED BY jobs_claim \
     WHERE j.status = 'queued' AND j.run_after <= CAST(unixepoch('subsec') * 1000 AS INTEGER) \
     AND (j.config_id IS NULL OR j.concurrency_key IS NOT NULL OR NOT EXISTS ( \
         SELECT 1 FROM jobs r WHERE r.status = 'running' AND r.project_id = j.project_id AND r.config_id = j.config_id)) \
     AND (j.concurrency_key IS NULL OR ( \
         SELECT COUNT(*) FROM jobs r WHERE r.status = 'running' AND r.project_id = j.project_id \
         AND r.concurrency_key = j.concurrency_key) < j.concurrency_limit) \
     AND (NOT EXISTS (SELECT 1 FROM projects p WHERE p.id = j.project_id AND p.max_running IS NOT NULL) OR ( \
         SELECT COUNT(*) FROM jobs r WHERE r.status = 'running' AND r.project_id = j.project_id) < ( \
         SELECT max_running FROM projects p WHERE p.id = j.project_id)) \
     AND (j.worker_tags IS NULL OR NOT EXISTS (SELECT 1 FROM json_each(j.worker_tags) t \
         WHERE t.value NOT IN (SELECT value FROM json_each(?2)))) \
     ORDER BY j.eff_priority DESC, j.run_after, j.id LIMIT ?1";

/// Why a queued job waits (the same rules as [`NEXT_CLAIMABLE`]), for views.
fn waiting_reason(c: &Connection, job: &Job) -> Result<Option<Waiting>> {
    let now: i64 = c.query_row(&format!("SELECT {NOW}"), [], |r| r.get(0))?;
    if job.run_after > now {
        return Ok(Some(Waiting::Delayed {
            until: job.run_after,
        }));
    }
    match (&job.config_id, &job.concurrency) {
        (Some(cfg), None) => {
            let holder: Option<String> = c
                .prepare_cached(
                    "SELECT id FROM jobs WHERE status = 'running' AND project_id = ?1 AND config_id = ?2 LIMIT 1",
                )?
                .query_row(params![job.project.as_str(), cfg.as_str()], |r| r.get(0))
                .optional()?;
            if let Some(h) = holder {
                return Ok(Some(Waiting::ConfigLock {
                    job: parse(h)?,
                    config: cfg.clone(),
                }));
            }
        }
        (_, Some((key, limit))) => {
            let running: Vec<String> = c
                .prepare_cached(
                    "SELECT id FROM jobs WHERE status = 'running' AND project_id = ?1 AND concurrency_key = ?2 ORDER BY id",
                )?
                .query_map(params![job.project.as_str(), key], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            if running.len() as u64 >= *limit as u64 {
                return Ok(Some(Waiting::ConcurrencyKey {
                    key: key.clone(),
                    limit: *limit,
                    running: running.into_iter().map(parse).collect::<Result<_>>()?,
                }));
            }
        }
        (None, None) => {}
    }
    let cap: Option<(Option<u32>, u64)> = c
        .prepare_cached(
            "SELECT max_running, (SELECT COUNT(*) FROM jobs WHERE status = 'running' AND project_id = ?1) \
             FROM projects WHERE id = ?1",
        )?
        .query_row([job.project.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((Some(limit), n)) = cap {
        if n >= limit as u64 {
            return Ok(Some(Waiting::ProjectLimit {
                project: job.project.clone(),
                limit,
            }));
        }
    }
    workers::no_worker_for(c, job)
}

fn fill_waiting(c: &Connection, job: &mut Job) -> Result<()> {
    if job.status == JobStatus::Queued {
        job.waiting = waiting_reason(c, job)?;
    }
    Ok(())
}

#[derive(Clone)]
pub struct SqliteStore {
    writer: std::sync::mpsc::Sender<WriteJob>,
    reader: Arc<Mutex<Connection>>,
    changes: broadcast::Sender<Change>,
}

fn open_conn(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Savepoints (one per write of a group commit) journal the pages they
    // change; in memory, not in a temporary file written page by page.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating and migrating) the database at `path`.
    pub fn open(path: &Path) -> gantry_store::Result<Self> {
        Ok(Self::open_inner(path)?)
    }

    fn open_inner(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Internal(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mut writer = open_conn(path)?;
        migrate(&mut writer)?;
        let reader = open_conn(path)?;
        let (changes, _) = broadcast::channel(4096);
        let (tx, rx) = std::sync::mpsc::channel::<WriteJob>();
        // Ends when the last handle (sender) is dropped.
        std::thread::Builder::new()
            .name("gantry-store-writer".into())
            .spawn(move || writer_thread(writer, rx))
            .map_err(|e| Error::Internal(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            writer: tx,
            reader: Arc::new(Mutex::new(reader)),
            changes,
        })
    }

    /// Runs `f` on the writer thread, possibly in one commit with other
    /// writes (see the module doc); answers after that commit.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> gantry_store::Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: WriteJob = Box::new(move |c| {
            let out = f(c);
            Box::new(move |failed: Option<&str>| {
                let out = match failed {
                    Some(e) => Err(Error::Internal(format!("the commit failed: {e}"))),
                    None => out,
                };
                let _ = tx.send(out);
            })
        });
        self.writer
            .send(job)
            .map_err(|_| Error::Internal("the writer thread is gone".into()))?;
        Ok(rx
            .await
            .map_err(|_| Error::Internal("the writer thread stopped".into()))??)
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> gantry_store::Result<T> {
        let conn = self.reader.clone();
        let out = tokio::task::spawn_blocking(move || {
            let guard = conn
                .lock()
                .map_err(|_| Error::Internal("reader lock poisoned".into()))?;
            f(&guard)
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        Ok(out)
    }

    fn announce(&self, change: Change) {
        // No subscribers is fine.
        let _ = self.changes.send(change);
    }
}

/// Brings the schema to [`MIGRATIONS`]' newest version, each step in its
/// own `BEGIN IMMEDIATE` transaction (which also keeps two processes
/// opening one database from migrating it twice: the second waits, then
/// finds the version moved on). Refuses a schema newer than this binary knows.
fn migrate(conn: &mut Connection) -> Result<()> {
    loop {
        let done = immediate(conn, |tx: &Connection| {
            let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
            let Some(next) = migrate::pending(version, MIGRATIONS)?.first() else {
                return Ok(true);
            };
            tx.execute_batch(next.sql)?;
            tx.pragma_update(None, "user_version", next.version)?;
            Ok(false)
        })?;
        if done {
            return Ok(());
        }
    }
}

/// Runs `f` atomically: in its own `BEGIN IMMEDIATE` transaction, or, inside
/// a group commit, in a savepoint. Its writes stay when `f` returns `Ok`
/// and are rolled back otherwise.
fn immediate<T>(c: &mut Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    if c.is_autocommit() {
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    } else {
        let sp = c.savepoint()?;
        let out = f(&sp)?;
        sp.commit()?;
        Ok(out)
    }
}

/// A token's public id is the start of its hash.
const TOKEN_COLS: &str = "substr(hash, 1, 12), project_id, admin, description, created_at";

fn token_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<TokenInfo>> {
    let (id, project): (String, String) = (r.get(0)?, r.get(1)?);
    let (admin, description, created_at) = (r.get(2)?, r.get(3)?, r.get(4)?);
    Ok((|| {
        Ok(TokenInfo {
            id: parse(id)?,
            project: parse(project)?,
            admin,
            description,
            created_at,
        })
    })())
}

fn allow_json(allow: &[Loosening]) -> String {
    let mut v = allow.to_vec();
    v.sort();
    v.dedup();
    serde_json::to_string(&v).unwrap_or_else(|_| "[]".into())
}

const PROJECT_COLS: &str =
    "id, allow, created_at, import_max_bytes, retention, number, max_running";

fn project_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Project>> {
    let (id, allow, created_at): (String, String, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
    let import_max_bytes: Option<i64> = r.get(3)?;
    let retention: Option<String> = r.get(4)?;
    let number: i64 = r.get(5)?;
    let max_running: Option<u32> = r.get(6)?;
    Ok((|| {
        Ok(Project {
            id: parse(id)?,
            number,
            allow: serde_json::from_str(&allow)
                .map_err(|e| Error::Corrupt(format!("project allow list: {e}")))?,
            max_running,
            created_at,
            import_max_bytes: import_max_bytes.map(|n| n.max(0) as u64),
            retention: match retention {
                Some(j) => serde_json::from_str(&j)
                    .map_err(|e| Error::Corrupt(format!("project retention: {e}")))?,
                None => Retention::default(),
            },
        })
    })())
}

fn load_project(c: &Connection, id: &ProjectId) -> Result<Project> {
    c.query_row(
        &format!("SELECT {PROJECT_COLS} FROM projects WHERE id = ?1"),
        [id.as_str()],
        project_from_row,
    )
    .optional()?
    .ok_or_else(|| Error::NotFound(format!("project '{id}'")))?
}

const JOB_COLS: &str = "id, project_id, config_id, status, spec, attempt, max_attempts, error_kind, error_message, \
     exit_code, worker_id, image_digest, limits, cancel_requested, queued_at, started_at, finished_at, \
     priority, run_after, concurrency_key, concurrency_limit, trigger, token_id, token_desc";

/// A stored name of an enum (`strum`), or `Corrupt`.
fn parse_str<T: std::str::FromStr>(s: &str) -> Result<T> {
    s.parse()
        .map_err(|_| Error::Corrupt(format!("unknown value '{s}'")))
}

fn parse<T: std::str::FromStr<Err = String>>(s: String) -> Result<T> {
    s.parse().map_err(Error::Corrupt)
}

fn json(s: &str) -> Result<Value> {
    serde_json::from_str(s).map_err(|e| Error::Corrupt(e.to_string()))
}

fn job_error(kind: Option<String>, message: Option<String>) -> Result<Option<JobError>> {
    match kind {
        Some(k) => Ok(Some(JobError {
            kind: parse::<ErrorKind>(k)?,
            message: message.unwrap_or_default(),
        })),
        None => Ok(None),
    }
}

fn job_from_row(r: &Row<'_>) -> Result<Job> {
    Ok(Job {
        id: parse(r.get(0)?)?,
        project: parse(r.get(1)?)?,
        config_id: r.get::<_, Option<String>>(2)?.map(parse).transpose()?,
        status: parse(r.get(3)?)?,
        spec: json(&r.get::<_, String>(4)?)?,
        attempt: r.get(5)?,
        max_attempts: r.get(6)?,
        error: job_error(r.get(7)?, r.get(8)?)?,
        exit_code: r.get(9)?,
        worker_id: r.get(10)?,
        image_digest: r.get(11)?,
        limits: r
            .get::<_, Option<String>>(12)?
            .map(|s| serde_json::from_str::<Option<_>>(&s))
            .transpose()
            .map_err(|e| Error::Corrupt(format!("limits: {e}")))?
            .flatten(),
        cancel_requested: r.get(13)?,
        queued_at: r.get(14)?,
        started_at: r.get(15)?,
        finished_at: r.get(16)?,
        token_id: r.get(22)?,
        token_desc: r.get(23)?,
        attempts: Vec::new(),
        priority: r.get(17)?,
        run_after: r.get(18)?,
        concurrency: match (
            r.get::<_, Option<String>>(19)?,
            r.get::<_, Option<u32>>(20)?,
        ) {
            (Some(k), Some(l)) => Some((k, l)),
            _ => None,
        },
        waiting: None,
        trigger: r
            .get::<_, Option<String>>(21)?
            .map(|t| serde_json::from_str(&t).map_err(|e| Error::Corrupt(e.to_string())))
            .transpose()?,
    })
}

const INSERT_JOB: &str = "INSERT INTO jobs (id, project_id, config_id, status, spec, max_attempts, backoff_ms, \
     priority, eff_priority, concurrency_key, concurrency_limit, trigger, schedule_id, token_id, token_desc, run_after, queued_at) \
     VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?12, ?13, ?14, ?15, \
     MAX(CAST(unixepoch('subsec') * 1000 AS INTEGER) + ?10, COALESCE(?11, 0)), CAST(unixepoch('subsec') * 1000 AS INTEGER))";

fn job_params<'a>(id: &JobId, job: &'a NewJob) -> impl rusqlite::Params + 'a {
    (
        id.to_string(),
        job.project.as_str(),
        job.config_id.as_ref().map(|c| c.as_str()),
        job.spec.to_string(),
        job.max_attempts,
        job.backoff.as_millis() as i64,
        job.priority,
        job.concurrency.as_ref().map(|(k, _)| k.as_str()),
        job.concurrency.as_ref().map(|(_, l)| *l),
        job.delay.as_millis() as i64,
        job.run_at,
        job.trigger
            .as_ref()
            .and_then(|t| serde_json::to_string(t).ok()),
        job.trigger
            .as_ref()
            .and_then(Trigger::schedule_id)
            .map(|i| i.to_string()),
        job.token_id.as_deref(),
        job.token_desc.as_deref(),
    )
}

const SCHEDULE_COLS: &str =
    "project_id, id, config_id, doc, paused, next_tick, last_tick, runs, created_at, updated_at, pipeline_id";

fn schedule_from_row(r: &Row<'_>) -> Result<ScheduleRow> {
    Ok(ScheduleRow {
        project: parse(r.get(0)?)?,
        id: parse(r.get(1)?)?,
        config_id: r.get::<_, Option<String>>(2)?.map(parse).transpose()?,
        pipeline_id: r.get::<_, Option<String>>(10)?.map(parse).transpose()?,
        doc: json(&r.get::<_, String>(3)?)?,
        paused: r.get(4)?,
        next_tick: r.get(5)?,
        last_tick: r.get(6)?,
        runs: r.get::<_, i64>(7)? as u64,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
        recent: Vec::new(),
    })
}

fn load_schedule(c: &Connection, project: &ProjectId, id: &ScheduleId) -> Result<ScheduleRow> {
    c.prepare_cached(&format!(
        "SELECT {SCHEDULE_COLS} FROM schedules WHERE project_id = ?1 AND id = ?2"
    ))?
    .query_row(params![project.as_str(), id.as_str()], |r| {
        Ok(schedule_from_row(r))
    })
    .optional()?
    .ok_or_else(|| Error::NotFound(format!("schedule {id}")))?
}

fn insert_tick(
    tx: &Connection,
    f: &FireTick,
    tick: i64,
    outcome: &str,
    made: Option<&str>,
    note: Option<&str>,
) -> Result<()> {
    tx.prepare_cached(&format!(
        "INSERT INTO schedule_ticks (project_id, schedule_id, tick, outcome, job_id, note, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, {NOW})"
    ))?
    .execute(params![
        f.project.as_str(),
        f.id.as_str(),
        tick,
        outcome,
        made,
        note
    ])?;
    Ok(())
}

fn load_job(conn: &Connection, project: Option<&ProjectId>, id: JobId) -> Result<Job> {
    let sql =
        format!("SELECT {JOB_COLS} FROM jobs WHERE id = ?1 AND (?2 IS NULL OR project_id = ?2)");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params![id.to_string(), project.map(|p| p.as_str())])?;
    match rows.next()? {
        Some(row) => job_from_row(row),
        None => Err(Error::NotFound(format!("job {id}"))),
    }
}

/// Every row of `rows`, each made by `f`, which may fail with a store error
/// (`query_map` only takes rusqlite's).
fn collect_rows<T>(
    mut rows: rusqlite::Rows<'_>,
    f: impl Fn(&rusqlite::Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(f(r)?);
    }
    Ok(out)
}

fn load_attempts(conn: &Connection, id: JobId) -> Result<Vec<Attempt>> {
    let mut stmt = conn.prepare_cached(
        "SELECT number, worker_id, status, error_kind, error_message, exit_code, image_digest, started_at, finished_at \
         FROM attempts WHERE job_id = ?1 ORDER BY number",
    )?;
    let rows = stmt.query([id.to_string()])?;
    collect_rows(rows, |r| {
        Ok(Attempt {
            number: r.get(0)?,
            worker_id: r.get(1)?,
            status: parse_str(&r.get::<_, String>(2)?)?,
            error: job_error(r.get(3)?, r.get(4)?)?,
            exit_code: r.get(5)?,
            image_digest: r.get(6)?,
            started_at: r.get(7)?,
            finished_at: r.get(8)?,
        })
    })
}

fn config_from_row(r: &Row<'_>) -> Result<Config> {
    Ok(Config {
        project: parse(r.get(0)?)?,
        id: parse(r.get(1)?)?,
        spec: json(&r.get::<_, String>(2)?)?,
        state: json(&r.get::<_, String>(3)?)?,
        version: r.get(4)?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
    })
}

const CONFIG_COLS: &str = "project_id, id, spec, state, version, created_at, updated_at";

fn load_config(conn: &Connection, project: &ProjectId, id: &ConfigId) -> Result<Config> {
    let sql = format!("SELECT {CONFIG_COLS} FROM configs WHERE project_id = ?1 AND id = ?2");
    conn.query_row(&sql, params![project.as_str(), id.as_str()], |r| {
        Ok(config_from_row(r))
    })
    .optional()?
    .ok_or_else(|| Error::NotFound(format!("configuration {id}")))?
}

/// Takes back one running job whose attempt is gone: counts a failure and
/// either queues it again or fails it for good.
fn take_back(tx: &Connection, id: &str, lost: rules::LeaseLost) -> Result<JobStatus> {
    let reason = lost.reason();
    let (attempt, cancel, max_lost): (u32, bool, Option<u32>) = tx.query_row(
        "SELECT attempt, cancel_requested, json_extract(spec, '$.retry.lost_attempts') FROM jobs WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    tx.execute(
        &format!(
            "UPDATE attempts SET status = 'lost', error_kind = 'infrastructure', error_message = ?3, finished_at = {NOW} \
             WHERE job_id = ?1 AND number = ?2"
        ),
        params![id, attempt, reason],
    )?;
    let lost_so_far: u32 = tx.query_row(
        "SELECT COUNT(*) FROM attempts WHERE job_id = ?1 AND status = 'lost'",
        [id],
        |r| r.get(0),
    )?;
    let max_lost = max_lost.unwrap_or(rules::DEFAULT_MAX_LOST);
    let status = rules::after_lost_lease(lost_so_far, max_lost, cancel);
    if status == JobStatus::Queued {
        tx.execute(
            &format!(
                "UPDATE jobs SET status = 'queued', worker_id = NULL, lease_expires = NULL, \
                 run_after = {NOW} WHERE id = ?1"
            ),
            [id],
        )?;
    } else {
        let (kind, msg) = if status == JobStatus::Failed {
            (Some("infrastructure"), Some(lost.exhausted(max_lost)))
        } else {
            (None, None)
        };
        tx.execute(
            &format!(
                "UPDATE jobs SET status = ?2, lease_expires = NULL, error_kind = ?3, \
                 error_message = ?4, finished_at = {NOW} WHERE id = ?1"
            ),
            params![id, status.as_str(), kind, msg],
        )?;
        notify_job(tx, id)?;
    }
    Ok(status)
}

fn take_back_where(
    conn: &mut Connection,
    condition: &str,
    arg: Option<&str>,
    lost: rules::LeaseLost,
) -> Result<Vec<(JobId, JobStatus)>> {
    immediate(conn, |tx: &Connection| {
        let ids: Vec<String> = {
            let mut stmt = tx.prepare(&format!(
                "SELECT id FROM jobs WHERE status = 'running' AND {condition}"
            ))?;
            let rows = match arg {
                Some(a) => stmt
                    .query_map([a], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()?,
                None => stmt
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()?,
            };
            rows
        };
        let mut out = Vec::new();
        for id in ids {
            let status = take_back(tx, &id, lost)?;
            out.push((parse::<JobId>(id)?, status));
        }
        Ok(out)
    })
}

fn strings_json(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn strings(s: &str) -> Result<Vec<String>> {
    serde_json::from_str(s).map_err(|e| Error::Corrupt(e.to_string()))
}

const VERSION_COLS: &str =
    "version, columns, primary_key, segments, rows, bytes, loaded_rows, loaded_bytes, made_by, job_id, note, created_at, metadata, pinned";

fn version_from_row(r: &Row<'_>) -> Result<TableVersion> {
    Ok(TableVersion {
        version: r.get::<_, i64>(0)? as u64,
        columns: strings(&r.get::<_, String>(1)?)?,
        primary_key: strings(&r.get::<_, String>(2)?)?,
        segments: serde_json::from_str(&r.get::<_, String>(3)?)
            .map_err(|e| Error::Corrupt(e.to_string()))?,
        rows: r.get::<_, i64>(4)? as u64,
        bytes: r.get::<_, i64>(5)? as u64,
        loaded_rows: r.get::<_, i64>(6)? as u64,
        loaded_bytes: r.get::<_, i64>(7)? as u64,
        made_by: parse_str(&r.get::<_, String>(8)?)?,
        job_id: r.get::<_, Option<String>>(9)?.map(parse).transpose()?,
        note: r.get(10)?,
        created_at: r.get(11)?,
        metadata: r
            .get::<_, Option<String>>(12)?
            .map(|s| json(&s))
            .transpose()?,
        pinned: r.get::<_, i64>(13)? != 0,
    })
}

fn load_version(
    conn: &Connection,
    project: &ProjectId,
    id: &TableId,
    version: Option<u64>,
) -> Result<TableVersion> {
    let sql = format!(
        "SELECT {VERSION_COLS} FROM table_versions WHERE project_id = ?1 AND table_id = ?2 AND version = \
         COALESCE(?3, (SELECT version FROM storage_tables WHERE project_id = ?1 AND id = ?2))"
    );
    let found = conn
        .prepare_cached(&sql)?
        .query_row(
            params![project.as_str(), id.as_str(), version.map(|v| v as i64)],
            |r| Ok(version_from_row(r)),
        )
        .optional()?;
    match found {
        Some(v) => v,
        None => Err(Error::NotFound(match version {
            Some(v) => format!("version {v} of table {id}"),
            None => format!("table {id}"),
        })),
    }
}

fn table_info(conn: &Connection, project: &ProjectId, id: &TableId) -> Result<TableInfo> {
    let (created_at, updated_at): (i64, i64) = conn
        .prepare_cached(
            "SELECT created_at, updated_at FROM storage_tables WHERE project_id = ?1 AND id = ?2",
        )?
        .query_row(params![project.as_str(), id.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("table {id}")))?;
    let v = load_version(conn, project, id, None)?;
    Ok(TableInfo {
        project: project.clone(),
        id: id.clone(),
        version: v.version,
        columns: v.columns,
        primary_key: v.primary_key,
        rows: v.rows,
        bytes: v.bytes,
        created_at,
        updated_at,
    })
}

/// Adds a version to a table (creating the table), inside the caller's transaction.
fn apply_table_write(
    tx: &Connection,
    project: &ProjectId,
    w: &TableWrite,
    job: Option<JobId>,
) -> Result<TableVersion> {
    let current = match load_version(tx, project, &w.table, None) {
        Ok(v) => Some(v),
        Err(Error::NotFound(_)) => None,
        Err(e) => return Err(e),
    };
    let rules::NextVersion {
        version,
        columns,
        segments,
        rows,
        bytes,
        metadata,
    } = rules::next_version(current.as_ref(), w)?;
    tx.prepare_cached(&format!(
        "INSERT INTO table_versions (project_id, table_id, version, columns, primary_key, segments, rows, bytes, \
         loaded_rows, loaded_bytes, made_by, job_id, note, created_at, metadata) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, {NOW}, ?14)"
    ))?
    .execute(params![
        project.as_str(),
        w.table.as_str(),
        version as i64,
        strings_json(&columns),
        strings_json(&w.primary_key),
        serde_json::to_string(&segments).map_err(|e| Error::Corrupt(e.to_string()))?,
        rows as i64,
        bytes as i64,
        w.loaded_rows as i64,
        w.loaded_bytes as i64,
        w.made_by.as_str(),
        job.map(|j| j.to_string()),
        w.note,
        metadata.map(|m| m.to_string()),
    ])?;
    tx.prepare_cached(&format!(
        "INSERT INTO storage_tables (project_id, id, version, created_at, updated_at) VALUES (?1, ?2, ?3, {NOW}, {NOW}) \
         ON CONFLICT (project_id, id) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at"
    ))?
    .execute(params![project.as_str(), w.table.as_str(), version as i64])?;
    load_version(tx, project, &w.table, Some(version))
}

fn insert_file(
    tx: &Connection,
    project: &ProjectId,
    f: &NewFile,
    job: Option<JobId>,
) -> Result<FileInfo> {
    let id: i64 = tx
        .prepare_cached(&format!(
            "INSERT INTO files (project_id, name, tags, size, object_key, job_id, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, {NOW}) RETURNING id"
        ))?
        .query_row(
            params![
                project.as_str(),
                f.name,
                strings_json(&f.tags),
                f.size as i64,
                f.object_key,
                job.map(|j| j.to_string())
            ],
            |r| r.get(0),
        )?;
    for tag in &f.tags {
        tx.prepare_cached("INSERT OR IGNORE INTO file_tags (file_id, tag) VALUES (?1, ?2)")?
            .execute(params![id, tag])?;
    }
    load_file(tx, project, id)
}

const FILE_COLS: &str = "id, project_id, name, tags, size, object_key, job_id, created_at";

fn file_from_row(r: &Row<'_>) -> Result<FileInfo> {
    Ok(FileInfo {
        id: FileId(r.get(0)?),
        project: parse(r.get(1)?)?,
        name: r.get(2)?,
        tags: strings(&r.get::<_, String>(3)?)?,
        size: r.get::<_, i64>(4)? as u64,
        object_key: r.get(5)?,
        job_id: r.get::<_, Option<String>>(6)?.map(parse).transpose()?,
        created_at: r.get(7)?,
    })
}

fn load_file(conn: &Connection, project: &ProjectId, id: i64) -> Result<FileInfo> {
    conn.prepare_cached(&format!(
        "SELECT {FILE_COLS} FROM files WHERE id = ?1 AND project_id = ?2"
    ))?
    .query_row(params![id, project.as_str()], |r| Ok(file_from_row(r)))
    .optional()?
    .ok_or_else(|| Error::NotFound(format!("file {id}")))?
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn token_count(&self) -> gantry_store::Result<u64> {
        self.read(|c| Ok(c.query_row("SELECT COUNT(*) FROM tokens", [], |r| r.get(0))?))
            .await
    }

    async fn create_token(
        &self,
        project: &ProjectId,
        admin: bool,
        description: &str,
    ) -> gantry_store::Result<NewToken> {
        let rules::MintedToken { secret, hash } = rules::mint_token();
        let (project, description) = (project.to_string(), description.to_string());
        let info = self
            .write(move |c| {
                c.execute(
                    &format!("INSERT INTO tokens (hash, project_id, admin, description, created_at) VALUES (?1, ?2, ?3, ?4, {NOW})"),
                    params![hash, project, admin, description],
                )?;
                c.query_row(
                    &format!("SELECT {TOKEN_COLS} FROM tokens WHERE hash = ?1"),
                    [&hash],
                    token_from_row,
                )?
            })
            .await?;
        Ok(NewToken { secret, info })
    }

    async fn bootstrap_admin_token(
        &self,
        description: &str,
    ) -> gantry_store::Result<Option<NewToken>> {
        let rules::MintedToken { secret, hash } = rules::mint_token();
        let description = description.to_string();
        let info = self
            .write(move |c| {
                immediate(c, |tx: &Connection| {
                    let n = tx.execute(
                        &format!(
                            "INSERT INTO tokens (hash, project_id, admin, description, created_at) \
                             SELECT ?1, 'default', 1, ?2, {NOW} WHERE NOT EXISTS (SELECT 1 FROM tokens)"
                        ),
                        params![hash, description],
                    )?;
                    if n == 0 {
                        return Ok(None);
                    }
                    Ok(Some(tx.query_row(
                        &format!("SELECT {TOKEN_COLS} FROM tokens WHERE hash = ?1"),
                        [&hash],
                        token_from_row,
                    )??))
                })
            })
            .await?;
        Ok(info.map(|info| NewToken { secret, info }))
    }

    async fn authenticate(&self, secret: &str) -> gantry_store::Result<Option<Principal>> {
        let hash = rules::hash_token(secret);
        self.read(move |c| {
            let row: Option<(String, bool, String)> = c
                .prepare_cached(
                    "SELECT project_id, admin, description FROM tokens WHERE hash = ?1",
                )?
                .query_row([&hash], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            row.map(|(p, admin, description)| {
                Ok(Principal {
                    project: parse(p)?,
                    admin,
                    token_id: rules::token_public_id(&hash)?,
                    token_desc: description,
                })
            })
            .transpose()
        })
        .await
    }

    async fn list_tokens(
        &self,
        project: Option<&ProjectId>,
    ) -> gantry_store::Result<Vec<TokenInfo>> {
        let project = project.map(|p| p.to_string());
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {TOKEN_COLS} FROM tokens WHERE ?1 IS NULL OR project_id = ?1 ORDER BY created_at, hash"
            ))?;
            let rows = stmt.query_map([project], token_from_row)?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    async fn delete_token(&self, id: &TokenId) -> gantry_store::Result<()> {
        let id = id.to_string();
        self.write(move |c| {
            let n = c.execute("DELETE FROM tokens WHERE substr(hash, 1, 12) = ?1", [&id])?;
            match n {
                0 => Err(Error::NotFound(format!("token '{id}'"))),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn create_project(
        &self,
        id: &ProjectId,
        allow: &[Loosening],
    ) -> gantry_store::Result<Project> {
        let (id, allow) = (id.clone(), allow_json(allow));
        self.write(move |c| {
            let n = c.execute(
                &format!(
                    "INSERT INTO projects (id, allow, created_at, number) \
                     VALUES (?1, ?2, {NOW}, (SELECT COALESCE(MAX(number), 0) + 1 FROM projects)) \
                     ON CONFLICT (id) DO NOTHING"
                ),
                params![id.as_str(), allow],
            )?;
            if n == 0 {
                return Err(Error::Conflict(format!("project '{id}' already exists")));
            }
            load_project(c, &id)
        })
        .await
    }

    async fn get_project(&self, id: &ProjectId) -> gantry_store::Result<Project> {
        let id = id.clone();
        self.read(move |c| load_project(c, &id)).await
    }

    async fn list_projects(&self) -> gantry_store::Result<Vec<Project>> {
        self.read(|c| {
            let mut stmt =
                c.prepare_cached(&format!("SELECT {PROJECT_COLS} FROM projects ORDER BY id"))?;
            let rows = stmt.query_map([], project_from_row)?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    async fn set_project_allow(
        &self,
        id: &ProjectId,
        allow: &[Loosening],
    ) -> gantry_store::Result<Project> {
        let (id, allow) = (id.clone(), allow_json(allow));
        self.write(move |c| {
            let n = c.execute(
                "UPDATE projects SET allow = ?2 WHERE id = ?1",
                params![id.as_str(), allow],
            )?;
            if n == 0 {
                return Err(Error::NotFound(format!("project '{id}'")));
            }
            load_project(c, &id)
        })
        .await
    }

    async fn set_project_import_max(
        &self,
        id: &ProjectId,
        max: Option<u64>,
    ) -> gantry_store::Result<Project> {
        let id = id.clone();
        let max = max.map(|n| n.min(i64::MAX as u64) as i64);
        self.write(move |c| {
            let n = c.execute(
                "UPDATE projects SET import_max_bytes = ?2 WHERE id = ?1",
                params![id.as_str(), max],
            )?;
            if n == 0 {
                return Err(Error::NotFound(format!("project '{id}'")));
            }
            load_project(c, &id)
        })
        .await
    }

    async fn set_project_max_running(
        &self,
        id: &ProjectId,
        max: Option<u32>,
    ) -> gantry_store::Result<Project> {
        let id = id.clone();
        self.write(move |c| {
            let n = c.execute(
                "UPDATE projects SET max_running = ?2 WHERE id = ?1",
                params![id.as_str(), max],
            )?;
            if n == 0 {
                return Err(Error::NotFound(format!("project '{id}'")));
            }
            load_project(c, &id)
        })
        .await
    }

    async fn set_project_retention(
        &self,
        id: &ProjectId,
        policy: &Retention,
    ) -> gantry_store::Result<Project> {
        let id = id.clone();
        let policy = serde_json::to_string(policy).map_err(|e| Error::Internal(e.to_string()))?;
        self.write(move |c| {
            let n = c.execute(
                "UPDATE projects SET retention = ?2 WHERE id = ?1",
                params![id.as_str(), policy],
            )?;
            if n == 0 {
                return Err(Error::NotFound(format!("project '{id}'")));
            }
            load_project(c, &id)
        })
        .await
    }
}

#[async_trait]
impl ConfigStore for SqliteStore {
    async fn create_config(
        &self,
        project: &ProjectId,
        id: &ConfigId,
        spec: &Value,
    ) -> gantry_store::Result<Config> {
        let (project, id, spec) = (project.clone(), id.clone(), spec.to_string());
        self.write(move |c| {
            let inserted = c.execute(
                &format!(
                    "INSERT INTO configs (project_id, id, spec, created_at, updated_at) VALUES (?1, ?2, ?3, {NOW}, {NOW}) \
                     ON CONFLICT DO NOTHING"
                ),
                params![project.as_str(), id.as_str(), spec],
            )?;
            if inserted == 0 {
                return Err(Error::Conflict(format!("configuration {id} already exists")));
            }
            load_config(c, &project, &id)
        })
        .await
    }

    async fn update_config(
        &self,
        project: &ProjectId,
        id: &ConfigId,
        spec: &Value,
    ) -> gantry_store::Result<Config> {
        let (project, id, spec) = (project.clone(), id.clone(), spec.to_string());
        self.write(move |c| {
            let n = c.execute(
                &format!(
                    "UPDATE configs SET spec = ?3, version = version + 1, updated_at = {NOW} WHERE project_id = ?1 AND id = ?2"
                ),
                params![project.as_str(), id.as_str(), spec],
            )?;
            if n == 0 {
                return Err(Error::NotFound(format!("configuration {id}")));
            }
            load_config(c, &project, &id)
        })
        .await
    }

    async fn get_config(&self, project: &ProjectId, id: &ConfigId) -> gantry_store::Result<Config> {
        let (project, id) = (project.clone(), id.clone());
        self.read(move |c| load_config(c, &project, &id)).await
    }

    async fn list_configs(&self, project: &ProjectId) -> gantry_store::Result<Vec<Config>> {
        let project = project.clone();
        self.read(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {CONFIG_COLS} FROM configs WHERE project_id = ?1 ORDER BY id"
            ))?;
            let rows = stmt.query([project.as_str()])?;
            collect_rows(rows, config_from_row)
        })
        .await
    }

    async fn delete_config(&self, project: &ProjectId, id: &ConfigId) -> gantry_store::Result<()> {
        let (project, id) = (project.clone(), id.clone());
        self.write(move |c| {
            immediate(c, |tx: &Connection| {
                let users: Vec<String> = tx
                    .prepare_cached(
                        "SELECT id FROM schedules WHERE project_id = ?1 AND config_id = ?2 ORDER BY id",
                    )?
                    .query_map(params![project.as_str(), id.as_str()], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                if !users.is_empty() {
                    return Err(Error::Conflict(format!(
                        "configuration {id} is used by schedules: {}; delete or change them first",
                        users.join(", ")
                    )));
                }
                let hooks: Vec<String> = tx
                    .prepare_cached("SELECT id FROM hooks WHERE project_id = ?1 AND config_id = ?2 ORDER BY id")?
                    .query_map(params![project.as_str(), id.as_str()], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                let pipes: Vec<String> = tx
                    .prepare_cached("SELECT pipeline_id FROM pipeline_configs WHERE project_id = ?1 AND config_id = ?2 ORDER BY pipeline_id")?
                    .query_map(params![project.as_str(), id.as_str()], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                if !pipes.is_empty() {
                    return Err(Error::Conflict(format!(
                        "configuration {id} is used by pipelines: {}; change them first",
                        pipes.join(", ")
                    )));
                }
                if !hooks.is_empty() {
                    return Err(Error::Conflict(format!(
                        "configuration {id} is used by webhooks: {}; delete them first",
                        hooks.join(", ")
                    )));
                }
                let n = tx.execute(
                    "DELETE FROM configs WHERE project_id = ?1 AND id = ?2",
                    params![project.as_str(), id.as_str()],
                )?;
                if n == 0 {
                    return Err(Error::NotFound(format!("configuration {id}")));
                }
                Ok(())
            })
        })
        .await
    }
}

#[async_trait]
impl TriggerStore for SqliteStore {
    async fn due_notifications(
        &self,
        lease: Duration,
        limit: usize,
    ) -> gantry_store::Result<Vec<Notification>> {
        let lease_ms = lease.as_millis() as i64;
        // Polled by every server: a read first, so an idle store costs no
        // write transaction (nor the writer thread, nor a cross-process lock).
        let pending = self
            .read(|c| {
                Ok(c.prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM notifications WHERE status = 'pending')",
                )?
                .query_row([], |r| r.get::<_, bool>(0))?)
            })
            .await?;
        if !pending {
            return Ok(Vec::new());
        }
        self.write(move |c| {
            immediate(c, |tx: &Connection| {
                // Given up past the deadline.
                tx.execute(
                    &format!(
                        "UPDATE notifications SET status = 'failed', last_error = COALESCE(last_error, 'not delivered') \
                         WHERE status = 'pending' AND deadline <= {NOW}"
                    ),
                    [],
                )?;
                let rows: Vec<Notification> = {
                    let mut stmt = tx.prepare_cached(&format!(
                        "SELECT id, project_id, subject_kind, subject_id, url, secret, body, attempts FROM notifications \
                         WHERE status = 'pending' AND next_at <= {NOW} ORDER BY next_at LIMIT ?1"
                    ))?;
                    let rows = stmt.query([limit as i64])?;
                    collect_rows(rows, |r| {
                        Ok(Notification {
                            id: r.get(0)?,
                            project: parse(r.get(1)?)?,
                            subject_kind: r.get(2)?,
                            subject_id: r.get(3)?,
                            url: r.get(4)?,
                            secret_sealed: r.get(5)?,
                            body: r.get(6)?,
                            attempts: r.get(7)?,
                        })
                    })?
                };
                // Leased: another server does not send the same attempt.
                for n in &rows {
                    tx.execute(
                        &format!("UPDATE notifications SET next_at = {NOW} + ?2 WHERE id = ?1"),
                        params![n.id, lease_ms],
                    )?;
                }
                Ok(rows)
            })
        })
        .await
    }

    async fn record_notification_attempt(
        &self,
        id: i64,
        status_code: Option<u16>,
        error: Option<&str>,
        delivered: bool,
        retry_in: Duration,
    ) -> gantry_store::Result<()> {
        let error = error.map(str::to_string);
        let retry_ms = retry_in.as_millis() as i64;
        self.write(move |c| {
            immediate(c, |tx: &Connection| {
                tx.execute(
                    &format!(
                        "INSERT INTO notification_attempts (notification_id, number, at, status_code, error) \
                         SELECT id, attempts + 1, {NOW}, ?2, ?3 FROM notifications WHERE id = ?1"
                    ),
                    params![id, status_code, error],
                )?;
                tx.execute(
                    &format!(
                        "UPDATE notifications SET attempts = attempts + 1, last_error = ?3, \
                         status = CASE WHEN ?2 THEN 'delivered' WHEN {NOW} + ?4 >= deadline THEN 'failed' ELSE 'pending' END, \
                         next_at = {NOW} + ?4 WHERE id = ?1"
                    ),
                    params![id, delivered, error, retry_ms],
                )?;
                Ok(())
            })
        })
        .await
    }

    async fn list_notifications(
        &self,
        project: &ProjectId,
        kind: &str,
        subject: &str,
    ) -> gantry_store::Result<Vec<NotificationView>> {
        let (project, kind, subject) = (project.clone(), kind.to_string(), subject.to_string());
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, url, status, attempts, last_error FROM notifications \
                 WHERE project_id = ?1 AND subject_kind = ?2 AND subject_id = ?3 ORDER BY id",
            )?;
            let rows = stmt.query(params![project.as_str(), kind, subject])?;
            let mut out = collect_rows(rows, |r| {
                Ok(NotificationView {
                    id: r.get(0)?,
                    url: r.get(1)?,
                    status: r.get(2)?,
                    attempts: Vec::new(),
                    last_error: r.get(4)?,
                })
            })?;
            for n in &mut out {
                let mut stmt = c.prepare_cached(
                    "SELECT number, at, status_code, error FROM notification_attempts WHERE notification_id = ?1 ORDER BY number",
                )?;
                let rows = stmt.query([n.id])?;
                n.attempts = collect_rows(rows, |r| {
                    Ok(NotificationAttempt {
                        number: r.get(0)?,
                        at: r.get(1)?,
                        status_code: r.get(2)?,
                        error: r.get(3)?,
                    })
                })?;
            }
            Ok(out)
        })
        .await
    }

    async fn put_pipeline(
        &self,
        project: &ProjectId,
        id: &PipelineId,
        doc: &Value,
        configs: &[ConfigId],
        create: bool,
    ) -> gantry_store::Result<PipelineRow> {
        let (project, id, doc, configs) = (
            project.clone(),
            id.clone(),
            doc.to_string(),
            configs.to_vec(),
        );
        self.write(move |c| {
            immediate(c, |tx: &Connection| {
                for cfg in &configs {
                    load_config(tx, &project, cfg)?;
                }
                let n = if create {
                    tx.execute(
                        &format!(
                            "INSERT INTO pipelines (project_id, id, doc, created_at, updated_at) VALUES (?1, ?2, ?3, {NOW}, {NOW}) \
                             ON CONFLICT DO NOTHING"
                        ),
                        params![project.as_str(), id.as_str(), doc],
                    )?
                } else {
                    tx.execute(
                        &format!("UPDATE pipelines SET doc = ?3, version = version + 1, updated_at = {NOW} WHERE project_id = ?1 AND id = ?2"),
                        params![project.as_str(), id.as_str(), doc],
                    )?
                };
                if n == 0 {
                    return Err(if create {
                        Error::Conflict(format!("pipeline {id} already exists"))
                    } else {
                        Error::NotFound(format!("pipeline {id}"))
                    });
                }
                tx.execute(
                    "DELETE FROM pipeline_configs WHERE project_id = ?1 AND pipeline_id = ?2",
                    params![project.as_str(), id.as_str()],
                )?;
                for cfg in &configs {
                    tx.execute(
                        "INSERT OR IGNORE INTO pipeline_configs (project_id, config_id, pipeline_id) VALUES (?1, ?2, ?3)",
                        params![project.as_str(), cfg.as_str(), id.as_str()],
                    )?;
                }
                load_pipeline(tx, &project, &id)
            })
        })
        .await
    }

    async fn get_pipeline(
        &self,
        project: &ProjectId,
        id: &PipelineId,
    ) -> gantry_store::Result<PipelineRow> {
        let (project, id) = (project.clone(), id.clone());
        self.read(move |c| load_pipeline(c, &project, &id)).await
    }

    async fn list_pipelines(&self, project: &ProjectId) -> gantry_store::Result<Vec<PipelineRow>> {
        let project = project.clone();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT project_id, id, doc, version, created_at, updated_at FROM pipelines WHERE project_id = ?1 ORDER BY id",
            )?;
            let rows = stmt.query([project.as_str()])?;
            collect_rows(rows, pipeline_from_row)
        })
        .await
    }

    async fn delete_pipeline(
        &self,
        project: &ProjectId,
        id: &PipelineId,
    ) -> gantry_store::Result<()> {
        let (project, id) = (project.clone(), id.clone());
        self.write(move |c| {
            immediate(c, |tx: &Connection| {
                let users: Vec<String> = tx
                    .prepare_cached(
                        "SELECT id FROM schedules WHERE project_id = ?1 AND pipeline_id = ?2 \
                         UNION ALL SELECT id FROM hooks WHERE project_id = ?1 AND pipeline_id = ?2 ORDER BY 1",
                    )?
                    .query_map(params![project.as_str(), id.as_str()], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                if !users.is_empty() {
                    return Err(Error::Conflict(format!(
                        "pipeline {id} is used by schedules or webhooks: {}; delete or change them first",
                        users.join(", ")
                    )));
                }
                let n = tx.execute(
                    "DELETE FROM pipelines WHERE project_id = ?1 AND id = ?2",
                    params![project.as_str(), id.as_str()],
                )?;
                if n == 0 {
                    return Err(Error::NotFound(format!("pipeline {id}")));
                }
                tx.execute(
                    "DELETE FROM pipeline_configs WHERE project_id = ?1 AND pipeline_id = ?2",
                    params![project.as_str(), id.as_str()],
                )?;
                Ok(())
            })
        })
        .await
    }

    async fn start_pipeline_run(
        &self,
        project: &ProjectId,
        id: &PipelineId,
    ) -> gantry_store::Result<PipelineRun> {
        let (project, id) = (project.clone(), id.clone());
        let (run, adv) = self
            .write(move |c| {
                immediate(c, |tx: &Connection| {
                    let (run, adv) = start_run_tx(tx, &project, &id, None)?;
                    Ok((load_run(tx, None, &run)?, adv))
                })
            })
            .await?;
        if adv.enqueued {
            self.announce(Change::Enqueued);
        }
        Ok(run)
    }

    async fn get_pipeline_run(
        &self,
        project: &ProjectId,
        run: &str,
    ) -> gantry_store::Result<PipelineRun> {
        let (project, run) = (project.clone(), run.to_string());
        self.read(move |c| load_run(c, Some(&project), &run)).await
    }

    async fn list_pipeline_runs(
        &self,
        project: &ProjectId,
        pipeline: Option<&PipelineId>,
    ) -> gantry_store::Result<Vec<PipelineRun>> {
        let (project, pipeline) = (project.clone(), pipeline.cloned());
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {RUN_COLS} FROM pipeline_runs WHERE project_id = ?1 AND (?2 IS NULL OR pipeline_id = ?2) \
                 ORDER BY id DESC LIMIT 200"
            ))?;
            let rows = stmt.query(params![project.as_str(), pipeline.as_ref().map(|p| p.as_str())])?;
            collect_rows(rows, run_from_row)
        })
        .await
    }

    async fn cancel_pipeline_run(
        &self,
        project: &ProjectId,
        run: &str,
    ) -> gantry_store::Result<PipelineRun> {
        let (project, run) = (project.clone(), run.to_string());
        let (out, adv) = self
            .write(move |c| {
                immediate(c, |tx: &Connection| {
                    load_run(tx, Some(&project), &run)?;
                    tx.execute(
                        "UPDATE pipeline_runs SET cancel_requested = 1 WHERE id = ?1 AND status IN ('queued', 'running')",
                        [&run],
                    )?;
                    let adv = advance_run(tx, &run)?;
                    Ok((load_run(tx, None, &run)?, adv))
                })
            })
            .await?;
        for j in adv.cancel {
            self.announce(Change::CancelRequested(j));
        }
        Ok(out)
    }

    async fn advance_pipeline_runs(&self) -> gantry_store::Result<u64> {
        // Called by every server's scheduler each time it wakes: a read first,
        // so no write transaction while no run is open.
        let open = self
            .read(|c| {
                Ok(c.prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM pipeline_runs WHERE status IN ('queued', 'running'))",
                )?
                .query_row([], |r| r.get::<_, bool>(0))?)
            })
            .await?;
        if !open {
            return Ok(0);
        }
        let (n, enqueued, cancels) = self
            .write(|c| {
                immediate(c, |tx: &Connection| {
                    let open: Vec<String> = tx
                        .prepare_cached(
                            "SELECT id FROM pipeline_runs WHERE status IN ('queued', 'running')",
                        )?
                        .query_map([], |r| r.get(0))?
                        .collect::<rusqlite::Result<_>>()?;
                    let (mut n, mut enqueued, mut cancels) = (0u64, false, Vec::new());
                    for id in open {
                        let adv = advance_run(tx, &id)?;
                        n += adv.changed as u64;
                        enqueued |= adv.enqueued;
                        cancels.extend(adv.cancel);
                    }
                    Ok((n, enqueued, cancels))
                })
            })
            .await?;
        if enqueued {
            self.announce(Change::Enqueued);
        }
        for j in cancels {
            self.announce(Change::CancelRequested(j));
        }
        Ok(n)
    }

    async fn create_hook(&self, h: HookRow) -> gantry_store::Result<HookRow> {
        self.write(move |c| {
            immediate(c, |tx: &Connection| {
                if let Some(c) = &h.config_id {
                    load_config(tx, &h.project, c)?;
                }
                if let Some(p) = &h.pipeline_id {
                    load_pipeline(tx, &h.project, p)?;
                }
                tx.execute(
                    &format!(
                        "INSERT INTO hooks (id, project_id, config_id, auth, secret, max_body, rate_per_min, created_at, pipeline_id) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, {NOW}, ?8)"
                    ),
                    params![
                        h.id,
                        h.project.as_str(),
                        h.config_id.as_ref().map(|c| c.as_str()),
                        h.auth,
                        h.secret_sealed,
                        h.max_body as i64,
                        h.rate_per_min,
                        h.pipeline_id.as_ref().map(|p| p.as_str()),
                    ],
                )?;
                load_hook(tx, Some(&h.project), &h.id)
            })
        })
        .await
    }

    async fn list_hooks(&self, project: &ProjectId) -> gantry_store::Result<Vec<HookRow>> {
        let project = project.clone();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {HOOK_COLS} FROM hooks WHERE project_id = ?1 ORDER BY created_at, id"
            ))?;
            let rows = stmt.query([project.as_str()])?;
            collect_rows(rows, hook_from_row)
        })
        .await
    }

    async fn get_hook(
        &self,
        project: Option<&ProjectId>,
        id: &str,
    ) -> gantry_store::Result<HookRow> {
        let (project, id) = (project.cloned(), id.to_string());
        self.read(move |c| load_hook(c, project.as_ref(), &id))
            .await
    }

    async fn delete_hook(&self, project: &ProjectId, id: &str) -> gantry_store::Result<()> {
        let (project, id) = (project.clone(), id.to_string());
        self.write(move |c| {
            let n = c.execute(
                "DELETE FROM hooks WHERE project_id = ?1 AND id = ?2",
                params![project.as_str(), id],
            )?;
            if n == 0 {
                return Err(Error::NotFound(format!("webhook {id}")));
            }
            Ok(())
        })
        .await
    }

    async fn rotate_hook(
        &self,
        project: &ProjectId,
        id: &str,
        secret_sealed: &str,
        grace: Duration,
    ) -> gantry_store::Result<HookRow> {
        let (project, id, secret) = (project.clone(), id.to_string(), secret_sealed.to_string());
        let grace_ms = grace.as_millis() as i64;
        self.write(move |c| {
            let n = c.execute(
                &format!(
                    "UPDATE hooks SET old_secret = secret, old_until = {NOW} + ?3, secret = ?4 \
                     WHERE project_id = ?1 AND id = ?2"
                ),
                params![project.as_str(), id, grace_ms, secret],
            )?;
            if n == 0 {
                return Err(Error::NotFound(format!("webhook {id}")));
            }
            load_hook(c, Some(&project), &id)
        })
        .await
    }

    async fn deliver(
        &self,
        hook: &str,
        delivery: &str,
        body: Vec<u8>,
        manifest: Value,
        what: Fire,
    ) -> gantry_store::Result<Delivered> {
        let (hook, delivery) = (hook.to_string(), delivery.to_string());
        let out = self
            .write(move |c| {
                immediate(c, |tx: &Connection| {
                    let seen: Option<String> = tx
                        .prepare_cached("SELECT job_id FROM hook_deliveries WHERE hook_id = ?1 AND delivery_id = ?2")?
                        .query_row(params![hook, delivery], |r| r.get(0))
                        .optional()?;
                    if let Some(j) = seen {
                        return Ok(Delivered::Replay(j));
                    }
                    let (id, kind) = match &what {
                        Fire::Job(job) => {
                            let id = JobId::new();
                            tx.prepare_cached(INSERT_JOB)?.execute(job_params(&id, job))?;
                            (id.to_string(), DeliveredKind::Job)
                        }
                        Fire::Pipeline(p) => {
                            let project: Option<String> = tx
                                .query_row("SELECT project_id FROM hooks WHERE id = ?1", [&hook], |r| r.get(0))
                                .optional()?;
                            let project: ProjectId = parse(project.ok_or_else(|| Error::NotFound(format!("webhook {hook}")))?)?;
                            let trigger = Trigger::Webhook { id: hook.clone(), delivery: delivery.clone() };
                            let (run, _) = start_run_tx(tx, &project, p, Some(&trigger))?;
                            tx.execute(
                                "UPDATE pipeline_runs SET hook_id = ?2, delivery_id = ?3 WHERE id = ?1",
                                params![run, hook, delivery],
                            )?;
                            (run, DeliveredKind::Run)
                        }
                    };
                    tx.execute(
                        &format!(
                            "INSERT INTO hook_deliveries (hook_id, delivery_id, job_id, body, manifest, created_at) \
                             VALUES (?1, ?2, ?3, ?4, ?5, {NOW})"
                        ),
                        params![hook, delivery, id, body, manifest.to_string()],
                    )?;
                    Ok(Delivered::New(id, kind))
                })
            })
            .await?;
        if matches!(out, Delivered::New(..)) {
            self.announce(Change::Enqueued);
        }
        Ok(out)
    }

    async fn find_delivery(
        &self,
        hook: &str,
        delivery: &str,
    ) -> gantry_store::Result<Option<String>> {
        let (hook, delivery) = (hook.to_string(), delivery.to_string());
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT job_id FROM hook_deliveries WHERE hook_id = ?1 AND delivery_id = ?2",
            )?
            .query_row(params![hook, delivery], |r| r.get::<_, String>(0))
            .optional()?)
        })
        .await
    }

    async fn create_schedule(
        &self,
        project: &ProjectId,
        s: NewSchedule,
    ) -> gantry_store::Result<ScheduleRow> {
        let project = project.clone();
        self.write(move |c| {
            immediate(c, |tx: &Connection| {
                if let Some(c) = &s.config_id {
                    load_config(tx, &project, c)?;
                }
                if let Some(p) = &s.pipeline_id {
                    load_pipeline(tx, &project, p)?;
                }
                let n = tx.execute(
                    &format!(
                        "INSERT INTO schedules (project_id, id, config_id, doc, next_tick, max_runs, overlap, created_at, updated_at, pipeline_id) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, {NOW}, {NOW}, ?8) ON CONFLICT DO NOTHING"
                    ),
                    params![
                        project.as_str(),
                        s.id.as_str(),
                        s.config_id.as_ref().map(|c| c.as_str()),
                        s.doc.to_string(),
                        s.next_tick,
                        s.max_runs.map(|m| m as i64),
                        s.overlap.as_str(),
                        s.pipeline_id.as_ref().map(|p| p.as_str()),
                    ],
                )?;
                if n == 0 {
                    return Err(Error::Conflict(format!("schedule {} already exists", s.id)));
                }
                load_schedule(tx, &project, &s.id)
            })
        })
        .await
    }

    async fn list_schedules(&self, project: &ProjectId) -> gantry_store::Result<Vec<ScheduleRow>> {
        let project = project.clone();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {SCHEDULE_COLS} FROM schedules WHERE project_id = ?1 ORDER BY id"
            ))?;
            let rows = stmt.query([project.as_str()])?;
            collect_rows(rows, schedule_from_row)
        })
        .await
    }

    async fn get_schedule(
        &self,
        project: &ProjectId,
        id: &ScheduleId,
    ) -> gantry_store::Result<ScheduleRow> {
        let (project, id) = (project.clone(), id.clone());
        self.read(move |c| {
            let mut s = load_schedule(c, &project, &id)?;
            let mut stmt = c.prepare_cached(
                "SELECT tick, outcome, job_id, note, created_at FROM schedule_ticks \
                 WHERE project_id = ?1 AND schedule_id = ?2 ORDER BY tick DESC LIMIT 20",
            )?;
            let rows = stmt.query(params![project.as_str(), id.as_str()])?;
            s.recent = collect_rows(rows, |r| {
                Ok(TickRecord {
                    tick: r.get(0)?,
                    outcome: r.get(1)?,
                    made: r.get(2)?,
                    note: r.get(3)?,
                    created_at: r.get(4)?,
                })
            })?;
            Ok(s)
        })
        .await
    }

    async fn set_schedule_paused(
        &self,
        project: &ProjectId,
        id: &ScheduleId,
        paused: bool,
        next_tick: Option<i64>,
    ) -> gantry_store::Result<ScheduleRow> {
        let (project, id) = (project.clone(), id.clone());
        self.write(move |c| {
            let n = if paused {
                c.execute(
                    &format!("UPDATE schedules SET paused = 1, updated_at = {NOW} WHERE project_id = ?1 AND id = ?2"),
                    params![project.as_str(), id.as_str()],
                )?
            } else {
                // A schedule that had ended (max_runs) stays ended.
                c.execute(
                    &format!(
                        "UPDATE schedules SET paused = 0, updated_at = {NOW}, \
                         next_tick = CASE WHEN max_runs IS NOT NULL AND runs >= max_runs THEN NULL ELSE ?3 END \
                         WHERE project_id = ?1 AND id = ?2"
                    ),
                    params![project.as_str(), id.as_str(), next_tick],
                )?
            };
            if n == 0 {
                return Err(Error::NotFound(format!("schedule {id}")));
            }
            load_schedule(c, &project, &id)
        })
        .await
    }

    async fn delete_schedule(
        &self,
        project: &ProjectId,
        id: &ScheduleId,
    ) -> gantry_store::Result<()> {
        let (project, id) = (project.clone(), id.clone());
        self.write(move |c| {
            immediate(c, |tx: &Connection| {
                let n = tx.execute(
                    "DELETE FROM schedules WHERE project_id = ?1 AND id = ?2",
                    params![project.as_str(), id.as_str()],
                )?;
                if n == 0 {
                    return Err(Error::NotFound(format!("schedule {id}")));
                }
                tx.execute(
                    "DELETE FROM schedule_ticks WHERE project_id = ?1 AND schedule_id = ?2",
                    params![project.as_str(), id.as_str()],
                )?;
                Ok(())
            })
        })
        .await
    }

    async fn due_schedules(&self, now: i64) -> gantry_store::Result<Vec<ScheduleRow>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {SCHEDULE_COLS} FROM schedules WHERE paused = 0 AND next_tick IS NOT NULL \
                 AND next_tick <= ?1 ORDER BY next_tick LIMIT 1000"
            ))?;
            let rows = stmt.query([now])?;
            collect_rows(rows, schedule_from_row)
        })
        .await
    }

    async fn next_schedule_tick(&self) -> gantry_store::Result<Option<i64>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT MIN(next_tick) FROM schedules WHERE paused = 0 AND next_tick IS NOT NULL",
                [],
                |r| r.get(0),
            )?)
        })
        .await
    }

    async fn fire_tick(&self, f: FireTick) -> gantry_store::Result<Fired> {
        let fired = self
            .write(move |c| {
                let out = immediate(c, |tx: &Connection| {
                    // Compare and set: only the scheduler that still sees the
                    // tick it planned for moves the schedule on.
                    let row: Option<(String, i64, Option<i64>)> = tx
                        .prepare_cached(
                            "SELECT overlap, runs, max_runs FROM schedules \
                             WHERE project_id = ?1 AND id = ?2 AND paused = 0 AND next_tick = ?3",
                        )?
                        .query_row(params![f.project.as_str(), f.id.as_str(), f.expected], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                        })
                        .optional()?;
                    let Some((overlap, runs, max_runs)) = row else {
                        return Ok((Fired::Lost, false));
                    };
                    let mut made = 0;
                    let mut fired = Fired::Missed;
                    if let Some(tick) = f.missed {
                        insert_tick(tx, &f, tick, "missed", None, Some("missed while no scheduler ran (missed: skip)"))?;
                    }
                    let mut adv = Advanced::default();
                    if let Some((tick, what)) = &f.fire {
                        let active: Option<String> = if overlap != "skip" {
                            None
                        } else if matches!(what, Fire::Pipeline(_)) {
                            tx.prepare_cached(
                                "SELECT id FROM pipeline_runs WHERE project_id = ?1 AND schedule_id = ?2 \
                                 AND status IN ('queued', 'running') ORDER BY id LIMIT 1",
                            )?
                            .query_row(params![f.project.as_str(), f.id.as_str()], |r| r.get(0))
                            .optional()?
                        } else {
                            tx.prepare_cached(
                                "SELECT id FROM jobs WHERE project_id = ?1 AND schedule_id = ?2 \
                                 AND status IN ('queued', 'running') ORDER BY id LIMIT 1",
                            )?
                            .query_row(params![f.project.as_str(), f.id.as_str()], |r| r.get(0))
                            .optional()?
                        };
                        fired = match (active, what) {
                            (Some(prev), _) => {
                                let note = format!("{prev} of this schedule was still queued or running (overlap: skip)");
                                insert_tick(tx, &f, *tick, "skipped", None, Some(&note))?;
                                Fired::Skipped(prev)
                            }
                            (None, Fire::Job(job)) => {
                                let id = JobId::new();
                                tx.prepare_cached(INSERT_JOB)?.execute(job_params(&id, job))?;
                                insert_tick(tx, &f, *tick, "job", Some(&id.to_string()), None)?;
                                made = 1;
                                Fired::Job(id)
                            }
                            (None, Fire::Pipeline(p)) => {
                                let trigger = Trigger::Schedule { id: f.id.clone(), tick: *tick };
                                let (run, a) = start_run_tx(tx, &f.project, p, Some(&trigger))?;
                                adv = a;
                                insert_tick(tx, &f, *tick, "run", Some(&run), None)?;
                                made = 1;
                                Fired::Run(run)
                            }
                        };
                    }
                    let ended = max_runs.is_some_and(|m| runs + made >= m);
                    let last = f.fire.as_ref().map(|(t, _)| *t).or(f.missed);
                    tx.execute(
                        &format!(
                            "UPDATE schedules SET next_tick = ?3, last_tick = COALESCE(?4, last_tick), runs = runs + ?5, \
                             updated_at = {NOW} WHERE project_id = ?1 AND id = ?2"
                        ),
                        params![
                            f.project.as_str(),
                            f.id.as_str(),
                            if ended { None } else { f.next },
                            last,
                            made
                        ],
                    )?;
                    Ok((fired, adv.enqueued))
                });
                match out {
                    // The unique (schedule, tick) row: someone else fired it.
                    Err(Error::Sql(rusqlite::Error::SqliteFailure(e, _)))
                        if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                    {
                        Ok((Fired::Lost, false))
                    }
                    other => other,
                }
            })
            .await?;
        let (fired, enqueued) = fired;
        if matches!(fired, Fired::Job(_)) || enqueued {
            self.announce(Change::Enqueued);
        }
        Ok(fired)
    }
}

#[async_trait]
impl QueueStore for SqliteStore {
    async fn enqueue(&self, job: NewJob) -> gantry_store::Result<Job> {
        let id = JobId::new();
        let job = self
            .write(move |c| {
                c.prepare_cached(INSERT_JOB)?
                    .execute(job_params(&id, &job))?;
                let mut job = load_job(c, None, id)?;
                fill_waiting(c, &mut job)?;
                Ok(job)
            })
            .await?;
        self.announce(Change::Enqueued);
        Ok(job)
    }

    async fn enqueue_batch(&self, jobs: Vec<NewJob>) -> gantry_store::Result<Vec<JobId>> {
        let ids = self
            .write(move |c| {
                immediate(c, |tx: &Connection| {
                    let mut ids = Vec::with_capacity(jobs.len());
                    {
                        let mut stmt = tx.prepare_cached(INSERT_JOB)?;
                        for job in jobs {
                            let id = JobId::new();
                            stmt.execute(job_params(&id, &job))?;
                            ids.push(id);
                        }
                    }
                    Ok(ids)
                })
            })
            .await?;
        if !ids.is_empty() {
            self.announce(Change::Enqueued);
        }
        Ok(ids)
    }

    async fn get_job(&self, project: &ProjectId, id: JobId) -> gantry_store::Result<Job> {
        let project = project.clone();
        self.read(move |c| {
            let mut job = load_job(c, Some(&project), id)?;
            job.attempts = load_attempts(c, id)?;
            fill_waiting(c, &mut job)?;
            Ok(job)
        })
        .await
    }

    async fn list_jobs(
        &self,
        project: &ProjectId,
        filter: &JobFilter,
    ) -> gantry_store::Result<Vec<Job>> {
        let (project, filter) = (project.clone(), filter.clone());
        self.read(move |c| {
            let sql = format!(
                "SELECT {JOB_COLS} FROM jobs WHERE project_id = ?1 AND (?2 IS NULL OR status = ?2) \
                 AND (?3 IS NULL OR id < ?3) ORDER BY id DESC LIMIT ?4"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query(params![
                project.as_str(),
                filter.status.map(|s| s.as_str()),
                filter.before.map(|b| b.to_string()),
                filter.limit as i64,
            ])?;
            let mut jobs = collect_rows(rows, job_from_row)?;
            for job in &mut jobs {
                fill_waiting(c, job)?;
            }
            Ok(jobs)
        })
        .await
    }

    async fn request_cancel(&self, project: &ProjectId, id: JobId) -> gantry_store::Result<Job> {
        let project = project.clone();
        let job = self
            .write(move |c| {
                immediate(c, |tx: &Connection| {
                    let job = load_job(tx, Some(&project), id)?;
                    match job.status {
                        JobStatus::Queued => {
                            tx.execute(
                                &format!("UPDATE jobs SET status = 'cancelled', cancel_requested = 1, finished_at = {NOW} WHERE id = ?1"),
                                [id.to_string()],
                            )?;
                            notify_job(tx, &id.to_string())?;
                        }
                        JobStatus::Running => {
                            tx.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?1", [id.to_string()])?;
                        }
                        _ => {}
                    }
                    let job = load_job(tx, None, id)?;
                    Ok(job)
                })
            })
            .await?;
        self.announce_all(rules::announce_cancel(id, job.status));
        Ok(job)
    }

    async fn claim(
        &self,
        worker: &WorkerId,
        max: usize,
        lease: Duration,
    ) -> gantry_store::Result<Claim> {
        let worker = worker.to_string();
        let lease_ms = lease.as_millis() as i64;
        let claim = self
            .write(move |c| {
                immediate(c, |tx: &Connection| {
                    let mut jobs = Vec::with_capacity(max);
                    // A drained worker claims nothing; a worker's tags (none
                    // for one that never registered) pick the jobs it may take.
                    let (tags, state) = workers::tags_and_state(tx, &worker)?;
                    let max = if state == WorkerState::Draining { 0 } else { max };
                    let mut numbers: std::collections::HashMap<ProjectId, i64> = Default::default();
                    let mut next: std::collections::VecDeque<(String, bool)> = Default::default();
                    while jobs.len() < max {
                        if next.is_empty() {
                            next = tx
                                .prepare_cached(NEXT_CLAIMABLE)?
                                .query_map(params![(max - jobs.len()) as i64, tags], |r| Ok((r.get(0)?, r.get(1)?)))?
                                .collect::<rusqlite::Result<_>>()?;
                        }
                        let Some((id, free)) = next.pop_front() else { break };
                        if !free {
                            // Claiming it may hold back those listed after it.
                            next.clear();
                        }
                        let job = tx
                            .prepare_cached(&format!(
                                "UPDATE jobs SET status = 'running', attempt = attempt + 1, worker_id = ?2, \
                                 lease_expires = {NOW} + ?3, started_at = {NOW} WHERE id = ?1 RETURNING {JOB_COLS}"
                            ))?
                            .query_row(params![id, worker, lease_ms], |r| Ok(job_from_row(r)))??;
                        tx.prepare_cached(&format!(
                            "INSERT INTO attempts (job_id, number, worker_id, status, started_at) \
                             VALUES (?1, ?2, ?3, 'running', {NOW})"
                        ))?
                        .execute(params![id, job.attempt, worker])?;
                        let state = match &job.config_id {
                            Some(cfg) => tx
                                .prepare_cached("SELECT state FROM configs WHERE project_id = ?1 AND id = ?2")?
                                .query_row(params![job.project.as_str(), cfg.as_str()], |r| r.get::<_, String>(0))
                                .optional()?
                                .map(|s| json(&s))
                                .transpose()?
                                .unwrap_or_else(|| Value::Object(Default::default())),
                            None => Value::Object(Default::default()),
                        };
                        let webhook = match &job.trigger {
                            Some(Trigger::Webhook { id: hook, delivery }) => tx
                                .prepare_cached("SELECT body, manifest FROM hook_deliveries WHERE hook_id = ?1 AND delivery_id = ?2")?
                                .query_row(params![hook, delivery], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?)))
                                .optional()?
                                .map(|(body, m)| Ok::<_, StoreError>(WebhookPayload { body, manifest: json(&m)? }))
                                .transpose()?,
                            // Every task of a run a webhook started sees its delivery.
                            Some(Trigger::Pipeline { run, .. }) => tx
                                .prepare_cached(
                                    "SELECT d.body, d.manifest FROM pipeline_runs r JOIN hook_deliveries d \
                                     ON d.hook_id = r.hook_id AND d.delivery_id = r.delivery_id WHERE r.id = ?1",
                                )?
                                .query_row([run], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?)))
                                .optional()?
                                .map(|(body, m)| Ok::<_, StoreError>(WebhookPayload { body, manifest: json(&m)? }))
                                .transpose()?,
                            _ => None,
                        };
                        let project_number = match numbers.get(&job.project) {
                            Some(n) => *n,
                            None => {
                                let n: i64 = tx
                                    .prepare_cached("SELECT number FROM projects WHERE id = ?1")?
                                    .query_row([job.project.as_str()], |r| r.get(0))?;
                                numbers.insert(job.project.clone(), n);
                                n
                            }
                        };
                        jobs.push(ClaimedJob {
                            job,
                            state,
                            project_number,
                            webhook,
                        });
                    }
                    // Jobs due but held back wake the worker when a job ends, not here.
                    let next_due: Option<i64> = tx
                        .prepare_cached(&format!(
                            "SELECT MIN(run_after) - {NOW} FROM jobs WHERE status = 'queued' AND run_after > {NOW}"
                        ))?
                        .query_row([], |r| r.get(0))?;
                    Ok(Claim { jobs, next_due: next_due.map(|ms| Duration::from_millis(ms.max(0) as u64)) })
                })
            })
            .await?;
        for j in &claim.jobs {
            self.announce(Change::Status(j.job.id, JobStatus::Running));
        }
        Ok(claim)
    }

    async fn age_queue(&self) -> gantry_store::Result<u64> {
        self.write(|c| {
            let aged = format!("MIN(2, priority + ({NOW} - run_after) / {AGING_STEP_MS})");
            let n = c
                .prepare_cached(&format!(
                    "UPDATE jobs SET eff_priority = {aged} WHERE status = 'queued' AND eff_priority < 2 \
                     AND run_after <= {NOW} - {AGING_STEP_MS} AND {aged} > eff_priority"
                ))?
                .execute([])?;
            Ok(n as u64)
        })
        .await
    }

    async fn heartbeat(
        &self,
        worker: &WorkerId,
        lease: Duration,
    ) -> gantry_store::Result<Vec<JobId>> {
        let worker = worker.to_string();
        let lease_ms = lease.as_millis() as i64;
        self.write(move |c| {
            c.prepare_cached(&format!(
                "UPDATE jobs SET lease_expires = {NOW} + ?2 WHERE status = 'running' AND worker_id = ?1"
            ))?
            .execute(params![worker, lease_ms])?;
            let ids: Vec<String> = c
                .prepare_cached("SELECT id FROM jobs WHERE status = 'running' AND worker_id = ?1 AND cancel_requested = 1")?
                .query_map([&worker], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            ids.into_iter().map(parse).collect()
        })
        .await
    }

    async fn record_attempt(
        &self,
        id: JobId,
        attempt: u32,
        info: &AttemptInfo,
    ) -> gantry_store::Result<()> {
        let info = info.clone();
        self.write(move |c| {
            let limits = info
                .limits
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| Error::Internal(format!("limits: {e}")))?;
            c.execute(
                "UPDATE jobs SET image_digest = COALESCE(?3, image_digest), limits = COALESCE(?4, limits) \
                 WHERE id = ?1 AND attempt = ?2",
                params![id.to_string(), attempt, info.image_digest, limits],
            )?;
            c.execute(
                "UPDATE attempts SET image_digest = COALESCE(?3, image_digest) WHERE job_id = ?1 AND number = ?2",
                params![id.to_string(), attempt, info.image_digest],
            )?;
            Ok(())
        })
        .await
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
        let (worker, outcome, outputs) = (worker.to_string(), outcome.clone(), outputs.clone());
        let new_state = new_state.map(|s| s.to_string());
        let finish = self
            .write(move |c| {
                immediate(c, |tx: &Connection| {
                    type Row = (u32, u32, i64, Option<String>, String, Option<bool>);
                    let row: Option<Row> = tx
                        .prepare_cached(
                            "SELECT failures, max_attempts, backoff_ms, config_id, project_id, \
                             json_type(spec, '$.notify') = 'array' FROM jobs \
                             WHERE id = ?1 AND attempt = ?2 AND worker_id = ?3 AND status = 'running'",
                        )?
                        .query_row(
                            params![id.to_string(), attempt, worker],
                            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
                        )
                        .optional()?;
                    let Some((failures, max_attempts, backoff_ms, config_id, project, notify)) = row else {
                        return Ok(Finish::Stale);
                    };
                    // Outputs become visible in the same transaction as the status.
                    let project_id: ProjectId = parse(project.clone())?;
                    for write in &outputs.tables {
                        apply_table_write(tx, &project_id, write, Some(id))?;
                    }
                    for file in &outputs.files {
                        insert_file(tx, &project_id, file, Some(id))?;
                    }
                    let (kind, message) = match &outcome.error {
                        Some(e) => (Some(e.kind.as_str()), Some(e.message.as_str())),
                        None => (None, None),
                    };
                    tx.prepare_cached(&format!(
                            "UPDATE attempts SET status = ?3, error_kind = ?4, error_message = ?5, exit_code = ?6, finished_at = {NOW} \
                             WHERE job_id = ?1 AND number = ?2"
                        ))?
                        .execute(params![id.to_string(), attempt, AttemptStatus::ended(outcome.status).as_str(), kind, message, outcome.exit_code],
                    )?;
                    let next = rules::after_attempt(
                        &outcome,
                        rules::Attempts { failures, max_attempts },
                        Duration::from_millis(backoff_ms.max(0) as u64),
                    );
                    let finish = if let rules::AfterAttempt::Retry { backoff } = next {
                        tx.prepare_cached(&format!(
                                "UPDATE jobs SET status = 'queued', failures = failures + 1, worker_id = NULL, lease_expires = NULL, \
                                 run_after = {NOW} + ?2, error_kind = ?3, error_message = ?4, exit_code = ?5 WHERE id = ?1"
                            ))?
                            .execute(params![id.to_string(), backoff_ms, kind, message, outcome.exit_code],
                        )?;
                        Finish::Retrying { after: backoff }
                    } else {
                        tx.prepare_cached(&format!(
                                "UPDATE jobs SET status = ?2, failures = failures + ?3, lease_expires = NULL, error_kind = ?4, \
                                 error_message = ?5, exit_code = ?6, finished_at = {NOW} WHERE id = ?1"
                            ))?
                            .execute(params![
                                id.to_string(),
                                outcome.status.as_str(),
                                matches!(next, rules::AfterAttempt::End { failed: true, .. }) as u32,
                                kind,
                                message,
                                outcome.exit_code
                            ],
                        )?;
                        if matches!(next, rules::AfterAttempt::End { save_state: true, .. }) {
                            if let (Some(cfg), Some(state)) = (config_id, new_state) {
                                tx.execute(
                                    "UPDATE configs SET state = ?3 WHERE project_id = ?1 AND id = ?2",
                                    params![project, cfg, state],
                                )?;
                            }
                        }
                        if notify == Some(true) {
                            notify_job(tx, &id.to_string())?;
                        }
                        Finish::Done(outcome.status)
                    };
                    Ok(finish)
                })
            })
            .await?;
        self.announce_all(rules::announce_finish(id, &finish));
        Ok(finish)
    }

    async fn hand_back(
        &self,
        id: JobId,
        attempt: u32,
        worker: &WorkerId,
    ) -> gantry_store::Result<()> {
        let worker = worker.to_string();
        let n = self
            .write(move |c| {
                immediate(c, |tx: &Connection| {
                    let n = tx.execute(
                        &format!(
                            "UPDATE jobs SET status = 'queued', worker_id = NULL, lease_expires = NULL, run_after = {NOW} \
                             WHERE id = ?1 AND attempt = ?2 AND worker_id = ?3 AND status = 'running'"
                        ),
                        params![id.to_string(), attempt, worker],
                    )?;
                    if n > 0 {
                        tx.execute(
                            &format!(
                                "UPDATE attempts SET status = 'handed_back', finished_at = {NOW} WHERE job_id = ?1 AND number = ?2"
                            ),
                            params![id.to_string(), attempt],
                        )?;
                    }
                    Ok(n)
                })
            })
            .await?;
        if n > 0 {
            self.announce_all(rules::announce_handed_back(id));
        }
        Ok(())
    }

    async fn recover_expired(&self) -> gantry_store::Result<Vec<JobId>> {
        let taken = self
            .write(|c| {
                take_back_where(
                    c,
                    &format!("lease_expires < {NOW}"),
                    None,
                    rules::LeaseLost::Expired,
                )
            })
            .await?;
        Ok(self.announce_taken(taken))
    }

    async fn recover_worker(&self, worker: &WorkerId) -> gantry_store::Result<Vec<JobId>> {
        let worker = worker.to_string();
        let taken = self
            .write(move |c| {
                take_back_where(
                    c,
                    "worker_id = ?1",
                    Some(&worker),
                    rules::LeaseLost::WorkerRestarted,
                )
            })
            .await?;
        Ok(self.announce_taken(taken))
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append_events(
        &self,
        id: JobId,
        attempt: u32,
        lines: &[LogLine],
    ) -> gantry_store::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let lines = lines.to_vec();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        self.write(move |c| {
            // Alone, a log batch skips the fsync (WAL survives a crash of
            // the process). In a group it shares the group's durable commit:
            // the level cannot change inside a transaction.
            let alone = c.is_autocommit();
            if alone {
                c.pragma_update(None, "synchronous", "NORMAL")?;
            }
            let result = immediate(c, |tx: &Connection| {
                let job = id.to_string();
                let first: i64 = tx
                    .prepare_cached("UPDATE jobs SET event_seq = event_seq + ?2 WHERE id = ?1 RETURNING event_seq - ?2")?
                    .query_row(params![job, lines.len() as i64], |r| r.get(0))?;
                {
                    let mut stmt = tx.prepare_cached(
                        "INSERT INTO events (job_id, seq, attempt, time, stream, level, message, data) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    )?;
                    for (i, l) in lines.iter().enumerate() {
                        stmt.execute(params![
                            job,
                            first + 1 + i as i64,
                            attempt,
                            now,
                            l.stream.as_str(),
                            // A level outside the four is stored as `info`,
                            // as gantry_core::events reads unknown ones.
                            l.level.parse::<LogLevel>().unwrap_or(LogLevel::Info).as_str(),
                            l.message,
                            l.data.as_ref().map(|d| d.to_string()),
                        ])?;
                    }
                }
                Ok(())
            });
            if alone {
                c.pragma_update(None, "synchronous", "FULL")?;
            }
            result
        })
        .await?;
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
        let project = project.clone();
        self.read(move |c| {
            let exists: bool = c
                .prepare_cached("SELECT 1 FROM jobs WHERE id = ?1 AND project_id = ?2")?
                .query_row(params![id.to_string(), project.as_str()], |_| Ok(true))
                .optional()?
                .unwrap_or(false);
            if !exists {
                return Err(Error::NotFound(format!("job {id}")));
            }
            let mut stmt = c.prepare_cached(
                "SELECT seq, attempt, time, stream, level, message, data FROM events \
                 WHERE job_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?;
            let rows = stmt.query(params![id.to_string(), after as i64, limit as i64])?;
            collect_rows(rows, |r| {
                Ok(Event {
                    seq: r.get::<_, i64>(0)? as u64,
                    attempt: r.get(1)?,
                    time: r.get(2)?,
                    stream: r.get(3)?,
                    level: parse_str(&r.get::<_, String>(4)?)?,
                    message: r.get(5)?,
                    data: r
                        .get::<_, Option<String>>(6)?
                        .map(|s| json(&s))
                        .transpose()?,
                })
            })
        })
        .await
    }
}

#[async_trait]
impl CatalogStore for SqliteStore {
    async fn pin_version(
        &self,
        project: &ProjectId,
        table: &TableId,
        version: u64,
        pinned: bool,
    ) -> gantry_store::Result<TableVersion> {
        let (project, table) = (project.clone(), table.clone());
        self.write(move |c| {
            let n = c.execute(
                "UPDATE table_versions SET pinned = ?4 WHERE project_id = ?1 AND table_id = ?2 AND version = ?3",
                params![project.as_str(), table.as_str(), version as i64, pinned as i64],
            )?;
            if n == 0 {
                return Err(Error::NotFound(format!("version {version} of table {table}")));
            }
            load_version(c, &project, &table, Some(version))
        })
        .await
    }

    async fn commit_run(
        &self,
        project: &ProjectId,
        config: Option<&ConfigId>,
        row: Option<&str>,
        new_state: Option<&Value>,
        outputs: &Outputs,
    ) -> gantry_store::Result<()> {
        let project = project.clone();
        let config = config.cloned();
        let row = row.map(str::to_string);
        let new_state = new_state.cloned();
        let outputs = outputs.clone();
        self.write(move |c| {
            immediate(c, |tx: &Connection| {
                if let Some(cfg) = &config {
                    let current: Option<String> = tx
                        .query_row(
                            "SELECT state FROM configs WHERE project_id = ?1 AND id = ?2",
                            params![project.as_str(), cfg.as_str()],
                            |r| r.get(0),
                        )
                        .optional()?;
                    let Some(current) = current else {
                        return Err(Error::NotFound(format!("configuration {cfg}")));
                    };
                    if let Some(state) = new_state {
                        let state = match &row {
                            None => state,
                            Some(r) => {
                                let mut whole = json(&current)?;
                                if !whole.is_object() {
                                    whole = Value::Object(Default::default());
                                }
                                if !whole["rows"].is_object() {
                                    whole["rows"] = Value::Object(Default::default());
                                }
                                whole["rows"][r.as_str()] = state;
                                whole
                            }
                        };
                        tx.execute(
                            "UPDATE configs SET state = ?3 WHERE project_id = ?1 AND id = ?2",
                            params![project.as_str(), cfg.as_str(), state.to_string()],
                        )?;
                    }
                }
                for w in &outputs.tables {
                    apply_table_write(tx, &project, w, None)?;
                }
                for f in &outputs.files {
                    insert_file(tx, &project, f, None)?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn commit_table(
        &self,
        project: &ProjectId,
        write: TableWrite,
    ) -> gantry_store::Result<TableVersion> {
        let project = project.clone();
        self.write(move |c| {
            immediate(c, |tx: &Connection| {
                apply_table_write(tx, &project, &write, None)
            })
        })
        .await
    }

    async fn get_table(
        &self,
        project: &ProjectId,
        id: &TableId,
    ) -> gantry_store::Result<TableInfo> {
        let (project, id) = (project.clone(), id.clone());
        self.read(move |c| table_info(c, &project, &id)).await
    }

    async fn list_tables(&self, project: &ProjectId) -> gantry_store::Result<Vec<TableInfo>> {
        let project = project.clone();
        self.read(move |c| {
            let ids: Vec<String> = c
                .prepare_cached("SELECT id FROM storage_tables WHERE project_id = ?1 ORDER BY id")?
                .query_map([project.as_str()], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            ids.into_iter()
                .map(|id| table_info(c, &project, &parse(id)?))
                .collect()
        })
        .await
    }

    async fn table_versions(
        &self,
        project: &ProjectId,
        id: &TableId,
    ) -> gantry_store::Result<Vec<TableVersion>> {
        let (project, id) = (project.clone(), id.clone());
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {VERSION_COLS} FROM table_versions WHERE project_id = ?1 AND table_id = ?2 ORDER BY version DESC"
            ))?;
            let rows = stmt.query(params![project.as_str(), id.as_str()])?;
            let out = collect_rows(rows, version_from_row)?;
            if out.is_empty() {
                return Err(Error::NotFound(format!("table {id}")));
            }
            Ok(out)
        })
        .await
    }

    async fn table_version(
        &self,
        project: &ProjectId,
        id: &TableId,
        version: Option<u64>,
    ) -> gantry_store::Result<TableVersion> {
        let (project, id) = (project.clone(), id.clone());
        self.read(move |c| load_version(c, &project, &id, version))
            .await
    }

    async fn delete_table(
        &self,
        project: &ProjectId,
        id: &TableId,
    ) -> gantry_store::Result<Vec<String>> {
        let (project, id) = (project.clone(), id.clone());
        self.write(move |c| {
            immediate(c, |tx: &Connection| {
                let segments: Vec<String> = tx
                    .prepare(
                        "SELECT segments FROM table_versions WHERE project_id = ?1 AND table_id = ?2",
                    )?
                    .query_map(params![project.as_str(), id.as_str()], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                let n = tx.execute(
                    "DELETE FROM storage_tables WHERE project_id = ?1 AND id = ?2",
                    params![project.as_str(), id.as_str()],
                )?;
                if n == 0 {
                    return Err(Error::NotFound(format!("table {id}")));
                }
                tx.execute(
                    "DELETE FROM table_versions WHERE project_id = ?1 AND table_id = ?2",
                    params![project.as_str(), id.as_str()],
                )?;
                let mut keys = std::collections::BTreeSet::new();
                for s in segments {
                    let segs: Vec<Segment> =
                        serde_json::from_str(&s).map_err(|e| Error::Corrupt(e.to_string()))?;
                    keys.extend(segs.into_iter().map(|s| s.key));
                }
                Ok(keys.into_iter().collect())
            })
        })
        .await
    }

    async fn create_file(
        &self,
        project: &ProjectId,
        file: NewFile,
    ) -> gantry_store::Result<FileInfo> {
        let project = project.clone();
        self.write(move |c| immediate(c, |tx: &Connection| insert_file(tx, &project, &file, None)))
            .await
    }

    async fn get_file(&self, project: &ProjectId, id: FileId) -> gantry_store::Result<FileInfo> {
        let project = project.clone();
        self.read(move |c| load_file(c, &project, id.get())).await
    }

    async fn list_files(
        &self,
        project: &ProjectId,
        tags: &[String],
        limit: usize,
    ) -> gantry_store::Result<Vec<FileInfo>> {
        let (project, tags) = (project.clone(), tags.to_vec());
        self.read(move |c| {
            // Files having every tag: count matching tags per file.
            let sql = if tags.is_empty() {
                format!("SELECT {FILE_COLS} FROM files WHERE project_id = ?1 ORDER BY id DESC LIMIT ?2")
            } else {
                format!(
                    "SELECT {FILE_COLS} FROM files WHERE project_id = ?1 AND id IN \
                     (SELECT file_id FROM file_tags WHERE tag IN (SELECT value FROM json_each(?3)) \
                      GROUP BY file_id HAVING COUNT(*) = json_array_length(?3)) ORDER BY id DESC LIMIT ?2"
                )
            };
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = if tags.is_empty() {
                stmt.query(params![project.as_str(), limit as i64])?
            } else {
                let mut uniq = tags.clone();
                uniq.sort();
                uniq.dedup();
                stmt.query(params![project.as_str(), limit as i64, strings_json(&uniq)])?
            };
            collect_rows(rows, file_from_row)
        })
        .await
    }
}

#[async_trait]
impl HealthStore for SqliteStore {
    async fn check_writable(&self) -> gantry_store::Result<()> {
        self.write(|c| {
            // Inside a group commit the write lock is already held (and a
            // transaction cannot begin inside another).
            if c.is_autocommit() {
                c.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")?;
            }
            Ok(())
        })
        .await
    }

    async fn count_by_status(&self) -> gantry_store::Result<Vec<(JobStatus, u64)>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached("SELECT status, COUNT(*) FROM jobs GROUP BY status")?;
            let rows = stmt.query([])?;
            collect_rows(rows, |r| {
                Ok((parse(r.get(0)?)?, r.get::<_, i64>(1)? as u64))
            })
        })
        .await
    }

    async fn figures(&self) -> gantry_store::Result<StoreFigures> {
        self.read(|c| {
            let tx = c.unchecked_transaction()?;
            let by_status = {
                let mut stmt =
                    tx.prepare_cached("SELECT status, COUNT(*) FROM jobs GROUP BY status")?;
                let rows = stmt.query([])?;
                collect_rows(rows, |r| {
                    Ok((parse(r.get(0)?)?, r.get::<_, i64>(1)? as u64))
                })?
            };
            let queues = {
                let mut stmt = tx.prepare_cached(&format!(
                    "SELECT project_id,
                            SUM(status = 'queued'),
                            SUM(status = 'running'),
                            COALESCE(MAX(CASE WHEN status = 'queued' AND run_after <= {NOW}
                                         THEN {NOW} - run_after END), 0)
                     FROM jobs WHERE status IN ('queued', 'running')
                     GROUP BY project_id"
                ))?;
                let rows = stmt.query([])?;
                collect_rows(rows, |r| {
                    Ok(QueueStat {
                        project: parse(r.get(0)?)?,
                        queued: r.get::<_, i64>(1)? as u64,
                        running: r.get::<_, i64>(2)? as u64,
                        oldest_due_ms: r.get::<_, i64>(3)?.max(0) as u64,
                    })
                })?
            };
            let storage = {
                let mut stmt = tx.prepare_cached(
                    "SELECT p.id,
                            (SELECT COALESCE(SUM(v.bytes), 0) FROM storage_tables t
                               JOIN table_versions v ON v.project_id = t.project_id
                                AND v.table_id = t.id AND v.version = t.version
                              WHERE t.project_id = p.id),
                            (SELECT COUNT(*) FROM table_versions v WHERE v.project_id = p.id),
                            (SELECT COALESCE(SUM(size), 0) FROM files f WHERE f.project_id = p.id),
                            (SELECT COUNT(*) FROM files f WHERE f.project_id = p.id)
                     FROM projects p ORDER BY p.id",
                )?;
                let rows = stmt.query([])?;
                collect_rows(rows, |r| {
                    Ok(StorageStat {
                        project: parse(r.get(0)?)?,
                        table_bytes: r.get::<_, i64>(1)? as u64,
                        table_versions: r.get::<_, i64>(2)? as u64,
                        file_bytes: r.get::<_, i64>(3)? as u64,
                        files: r.get::<_, i64>(4)? as u64,
                    })
                })?
            };
            Ok(StoreFigures {
                by_status,
                queues,
                storage,
            })
        })
        .await
    }
}

impl ChangeFeed for SqliteStore {
    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }
}

impl SqliteStore {
    fn announce_taken(&self, taken: Vec<(JobId, JobStatus)>) -> Vec<JobId> {
        self.announce_all(rules::announce_taken(&taken));
        taken.into_iter().map(|(id, _)| id).collect()
    }

    fn announce_all(&self, changes: Vec<Change>) {
        for c in changes {
            self.announce(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database made before projects had numbers and jobs their token
    /// migrates forward: existing projects are numbered in creation order,
    /// new ones follow, old jobs and versions read with nothing in the new
    /// columns.
    #[tokio::test]
    async fn an_older_database_migrates_forward_with_numbered_projects() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("gantry.db");
        {
            let mut conn = Connection::open(&path).expect("open");
            for m in &MIGRATIONS[..3] {
                conn.execute_batch(m.sql).expect("old migration");
                conn.pragma_update(None, "user_version", m.version)
                    .expect("version");
            }
            let tx = conn.transaction().expect("tx");
            tx.execute(
                "INSERT INTO projects (id, created_at) VALUES ('acme', 1)",
                [],
            )
            .expect("project");
            tx.execute(
                "INSERT INTO jobs (id, project_id, status, spec, max_attempts, backoff_ms, run_after, queued_at) \
                 VALUES ('0190b7a4-0000-7000-8000-000000000001', 'acme', 'queued', '{\"image\":\"x\"}', 1, 0, 0, 0)",
                [],
            )
            .expect("job");
            tx.commit().expect("commit");
        }
        let store = SqliteStore::open(&path).expect("migrate");
        let acme: ProjectId = "acme".parse().expect("id");
        assert_eq!(
            store
                .get_project(&ProjectId::default_project())
                .await
                .expect("default")
                .number,
            1
        );
        assert_eq!(store.get_project(&acme).await.expect("acme").number, 2);
        let beta: ProjectId = "beta".parse().expect("id");
        assert_eq!(
            store.create_project(&beta, &[]).await.expect("beta").number,
            3
        );
        let claim = store
            .claim(&"w".parse().expect("id"), 10, Duration::from_secs(30))
            .await
            .expect("claim");
        assert_eq!(claim.jobs.len(), 1);
        assert_eq!(claim.jobs[0].project_number, 2);
        assert_eq!(claim.jobs[0].job.token_id, None);
    }
}
