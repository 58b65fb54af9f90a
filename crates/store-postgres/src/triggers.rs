//! Schedules, inbound webhooks, outbound notifications and pipelines on
//! Postgres (the same decisions as the SQLite backend's, statement by
//! statement; every write in `serializable!`).

use crate::configs::{load_config, strings};
use crate::error::{Error, Result};
use crate::jobs::*;
use crate::{serializable, snapshot, PgStore, NOW};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use gantry_core::{ConfigId, JobId, PipelineId, ProjectId, ScheduleId};
use gantry_store::*;
use serde_json::Value;
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;

// ---- pipelines: rows and runs

const RUN_COLS: &str = "id, project_id, pipeline_id, status, phase, phases, cancel_requested, error, created_at, started_at, finished_at, trigger";

fn run_from_row(r: &Row) -> Result<PipelineRun> {
    Ok(PipelineRun {
        id: r.try_get(0)?,
        project: parse(r.try_get(1)?)?,
        pipeline: parse(r.try_get(2)?)?,
        status: r.try_get(3)?,
        phase: num(r.try_get(4)?)?,
        phases: num(r.try_get(5)?)?,
        cancel_requested: r.try_get(6)?,
        error: r.try_get(7)?,
        created_at: r.try_get(8)?,
        started_at: r.try_get(9)?,
        finished_at: r.try_get(10)?,
        tasks: Vec::new(),
        trigger: r
            .try_get::<_, Option<&str>>(11)?
            .map(|t| serde_json::from_str(t).map_err(|e| Error::Corrupt(e.to_string())))
            .transpose()?,
    })
}

async fn load_run(
    c: &impl GenericClient,
    project: Option<&ProjectId>,
    id: &str,
) -> Result<PipelineRun> {
    let row = c
        .query_opt(
            &format!(
                "SELECT {RUN_COLS} FROM pipeline_runs WHERE id = $1 AND ($2::TEXT IS NULL OR project_id = $2)"
            ),
            &[&id, &project.map(|p| p.as_str())],
        )
        .await?
        .ok_or_else(|| Error::NotFound(format!("pipeline run {id}")))?;
    let mut run = run_from_row(&row)?;
    let rows = c
        .query(
            "SELECT t.phase, t.task, t.config_id, t.continue_on_failure, COALESCE(j.status, t.status), t.job_id, \
             COALESCE(t.error, j.error_message) FROM pipeline_tasks t LEFT JOIN jobs j ON j.id = t.job_id \
             WHERE t.run_id = $1 ORDER BY t.phase, t.task",
            &[&id],
        )
        .await?;
    run.tasks = rows
        .iter()
        .map(|r| {
            Ok(RunTask {
                phase: num(r.try_get(0)?)?,
                task: num(r.try_get(1)?)?,
                config_id: parse(r.try_get(2)?)?,
                continue_on_failure: r.try_get(3)?,
                status: r.try_get(4)?,
                job_id: r.try_get::<_, Option<String>>(5)?.map(parse).transpose()?,
                error: r.try_get(6)?,
            })
        })
        .collect::<Result<_>>()?;
    Ok(run)
}

