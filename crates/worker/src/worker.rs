//! The worker loop: claim due jobs up to `slots`, run each in its own task,
//! renew leases, react to cancels, recover dead attempts, shut down gently.

use crate::attempt::{run_attempt, AttemptEnd, AttemptPlan};
use crate::{datadir, labels};
use gantry_core::events::LogLine;
use gantry_core::job::Outcome;
use gantry_core::{ErrorKind, JobId, Spec};
use gantry_runtime::ContainerRuntime;
use gantry_storage::{Collected, Storage, StorageError};
use gantry_store::{AttemptInfo, Change, ClaimedJob, Finish, Store};
use gantry_vault::Vault;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How often a worker asks an engine that did not answer again.
const ENGINE_RETRY: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Stable across restarts of the same worker, so its leftovers are found.
    pub id: String,
    pub slots: usize,
    /// Where attempt data folders live (private to Gantry).
    pub work_dir: PathBuf,
    pub lease: Duration,
    pub heartbeat: Duration,
    /// How often to look for queued jobs when no wake-up arrives
    /// (other processes enqueue without reaching our in-process notifier).
    pub poll: Duration,
    /// How long running jobs may go on after a shutdown signal.
    pub shutdown_grace: Duration,
    pub log_cap: u64,
    /// How often to sweep for containers of dead attempts.
    pub sweep_every: Duration,
}

impl WorkerConfig {
    pub fn new(id: String, slots: usize, work_dir: PathBuf) -> Self {
        Self {
            id,
            slots: slots.max(1),
            work_dir,
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(5),
            poll: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(30),
            log_cap: crate::logs::DEFAULT_CAP,
            sweep_every: Duration::from_secs(60),
        }
    }
}

#[derive(Clone)]
struct Running {
    cancel: CancellationToken,
    abort: CancellationToken,
}

#[derive(Clone)]
pub struct Worker {
    store: Arc<dyn Store>,
    storage: Storage,
    runtime: Arc<dyn ContainerRuntime>,
    vault: Vault,
    cfg: WorkerConfig,
    running: Arc<Mutex<HashMap<JobId, Running>>>,
    /// Whether the container engine answered last time we looked. While it
    /// does not, nothing is claimed: jobs stay queued instead of failing.
    engine_up: Arc<AtomicBool>,
}

