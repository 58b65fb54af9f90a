//! One attempt of one job, from image to outcome. Used by the worker and by
//! `gantry run`; it knows nothing of the store.

use crate::datadir;
use crate::logs::LogPipeline;
use crate::warm::WarmPools;
use futures_util::StreamExt;
use gantry_core::applied::{AppliedLimits, Start as StartKind};
use gantry_core::events::{LogLine, Redactor};
use gantry_core::job::{classify, ContainerEnd, Outcome};
use gantry_core::spec::secret_values;
use gantry_core::{ErrorKind, PullPolicy, Spec};
use gantry_metrics::Phase;
use gantry_runtime::{ContainerRuntime, ContainerSpec, RuntimeError};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// SIGTERM first, SIGKILL after this long (timeout and cancel).
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// Size of the tmpfs at `/tmp`.
pub const TMP_SIZE: u64 = 256 << 20;
/// How long to wait for the last output after the container stopped.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a container killed by SIGKILL (exit 137) that was neither timed
/// out nor cancelled waits for the engine's OOM flag. The engine learns of an
/// OOM kill from an event that travels apart from the exit and, on a busy
/// machine, is sometimes recorded after the exit has released the wait: read
/// at once, the flag would still be false and an OOM kill would pass for a
/// plain exit 137.
const OOM_FLAG_WAIT: Duration = Duration::from_secs(2);
const OOM_FLAG_POLL: Duration = Duration::from_millis(20);

/// What Keboola's runner tells a component about where it runs (its
/// `KBC_*` environment), beyond the job and configuration ids.
#[derive(Debug, Clone, Default)]
pub struct KbcContext {
    /// The project's stable numeric id (`KBC_PROJECTID`).
    pub project_number: i64,
    /// `KBC_STACKID`: a configured stack name, else the server URL's host.
    pub stack_id: String,
    /// `KBC_URL`: the Gantry server's URL.
    pub url: String,
    pub token_id: Option<String>,
    pub token_desc: Option<String>,
    /// `KBC_CONFIGROWID` when the job runs one row of a configuration.
    pub config_row_id: Option<String>,
}

/// The host of a URL (`http://h:8420/x` → `h:8420`), for `KBC_STACKID`.
pub fn url_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .to_string()
}

/// What to run, fully resolved (secrets already opened).
pub struct AttemptPlan {
    pub job_id: String,
    pub attempt: u32,
    pub worker_id: String,
    pub project: String,
    pub config_id: Option<String>,
    pub spec: Spec,
    /// Host folder mounted at `/data`, already prepared.
    pub data_dir: PathBuf,
    pub log_cap: u64,
    /// Collect `out/state.json` when the job succeeds.
    pub collect_state: bool,
    pub kbc: KbcContext,
    /// Which step of the job this is when it has processors
    /// (`processors.before[0]`); `None` for the component itself.
    pub step: Option<String>,
}

pub struct AttemptReport {
    pub outcome: Outcome,
    pub image_digest: Option<String>,
    /// `None` when the attempt ended before any container was planned.
    pub limits: Option<AppliedLimits>,
    pub new_state: Option<Value>,
}

// One per attempt, moved once: boxing the report would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum AttemptEnd {
    Finished(AttemptReport),
    /// Stopped because the worker is shutting down; the job goes back to the queue.
    Abandoned,
    /// The engine stopped answering before the container started; the job
    /// goes back to the queue (not counted as an attempt).
    EngineAway,
}

impl AttemptPlan {
    pub fn redactor(&self) -> Redactor {
        let mut secrets = secret_values(&self.spec.parameters);
        secrets.extend(secret_values(&self.spec.authorization));
        for row in &self.spec.rows {
            secrets.extend(secret_values(&row.parameters));
        }
        Redactor::new(&secrets)
    }

    /// The limits and security settings actually applied, recorded on the job.
    pub fn effective_limits(&self) -> AppliedLimits {
        let l = &self.spec.limits;
        AppliedLimits {
            memory: l.memory,
            memory_swap: l.memory,
            cpus: l.cpus,
            timeout_ms: l.timeout.as_millis() as u64,
            pids: l.pids,
            network: l.network,
            user: self.spec.user.clone(),
            read_only_root: !self.spec.writable_root,
            loosened: Some(self.spec.loosenings()),
            tmp_size: TMP_SIZE,
            capabilities: "none".into(),
            no_new_privileges: true,
            start: None,
            steps: None,
            other: Default::default(),
        }
    }