/// Queues a pipeline run's notifications (the pipeline's `notify`).
async fn notify_run(tx: &impl GenericClient, id: &str) -> Result<()> {
    let run = load_run(tx, None, id).await?;
    let doc = tx
        .query_opt(
            "SELECT doc FROM pipelines WHERE project_id = $1 AND id = $2",
            &[&run.project.as_str(), &run.pipeline.as_str()],
        )
        .await?;
    let Some(doc) = doc else { return Ok(()) };
    let doc = json(doc.try_get::<_, &str>(0)?)?;
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
    .await
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
async fn task_job(
    tx: &impl GenericClient,
    project: &ProjectId,
    run: &str,
    (phase, task): (u32, u32),
    config: &str,
    overrides: &str,
) -> Result<std::result::Result<NewJob, String>> {
    let config: ConfigId = parse(config.to_string())?;
    let stored = match load_config(tx, project, &config).await {
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
async fn start_run_tx(
    tx: &impl GenericClient,
    project: &ProjectId,
    id: &PipelineId,
    trigger: Option<&Trigger>,
) -> Result<(String, Advanced)> {
    let p = load_pipeline(tx, project, id).await?;
    let doc: gantry_core::pipeline::PipelineDoc =
        serde_json::from_value(p.doc).map_err(|e| Error::Corrupt(format!("pipeline {id}: {e}")))?;
    let run = JobId::new().to_string();
    tx.execute(
        &format!(
            "INSERT INTO pipeline_runs (id, project_id, pipeline_id, status, phases, trigger, schedule_id, created_at) \
             VALUES ($1, $2, $3, 'queued', $4, $5, $6, {NOW})"
        ),
        &[
            &run,
            &project.as_str(),
            &id.as_str(),
            &(doc.phases.len() as i64),
            &trigger.and_then(|t| serde_json::to_string(t).ok()),
            &trigger.and_then(Trigger::schedule_id).map(|s| s.to_string()),
        ],
    )
    .await?;
    for (i, phase) in doc.phases.iter().enumerate() {
        for (j, t) in phase.tasks.iter().enumerate() {
            tx.execute(
                "INSERT INTO pipeline_tasks (run_id, phase, task, config_id, continue_on_failure, parameters, status) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'pending')",
                &[
                    &run,
                    &(i as i64),
                    &(j as i64),
                    &t.config,
                    &t.continue_on_failure,
                    &Value::Object(t.parameters.clone()).to_string(),
                ],
            )
            .await?;
        }
    }
    let adv = advance_run(tx, &run).await?;
    Ok((run, adv))
}

const TERMINAL_RUN: [&str; 4] = ["succeeded", "warning", "failed", "cancelled"];

async fn finish_run(
    tx: &impl GenericClient,
    id: &str,
    status: &str,
    error: Option<String>,
) -> Result<()> {
    tx.execute(
        &format!(
            "UPDATE pipeline_runs SET status = $2, error = COALESCE($3, error), finished_at = {NOW} WHERE id = $1"
        ),
        &[&id, &status, &error],
    )
    .await?;
    notify_run(tx, id).await
}

/// Moves one run on from what its jobs did; idempotent.
async fn advance_run(tx: &impl GenericClient, id: &str) -> Result<Advanced> {
    let mut out = Advanced::default();
    let row = tx
        .query_opt(
            "SELECT project_id, status, phase, phases, cancel_requested, warnings FROM pipeline_runs WHERE id = $1",
            &[&id],
        )
        .await?;
    let Some(row) = row else { return Ok(out) };
    let status: String = row.try_get(1)?;
    if TERMINAL_RUN.contains(&status.as_str()) {
        return Ok(out);
    }
    let project: ProjectId = parse(row.try_get(0)?)?;
    let mut phase: i64 = row.try_get(2)?;
    let phases: i64 = row.try_get(3)?;
    let cancel: bool = row.try_get(4)?;
    let mut warnings: i64 = row.try_get(5)?;
    // Task statuses follow their jobs.
    tx.execute(
        "UPDATE pipeline_tasks SET status = (SELECT j.status FROM jobs j WHERE j.id = pipeline_tasks.job_id) \
         WHERE run_id = $1 AND job_id IS NOT NULL",
        &[&id],
    )
    .await?;
    if cancel {
        let active = tx
            .query(
                "SELECT job_id, status FROM pipeline_tasks WHERE run_id = $1 AND status IN ('queued', 'running')",
                &[&id],
            )
            .await?;
        let mut still_running = false;
        for r in active {
            let (job, st): (String, String) = (r.try_get(0)?, r.try_get(1)?);
            if st == "queued" {
                tx.execute(
                    &format!(
                        "UPDATE jobs SET status = 'cancelled', cancel_requested = TRUE, finished_at = {NOW} WHERE id = $1 AND status = 'queued'"
                    ),
                    &[&job],
                )
                .await?;
                tx.execute(
                    "UPDATE pipeline_tasks SET status = 'cancelled' WHERE job_id = $1",
                    &[&job],
                )
                .await?;
            } else {
                let n = tx
                    .execute(
                        "UPDATE jobs SET cancel_requested = TRUE WHERE id = $1 AND status = 'running' AND NOT cancel_requested",
                        &[&job],
                    )
                    .await?;
                if n > 0 {
                    out.cancel.push(parse(job)?);
                }
                still_running = true;
            }
        }
        tx.execute(
            "UPDATE pipeline_tasks SET status = 'skipped' WHERE run_id = $1 AND status = 'pending'",
            &[&id],
        )
        .await?;
        if !still_running {
            finish_run(tx, id, "cancelled", None).await?;
        }
        out.changed = true;
        return Ok(out);
    }
    loop {
        type Task = (i64, String, bool, String, String, Option<String>);
        let tasks: Vec<Task> = tx
            .query(
                "SELECT task, config_id, continue_on_failure, status, parameters, error FROM pipeline_tasks \
                 WHERE run_id = $1 AND phase = $2 ORDER BY task",
                &[&id, &phase],
            )
            .await?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    r.try_get(1)?,
                    r.try_get(2)?,
                    r.try_get(3)?,
                    r.try_get(4)?,
                    r.try_get(5)?,
                ))
            })
            .collect::<Result<_>>()?;
        if tasks.iter().any(|t| t.3 == "pending") {
            // Start the phase: every task at once.
            for (task, config, _, st, overrides, _) in &tasks {
                if st != "pending" {
                    continue;
                }
                let at = (num(phase)?, num(*task)?);
                match task_job(tx, &project, id, at, config, overrides).await? {
                    Ok(job) => {
                        let jid = JobId::new();
                        insert_job(tx, &jid, &job).await?;
                        tx.execute(
                            "UPDATE pipeline_tasks SET status = 'queued', job_id = $4 WHERE run_id = $1 AND phase = $2 AND task = $3",
                            &[&id, &phase, task, &jid.to_string()],
                        )
                        .await?;
                        out.enqueued = true;
                    }
                    Err(why) => {
                        tx.execute(
                            "UPDATE pipeline_tasks SET status = 'failed', error = $4 WHERE run_id = $1 AND phase = $2 AND task = $3",
                            &[&id, &phase, task, &why],
                        )
                        .await?;
                    }
                }
            }
            tx.execute(
                &format!(
                    "UPDATE pipeline_runs SET status = 'running', phase = $2, started_at = COALESCE(started_at, {NOW}) WHERE id = $1"
                ),
                &[&id, &phase],
            )
            .await?;
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
                "UPDATE pipeline_tasks SET status = 'skipped' WHERE run_id = $1 AND status = 'pending'",
                &[&id],
            )
            .await?;
            let why = format!(
                "phase {phase} task {task} (configuration {config}) ended {st}{}",
                err.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
            );
            finish_run(tx, id, "failed", Some(why)).await?;
            out.changed = true;
            return Ok(out);
        }
        warnings += tasks.iter().filter(|t| t.3 != "succeeded").count() as i64;
        phase += 1;
        tx.execute(
            "UPDATE pipeline_runs SET phase = $2, warnings = $3 WHERE id = $1",
            &[&id, &phase.min((phases - 1).max(0)), &warnings],
        )
        .await?;
        out.changed = true;
        if phase >= phases {
            let status = if warnings > 0 { "warning" } else { "succeeded" };
            finish_run(tx, id, status, None).await?;
            return Ok(out);
        }
    }
}

