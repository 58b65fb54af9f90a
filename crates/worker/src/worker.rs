//! The worker loop: claim due jobs up to `slots`, run each in its own task,
//! renew leases, react to cancels, recover dead attempts, shut down gently.

use crate::attempt::{AttemptEnd, AttemptPlan};
use crate::warm::WarmPools;
use crate::{datadir, labels};
use gantry_core::events::LogLine;
use gantry_core::job::Outcome;
use gantry_core::{ErrorKind, JobId, Spec};
use gantry_metrics::Phase;
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
    pub id: gantry_core::WorkerId,
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
    /// The server's URL, given to jobs as `KBC_URL`.
    pub url: String,
    /// `KBC_STACKID` of jobs: a stack name, by default the URL's host.
    pub stack_id: String,
    /// Jobs whose spec names `worker_tags` run only on a worker that has
    /// them all.
    pub tags: Vec<String>,
    /// Mirrors, warm images, git and image GC settings.
    pub images: crate::images::ImageConfig,
    /// Warm starts (`None`: every job starts cold).
    pub warm: Option<crate::warm::WarmConfig>,
}

impl WorkerConfig {
    pub fn new(id: gantry_core::WorkerId, slots: usize, work_dir: PathBuf) -> Self {
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
            url: "http://127.0.0.1:8420".into(),
            stack_id: "127.0.0.1:8420".into(),
            tags: Vec::new(),
            images: Default::default(),
            warm: None,
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
    /// Set while this worker has stopped its own containers because it
    /// could not renew their leases (see [`Worker::fence_if_cut_off`]).
    fenced: Arc<AtomicBool>,
    /// Attempts this worker gave up on without recording their end (the
    /// database did not answer): handed back once it does, so that the
    /// heartbeat does not keep their leases alive for nothing.
    owed: Arc<Mutex<Vec<(JobId, u32)>>>,
    images: crate::images::Images,
    warm: Option<Arc<WarmPools>>,
}

impl Worker {
    pub fn new(
        store: Arc<dyn Store>,
        storage: Storage,
        runtime: Arc<dyn ContainerRuntime>,
        vault: Vault,
        cfg: WorkerConfig,
    ) -> Self {
        let images = crate::images::Images {
            store: store.clone(),
            storage: storage.clone(),
            vault: vault.clone(),
            runtime: runtime.clone(),
            worker_id: cfg.id.clone(),
            cfg: cfg.images.clone(),
            touched: Arc::default(),
        };
        let warm = cfg.warm.clone().and_then(|w| {
            if runtime.warm().is_none() {
                tracing::warn!("this container engine has no warm starts; every job starts cold");
                return None;
            }
            if !w.gate.is_file() {
                tracing::warn!(gate = %w.gate.display(), "the warm-start gate binary is missing; every job starts cold");
                return None;
            }
            let slots = cfg.work_dir.with_extension("warm");
            Some(WarmPools::new(runtime.clone(), w, cfg.id.as_str(), slots))
        });
        Self {
            store,
            storage,
            runtime,
            vault,
            cfg,
            running: Arc::default(),
            engine_up: Arc::new(AtomicBool::new(true)),
            fenced: Arc::new(AtomicBool::new(false)),
            owed: Arc::default(),
            images,
            warm,
        }
    }

    /// The container a job of `image` with every default would get (what a
    /// listed warm image's pool is made for).
    fn default_container(&self, image: &str) -> gantry_runtime::ContainerSpec {
        let spec = Spec::from_value(serde_json::json!({ "image": image }))
            .map(|(_, s)| s)
            .unwrap_or_else(|_| {
                // A listed image name that is not a valid spec image: its
                // pool simply never matches a job.
                let (_, s) = Spec::from_value(serde_json::json!({ "image": "invalid" }))
                    .expect("a constant spec is valid");
                s
            });
        AttemptPlan {
            job_id: String::new(),
            attempt: 0,
            worker_id: self.cfg.id.to_string(),
            project: String::new(),
            config_id: None,
            spec,
            data_dir: PathBuf::new(),
            log_cap: 0,
            collect_state: false,
            kbc: Default::default(),
            step: None,
        }
        .container_spec()
    }