    pub(crate) fn container_spec(&self) -> ContainerSpec {
        let mut env: Vec<String> = vec![
            "KBC_DATADIR=/data/".into(),
            "HOME=/tmp".into(),
            format!("GANTRY_JOB_ID={}", self.job_id),
            format!("GANTRY_PROJECT={}", self.project),
            format!("KBC_RUNID={}", self.job_id),
            format!("KBC_PROJECTID={}", self.kbc.project_number),
            format!("KBC_PROJECTNAME={}", self.project),
            format!("KBC_STACKID={}", self.kbc.stack_id),
            format!("KBC_URL={}", self.kbc.url),
            // Gantry has no development branches: every job runs on the default one.
            "KBC_BRANCHID=default".into(),
            format!(
                "KBC_DATA_TYPE_SUPPORT={}",
                self.spec
                    .storage
                    .output
                    .data_type_support
                    .unwrap_or_default()
                    .as_str()
            ),
            // Jobs are queued and run one container each, as on Keboola's queue v2.
            "KBC_PROJECT_FEATURE_GATES=queuev2".into(),
        ];
        if let Some(c) = &self.spec.component_id {
            env.push(format!("KBC_COMPONENTID={c}"));
        }
        if let Some(c) = &self.config_id {
            env.push(format!("GANTRY_CONFIG_ID={c}"));
            env.push(format!("KBC_CONFIGID={c}"));
        }
        if let Some(r) = &self.kbc.config_row_id {
            env.push(format!("KBC_CONFIGROWID={r}"));
        }
        if let Some(t) = &self.kbc.token_id {
            env.push(format!("KBC_TOKENID={t}"));
        }
        if let Some(t) = &self.kbc.token_desc {
            env.push(format!("KBC_TOKENDESC={t}"));
        }
        env.extend(self.spec.env.iter().map(|(k, v)| format!("{k}={v}")));
        let mut labels = BTreeMap::new();
        labels.insert(crate::labels::JOB.to_string(), self.job_id.clone());
        labels.insert(crate::labels::ATTEMPT.to_string(), self.attempt.to_string());
        labels.insert(crate::labels::WORKER.to_string(), self.worker_id.clone());
        labels.insert(crate::labels::PROJECT.to_string(), self.project.clone());
        ContainerSpec {
            name: match &self.step {
                None => format!("gantry-{}-{}", self.job_id, self.attempt),
                Some(step) => format!(
                    "gantry-{}-{}-{}",
                    self.job_id,
                    self.attempt,
                    step.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
                        .trim_matches('-')
                ),
            },
            image: self.spec.image.clone(),
            command: self.spec.command.clone(),
            env,
            user: self.spec.user.clone(),
            labels,
            data_dir: self.data_dir.clone(),
            memory: self.spec.limits.memory,
            cpus: self.spec.limits.cpus,
            pids: self.spec.limits.pids,
            network: self.spec.limits.network.as_str().to_string(),
            read_only_root: !self.spec.writable_root,
            tmp_size: TMP_SIZE,
        }
    }
}

fn infra(e: impl std::fmt::Display) -> Outcome {
    Outcome::failed(ErrorKind::Infrastructure, e.to_string(), None)
}

/// Makes the image available per the spec's pull policy; returns its id.
async fn ensure_image(
    rt: &dyn ContainerRuntime,
    spec: &Spec,
    events: &mpsc::Sender<LogLine>,
) -> Result<String, Outcome> {
    let image = &spec.image;
    if image.is_empty() {
        // `code` and `build` are resolved by a worker (`images::Images`).
        return Err(Outcome::failed(
            ErrorKind::UserError,
            "a spec with code or build runs on a server (gantry up), not with gantry run",
            None,
        ));
    }
    let present = rt.image_id(image).await.map_err(infra)?;
    let must_pull = match spec.pull {
        PullPolicy::Always => true,
        PullPolicy::IfMissing => present.is_none(),
        PullPolicy::Never => false,
    };
    if !must_pull {
        return present.ok_or_else(|| {
            Outcome::failed(
                ErrorKind::ImageNotFound,
                format!("image {image} is not present and pull is 'never'"),
                None,
            )
        });
    }
    let _ = events
        .send(LogLine::system("info", format!("pulling image {image}")))
        .await;
    let tx = events.clone();
    let progress = move |line: String| {
        let _ = tx.try_send(LogLine::system("info", format!("pull: {line}")));
    };
    let pulling = std::time::Instant::now();
    let pulled = rt.pull(image, &progress).await;
    gantry_metrics::global().observe(Phase::ImagePull, pulling.elapsed());
    match pulled {
        Ok(()) => {}
        Err(e @ (RuntimeError::ImageNotFound(_) | RuntimeError::PullFailed { .. })) => {
            return Err(Outcome::failed(
                ErrorKind::ImageNotFound,
                e.to_string(),
                None,
            ))
        }
        Err(e) => return Err(infra(e)),
    }
    let id = rt.image_id(image).await.map_err(infra)?;
    id.ok_or_else(|| {
        Outcome::failed(
            ErrorKind::ImageNotFound,
            format!("image {image} is missing after its pull"),
            None,
        )
    })
}