fn pipeline_from_row(r: &Row) -> Result<PipelineRow> {
    Ok(PipelineRow {
        project: parse(r.try_get(0)?)?,
        id: parse(r.try_get(1)?)?,
        doc: json(r.try_get::<_, &str>(2)?)?,
        version: r.try_get(3)?,
        created_at: r.try_get(4)?,
        updated_at: r.try_get(5)?,
    })
}

async fn load_pipeline(
    c: &impl GenericClient,
    project: &ProjectId,
    id: &PipelineId,
) -> Result<PipelineRow> {
    match c
        .query_opt(
            "SELECT project_id, id, doc, version, created_at, updated_at FROM pipelines WHERE project_id = $1 AND id = $2",
            &[&project.as_str(), &id.as_str()],
        )
        .await?
    {
        Some(r) => pipeline_from_row(&r),
        None => Err(Error::NotFound(format!("pipeline {id}"))),
    }
}

// ---- webhooks

const HOOK_COLS: &str = "project_id, id, config_id, auth, secret, old_secret, old_until, max_body, rate_per_min, created_at, pipeline_id";

fn hook_from_row(r: &Row) -> Result<HookRow> {
    Ok(HookRow {
        project: parse(r.try_get(0)?)?,
        id: r.try_get(1)?,
        config_id: r.try_get::<_, Option<String>>(2)?.map(parse).transpose()?,
        pipeline_id: r.try_get::<_, Option<String>>(10)?.map(parse).transpose()?,
        auth: r.try_get(3)?,
        secret_sealed: r.try_get(4)?,
        old_secret_sealed: r.try_get(5)?,
        old_until: r.try_get(6)?,
        max_body: r.try_get::<_, i64>(7)? as u64,
        rate_per_min: num(r.try_get(8)?)?,
        created_at: r.try_get(9)?,
    })
}

async fn load_hook(
    c: &impl GenericClient,
    project: Option<&ProjectId>,
    id: &str,
) -> Result<HookRow> {
    match c
        .query_opt(
            &format!("SELECT {HOOK_COLS} FROM hooks WHERE id = $1 AND ($2::TEXT IS NULL OR project_id = $2)"),
            &[&id, &project.map(|p| p.as_str())],
        )
        .await?
    {
        Some(r) => hook_from_row(&r),
        None => Err(Error::NotFound(format!("webhook {id}"))),
    }
}

// ---- schedules

const SCHEDULE_COLS: &str =
    "project_id, id, config_id, doc, paused, next_tick, last_tick, runs, created_at, updated_at, pipeline_id";

fn schedule_from_row(r: &Row) -> Result<ScheduleRow> {
    Ok(ScheduleRow {
        project: parse(r.try_get(0)?)?,
        id: parse(r.try_get(1)?)?,
        config_id: r.try_get::<_, Option<String>>(2)?.map(parse).transpose()?,
        pipeline_id: r.try_get::<_, Option<String>>(10)?.map(parse).transpose()?,
        doc: json(r.try_get::<_, &str>(3)?)?,
        paused: r.try_get(4)?,
        next_tick: r.try_get(5)?,
        last_tick: r.try_get(6)?,
        runs: r.try_get::<_, i64>(7)? as u64,
        created_at: r.try_get(8)?,
        updated_at: r.try_get(9)?,
        recent: Vec::new(),
    })
}

async fn load_schedule(
    c: &impl GenericClient,
    project: &ProjectId,
    id: &ScheduleId,
) -> Result<ScheduleRow> {
    match c
        .query_opt(
            &format!("SELECT {SCHEDULE_COLS} FROM schedules WHERE project_id = $1 AND id = $2"),
            &[&project.as_str(), &id.as_str()],
        )
        .await?
    {
        Some(r) => schedule_from_row(&r),
        None => Err(Error::NotFound(format!("schedule {id}"))),
    }
}