impl Worker {
    pub fn new(
        store: Arc<dyn Store>,
        storage: Storage,
        runtime: Arc<dyn ContainerRuntime>,
        vault: Vault,
        cfg: WorkerConfig,
    ) -> Self {
        Self {
            store,
            storage,
            runtime,
            vault,
            cfg,
            running: Arc::default(),
            engine_up: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Asks the engine whether it answers and remembers the answer; logs
    /// when that changes.
    async fn check_engine(&self) -> bool {
        let up = match self.runtime.ping().await {
            Ok(()) => true,
            Err(e) => {
                if self.engine_up.load(Ordering::Relaxed) {
                    tracing::warn!(error = %e, "the container engine does not answer; claiming no jobs until it does");
                }
                false
            }
        };
        if up && !self.engine_up.load(Ordering::Relaxed) {
            tracing::info!("the container engine answers again; claiming jobs");
        }
        self.engine_up.store(up, Ordering::Relaxed);
        up
    }

    fn running_ids(&self) -> Vec<JobId> {
        self.running
            .lock()
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default()
    }

    fn signal_cancel(&self, id: JobId) {
        if let Ok(m) = self.running.lock() {
            if let Some(r) = m.get(&id) {
                r.cancel.cancel();
            }
        }
    }

    /// Runs until `shutdown` fires, then lets running jobs finish for the
    /// grace period and hands the rest back to the queue.
    pub async fn run(self, shutdown: CancellationToken) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.cfg.work_dir)?;
        self.recover_own().await;
        let mut changes = self.store.subscribe();
        let mut tasks: JoinSet<()> = JoinSet::new();
        let upkeep_stop = CancellationToken::new();
        let upkeep = tokio::spawn(self.clone().upkeep(upkeep_stop.clone()));
        tracing::info!(worker = %self.cfg.id, slots = self.cfg.slots, "worker started");

        let mut wait_for = Duration::ZERO;
        loop {
            // Wait for a reason to look at the queue (or for shutdown).
            if !wait_for.is_zero() {
                let sleep = tokio::time::sleep(wait_for);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = &mut sleep => break,
                        Some(_) = tasks.join_next(), if !tasks.is_empty() => break,
                        change = changes.recv() => match change {
                            Ok(Change::Enqueued) | Err(broadcast::error::RecvError::Lagged(_)) => break,
                            // A job that ends may release one held back by its lock or key.
                            Ok(Change::Status(_, st)) if st.is_terminal() => break,
                            Ok(Change::CancelRequested(id)) => self.signal_cancel(id),
                            Ok(_) => continue,
                            Err(broadcast::error::RecvError::Closed) => break,
                        },
                    }
                }
            }
            if shutdown.is_cancelled() {
                break;
            }
            while tasks.try_join_next().is_some() {}
            let free = self.cfg.slots.saturating_sub(tasks.len());
            if free == 0 {
                wait_for = self.cfg.poll;
                continue;
            }
            if !self.engine_up.load(Ordering::Relaxed) && !self.check_engine().await {
                wait_for = ENGINE_RETRY;
                continue;
            }
            match self.store.claim(&self.cfg.id, free, self.cfg.lease).await {
                Ok(claim) => {
                    let n = claim.jobs.len();
                    for job in claim.jobs {
                        let running = Running {
                            cancel: CancellationToken::new(),
                            abort: CancellationToken::new(),
                        };
                        if let Ok(mut m) = self.running.lock() {
                            m.insert(job.job.id, running.clone());
                        }
                        tasks.spawn(self.clone().run_job(job, running));
                    }
                    wait_for = if n == free {
                        // Slots full or more may be waiting: look again when one frees.
                        self.cfg.poll
                    } else {
                        claim.next_due.map_or(self.cfg.poll, |d| {
                            d.min(self.cfg.poll).max(Duration::from_millis(5))
                        })
                    };
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim jobs; retrying");
                    wait_for = Duration::from_secs(1);
                }
            }
        }

        tracing::info!(running = tasks.len(), grace = ?self.cfg.shutdown_grace, "worker stopping; letting running jobs finish");
        let deadline = tokio::time::sleep(self.cfg.shutdown_grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = tasks.join_next() => if next.is_none() { break },
                _ = &mut deadline => {
                    tracing::info!(running = tasks.len(), "grace period over; handing running jobs back to the queue");
                    if let Ok(m) = self.running.lock() {
                        m.values().for_each(|r| r.abort.cancel());
                    }
                    while tasks.join_next().await.is_some() {}
                    break;
                }
            }
        }
        upkeep_stop.cancel();
        let _ = upkeep.await;
        tracing::info!(worker = %self.cfg.id, "worker stopped");
        Ok(())
    }

    /// At start: jobs still leased to this worker id belong to a previous run
    /// of it that died; take them back and remove their containers.
    async fn recover_own(&self) {
        match self.store.recover_worker(&self.cfg.id).await {
            Ok(ids) if !ids.is_empty() => tracing::warn!(
                jobs = ids.len(),
                "took back jobs of this worker's previous run"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot recover this worker's previous jobs"),
        }
        self.sweep().await;
    }

    /// Removes containers of this worker that no running attempt owns.
    async fn sweep(&self) {
        let containers = match self
            .runtime
            .list_labelled(labels::WORKER, Some(&self.cfg.id))
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "cannot list containers for the sweep");
                return;
            }
        };
        let live: HashSet<String> = self.running_ids().iter().map(|id| id.to_string()).collect();
        for c in containers {
            let owned = c.labels.get(labels::JOB).is_some_and(|j| live.contains(j));
            if !owned {
                tracing::info!(container = %c.id, "removing a container left by a dead attempt");
                let _ = self.runtime.remove(&c.id).await;
            }
        }
        // Data folders of attempts that are no longer running.
        if let Ok(entries) = std::fs::read_dir(&self.cfg.work_dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let job = name
                    .rsplit_once('-')
                    .map(|(j, _)| j.to_string())
                    .unwrap_or_default();
                if !live.contains(&job) {
                    datadir::remove(&e.path());
                }
            }
        }
    }

    /// Heartbeats (lease renewal, cancel requests), recovery of expired
    /// leases, and the periodic sweep.
    async fn upkeep(self, stop: CancellationToken) {
        let mut beat = tokio::time::interval(self.cfg.heartbeat);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_sweep = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = beat.tick() => {}
            }
            self.check_engine().await;
            match self.store.heartbeat(&self.cfg.id, self.cfg.lease).await {
                Ok(cancels) => cancels.into_iter().for_each(|id| self.signal_cancel(id)),
                Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
            }
            if let Err(e) = self.store.recover_expired().await {
                tracing::warn!(error = %e, "cannot recover expired leases");
            }
            if let Err(e) = self.store.age_queue().await {
                tracing::warn!(error = %e, "cannot age the queue");
            }
            if last_sweep.elapsed() >= self.cfg.sweep_every {
                last_sweep = tokio::time::Instant::now();
                self.sweep().await;
            }
        }
    }

    async fn run_job(self, claimed: ClaimedJob, running: Running) {
        let job = &claimed.job;
        let (id, attempt) = (job.id, job.attempt);

        let (tx, rx) = mpsc::channel::<LogLine>(1024);
        let writer = tokio::spawn(write_events(self.store.clone(), id, attempt, rx));
        let _ = tx
            .send(LogLine::system(
                "info",
                format!(
                    "attempt {attempt} of {} started on worker {}",
                    job.max_attempts, self.cfg.id
                ),
            ))
            .await;

        let dir = datadir::attempt_dir(&self.cfg.work_dir, &id.to_string(), attempt);
        let (end, plan) = match self.plan(&claimed, dir.clone()) {
            Ok(plan) => (
                self.execute(&claimed, &plan, &tx, &running).await,
                Some(plan),
            ),
            Err(outcome) => (finished(outcome), None),
        };
        crate::fault::point("after-exit");

        match end {
            AttemptEnd::Abandoned | AttemptEnd::EngineAway => {
                let why = if matches!(end, AttemptEnd::EngineAway) {
                    self.engine_up.store(false, Ordering::Relaxed);
                    "the container engine does not answer; the job goes back to the queue"
                } else {
                    "the worker is shutting down; the job goes back to the queue"
                };
                let _ = tx.send(LogLine::system("warning", why)).await;
                drop(tx);
                let _ = writer.await;
                if let Err(e) = self.store.hand_back(id, attempt, &self.cfg.id).await {
                    tracing::error!(job = %id, error = %e, "cannot hand a job back; its lease will expire");
                }
            }
            AttemptEnd::Finished(mut report) => {
                let collected = match &plan {
                    Some(plan) => self.collect(job, plan, &mut report).await,
                    None => Collected::default(),
                };
                let info = AttemptInfo {
                    image_digest: report.image_digest.clone(),
                    limits: Some(report.limits.clone()),
                };
                if let Err(e) = self.store.record_attempt(id, attempt, &info).await {
                    tracing::warn!(job = %id, error = %e, "cannot record attempt details");
                }
                let outcome = &report.outcome;
                let summary = match &outcome.error {
                    Some(err) => format!(
                        "attempt {attempt} ended: {} ({}): {}",
                        outcome.status,
                        err.kind.as_str(),
                        err.message
                    ),
                    None => format!("attempt {attempt} ended: {}", outcome.status),
                };
                let level = if outcome.status == gantry_core::JobStatus::Succeeded {
                    "info"
                } else {
                    "error"
                };
                let _ = tx.send(LogLine::system(level, summary)).await;
                drop(tx);
                let _ = writer.await;
                crate::fault::point("before-commit");
                let finish = self
                    .store
                    .finish_attempt(
                        id,
                        attempt,
                        &self.cfg.id,
                        outcome,
                        report.new_state.as_ref(),
                        &collected.outputs,
                    )
                    .await;
                crate::fault::point("after-commit");
                if matches!(finish, Ok(Finish::Stale) | Err(_)) {
                    // Nothing was committed: the objects written for it are garbage.
                    self.storage.discard(&collected).await;
                }
                match finish {
                    Ok(Finish::Stale) => {
                        tracing::warn!(job = %id, attempt, "attempt finished after losing its lease; result dropped")
                    }
                    Ok(Finish::Retrying { after }) => {
                        tracing::info!(job = %id, attempt, "attempt failed; job queued again");
                        let line = LogLine::system(
                            "warning",
                            format!("retrying in {} as attempt {}", humanize(after), attempt + 1),
                        );
                        let _ = self.store.append_events(id, attempt, &[line]).await;
                    }
                    Ok(f) => tracing::info!(job = %id, attempt, result = ?f, "attempt finished"),
                    Err(e) => {
                        tracing::error!(job = %id, error = %e, "cannot record the end of a job; its lease will expire")
                    }
                }
            }
        }
        datadir::remove(&dir);
        if let Ok(mut m) = self.running.lock() {
            m.remove(&id);
        }
    }

    /// Lays out the data folder, stages inputs, runs the container.
    async fn execute(
        &self,
        claimed: &ClaimedJob,
        plan: &AttemptPlan,
        tx: &mpsc::Sender<LogLine>,
        running: &Running,
    ) -> AttemptEnd {
        let dir = &plan.data_dir;
        let prepared = datadir::prepare(dir, &plan.spec, Some(&claimed.state)).and_then(|()| {
            match &claimed.webhook {
                Some(w) => datadir::write_webhook(dir, &w.body, &w.manifest),
                None => Ok(()),
            }
        });
        if let Err(e) = prepared {
            return finished(Outcome::failed(
                ErrorKind::Infrastructure,
                format!("cannot prepare the data folder: {e}"),
                None,
            ));
        }
        let input = &plan.spec.storage.input;
        if !input.is_empty() {
            let _ = tx
                .send(LogLine::system("info", "staging input mapping"))
                .await;
            let started = std::time::Instant::now();
            let staged = match self
                .storage
                .stage_inputs(&claimed.job.project, input, dir)
                .await
            {
                Ok(staged) => staged,
                Err(e) => {
                    let kind = match e {
                        StorageError::Invalid(_) | StorageError::NotFound(_) => {
                            ErrorKind::UserError
                        }
                        _ => ErrorKind::Infrastructure,
                    };
                    return finished(Outcome::failed(kind, format!("input mapping: {e}"), None));
                }
            };
            let took = started.elapsed().as_secs_f64() * 1000.0;
            let bytes = datadir::size_of(&dir.join("in"));
            let msg = format!("input mapping staged in {took:.1} ms ({bytes} bytes; {staged})");
            let _ = tx.send(LogLine::system("info", msg)).await;
        }
        run_attempt(
            self.runtime.as_ref(),
            plan,
            tx.clone(),
            running.cancel.clone(),
            running.abort.clone(),
        )
        .await
    }

    /// Reads the outputs of a container that ran to its end. A broken
    /// contract turns the attempt into `invalid_output`.
    async fn collect(
        &self,
        job: &gantry_store::Job,
        plan: &AttemptPlan,
        report: &mut crate::attempt::AttemptReport,
    ) -> Collected {
        let o = &report.outcome;
        let ran = o.exit_code.is_some()
            && matches!(
                o.status,
                gantry_core::JobStatus::Succeeded | gantry_core::JobStatus::Failed
            );
        if !ran {
            return Collected::default();
        }
        let succeeded = o.status == gantry_core::JobStatus::Succeeded;
        let bucket = job
            .config_id
            .as_ref()
            .map_or("adhoc".to_string(), |c| c.to_string());
        let result = self
            .storage
            .collect_outputs(
                &job.project,
                &plan.spec.storage.output,
                &plan.data_dir,
                &bucket,
                succeeded,
            )
            .await;
        crate::fault::point("during-upload");
        match result {
            Ok(c) => c,
            Err(e) => {
                // A broken contract names the file; anything else is ours.
                let (kind, message) = match e {
                    StorageError::Invalid(m) => (ErrorKind::InvalidOutput, m),
                    other => (
                        ErrorKind::Infrastructure,
                        format!("storing the outputs failed, nothing was stored: {other}"),
                    ),
                };
                report.outcome = Outcome::failed(kind, message, report.outcome.exit_code);
                report.new_state = None;
                Collected::default()
            }
        }
    }

    fn plan(&self, claimed: &ClaimedJob, dir: PathBuf) -> Result<AttemptPlan, Outcome> {
        let job = &claimed.job;
        let mut value = job.spec.clone();
        if let Some(params) = value.get_mut("parameters").and_then(|p| p.as_object_mut()) {
            self.vault
                .open_params(params)
                .map_err(|e| Outcome::failed(ErrorKind::Infrastructure, e.to_string(), None))?;
        }
        let (_, spec) = Spec::from_value(value).map_err(|e| {
            Outcome::failed(ErrorKind::UserError, format!("invalid spec: {e}"), None)
        })?;
        Ok(AttemptPlan {
            job_id: job.id.to_string(),
            attempt: job.attempt,
            worker_id: self.cfg.id.clone(),
            project: job.project.to_string(),
            config_id: job.config_id.as_ref().map(|c| c.to_string()),
            spec,
            data_dir: dir,
            log_cap: self.cfg.log_cap,
            collect_state: job.config_id.is_some(),
        })
    }
}

fn finished(outcome: Outcome) -> AttemptEnd {
    AttemptEnd::Finished(crate::attempt::AttemptReport {
        outcome,
        image_digest: None,
        limits: serde_json::Value::Null,
        new_state: None,
    })
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Stores a job's events in batches: whatever has arrived, up to 2,000 lines,
/// in one transaction. The channel is bounded, so a slow disk slows the
/// container's output instead of growing memory.
async fn write_events(
    store: Arc<dyn Store>,
    id: JobId,
    attempt: u32,
    mut rx: mpsc::Receiver<LogLine>,
) {
    let mut batch = Vec::with_capacity(2000);
    while rx.recv_many(&mut batch, 2000).await > 0 {
        if let Err(e) = store.append_events(id, attempt, &batch).await {
            tracing::error!(job = %id, error = %e, lines = batch.len(), "cannot store job events");
        }
        batch.clear();
    }
}