/// Runs one attempt. The container is removed whatever happens.
pub async fn run_attempt(
    rt: &dyn ContainerRuntime,
    plan: &AttemptPlan,
    events: mpsc::Sender<LogLine>,
    cancel: CancellationToken,
    abort: CancellationToken,
) -> AttemptEnd {
    run_attempt_with(rt, None, plan, events, cancel, abort).await
}

/// [`run_attempt`], on a warm container of `warm` when one matches (else cold).
pub async fn run_attempt_with(
    rt: &dyn ContainerRuntime,
    warm: Option<&Arc<WarmPools>>,
    plan: &AttemptPlan,
    events: mpsc::Sender<LogLine>,
    cancel: CancellationToken,
    abort: CancellationToken,
) -> AttemptEnd {
    let limits = plan.effective_limits();
    let report = |outcome, digest| {
        AttemptEnd::Finished(AttemptReport {
            outcome,
            image_digest: digest,
            limits: Some(limits.clone()),
            new_state: None,
        })
    };

    // An infrastructure failure before the container runs, with the engine
    // gone, is not the job's: it goes back to the queue.
    let engine_away = || async { rt.ping().await.is_err() };
    let digest = match ensure_image(rt, &plan.spec, &events).await {
        Ok(d) => d,
        Err(outcome) => {
            if outcome.error.as_ref().map(|e| e.kind) == Some(ErrorKind::Infrastructure)
                && engine_away().await
            {
                return AttemptEnd::EngineAway;
            }
            return report(outcome, None);
        }
    };
    if cancel.is_cancelled() {
        return report(
            Outcome {
                status: gantry_core::JobStatus::Cancelled,
                error: None,
                exit_code: None,
            },
            Some(digest),
        );
    }
    let cspec = plan.container_spec();
    let creating = std::time::Instant::now();
    if let Some(pools) = warm {
        let started = crate::warm_attempt::run(
            rt,
            pools,
            plan,
            &cspec,
            &digest,
            (&events, &cancel, &abort),
            creating,
        )
        .await;
        if let Some(end) = started {
            let mut limits = limits.clone();
            limits.start = Some(StartKind::Warm);
            return ended(end, plan, digest, limits);
        }
    }
    let id = match rt.create(&cspec).await {
        Ok(id) => id,
        Err(RuntimeError::ImageNotFound(m)) => {
            return report(
                Outcome::failed(
                    ErrorKind::ImageNotFound,
                    format!("image {m} not found"),
                    None,
                ),
                Some(digest),
            )
        }
        Err(RuntimeError::Rejected(m)) => {
            return report(
                Outcome::failed(
                    ErrorKind::UserError,
                    format!("the container cannot be created: {m}"),
                    None,
                ),
                Some(digest),
            )
        }
        Err(e) => {
            if engine_away().await {
                return AttemptEnd::EngineAway;
            }
            return report(infra(e), Some(digest));
        }
    };
    let end = supervise(rt, plan, &id, events, cancel, abort, creating, Start::Cold).await;
    if let Err(e) = rt.remove(&id).await {
        tracing::warn!(container = %id, error = %e, "cannot remove a job container; the sweep will retry");
    }
    let mut limits = limits.clone();
    limits.start = Some(StartKind::Cold);
    ended(end, plan, digest, limits)
}