async fn insert_tick(
    tx: &impl GenericClient,
    f: &FireTick,
    tick: i64,
    outcome: &str,
    made: Option<&str>,
    note: Option<&str>,
) -> Result<()> {
    tx.execute(
        &format!(
            "INSERT INTO schedule_ticks (project_id, schedule_id, tick, outcome, job_id, note, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, {NOW})"
        ),
        &[&f.project.as_str(), &f.id.as_str(), &tick, &outcome, &made, &note],
    )
    .await?;
    Ok(())
}

async fn exists(c: &impl GenericClient, sql: &str) -> Result<bool> {
    Ok(c.query_one(sql, &[]).await?.try_get(0)?)
}

#[async_trait]
impl TriggerStore for PgStore {
    async fn create_schedule(
        &self,
        project: &ProjectId,
        s: NewSchedule,
    ) -> gantry_store::Result<ScheduleRow> {
        Ok(serializable!(self, |tx| {
            if let Some(c) = &s.config_id {
                load_config(&tx, project, c).await?;
            }
            if let Some(p) = &s.pipeline_id {
                load_pipeline(&tx, project, p).await?;
            }
            let n = tx
                .execute(
                    &format!(
                        "INSERT INTO schedules (project_id, id, config_id, doc, next_tick, max_runs, overlap, created_at, updated_at, pipeline_id) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, {NOW}, {NOW}, $8) ON CONFLICT DO NOTHING"
                    ),
                    &[
                        &project.as_str(),
                        &s.id.as_str(),
                        &s.config_id.as_ref().map(|c| c.as_str()),
                        &s.doc.to_string(),
                        &s.next_tick,
                        &s.max_runs.map(|m| m as i64),
                        &s.overlap.as_str(),
                        &s.pipeline_id.as_ref().map(|p| p.as_str()),
                    ],
                )
                .await?;
            if n == 0 {
                return Err(Error::Conflict(format!("schedule {} already exists", s.id)));
            }
            load_schedule(&tx, project, &s.id).await?
        })?)
    }

