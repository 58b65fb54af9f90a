//! Keboola's processors: images run on the job's data folder before the
//! component (on its staged inputs) and after it (on its outputs), each
//! step's `out/` becoming the next one's `in/`. Every step runs with the
//! job's limits and lock-down, is logged, and is recorded on the attempt
//! (`limits.steps`); a failing step fails the job naming it.

use crate::attempt::{run_attempt, AttemptEnd, AttemptPlan, AttemptReport};
use crate::datadir;
use gantry_core::applied::{AppliedLimits, StepRecord};
use gantry_core::events::LogLine;
use gantry_core::job::Outcome;
use gantry_core::spec::{Processor, Processors, StorageMapping};
use gantry_core::{ErrorKind, JobStatus};
use gantry_runtime::ContainerRuntime;
use serde_json::Map;
use std::path::Path;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Runs the processors before, the component, then the processors after.
/// Without processors this is [`run_attempt`]. The component's new state
/// is the job's (processors' `out/state.json` is not read).
pub async fn run_with_processors(
    rt: &dyn ContainerRuntime,
    plan: &AttemptPlan,
    events: mpsc::Sender<LogLine>,
    cancel: CancellationToken,
    abort: CancellationToken,
) -> AttemptEnd {
    let Processors { before, after } = &plan.spec.processors;
    if before.is_empty() && after.is_empty() {
        return run_attempt(rt, plan, events, cancel, abort).await;
    }
    let mut steps = Vec::new();
    for (i, p) in before.iter().enumerate() {
        let step = format!("processors.before[{i}]");
        if let Err(end) = step_run(rt, plan, p, &step, &events, &cancel, &abort, &mut steps).await {
            return end;
        }
        if let Err(e) = shift_out_to_in(&plan.data_dir) {
            return infra_end(
                plan,
                &steps,
                format!("{step}: cannot pass its out/ on: {e}"),
            );
        }
    }
    if !before.is_empty() {
        // The component's own config.json, and an empty out/.
        if let Err(e) = datadir::prepare(&plan.data_dir, &plan.spec, None, "run") {
            return infra_end(plan, &steps, format!("cannot prepare the data folder: {e}"));
        }
    }
    let _ = events
        .send(LogLine::system(
            "info",
            format!("component {} started", plan.spec.image),
        ))
        .await;
    let mut report =
        match run_attempt(rt, plan, events.clone(), cancel.clone(), abort.clone()).await {
            AttemptEnd::Finished(r) => r,
            other => return other,
        };
    steps.push(StepRecord {
        step: "component".into(),
        image: plan.spec.image.clone(),
        image_digest: report.image_digest.clone(),
        status: report.outcome.status,
    });
    if report.outcome.status != JobStatus::Succeeded {
        record_steps(&mut report.limits, steps);
        return AttemptEnd::Finished(report);
    }
    for (i, p) in after.iter().enumerate() {
        let step = format!("processors.after[{i}]");
        if let Err(e) = shift_out_to_in(&plan.data_dir) {
            return infra_end(plan, &steps, format!("{step}: cannot pass out/ on: {e}"));
        }
        if let Err(end) = step_run(rt, plan, p, &step, &events, &cancel, &abort, &mut steps).await {
            return end;
        }
    }
    record_steps(&mut report.limits, steps);
    AttemptEnd::Finished(report)
}