    /// Its configuration.
    pub fn config(&self) -> &WorkerConfig {
        &self.cfg
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
        gantry_metrics::global().set_worker_up(self.cfg.id.as_str(), up);
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
        self.register().await;
        self.recover_own().await;
        let mut changes = self.store.subscribe();
        let mut tasks: JoinSet<()> = JoinSet::new();
        let upkeep_stop = CancellationToken::new();
        let upkeep = tokio::spawn(self.clone().upkeep(upkeep_stop.clone()));
        let image_upkeep = tokio::spawn(self.clone().image_upkeep(upkeep_stop.clone()));
        tracing::info!(worker = %self.cfg.id, slots = self.cfg.slots, "worker started");
        self.publish_slots();
        gantry_metrics::global()
            .set_worker_up(self.cfg.id.as_str(), self.engine_up.load(Ordering::Relaxed));

        if let Some(w) = &self.warm {
            // Listed images are warm before the first claim (bounded).
            w.maintain(|image| self.default_container(image)).await;
            let ready = async {
                while w.creating() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(10), ready).await;
            tracing::info!(idle = w.idle(), "warm starts on");
        }
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
        if let Err(e) = self.store.worker_stopped(&self.cfg.id).await {
            tracing::warn!(error = %e, "cannot record that this worker stopped");
        }
        let _ = image_upkeep.await;
        if let Some(w) = &self.warm {
            w.close().await;
            w.sweep().await;
        }
        tracing::info!(worker = %self.cfg.id, "worker stopped");
        Ok(())
    }

    /// Says who this worker is to the fleet (`gantry workers list`); retried
    /// by the heartbeat when the store does not answer yet.
    async fn register(&self) {
        let w = gantry_store::NewWorker {
            id: self.cfg.id.clone(),
            host: hostname(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            tags: self.cfg.tags.clone(),
            slots: self.cfg.slots as u32,
        };
        if let Err(e) = self.store.register_worker(w).await {
            tracing::warn!(error = %e, "cannot register this worker; retrying with the heartbeat");
        }
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

    /// Removes containers of this worker that no running attempt owns, and
    /// warm containers no pool owns.
    async fn sweep(&self) {
        if let Some(w) = &self.warm {
            w.sweep().await;
        }
        let containers = match self
            .runtime
            .list_labelled(labels::WORKER, Some(self.cfg.id.as_str()))
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
        // When the leases of this worker's jobs were last renewed (asked).
        let mut renewed = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = beat.tick() => {}
            }
            self.check_engine().await;
            // Before renewing leases: attempts given up on go back first.
            self.settle_owed().await;
            let asked = tokio::time::Instant::now();
            // A database that hangs counts as one that refuses: a renewal
            // must answer within a heartbeat for the fence to be in time.
            let beat_limit = self.cfg.heartbeat.max(Duration::from_secs(1));
            let renewal = tokio::time::timeout(
                beat_limit,
                self.store.heartbeat(&self.cfg.id, self.cfg.lease),
            )
            .await
            .unwrap_or_else(|_| {
                Err(gantry_store::StoreError::Unavailable(format!(
                    "no answer within {beat_limit:?}"
                )))
            });
            match renewal {
                Ok(cancels) => {
                    renewed = asked;
                    if self.fenced.swap(false, Ordering::Relaxed) {
                        tracing::info!("the database answers again; claiming again");
                    }
                    cancels.into_iter().for_each(|id| self.signal_cancel(id))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "heartbeat failed");
                    self.fence_if_cut_off(renewed.elapsed());
                }
            }
            match self.store.worker_beat(&self.cfg.id).await {
                Ok(gantry_store::WorkerState::Draining) => {
                    tracing::debug!("drained: claiming nothing more")
                }
                Ok(_) => {}
                Err(gantry_store::StoreError::NotFound(_)) => self.register().await,
                Err(e) => tracing::warn!(error = %e, "worker heartbeat failed"),
            }
            if let Err(e) = self.store.recover_expired().await {
                tracing::warn!(error = %e, "cannot recover expired leases");
            }
            if let Err(e) = self.store.age_queue().await {
                tracing::warn!(error = %e, "cannot age the queue");
            }
            if let Some(w) = &self.warm {
                w.maintain(|image| self.default_container(image)).await;
            }
            if last_sweep.elapsed() >= self.cfg.sweep_every {
                last_sweep = tokio::time::Instant::now();
                self.sweep().await;
            }
        }
    }