/// How an attempt whose container ran (or failed to) ends.
fn ended(end: Supervised, plan: &AttemptPlan, digest: String, limits: AppliedLimits) -> AttemptEnd {
    let report = |outcome, digest| {
        AttemptEnd::Finished(AttemptReport {
            outcome,
            image_digest: digest,
            limits: Some(limits.clone()),
            new_state: None,
        })
    };
    match end {
        Supervised::Abandoned => AttemptEnd::Abandoned,
        Supervised::Failed(outcome) | Supervised::NotStarted(outcome) => {
            report(outcome, Some(digest))
        }
        Supervised::Ended(outcome) => {
            let mut r = AttemptReport {
                outcome,
                image_digest: Some(digest),
                limits: Some(limits),
                new_state: None,
            };
            if plan.collect_state && r.outcome.status == gantry_core::JobStatus::Succeeded {
                match datadir::read_new_state(&plan.data_dir) {
                    Ok(state) => r.new_state = state,
                    Err(e) => {
                        r.outcome = Outcome::failed(
                            ErrorKind::InvalidOutput,
                            e.to_string(),
                            r.outcome.exit_code,
                        )
                    }
                }
            }
            AttemptEnd::Finished(r)
        }
    }
}

pub(crate) enum Supervised {
    Ended(Outcome),
    Failed(Outcome),
    /// Nothing of the job ran (the output could not be attached, or a warm
    /// container took no hand-over).
    NotStarted(Outcome),
    Abandoned,
}

/// How the job's process starts: a created container is started, or a warm
/// one's gate is handed the job (see `warm_attempt`).
pub(crate) enum Start {
    Cold,
    Warm { message: Vec<u8>, nonce: String },
}

// The attempt's pieces, passed down once; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn supervise(
    rt: &dyn ContainerRuntime,
    plan: &AttemptPlan,
    id: &str,
    events: mpsc::Sender<LogLine>,
    cancel: CancellationToken,
    abort: CancellationToken,
    creating: std::time::Instant,
    start: Start,
) -> Supervised {
    let (mut output, gate_error) = match &start {
        Start::Cold => match rt.attach(id).await {
            Ok(s) => (s, None),
            Err(e) => return Supervised::NotStarted(infra(e)),
        },
        Start::Warm { message, nonce } => {
            let Some(warm) = rt.warm() else {
                return Supervised::NotStarted(infra("the engine has no warm starts"));
            };
            match warm.hand_over(id, message).await {
                Ok(s) => {
                    let (s, e) = crate::warm_attempt::gate_filter(s, nonce);
                    (s, Some(e))
                }
                Err(e) => return Supervised::NotStarted(infra(e)),
            }
        }
    };
    let mut pipeline = LogPipeline::new(events, plan.redactor(), plan.log_cap);
    let pump = async move {
        while let Some(chunk) = output.next().await {
            match chunk {
                Ok((stream, bytes)) => pipeline.push(stream, &bytes).await,
                Err(e) => {
                    pipeline
                        .system("warning", format!("output stream broke: {e}"))
                        .await;
                    break;
                }
            }
        }
        pipeline.finish().await
    };
    let pump = tokio::spawn(pump);

    if let Err(e) = match start {
        Start::Cold => rt.start(id).await,
        Start::Warm { .. } => Ok(()),
    } {
        pump.abort();
        return Supervised::Failed(match e {
            RuntimeError::Rejected(m) => Outcome::failed(
                ErrorKind::UserError,
                format!("the container cannot start: {m}"),
                None,
            ),
            other => infra(other),
        });
    }

    let metrics = gantry_metrics::global();
    metrics.observe(Phase::ContainerStart, creating.elapsed());
    let running = std::time::Instant::now();
    let mut end = ContainerEnd::default();
    let timeout = tokio::time::sleep(plan.spec.limits.timeout);
    tokio::pin!(timeout);
    let stopped = tokio::select! {
        r = rt.wait(id) => r,
        _ = &mut timeout => { end.timed_out = true; rt.stop(id, STOP_GRACE).await }
        _ = cancel.cancelled() => { end.cancelled = true; rt.stop(id, STOP_GRACE).await }
        _ = abort.cancelled() => {
            let _ = rt.stop(id, Duration::from_secs(1)).await;
            pump.abort();
            return Supervised::Abandoned;
        }
    };
    if let Err(e) = stopped {
        pump.abort();
        return Supervised::Failed(infra(e));
    }
    metrics.observe(Phase::Run, running.elapsed());
    let mut pump = pump;
    let tail = match tokio::time::timeout(DRAIN_TIMEOUT, &mut pump).await {
        Ok(Ok(tail)) => tail,
        _ => {
            // An output stream the engine never ends must not keep the
            // job's event channel open (its writer waits for every sender).
            pump.abort();
            String::new()
        }
    };
    if let Some(message) = gate_error.and_then(|e| e.lock().ok().and_then(|m| m.clone())) {
        // The gate could not exec the job: the same answer as a cold start
        // whose command the engine cannot run.
        return Supervised::Failed(Outcome::failed(
            ErrorKind::UserError,
            format!("the container cannot start: {}", message.trim_end()),
            None,
        ));
    }
    let may_be_oom = !end.timed_out && !end.cancelled;
    match settled_exit_state(rt, id, may_be_oom).await {
        Ok(state) => {
            end.exit_code = state.exit_code;
            end.oom_killed = state.oom_killed;
            Supervised::Ended(classify(&end, plan.spec.limits.memory, &tail))
        }
        Err(e) => Supervised::Failed(infra(e)),
    }
}