/// Runs one processor; `Err` carries the job's end when it did not succeed.
#[allow(clippy::too_many_arguments)]
async fn step_run(
    rt: &dyn ContainerRuntime,
    plan: &AttemptPlan,
    p: &Processor,
    step: &str,
    events: &mpsc::Sender<LogLine>,
    cancel: &CancellationToken,
    abort: &CancellationToken,
    steps: &mut Vec<StepRecord>,
) -> Result<(), AttemptEnd> {
    let image = p.definition.image();
    let mut spec = plan.spec.clone();
    spec.image = image.clone();
    spec.command = p.command.clone();
    spec.parameters = p.parameters.clone();
    spec.image_parameters = Map::new();
    spec.authorization = Map::new();
    spec.storage = StorageMapping::default();
    spec.processors = Processors::default();
    spec.component_id = Some(p.definition.component.clone());
    let sub = AttemptPlan {
        job_id: plan.job_id.clone(),
        attempt: plan.attempt,
        worker_id: plan.worker_id.clone(),
        project: plan.project.clone(),
        config_id: plan.config_id.clone(),
        spec,
        data_dir: plan.data_dir.clone(),
        log_cap: plan.log_cap,
        collect_state: false,
        kbc: plan.kbc.clone(),
        step: Some(step.to_string()),
    };
    if let Err(e) = datadir::prepare(&sub.data_dir, &sub.spec, None, "run") {
        return Err(infra_end(
            plan,
            steps,
            format!("{step}: cannot prepare the data folder: {e}"),
        ));
    }
    let _ = events
        .send(LogLine::system("info", format!("{step} ({image}) started")))
        .await;
    let end = run_attempt(rt, &sub, events.clone(), cancel.clone(), abort.clone()).await;
    let mut report = match end {
        AttemptEnd::Finished(r) => r,
        other => return Err(other),
    };
    let status = report.outcome.status;
    steps.push(StepRecord {
        step: step.to_string(),
        image: image.to_string(),
        image_digest: report.image_digest.clone(),
        status,
    });
    let _ = events
        .send(LogLine::system(
            if status == JobStatus::Succeeded {
                "info"
            } else {
                "error"
            },
            format!("{step} ({image}) ended: {status}"),
        ))
        .await;
    if status == JobStatus::Succeeded {
        return Ok(());
    }
    // The job fails naming the step; limits are the job's.
    if let Some(err) = report.outcome.error.as_mut() {
        err.message = format!("{step} ({image}): {}", err.message);
    }
    report.limits = Some(plan.effective_limits());
    record_steps(&mut report.limits, steps.clone());
    report.new_state = None;
    Err(AttemptEnd::Finished(report))
}

fn record_steps(limits: &mut Option<AppliedLimits>, steps: Vec<StepRecord>) {
    if let Some(l) = limits {
        l.steps = Some(steps);
    }
}

fn infra_end(plan: &AttemptPlan, steps: &[StepRecord], message: String) -> AttemptEnd {
    let mut limits = Some(plan.effective_limits());
    record_steps(&mut limits, steps.to_vec());
    AttemptEnd::Finished(AttemptReport {
        outcome: Outcome::failed(ErrorKind::Infrastructure, message, None),
        image_digest: None,
        limits,
        new_state: None,
    })
}

/// Makes `out/tables` and `out/files` the next step's `in/tables` and
/// `in/files` (what was in `in/` goes; a stored object linked there is only
/// unlinked). Links are moved as they are, never followed.
pub fn shift_out_to_in(dir: &Path) -> std::io::Result<()> {
    for sub in ["tables", "files"] {
        let input = dir.join("in").join(sub);
        let output = dir.join("out").join(sub);
        match std::fs::remove_dir_all(&input) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        match output.symlink_metadata() {
            Ok(m) if m.is_dir() => std::fs::rename(&output, &input)?,
            Ok(_) => {
                std::fs::remove_file(&output)?;
                std::fs::create_dir_all(&input)?;
            }
            Err(_) => std::fs::create_dir_all(&input)?,
        }
        std::fs::create_dir_all(&output)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_becomes_in_and_links_are_not_followed() {
        let tmp = tempfile::tempdir().expect("tmp");
        let d = tmp.path();
        for p in ["in/tables", "in/files", "out/tables", "out/files"] {
            std::fs::create_dir_all(d.join(p)).expect("mkdir");
        }
        std::fs::write(d.join("in/tables/old.csv"), "a\n1\n").expect("write");
        std::fs::write(d.join("out/tables/new.csv"), "b\n2\n").expect("write");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&outside).expect("mkdir");
        std::fs::write(outside.join("keep"), "x").expect("write");
        std::os::unix::fs::symlink(&outside, d.join("out/files/link")).expect("symlink");
        shift_out_to_in(d).expect("shift");
        assert!(!d.join("in/tables/old.csv").exists());
        assert_eq!(
            std::fs::read_to_string(d.join("in/tables/new.csv")).expect("read"),
            "b\n2\n"
        );
        assert!(d
            .join("in/files/link")
            .symlink_metadata()
            .expect("link")
            .file_type()
            .is_symlink());
        assert!(d.join("out/tables").is_dir() && d.join("out/files").is_dir());
        assert_eq!(
            std::fs::read_dir(d.join("out/tables"))
                .expect("dir")
                .count(),
            0
        );
        // A second shift removes the link itself, never what it points to.
        shift_out_to_in(d).expect("shift");
        assert!(outside.join("keep").exists());
    }
}