    async fn list_schedules(&self, project: &ProjectId) -> gantry_store::Result<Vec<ScheduleRow>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!("SELECT {SCHEDULE_COLS} FROM schedules WHERE project_id = $1 ORDER BY id"),
                &[&project.as_str()],
            )
            .await
            .map_err(Error::from)?;
        Ok(rows
            .iter()
            .map(schedule_from_row)
            .collect::<Result<Vec<_>>>()?)
    }

    async fn get_schedule(
        &self,
        project: &ProjectId,
        id: &ScheduleId,
    ) -> gantry_store::Result<ScheduleRow> {
        Ok(snapshot!(self, |tx| {
            let mut s = load_schedule(&tx, project, id).await?;
            s.recent = tx
                .query(
                    "SELECT tick, outcome, job_id, note, created_at FROM schedule_ticks \
                     WHERE project_id = $1 AND schedule_id = $2 ORDER BY tick DESC LIMIT 20",
                    &[&project.as_str(), &id.as_str()],
                )
                .await?
                .iter()
                .map(|r| {
                    Ok(TickRecord {
                        tick: r.try_get(0)?,
                        outcome: r.try_get(1)?,
                        made: r.try_get(2)?,
                        note: r.try_get(3)?,
                        created_at: r.try_get(4)?,
                    })
                })
                .collect::<Result<_>>()?;
            s
        })?)
    }

    async fn set_schedule_paused(
        &self,
        project: &ProjectId,
        id: &ScheduleId,
        paused: bool,
        next_tick: Option<i64>,
    ) -> gantry_store::Result<ScheduleRow> {
        Ok(serializable!(self, |tx| {
            let n = if paused {
                tx.execute(
                    &format!("UPDATE schedules SET paused = TRUE, updated_at = {NOW} WHERE project_id = $1 AND id = $2"),
                    &[&project.as_str(), &id.as_str()],
                )
                .await?
            } else {
                // A schedule that had ended (max_runs) stays ended.
                tx.execute(
                    &format!(
                        "UPDATE schedules SET paused = FALSE, updated_at = {NOW}, \
                         next_tick = CASE WHEN max_runs IS NOT NULL AND runs >= max_runs THEN NULL ELSE $3::BIGINT END \
                         WHERE project_id = $1 AND id = $2"
                    ),
                    &[&project.as_str(), &id.as_str(), &next_tick],
                )
                .await?
            };
            if n == 0 {
                return Err(Error::NotFound(format!("schedule {id}")));
            }
            load_schedule(&tx, project, id).await?
        })?)
    }

    async fn delete_schedule(
        &self,
        project: &ProjectId,
        id: &ScheduleId,
    ) -> gantry_store::Result<()> {
        Ok(serializable!(self, |tx| {
            let n = tx
                .execute(
                    "DELETE FROM schedules WHERE project_id = $1 AND id = $2",
                    &[&project.as_str(), &id.as_str()],
                )
                .await?;
            if n == 0 {
                return Err(Error::NotFound(format!("schedule {id}")));
            }
            tx.execute(
                "DELETE FROM schedule_ticks WHERE project_id = $1 AND schedule_id = $2",
                &[&project.as_str(), &id.as_str()],
            )
            .await?;
        })?)
    }

    async fn due_schedules(&self, now: i64) -> gantry_store::Result<Vec<ScheduleRow>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {SCHEDULE_COLS} FROM schedules WHERE NOT paused AND next_tick IS NOT NULL \
                     AND next_tick <= $1 ORDER BY next_tick LIMIT 1000"
                ),
                &[&now],
            )
            .await
            .map_err(Error::from)?;
        Ok(rows
            .iter()
            .map(schedule_from_row)
            .collect::<Result<Vec<_>>>()?)
    }

    async fn next_schedule_tick(&self) -> gantry_store::Result<Option<i64>> {
        let c = self.client().await?;
        Ok(c.query_one(
            "SELECT MIN(next_tick) FROM schedules WHERE NOT paused AND next_tick IS NOT NULL",
            &[],
        )
        .await
        .map_err(Error::from)?
        .try_get(0)
        .map_err(Error::from)?)
    }

    async fn fire_tick(&self, f: FireTick) -> gantry_store::Result<Fired> {
        let out = serializable!(self, |tx| {
            // Compare and set: only the scheduler that still sees the tick it
            // planned for moves the schedule on.
            let row = tx
                .query_opt(
                    "SELECT overlap, runs, max_runs FROM schedules \
                     WHERE project_id = $1 AND id = $2 AND NOT paused AND next_tick = $3",
                    &[&f.project.as_str(), &f.id.as_str(), &f.expected],
                )
                .await?;
            let Some(row) = row else {
                return Ok((Fired::Lost, false));
            };
            let (overlap, runs, max_runs): (String, i64, Option<i64>) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            let mut made = 0i64;
            let mut fired = Fired::Missed;
            if let Some(tick) = f.missed {
                insert_tick(
                    &tx,
                    &f,
                    tick,
                    "missed",
                    None,
                    Some("missed while no scheduler ran (missed: skip)"),
                )
                .await?;
            }
            let mut adv = Advanced::default();
            if let Some((tick, what)) = &f.fire {
                let active: Option<String> = if overlap != "skip" {
                    None
                } else {
                    let sql = if matches!(what, Fire::Pipeline(_)) {
                        "SELECT id FROM pipeline_runs WHERE project_id = $1 AND schedule_id = $2 \
                         AND status IN ('queued', 'running') ORDER BY id LIMIT 1"
                    } else {
                        "SELECT id FROM jobs WHERE project_id = $1 AND schedule_id = $2 \
                         AND status IN ('queued', 'running') ORDER BY id LIMIT 1"
                    };
                    tx.query_opt(sql, &[&f.project.as_str(), &f.id.as_str()])
                        .await?
                        .map(|r| r.try_get(0))
                        .transpose()?
                };
                fired = match (active, what) {
                    (Some(prev), _) => {
                        let note = format!(
                            "{prev} of this schedule was still queued or running (overlap: skip)"
                        );
                        insert_tick(&tx, &f, *tick, "skipped", None, Some(&note)).await?;
                        Fired::Skipped(prev)
                    }
                    (None, Fire::Job(job)) => {
                        let id = JobId::new();
                        insert_job(&tx, &id, job).await?;
                        insert_tick(&tx, &f, *tick, "job", Some(&id.to_string()), None).await?;
                        made = 1;
                        Fired::Job(id)
                    }
                    (None, Fire::Pipeline(p)) => {
                        let trigger = Trigger::Schedule {
                            id: f.id.clone(),
                            tick: *tick,
                        };
                        let (run, a) = start_run_tx(&tx, &f.project, p, Some(&trigger)).await?;
                        adv = a;
                        insert_tick(&tx, &f, *tick, "run", Some(&run), None).await?;
                        made = 1;
                        Fired::Run(run)
                    }
                };
            }
            let ended = max_runs.is_some_and(|m| runs + made >= m);
            let last = f.fire.as_ref().map(|(t, _)| *t).or(f.missed);
            tx.execute(
                &format!(
                    "UPDATE schedules SET next_tick = $3, last_tick = COALESCE($4, last_tick), runs = runs + $5, \
                     updated_at = {NOW} WHERE project_id = $1 AND id = $2"
                ),
                &[
                    &f.project.as_str(),
                    &f.id.as_str(),
                    &if ended { None } else { f.next },
                    &last,
                    &made,
                ],
            )
            .await?;
            (fired, adv.enqueued)
        });
        let (fired, enqueued) = match out {
            // The unique (schedule, tick) row: someone else fired it.
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => (Fired::Lost, false),
            other => other?,
        };
        if matches!(fired, Fired::Job(_)) || enqueued {
            self.announce(Change::Enqueued);
        }
        Ok(fired)
    }

    async fn create_hook(&self, h: HookRow) -> gantry_store::Result<HookRow> {
        Ok(serializable!(self, |tx| {
            if let Some(c) = &h.config_id {
                load_config(&tx, &h.project, c).await?;
            }
            if let Some(p) = &h.pipeline_id {
                load_pipeline(&tx, &h.project, p).await?;
            }
            tx.execute(
                &format!(
                    "INSERT INTO hooks (id, project_id, config_id, auth, secret, max_body, rate_per_min, created_at, pipeline_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, {NOW}, $8)"
                ),
                &[
                    &h.id,
                    &h.project.as_str(),
                    &h.config_id.as_ref().map(|c| c.as_str()),
                    &h.auth,
                    &h.secret_sealed,
                    &(h.max_body as i64),
                    &i64::from(h.rate_per_min),
                    &h.pipeline_id.as_ref().map(|p| p.as_str()),
                ],
            )
            .await?;
            load_hook(&tx, Some(&h.project), &h.id).await?
        })?)
    }

    async fn list_hooks(&self, project: &ProjectId) -> gantry_store::Result<Vec<HookRow>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {HOOK_COLS} FROM hooks WHERE project_id = $1 ORDER BY created_at, id"
                ),
                &[&project.as_str()],
            )
            .await
            .map_err(Error::from)?;
        Ok(rows.iter().map(hook_from_row).collect::<Result<Vec<_>>>()?)
    }

    async fn get_hook(
        &self,
        project: Option<&ProjectId>,
        id: &str,
    ) -> gantry_store::Result<HookRow> {
        let c = self.client().await?;
        Ok(load_hook(&c, project, id).await?)
    }

    async fn delete_hook(&self, project: &ProjectId, id: &str) -> gantry_store::Result<()> {
        Ok(serializable!(self, |tx| {
            let n = tx
                .execute(
                    "DELETE FROM hooks WHERE project_id = $1 AND id = $2",
                    &[&project.as_str(), &id],
                )
                .await?;
            if n == 0 {
                return Err(Error::NotFound(format!("webhook {id}")));
            }
        })?)
    }

    async fn rotate_hook(
        &self,
        project: &ProjectId,
        id: &str,
        secret_sealed: &str,
        grace: Duration,
    ) -> gantry_store::Result<HookRow> {
        let grace_ms = grace.as_millis() as i64;
        Ok(serializable!(self, |tx| {
            let n = tx
                .execute(
                    &format!(
                        "UPDATE hooks SET old_secret = secret, old_until = {NOW} + $3, secret = $4 \
                         WHERE project_id = $1 AND id = $2"
                    ),
                    &[&project.as_str(), &id, &grace_ms, &secret_sealed],
                )
                .await?;
            if n == 0 {
                return Err(Error::NotFound(format!("webhook {id}")));
            }
            load_hook(&tx, Some(project), id).await?
        })?)
    }

    async fn deliver(
        &self,
        hook: &str,
        delivery: &str,
        body: Vec<u8>,
        manifest: Value,
        what: Fire,
    ) -> gantry_store::Result<Delivered> {
        let manifest = manifest.to_string();
        let out = serializable!(self, |tx| {
            let seen = tx
                .query_opt(
                    "SELECT job_id FROM hook_deliveries WHERE hook_id = $1 AND delivery_id = $2",
                    &[&hook, &delivery],
                )
                .await?;
            if let Some(r) = seen {
                return Ok(Delivered::Replay(r.try_get(0)?));
            }
            let (id, kind) = match &what {
                Fire::Job(job) => {
                    let id = JobId::new();
                    insert_job(&tx, &id, job).await?;
                    (id.to_string(), DeliveredKind::Job)
                }
                Fire::Pipeline(p) => {
                    let project = tx
                        .query_opt("SELECT project_id FROM hooks WHERE id = $1", &[&hook])
                        .await?
                        .ok_or_else(|| Error::NotFound(format!("webhook {hook}")))?;
                    let project: ProjectId = parse(project.try_get(0)?)?;
                    let trigger = Trigger::Webhook {
                        id: hook.to_string(),
                        delivery: delivery.to_string(),
                    };
                    let (run, _) = start_run_tx(&tx, &project, p, Some(&trigger)).await?;
                    tx.execute(
                        "UPDATE pipeline_runs SET hook_id = $2, delivery_id = $3 WHERE id = $1",
                        &[&run, &hook, &delivery],
                    )
                    .await?;
                    (run, DeliveredKind::Run)
                }
            };
            tx.execute(
                &format!(
                    "INSERT INTO hook_deliveries (hook_id, delivery_id, job_id, body, manifest, created_at) \
                     VALUES ($1, $2, $3, $4, $5, {NOW})"
                ),
                &[&hook, &delivery, &id, &body, &manifest],
            )
            .await?;
            Delivered::New(id, kind)
        })?;
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
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT job_id FROM hook_deliveries WHERE hook_id = $1 AND delivery_id = $2",
                &[&hook, &delivery],
            )
            .await
            .map_err(Error::from)?;
        Ok(row.map(|r| r.try_get(0)).transpose().map_err(Error::from)?)
    }

    async fn due_notifications(
        &self,
        lease: Duration,
        limit: usize,
    ) -> gantry_store::Result<Vec<Notification>> {
        let lease_ms = lease.as_millis() as i64;
        // Polled by every server: a read first, so an idle store costs no
        // write transaction.
        {
            let c = self.client().await?;
            if !exists(
                &c,
                "SELECT EXISTS (SELECT 1 FROM notifications WHERE status = 'pending')",
            )
            .await?
            {
                return Ok(Vec::new());
            }
        }
        Ok(serializable!(self, |tx| {
            // Given up past the deadline.
            tx.execute(
                &format!(
                    "UPDATE notifications SET status = 'failed', last_error = COALESCE(last_error, 'not delivered') \
                     WHERE status = 'pending' AND deadline <= {NOW}"
                ),
                &[],
            )
            .await?;
            let rows = tx
                .query(
                    &format!(
                        "SELECT id, project_id, subject_kind, subject_id, url, secret, body, attempts FROM notifications \
                         WHERE status = 'pending' AND next_at <= {NOW} ORDER BY next_at LIMIT $1 FOR UPDATE SKIP LOCKED"
                    ),
                    &[&(limit as i64)],
                )
                .await?
                .iter()
                .map(|r| {
                    Ok(Notification {
                        id: r.try_get(0)?,
                        project: parse(r.try_get(1)?)?,
                        subject_kind: r.try_get(2)?,
                        subject_id: r.try_get(3)?,
                        url: r.try_get(4)?,
                        secret_sealed: r.try_get(5)?,
                        body: r.try_get(6)?,
                        attempts: num(r.try_get(7)?)?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            // Leased: another server does not send the same attempt.
            for n in &rows {
                tx.execute(
                    &format!("UPDATE notifications SET next_at = {NOW} + $2 WHERE id = $1"),
                    &[&n.id, &lease_ms],
                )
                .await?;
            }
            rows
        })?)
    }

    async fn record_notification_attempt(
        &self,
        id: i64,
        status_code: Option<u16>,
        error: Option<&str>,
        delivered: bool,
        retry_in: Duration,
    ) -> gantry_store::Result<()> {
        let retry_ms = retry_in.as_millis() as i64;
        let code = status_code.map(i64::from);
        Ok(serializable!(self, |tx| {
            tx.execute(
                &format!(
                    "INSERT INTO notification_attempts (notification_id, number, at, status_code, error) \
                     SELECT id, attempts + 1, {NOW}, $2, $3 FROM notifications WHERE id = $1"
                ),
                &[&id, &code, &error],
            )
            .await?;
            tx.execute(
                &format!(
                    "UPDATE notifications SET attempts = attempts + 1, last_error = $3, \
                     status = CASE WHEN $2 THEN 'delivered' WHEN {NOW} + $4 >= deadline THEN 'failed' ELSE 'pending' END, \
                     next_at = {NOW} + $4 WHERE id = $1"
                ),
                &[&id, &delivered, &error, &retry_ms],
            )
            .await?;
        })?)
    }

    async fn list_notifications(
        &self,
        project: &ProjectId,
        kind: &str,
        subject: &str,
    ) -> gantry_store::Result<Vec<NotificationView>> {
        Ok(snapshot!(self, |tx| {
            let mut out = tx
                .query(
                    "SELECT id, url, status, attempts, last_error FROM notifications \
                     WHERE project_id = $1 AND subject_kind = $2 AND subject_id = $3 ORDER BY id",
                    &[&project.as_str(), &kind, &subject],
                )
                .await?
                .iter()
                .map(|r| {
                    Ok(NotificationView {
                        id: r.try_get(0)?,
                        url: r.try_get(1)?,
                        status: r.try_get(2)?,
                        attempts: Vec::new(),
                        last_error: r.try_get(4)?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            for n in &mut out {
                n.attempts = tx
                    .query(
                        "SELECT number, at, status_code, error FROM notification_attempts \
                         WHERE notification_id = $1 ORDER BY number",
                        &[&n.id],
                    )
                    .await?
                    .iter()
                    .map(|r| {
                        Ok(NotificationAttempt {
                            number: num(r.try_get(0)?)?,
                            at: r.try_get(1)?,
                            status_code: opt_num(r.try_get(2)?)?,
                            error: r.try_get(3)?,
                        })
                    })
                    .collect::<Result<_>>()?;
            }
            out
        })?)
    }

    async fn put_pipeline(
        &self,
        project: &ProjectId,
        id: &PipelineId,
        doc: &Value,
        configs: &[ConfigId],
        create: bool,
    ) -> gantry_store::Result<PipelineRow> {
        let doc = doc.to_string();
        Ok(serializable!(self, |tx| {
            for cfg in configs {
                load_config(&tx, project, cfg).await?;
            }
            let n = if create {
                tx.execute(
                    &format!(
                        "INSERT INTO pipelines (project_id, id, doc, created_at, updated_at) VALUES ($1, $2, $3, {NOW}, {NOW}) \
                         ON CONFLICT DO NOTHING"
                    ),
                    &[&project.as_str(), &id.as_str(), &doc],
                )
                .await?
            } else {
                tx.execute(
                    &format!(
                        "UPDATE pipelines SET doc = $3, version = version + 1, updated_at = {NOW} WHERE project_id = $1 AND id = $2"
                    ),
                    &[&project.as_str(), &id.as_str(), &doc],
                )
                .await?
            };
            if n == 0 {
                return Err(if create {
                    Error::Conflict(format!("pipeline {id} already exists"))
                } else {
                    Error::NotFound(format!("pipeline {id}"))
                });
            }
            tx.execute(
                "DELETE FROM pipeline_configs WHERE project_id = $1 AND pipeline_id = $2",
                &[&project.as_str(), &id.as_str()],
            )
            .await?;
            for cfg in configs {
                tx.execute(
                    "INSERT INTO pipeline_configs (project_id, config_id, pipeline_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    &[&project.as_str(), &cfg.as_str(), &id.as_str()],
                )
                .await?;
            }
            load_pipeline(&tx, project, id).await?
        })?)
    }

    async fn get_pipeline(
        &self,
        project: &ProjectId,
        id: &PipelineId,
    ) -> gantry_store::Result<PipelineRow> {
        let c = self.client().await?;
        Ok(load_pipeline(&c, project, id).await?)
    }

    async fn list_pipelines(&self, project: &ProjectId) -> gantry_store::Result<Vec<PipelineRow>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT project_id, id, doc, version, created_at, updated_at FROM pipelines WHERE project_id = $1 ORDER BY id",
                &[&project.as_str()],
            )
            .await
            .map_err(Error::from)?;
        Ok(rows
            .iter()
            .map(pipeline_from_row)
            .collect::<Result<Vec<_>>>()?)
    }

    async fn delete_pipeline(
        &self,
        project: &ProjectId,
        id: &PipelineId,
    ) -> gantry_store::Result<()> {
        Ok(serializable!(self, |tx| {
            let users = strings(
                &tx,
                "SELECT id FROM schedules WHERE project_id = $1 AND pipeline_id = $2 \
                 UNION ALL SELECT id FROM hooks WHERE project_id = $1 AND pipeline_id = $2 ORDER BY 1",
                &[&project.as_str(), &id.as_str()],
            )
            .await?;
            if !users.is_empty() {
                return Err(Error::Conflict(format!(
                    "pipeline {id} is used by schedules or webhooks: {}; delete or change them first",
                    users.join(", ")
                )));
            }
            let n = tx
                .execute(
                    "DELETE FROM pipelines WHERE project_id = $1 AND id = $2",
                    &[&project.as_str(), &id.as_str()],
                )
                .await?;
            if n == 0 {
                return Err(Error::NotFound(format!("pipeline {id}")));
            }
            tx.execute(
                "DELETE FROM pipeline_configs WHERE project_id = $1 AND pipeline_id = $2",
                &[&project.as_str(), &id.as_str()],
            )
            .await?;
        })?)
    }

    async fn start_pipeline_run(
        &self,
        project: &ProjectId,
        id: &PipelineId,
    ) -> gantry_store::Result<PipelineRun> {
        let (run, adv) = serializable!(self, |tx| {
            let (run, adv) = start_run_tx(&tx, project, id, None).await?;
            (load_run(&tx, None, &run).await?, adv)
        })?;
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
        Ok(snapshot!(self, |tx| {
            load_run(&tx, Some(project), run).await?
        })?)
    }

    async fn list_pipeline_runs(
        &self,
        project: &ProjectId,
        pipeline: Option<&PipelineId>,
    ) -> gantry_store::Result<Vec<PipelineRun>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {RUN_COLS} FROM pipeline_runs WHERE project_id = $1 AND ($2::TEXT IS NULL OR pipeline_id = $2) \
                     ORDER BY id DESC LIMIT 200"
                ),
                &[&project.as_str(), &pipeline.map(|p| p.as_str())],
            )
            .await
            .map_err(Error::from)?;
        Ok(rows.iter().map(run_from_row).collect::<Result<Vec<_>>>()?)
    }

    async fn cancel_pipeline_run(
        &self,
        project: &ProjectId,
        run: &str,
    ) -> gantry_store::Result<PipelineRun> {
        let (out, adv) = serializable!(self, |tx| {
            load_run(&tx, Some(project), run).await?;
            tx.execute(
                "UPDATE pipeline_runs SET cancel_requested = TRUE WHERE id = $1 AND status IN ('queued', 'running')",
                &[&run],
            )
            .await?;
            let adv = advance_run(&tx, run).await?;
            (load_run(&tx, None, run).await?, adv)
        })?;
        for j in adv.cancel {
            self.announce(Change::CancelRequested(j));
        }
        Ok(out)
    }

    async fn advance_pipeline_runs(&self) -> gantry_store::Result<u64> {
        // Called by every server's scheduler each time it wakes: a read
        // first, so no write transaction while no run is open.
        {
            let c = self.client().await?;
            if !exists(
                &c,
                "SELECT EXISTS (SELECT 1 FROM pipeline_runs WHERE status IN ('queued', 'running'))",
            )
            .await?
            {
                return Ok(0);
            }
        }
        let (n, enqueued, cancels) = serializable!(self, |tx| {
            let open = strings(
                &tx,
                "SELECT id FROM pipeline_runs WHERE status IN ('queued', 'running')",
                &[],
            )
            .await?;
            let (mut n, mut enqueued, mut cancels) = (0u64, false, Vec::new());
            for id in open {
                let adv = advance_run(&tx, &id).await?;
                n += u64::from(adv.changed);
                enqueued |= adv.enqueued;
                cancels.extend(adv.cancel);
            }
            (n, enqueued, cancels)
        })?;
        if enqueued {
            self.announce(Change::Enqueued);
        }
        for j in cancels {
            self.announce(Change::CancelRequested(j));
        }
        Ok(n)
    }
}