/// The container's exit state, once the engine's OOM flag has had its
/// chance to arrive (see [`OOM_FLAG_WAIT`]). Only an exit by SIGKILL waits,
/// and at most that long; any other exit is read once.
async fn settled_exit_state(
    rt: &dyn ContainerRuntime,
    id: &str,
    may_be_oom: bool,
) -> gantry_runtime::Result<gantry_runtime::ExitState> {
    let deadline = tokio::time::Instant::now() + OOM_FLAG_WAIT;
    loop {
        let state = rt.exit_state(id).await?;
        if !may_be_oom
            || state.oom_killed
            || state.exit_code != 137
            || tokio::time::Instant::now() >= deadline
        {
            return Ok(state);
        }
        tokio::time::sleep(OOM_FLAG_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream::BoxStream;
    use gantry_runtime::{ContainerInfo, ExitState, OutputChunk};

    /// An engine that refuses every call; `ping` answers only when `up`.
    struct Refusing {
        up: bool,
    }

    fn refused<T>() -> gantry_runtime::Result<T> {
        Err(RuntimeError::Engine("connection refused".into()))
    }

    #[async_trait::async_trait]
    impl ContainerRuntime for Refusing {
        async fn ping(&self) -> gantry_runtime::Result<()> {
            if self.up {
                Ok(())
            } else {
                refused()
            }
        }
        async fn image_id(&self, _: &str) -> gantry_runtime::Result<Option<String>> {
            refused()
        }
        async fn pull(
            &self,
            _: &str,
            _: &(dyn Fn(String) + Send + Sync),
        ) -> gantry_runtime::Result<()> {
            refused()
        }
        async fn create(&self, _: &ContainerSpec) -> gantry_runtime::Result<String> {
            refused()
        }
        async fn attach(
            &self,
            _: &str,
        ) -> gantry_runtime::Result<BoxStream<'static, gantry_runtime::Result<OutputChunk>>>
        {
            refused()
        }
        async fn start(&self, _: &str) -> gantry_runtime::Result<()> {
            refused()
        }
        async fn wait(&self, _: &str) -> gantry_runtime::Result<()> {
            refused()
        }
        async fn exit_state(&self, _: &str) -> gantry_runtime::Result<ExitState> {
            refused()
        }
        async fn stop(&self, _: &str, _: Duration) -> gantry_runtime::Result<()> {
            refused()
        }
        async fn remove(&self, _: &str) -> gantry_runtime::Result<()> {
            refused()
        }
        async fn list_labelled(
            &self,
            _: &str,
            _: Option<&str>,
        ) -> gantry_runtime::Result<Vec<ContainerInfo>> {
            refused()
        }
    }

    async fn attempt_on(rt: &Refusing) -> AttemptEnd {
        let (_, spec) = Spec::parse("image: x").expect("spec");
        let plan = AttemptPlan {
            job_id: "j".into(),
            attempt: 1,
            worker_id: "w".into(),
            project: "default".into(),
            config_id: None,
            spec,
            data_dir: std::env::temp_dir(),
            log_cap: 1 << 20,
            collect_state: false,
            kbc: KbcContext::default(),
            step: None,
        };
        let (tx, _rx) = mpsc::channel(64);
        run_attempt(
            rt,
            &plan,
            tx,
            CancellationToken::new(),
            CancellationToken::new(),
        )
        .await
    }

    /// Before the container runs, a failure with the engine gone is not the
    /// job's (it goes back to the queue); with the engine up it is an
    /// infrastructure failure of the attempt.
    #[tokio::test]
    async fn a_vanished_engine_hands_the_job_back_instead_of_failing_it() {
        assert!(matches!(
            attempt_on(&Refusing { up: false }).await,
            AttemptEnd::EngineAway
        ));
        match attempt_on(&Refusing { up: true }).await {
            AttemptEnd::Finished(r) => assert_eq!(
                r.outcome.error.map(|e| e.kind),
                Some(ErrorKind::Infrastructure)
            ),
            _ => panic!("expected an infrastructure failure"),
        }
    }
}
