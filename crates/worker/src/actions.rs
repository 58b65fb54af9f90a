//! Keboola's sync actions: a configuration's image run at once, outside the
//! queue, with `action` set in `config.json`, no Storage mapping and a short
//! timeout; its stdout is the answer (JSON). UIs use them to fill dropdowns
//! and test connections.

use crate::attempt::{run_attempt, AttemptEnd, AttemptPlan, KbcContext};
use crate::datadir;
use gantry_core::events::{LogLine, Stream};
use gantry_core::{ErrorKind, JobStatus, Spec};
use gantry_runtime::ContainerRuntime;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long a sync action may run, unless its spec allows less.
pub const ACTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Most stdout kept as an action's answer.
const MAX_ANSWER: usize = 4 << 20;

/// How a sync action ended.
#[derive(Debug)]
pub enum ActionEnd {
    /// Exit 0 with JSON on stdout: the answer.
    Answer(Value),
    /// Exit 1: the component's message for the user.
    UserError(String),
    /// Anything else; the detail is for Gantry's log, not the caller.
    Failed(String),
}

/// Where and as whom an action runs.
pub struct ActionRun<'a> {
    pub project: &'a str,
    pub config_id: &'a str,
    /// Secrets already opened.
    pub spec: Spec,
    pub state: &'a Value,
    pub action: &'a str,
    pub kbc: KbcContext,
    /// The folder its data folder is made in (private to Gantry).
    pub work_dir: &'a Path,
    /// The label its container carries as its worker.
    pub worker_id: &'a str,
}

/// Runs one sync action to its end; its container and folder are removed.
pub async fn run_action(rt: &dyn ContainerRuntime, run: ActionRun<'_>) -> ActionEnd {
    let mut spec = run.spec;
    spec.limits.timeout = spec.limits.timeout.min(ACTION_TIMEOUT);
    // One attempt, no retry; no Storage mapping is staged or collected.
    spec.retry.attempts = 1;
    let id = format!("action-{}", gantry_core::JobId::new());
    let dir = run.work_dir.join(&id);
    if let Err(e) = datadir::prepare(&dir, &spec, Some(run.state), run.action) {
        datadir::remove(&dir);
        return ActionEnd::Failed(format!("cannot prepare the data folder: {e}"));
    }
    let plan = AttemptPlan {
        job_id: id,
        attempt: 1,
        worker_id: run.worker_id.to_string(),
        project: run.project.to_string(),
        config_id: Some(run.config_id.to_string()),
        spec,
        data_dir: dir.clone(),
        log_cap: MAX_ANSWER as u64 * 2,
        collect_state: false,
        kbc: run.kbc,
        step: None,
    };
    let (tx, mut rx) = mpsc::channel::<LogLine>(256);
    let reader = tokio::spawn(async move {
        let mut stdout = String::new();
        let mut notes = Vec::new();
        while let Some(line) = rx.recv().await {
            match line.stream {
                Stream::Stdout if stdout.len() < MAX_ANSWER => {
                    // A JSON line the log pipeline read as structured is kept whole.
                    let text = line
                        .data
                        .as_ref()
                        .map_or(line.message.clone(), |d| d.to_string());
                    stdout.push_str(&text);
                    stdout.push('\n');
                }
                Stream::System => notes.push(line.message),
                _ => {}
            }
        }
        (stdout, notes)
    });
    let end = run_attempt(
        rt,
        &plan,
        tx,
        CancellationToken::new(),
        CancellationToken::new(),
    )
    .await;
    let (stdout, notes) = reader.await.unwrap_or_default();
    datadir::remove(&dir);
    let report = match end {
        AttemptEnd::Finished(r) => r,
        AttemptEnd::EngineAway | AttemptEnd::Abandoned => {
            return ActionEnd::Failed("the container engine does not answer".into())
        }
    };
    let o = report.outcome;
    match (o.status, o.error) {
        (JobStatus::Succeeded, _) => match serde_json::from_str::<Value>(stdout.trim()) {
            Ok(v) => ActionEnd::Answer(v),
            Err(e) => ActionEnd::Failed(format!(
                "action '{}' printed no JSON on stdout ({e}); {} bytes",
                run.action,
                stdout.len()
            )),
        },
        (JobStatus::Failed, Some(err))
            if err.kind == ErrorKind::UserError && o.exit_code == Some(1) =>
        {
            ActionEnd::UserError(err.message)
        }
        (status, err) => ActionEnd::Failed(format!(
            "action '{}' ended {status}: {}; {}",
            run.action,
            err.map_or(String::new(), |e| format!(
                "{} {}",
                e.kind.as_str(),
                e.message
            )),
            notes.join("; ")
        )),
    }
}
