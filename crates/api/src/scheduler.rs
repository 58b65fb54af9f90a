//! The scheduler loop that `gantry up` and `gantry server` run beside the API.
//! It moves pipeline runs on (`Store::advance_pipeline_runs`), and
//! it finds schedules whose next tick has come, decides what the tick does
//! (`Schedule::plan`: at most one run, whatever was missed) and hands that to
//! the store, which applies it only if no other scheduler has (a compare-and-set
//! on the schedule's next tick plus a unique (schedule, tick) row). So any
//! number of servers on one store fire each tick exactly once.

use gantry_control::{Control, Source, Submission};
use gantry_core::schedule::ScheduleDoc;
use gantry_store::{Change, Fire, FireTick, Fired, NewJob, ScheduleRow, Trigger};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The longest the loop sleeps: schedules made or resumed by another server
/// are seen within this.
const IDLE: Duration = Duration::from_secs(1);

use gantry_core::time::now_ms;

/// Runs until `stop` is cancelled.
pub async fn run(control: Control, stop: CancellationToken) {
    let store = control.store().clone();
    tracing::info!("scheduler started");
    let mut changes = store.subscribe();
    loop {
        // Pipeline runs move on from the store too: a phase starts when the
        // jobs of the one before have ended, whichever server ran them.
        if let Err(e) = store.advance_pipeline_runs().await {
            tracing::warn!(error = %e, "cannot advance pipeline runs");
        }
        let now = now_ms();
        match store.due_schedules(now).await {
            Ok(due) => {
                for row in due {
                    fire(&control, row, now).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read due schedules"),
        }
        let next = store.next_schedule_tick().await.ok().flatten();
        let wait = match next {
            Some(t) => {
                Duration::from_millis((t - now_ms()).clamp(0, IDLE.as_millis() as i64) as u64)
            }
            None => IDLE,
        };
        let sleep = tokio::time::sleep(wait);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = &mut sleep => break,
                // A job that ends (in this process) may end a pipeline phase.
                c = changes.recv() => match c {
                    Ok(Change::Status(_, st)) if st.is_terminal() => break,
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        (&mut sleep).await;
                        break;
                    }
                },
            }
        }
        if stop.is_cancelled() {
            break;
        }
    }
    tracing::info!("scheduler stopped");
}

async fn fire(control: &Control, row: ScheduleRow, now: i64) {
    let store = control.store();
    let Some(due) = row.next_tick else { return };
    let schedule = match ScheduleDoc::from_value(row.doc.clone()) {
        Ok((_, s)) => s,
        Err(e) => {
            tracing::error!(schedule = %row.id, project = %row.project, error = %e, "stored schedule is invalid; not firing it");
            return;
        }
    };
    let plan = schedule.plan(due, now);
    let fire = match (plan.fire, &row.pipeline_id) {
        (Some(tick), Some(pipeline)) => Some((tick, Fire::Pipeline(pipeline.clone()))),
        (Some(tick), None) => match job_for(control, &row, tick).await {
            Ok(job) => Some((tick, Fire::Job(job))),
            Err(e) => {
                tracing::warn!(schedule = %row.id, project = %row.project, error = %e, "cannot make the scheduled job; tick passed over");
                None
            }
        },
        (None, _) => None,
    };
    let result = store
        .fire_tick(FireTick {
            project: row.project.clone(),
            id: row.id.clone(),
            expected: due,
            fire,
            missed: plan.missed,
            next: plan.next,
        })
        .await;
    match result {
        Ok(Fired::Job(job)) => {
            tracing::info!(schedule = %row.id, project = %row.project, tick = plan.fire, job = %job, "schedule fired")
        }
        Ok(Fired::Run(run)) => {
            tracing::info!(schedule = %row.id, project = %row.project, tick = plan.fire, run = %run, "schedule fired a pipeline run")
        }
        Ok(Fired::Skipped(prev)) => {
            tracing::info!(schedule = %row.id, project = %row.project, running = %prev, "tick skipped: the previous job or run is still queued or running")
        }
        Ok(Fired::Missed) => {
            tracing::info!(schedule = %row.id, project = %row.project, tick = plan.missed, "missed tick passed over (missed: skip)")
        }
        Ok(Fired::Lost) => {}
        Err(e) => tracing::warn!(schedule = %row.id, error = %e, "cannot fire the schedule"),
    }
}

async fn job_for(control: &Control, row: &ScheduleRow, tick: i64) -> Result<NewJob, String> {
    let Some(config_id) = &row.config_id else {
        return Err("the schedule names no configuration".into());
    };
    // Submitted like any job: the project's policy as it is now applies.
    let mut sub = Submission::new(Source::Config(config_id.clone()));
    sub.trigger = Some(Trigger::Schedule {
        id: row.id.clone(),
        tick,
    });
    control
        .prepare(&row.project, sub)
        .await
        .map_err(|e| e.to_string())
}