    fn owe(&self, id: JobId, attempt: u32) {
        if let Ok(mut o) = self.owed.lock() {
            o.push((id, attempt));
        }
    }

    /// Hands back the attempts whose end could not be recorded (fenced: one
    /// whose lease another worker took meanwhile is left alone).
    async fn settle_owed(&self) {
        let owed = match self.owed.lock() {
            Ok(mut o) => std::mem::take(&mut *o),
            Err(_) => return,
        };
        for (id, attempt) in owed {
            match self.store.hand_back(id, attempt, &self.cfg.id).await {
                Ok(()) => {
                    tracing::info!(job = %id, attempt, "handed back an attempt given up on while the database did not answer")
                }
                Err(_) => self.owe(id, attempt),
            }
        }
    }

    /// Self-fencing: a worker that has not renewed its leases for nearly a
    /// lease stops its own containers before the leases run out, since
    /// another worker may then take their jobs: two attempts of one job
    /// never run side by side past a lease. The attempts are abandoned (no
    /// result is committed); their jobs run again once the leases expire.
    fn fence_if_cut_off(&self, since_renewal: Duration) {
        if since_renewal < fence_after(self.cfg.lease, self.cfg.heartbeat) {
            return;
        }
        let Ok(m) = self.running.lock() else { return };
        if m.is_empty() {
            return;
        }
        if !self.fenced.swap(true, Ordering::Relaxed) {
            tracing::error!(
                running = m.len(),
                since_renewal = ?since_renewal,
                lease = ?self.cfg.lease,
                "cannot renew leases for nearly a lease: stopping this worker's containers (self-fencing)"
            );
        }
        m.values().for_each(|r| r.abort.cancel());
    }

    /// Warm images and image GC, at start and every sweep period; apart from
    /// the heartbeats, as a pull may take long.
    async fn image_upkeep(self, stop: CancellationToken) {
        let images = self.images.clone();
        loop {
            let work = async {
                images.keep_warm().await;
                images.collect_garbage(gantry_core::time::now_ms()).await;
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = work => {}
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.cfg.sweep_every) => {}
            }
        }
    }

    /// Publishes this worker's running jobs and free slots.
    fn publish_slots(&self) {
        let running = self.running.lock().map_or(0, |m| m.len());
        gantry_metrics::global().set_slots(self.cfg.id.as_str(), running, self.cfg.slots);
    }

    async fn run_job(self, claimed: ClaimedJob, running: Running) {
        let job = &claimed.job;
        let (id, attempt) = (job.id, job.attempt);
        let metrics = gantry_metrics::global();
        metrics.job_started(job.project.as_str());
        if let (1, Some(started)) = (attempt, job.started_at) {
            // Both times come from the database's clock.
            let waited = (started - job.queued_at).max(0) as u64;
            metrics.observe(Phase::QueueWait, Duration::from_millis(waited));
        }
        self.publish_slots();

        let (tx, rx) = mpsc::channel::<LogLine>(1024);
        let shipped = ShipContext::of(job);
        let writer = tokio::spawn(write_events(self.store.clone(), id, attempt, rx, shipped));
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
        // A configuration with rows collects each row's outputs as it goes.
        let planned = match self.plan(&claimed, dir.clone()).await {
            Ok(mut plan) => match self.images.resolve(&job.project, &mut plan.spec, &tx).await {
                Ok(()) => Ok(plan),
                Err(o) => Err(o),
            },
            Err(o) => Err(o),
        };
        let (end, plan, rows_collected) = match planned {
            Ok(plan) if !plan.spec.rows.is_empty() => {
                let (end, collected) = self.execute_rows(&claimed, &plan, &tx, &running).await;
                (end, Some(plan), Some(collected))
            }
            Ok(plan) => (
                self.execute(&claimed, &claimed.state, &plan, &tx, &running)
                    .await,
                Some(plan),
                None,
            ),
            Err(outcome)
                if outcome.error.as_ref().map(|e| e.kind) == Some(ErrorKind::Infrastructure)
                    && self.runtime.ping().await.is_err() =>
            {
                (AttemptEnd::EngineAway, None, None)
            }
            Err(outcome) => (finished(outcome), None, None),
        };
        crate::fault::point("after-exit");

        match end {
            AttemptEnd::Abandoned | AttemptEnd::EngineAway => {
                if let Some(c) = &rows_collected {
                    self.storage.discard(c).await;
                }
                let why = if matches!(end, AttemptEnd::EngineAway) {
                    self.engine_up.store(false, Ordering::Relaxed);
                    "the container engine does not answer; the job goes back to the queue"
                } else if self.fenced.load(Ordering::Relaxed) {
                    "the worker cannot reach the database: it stopped the container before its lease ran out; the job runs again"
                } else {
                    "the worker is shutting down; the job goes back to the queue"
                };
                let _ = tx.send(LogLine::system("warning", why)).await;
                drop(tx);
                let _ = writer.await;
                if let Err(e) = self.store.hand_back(id, attempt, &self.cfg.id).await {
                    tracing::error!(job = %id, error = %e, "cannot hand a job back yet; retrying while the database does not answer");
                    self.owe(id, attempt);
                }
            }
            AttemptEnd::Finished(mut report) => {
                let collected = match (rows_collected, &plan) {
                    (Some(c), _) => c,
                    (None, Some(plan)) => self.collect(job, plan, &mut report).await,
                    (None, None) => Collected::default(),
                };
                let info = AttemptInfo {
                    image_digest: report.image_digest.clone(),
                    limits: report.limits.clone(),
                };
                if let Err(e) = self.store.record_attempt(id, attempt, &info).await {
                    tracing::warn!(job = %id, error = %e, "cannot record attempt details");
                }
                if let Some(p) = plan
                    .as_ref()
                    .filter(|p| p.spec.mode == gantry_core::spec::RunMode::Debug)
                {
                    let line = self.keep_debug(job, &p.data_dir).await;
                    let _ = tx.send(line).await;
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
                let committing = std::time::Instant::now();
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
                metrics.observe(Phase::OutputCommit, committing.elapsed());
                if let Ok(Finish::Done(status)) = &finish {
                    let kind = outcome.error.as_ref().map_or("", |e| e.kind.as_str());
                    metrics.job_finished(job.project.as_str(), status.as_str(), kind);
                }
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
                        tracing::error!(job = %id, error = %e, "cannot record the end of a job; it goes back to the queue once the database answers");
                        self.owe(id, attempt);
                    }
                }
            }
        }
        datadir::remove(&dir);
        if let Ok(mut m) = self.running.lock() {
            m.remove(&id);
        }
        self.publish_slots();
    }

    /// The code of the shared-code rows a spec uses: `(row id, code)`.
    async fn shared_code(
        &self,
        project: &gantry_core::ProjectId,
        id: &str,
        wanted: &[String],
    ) -> Result<Vec<(String, serde_json::Value)>, Outcome> {
        let user = |m: String| Outcome::failed(ErrorKind::UserError, m, None);
        let cfg_id: gantry_core::ConfigId = id
            .parse()
            .map_err(|e| user(format!("shared_code_id: {e}")))?;
        let cfg = match self.store.get_config(project, &cfg_id).await {
            Ok(c) => c,
            Err(gantry_store::StoreError::NotFound(_)) => {
                return Err(user(format!("shared code configuration '{id}' not found")))
            }
            Err(e) => {
                return Err(Outcome::failed(
                    ErrorKind::Infrastructure,
                    e.to_string(),
                    None,
                ))
            }
        };
        let rows = cfg.spec["rows"].as_array().cloned().unwrap_or_default();
        wanted
            .iter()
            .map(|w| {
                rows.iter()
                    .find(|r| r["id"] == w.as_str())
                    .map(|r| (w.clone(), r["parameters"]["code_content"].clone()))
                    .ok_or_else(|| user(format!("shared code '{id}' has no row '{w}'")))
            })
            .collect()
    }

    /// Debug mode: keeps the attempt's data folder as a file in Storage;
    /// returns the line that says where (or why not).
    async fn keep_debug(&self, job: &gantry_store::Job, dir: &std::path::Path) -> LogLine {
        let (d, spec) = (dir.to_path_buf(), job.spec.clone());
        let file = match tokio::task::spawn_blocking(move || crate::debug::archive(&d, &spec)).await
        {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => {
                return LogLine::system(
                    "warning",
                    format!("debug: cannot archive the data folder: {e}"),
                )
            }
            Err(e) => {
                return LogLine::system(
                    "warning",
                    format!("debug: cannot archive the data folder: {e}"),
                )
            }
        };
        let name = format!("debug-{}.tar", job.id);
        let uploaded = self
            .storage
            .upload(&job.project, &name, tokio::fs::File::from_std(file))
            .await;
        let (key, size) = match uploaded {
            Ok(u) => u,
            Err(e) => {
                return LogLine::system(
                    "warning",
                    format!("debug: cannot store the data folder: {e}"),
                )
            }
        };
        let new = gantry_store::NewFile {
            name: name.clone(),
            tags: vec!["debug".into(), format!("job-{}", job.id)],
            size,
            object_key: key,
        };
        match self.store.create_file(&job.project, new).await {
            Ok(f) => LogLine::system(
                "info",
                format!(
                    "debug: the data folder is kept as file {} ({name}, {size} bytes; secrets sealed): \
                     gantry files download {} -o {name}",
                    f.id, f.id
                ),
            ),
            Err(e) => LogLine::system("warning", format!("debug: cannot store the data folder: {e}")),
        }
    }

    /// Runs the enabled rows of a configuration one after another, as
    /// Keboola does, each in its own data folder with its own mapping and
    /// state (`KBC_CONFIGROWID`). The first failing row ends the job; then
    /// only that row's `write_always` tables are kept. The new state holds
    /// each row's under `rows.<id>`.
    async fn execute_rows(
        &self,
        claimed: &ClaimedJob,
        plan: &AttemptPlan,
        tx: &mpsc::Sender<LogLine>,
        running: &Running,
    ) -> (AttemptEnd, Collected) {
        let job = &claimed.job;
        let rows: Vec<_> = plan.spec.rows.iter().filter(|r| !r.is_disabled).collect();
        if rows.is_empty() {
            return (
                finished(Outcome::failed(
                    ErrorKind::UserError,
                    "every row of the configuration is disabled".to_string(),
                    None,
                )),
                Collected::default(),
            );
        }
        let mut states = claimed
            .state
            .get("rows")
            .and_then(|r| r.as_object())
            .cloned()
            .unwrap_or_default();
        let mut all = Collected::default();
        let mut last = None;
        for (i, row) in rows.iter().enumerate() {
            let _ = tx
                .send(LogLine::system(
                    "info",
                    format!("row {} started ({} of {})", row.id, i + 1, rows.len()),
                ))
                .await;
            let mut kbc = plan.kbc.clone();
            kbc.config_row_id = Some(row.id.clone());
            let row_plan = AttemptPlan {
                job_id: plan.job_id.clone(),
                attempt: plan.attempt,
                worker_id: plan.worker_id.clone(),
                project: plan.project.clone(),
                config_id: plan.config_id.clone(),
                spec: plan.spec.for_row(row),
                data_dir: plan.data_dir.join(format!("row-{i}")),
                log_cap: plan.log_cap,
                collect_state: plan.collect_state,
                kbc,
                step: None,
            };
            let state = states
                .get(&row.id)
                .cloned()
                .unwrap_or_else(|| serde_json::json!({}));
            let end = self.execute(claimed, &state, &row_plan, tx, running).await;
            let mut report = match end {
                AttemptEnd::Finished(r) => r,
                other => {
                    self.storage.discard(&all).await;
                    return (other, Collected::default());
                }
            };
            let collected = self.collect(job, &row_plan, &mut report).await;
            // Debug mode keeps every row's folder for the archive.
            if plan.spec.mode != gantry_core::spec::RunMode::Debug {
                datadir::remove(&row_plan.data_dir);
            }
            if report.outcome.status != gantry_core::JobStatus::Succeeded {
                // Earlier rows' outputs go with the job; this row's
                // write_always tables stay, as for any failed job.
                self.storage.discard(&all).await;
                if let Some(err) = report.outcome.error.as_mut() {
                    err.message = format!("row {}: {}", row.id, err.message);
                }
                report.new_state = None;
                return (AttemptEnd::Finished(report), collected);
            }
            all.outputs.tables.extend(collected.outputs.tables);
            all.outputs.files.extend(collected.outputs.files);
            all.fresh_segments.extend(collected.fresh_segments);
            all.fresh_files.extend(collected.fresh_files);
            if let Some(s) = report.new_state.take() {
                states.insert(row.id.clone(), s);
            }
            last = Some(report);
        }
        let Some(mut report) = last else {
            return (
                finished(Outcome::failed(
                    ErrorKind::Infrastructure,
                    "no row ran".to_string(),
                    None,
                )),
                all,
            );
        };
        if plan.collect_state {
            report.new_state = Some(serde_json::json!({ "rows": states }));
        }
        (AttemptEnd::Finished(report), all)
    }

    /// Lays out the data folder, stages inputs, runs the container.
    async fn execute(
        &self,
        claimed: &ClaimedJob,
        state: &serde_json::Value,
        plan: &AttemptPlan,
        tx: &mpsc::Sender<LogLine>,
        running: &Running,
    ) -> AttemptEnd {
        let dir = &plan.data_dir;
        let project = &claimed.job.project;
        let prepared = datadir::prepare(dir, &plan.spec, Some(state), "run").and_then(|p| {
            if let Some(w) = &claimed.webhook {
                datadir::write_webhook(dir, &w.body, &w.manifest)?;
            }
            Ok(p)
        });
        if let Err(e) = prepared {
            return finished(Outcome::failed(
                ErrorKind::Infrastructure,
                format!("cannot prepare the data folder: {e}"),
                None,
            ));
        }
        for note in plan.spec.ignored_keys() {
            let _ = tx.send(LogLine::system("warning", note)).await;
        }
        let input = &plan.spec.storage.input;
        if !input.is_empty() {
            let _ = tx
                .send(LogLine::system("info", "staging input mapping"))
                .await;
            let started = std::time::Instant::now();
            let staged = match self.storage.stage_inputs(project, input, dir).await {
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
        let processors = &plan.spec.processors;
        match &self.warm {
            // Processors run a chain of containers on one folder: cold.
            Some(warm) if processors.before.is_empty() && processors.after.is_empty() => {
                crate::attempt::run_attempt_with(
                    self.runtime.as_ref(),
                    Some(warm),
                    plan,
                    tx.clone(),
                    running.cancel.clone(),
                    running.abort.clone(),
                )
                .await
            }
            _ => {
                crate::processors::run_with_processors(
                    self.runtime.as_ref(),
                    plan,
                    tx.clone(),
                    running.cancel.clone(),
                    running.abort.clone(),
                )
                .await
            }
        }
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
                    StorageError::Invalid(m) | StorageError::TooLarge(m) => {
                        (ErrorKind::InvalidOutput, m)
                    }
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

    async fn plan(&self, claimed: &ClaimedJob, dir: PathBuf) -> Result<AttemptPlan, Outcome> {
        let job = &claimed.job;
        let mut value = job.spec.clone();
        gantry_core::spec::visit_secret_maps(&mut value, |m| self.vault.open_params(m))
            .map_err(|e| Outcome::failed(ErrorKind::Infrastructure, e.to_string(), None))?;
        let (_, mut spec) = Spec::from_value(value).map_err(|e| {
            Outcome::failed(ErrorKind::UserError, format!("invalid spec: {e}"), None)
        })?;
        if let Some(shared) = spec.shared_code_id.clone() {
            let rows = self
                .shared_code(&job.project, &shared, &spec.shared_code_row_ids)
                .await?;
            gantry_core::spec::apply_shared_code(&mut spec.parameters, &rows);
            for row in &mut spec.rows {
                gantry_core::spec::apply_shared_code(&mut row.parameters, &rows);
            }
        }
        Ok(AttemptPlan {
            job_id: job.id.to_string(),
            attempt: job.attempt,
            worker_id: self.cfg.id.to_string(),
            project: job.project.to_string(),
            config_id: job.config_id.as_ref().map(|c| c.to_string()),
            spec,
            data_dir: dir,
            log_cap: self.cfg.log_cap,
            collect_state: job.config_id.is_some(),
            kbc: crate::attempt::KbcContext {
                project_number: claimed.project_number,
                stack_id: self.cfg.stack_id.clone(),
                url: self.cfg.url.clone(),
                token_id: job.token_id.clone(),
                token_desc: job.token_desc.clone(),
                config_row_id: None,
            },
            step: None,
        })
    }
}

fn finished(outcome: Outcome) -> AttemptEnd {
    AttemptEnd::Finished(crate::attempt::AttemptReport {
        outcome,
        image_digest: None,
        limits: None,
        new_state: None,
    })
}

/// This machine's name, for the fleet's listing.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
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
/// The fields a shipped job event carries.
struct ShipContext {
    fields: std::collections::BTreeMap<&'static str, String>,
}

impl ShipContext {
    fn of(job: &gantry_store::Job) -> Option<Self> {
        if !gantry_logship::enabled() {
            return None;
        }
        let mut fields = std::collections::BTreeMap::new();
        fields.insert("source", "job".to_string());
        fields.insert("job", job.id.to_string());
        fields.insert("project", job.project.to_string());
        fields.insert("attempt", job.attempt.to_string());
        if let Some(c) = &job.config_id {
            fields.insert("config", c.to_string());
        }
        Some(Self { fields })
    }

    /// Offers each line to the log shippers (never waits).
    fn ship(&self, lines: &[LogLine]) {
        let time = std::time::SystemTime::now();
        for l in lines {
            let mut fields = self.fields.clone();
            fields.insert("stream", l.stream.as_str().to_string());
            gantry_logship::ship(gantry_logship::Record {
                time,
                severity: gantry_logship::Severity::from_level(&l.level),
                message: l.message.clone(),
                fields,
            });
        }
    }
}

async fn write_events(
    store: Arc<dyn Store>,
    id: JobId,
    attempt: u32,
    mut rx: mpsc::Receiver<LogLine>,
    shipped: Option<ShipContext>,
) {
    let mut batch = Vec::with_capacity(2000);
    while rx.recv_many(&mut batch, 2000).await > 0 {
        if let Some(s) = &shipped {
            s.ship(&batch);
        }
        if let Err(e) = store.append_events(id, attempt, &batch).await {
            tracing::error!(job = %id, error = %e, lines = batch.len(), "cannot store job events");
        }
        batch.clear();
    }
}

/// How long without renewing its leases a worker waits before it stops its
/// own containers: a lease less one heartbeat (and at least half a lease),
/// so that the containers are gone before the leases expire.
pub(crate) fn fence_after(lease: Duration, heartbeat: Duration) -> Duration {
    lease.saturating_sub(heartbeat).max(lease / 2)
}
