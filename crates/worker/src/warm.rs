//! Warm starts: per worker, small pools of containers already created and
//! started, each running the gate (`crates/gate`) until one job claims it.
//!
//! Nothing is reused: a warm container serves exactly one job and is removed
//! after it, like a cold one. What is prepared ahead is the expensive part of
//! a start (create, mounts, cgroups, namespaces, the first process). A pool's
//! key is everything fixed at creation (image id, user, network, read-only
//! root, `/tmp` size, the mounts' layout); limits are set at the claim.
//! Pool containers carry [`POOL_LABEL`] = worker id, so a sweep, a shutdown
//! or the next start after a crash removes them.

use crate::datadir;
use gantry_runtime::{ContainerRuntime, ContainerSpec, ImageConfig, Limits};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The label on every pool container: its worker's id.
pub const POOL_LABEL: &str = "io.gantry.pool";

#[derive(Clone, Debug)]
pub struct WarmConfig {
    /// The gate's static binary on this host.
    pub gate: PathBuf,
    /// Most idle warm containers of this worker, all pools together.
    pub max_idle: usize,
    /// Most idle containers of one pool.
    pub per_key: usize,
    /// A pool nobody claimed from for this long is emptied.
    pub idle_ttl: Duration,
    /// Images kept warm even before a job ran them (default limits, user,
    /// network, root).
    pub images: Vec<String>,
}

impl WarmConfig {
    pub fn new(gate: PathBuf) -> Self {
        Self {
            gate,
            max_idle: 8,
            per_key: 8,
            idle_ttl: Duration::from_secs(300),
            images: Vec::new(),
        }
    }
}

/// Everything fixed when a container is created.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolKey {
    pub image_id: String,
    pub user: String,
    pub network: String,
    pub read_only_root: bool,
    pub tmp_size: u64,
}

impl PoolKey {
    pub fn of(spec: &ContainerSpec, image_id: &str) -> Self {
        Self {
            image_id: image_id.to_string(),
            user: spec.user.clone(),
            network: spec.network.clone(),
            read_only_root: spec.read_only_root,
            tmp_size: spec.tmp_size,
        }
    }
}

/// One started container waiting for its job.
#[derive(Debug)]
pub struct WarmContainer {
    pub id: String,
    /// Host folder mounted at `/data` (and its `in` at `/data/in`, read-only).
    pub slot: PathBuf,
    pub limits: Limits,
}

#[derive(Default)]
struct Pool {
    idle: Vec<WarmContainer>,
    /// How many this pool should hold now (grows on misses).
    target: usize,
    creating: usize,
    last_claim: Option<Instant>,
    /// The container a job of this key would get, minus its job.
    template: Option<ContainerSpec>,
    pinned: bool,
}

#[derive(Default)]
struct Inner {
    pools: BTreeMap<PoolKey, Pool>,
    /// Warm containers handed to a job and not yet removed.
    in_use: HashSet<String>,
    configs: HashMap<String, ImageConfig>,
    closed: bool,
}

/// A worker's warm pools.
pub struct WarmPools {
    rt: Arc<dyn ContainerRuntime>,
    cfg: WarmConfig,
    worker: String,
    slots: PathBuf,
    inner: Mutex<Inner>,
    seq: AtomicU64,
    tasks: tokio_util::task::TaskTracker,
}

impl WarmPools {
    /// `slots` is where the containers' data folders live (not the worker's
    /// attempt folder, which the sweep empties).
    pub fn new(
        rt: Arc<dyn ContainerRuntime>,
        cfg: WarmConfig,
        worker: &str,
        slots: PathBuf,
    ) -> Arc<Self> {
        Arc::new(Self {
            rt,
            cfg,
            worker: worker.to_string(),
            slots,
            inner: Mutex::default(),
            seq: AtomicU64::new(0),
            tasks: tokio_util::task::TaskTracker::new(),
        })
    }

    pub fn config(&self) -> &WarmConfig {
        &self.cfg
    }

    /// The image's entrypoint and command (cached per image id).
    pub async fn image_config(&self, image_id: &str) -> Option<ImageConfig> {
        if let Some(c) = self.lock().configs.get(image_id) {
            return Some(c.clone());
        }
        let c = self.rt.warm()?.image_config(image_id).await.ok()?;
        self.lock().configs.insert(image_id.to_string(), c.clone());
        Some(c)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a warm container for a job of `key` (or `None`: start cold), and
    /// records the demand so the pool refills (and grows after a miss).
    pub fn take(
        self: &Arc<Self>,
        key: &PoolKey,
        template: &ContainerSpec,
    ) -> Option<WarmContainer> {
        let taken = {
            let mut inner = self.lock();
            if inner.closed {
                return None;
            }
            let per_key = self.cfg.per_key;
            let pool = inner.pools.entry(key.clone()).or_default();
            pool.last_claim = Some(Instant::now());
            pool.template = Some(template.clone());
            let taken = pool.idle.pop();
            if taken.is_none() {
                pool.target = (pool.target + 1).min(per_key);
            } else if pool.target == 0 {
                pool.target = 1;
            }
            if let Some(w) = &taken {
                inner.in_use.insert(w.id.clone());
            }
            taken
        };
        // After a hit the pool refills when the job is over, so making the
        // next container does not compete with this job's start for the
        // engine; after a miss at once.
        if taken.is_none() {
            self.refill();
        }
        taken
    }

    /// A warm container's job is over: forget it (the caller removed it)
    /// and refill.
    pub fn done(self: &Arc<Self>, id: &str) {
        self.lock().in_use.remove(id);
        self.refill();
    }

    /// A warm container whose job ended: removed in the background (tracked,
    /// so a shutdown waits for it), then the pool refills.
    pub fn retire(self: &Arc<Self>, id: String) {
        let this = self.clone();
        self.tasks.spawn(async move {
            if let Err(e) = this.rt.remove(&id).await {
                tracing::warn!(container = %id, error = %e, "cannot remove a warm container; the sweep will retry");
            }
            this.done(&id);
        });
    }

    /// Starts creating containers where pools are below their target, within
    /// the worker's bound.
    pub fn refill(self: &Arc<Self>) {
        let mut inner = self.lock();
        if inner.closed {
            return;
        }
        let mut total: usize = inner
            .pools
            .values()
            .map(|p| p.idle.len() + p.creating)
            .sum();
        let mut jobs = Vec::new();
        for (key, pool) in inner.pools.iter_mut() {
            let Some(template) = &pool.template else {
                continue;
            };
            while pool.idle.len() + pool.creating < pool.target && total < self.cfg.max_idle {
                pool.creating += 1;
                total += 1;
                jobs.push((key.clone(), template.clone()));
            }
        }
        drop(inner);
        for (key, template) in jobs {
            let this = self.clone();
            self.tasks
                .spawn(async move { this.create(key, template).await });
        }
    }

    async fn create(self: Arc<Self>, key: PoolKey, template: ContainerSpec) {
        let made = self.make(&key, &template).await;
        let extra = {
            let mut inner = self.lock();
            let closed = inner.closed;
            let pool = inner.pools.entry(key).or_default();
            pool.creating = pool.creating.saturating_sub(1);
            match made {
                Ok(w) if !closed => {
                    pool.idle.push(w);
                    None
                }
                Ok(w) => Some(w),
                Err(e) => {
                    // No retry loop: the next claim asks again.
                    pool.target = pool.target.saturating_sub(1);
                    tracing::warn!(error = %e, "cannot make a warm container");
                    None
                }
            }
        };
        if let Some(w) = extra {
            self.discard(w).await;
        }
    }

    async fn make(&self, key: &PoolKey, template: &ContainerSpec) -> Result<WarmContainer, String> {
        let warm = self.rt.warm().ok_or("the engine has no warm starts")?;
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let name = format!("gantry-warm-{}-{n}", self.worker);
        let slot = self.slots.join(&name);
        make_slot(&slot).map_err(|e| format!("data slot: {e}"))?;
        let mut labels = BTreeMap::new();
        labels.insert(POOL_LABEL.to_string(), self.worker.clone());
        // The limits of the job that made the pool: a job with the same
        // (the defaults, usually) needs no `update` at its claim. While it
        // waits, the gate uses well under 1 MiB of it.
        let limits = Limits {
            memory: template.memory,
            cpus: template.cpus,
            pids: template.pids,
        };
        let spec = ContainerSpec {
            name,
            image: key.image_id.clone(),
            command: None,
            env: Vec::new(),
            user: key.user.clone(),
            labels,
            data_dir: slot.clone(),
            memory: limits.memory,
            cpus: limits.cpus,
            pids: limits.pids,
            network: key.network.clone(),
            read_only_root: key.read_only_root,
            tmp_size: key.tmp_size,
        };
        match warm.create_gated(&spec, &self.cfg.gate).await {
            Ok(id) => Ok(WarmContainer { id, slot, limits }),
            Err(e) => {
                datadir::remove(&slot);
                Err(e.to_string())
            }
        }
    }

    async fn discard(&self, w: WarmContainer) {
        let _ = self.rt.remove(&w.id).await;
        datadir::remove(&w.slot);
    }

    /// Upkeep: empties pools idle for longer than the TTL (except pinned
    /// images, kept at one), pins the listed images, refills.
    pub async fn maintain(self: &Arc<Self>, default_template: impl Fn(&str) -> ContainerSpec) {
        for image in &self.cfg.images {
            let Ok(Some(id)) = self.rt.image_id(image).await else {
                continue;
            };
            let template = default_template(image);
            let key = PoolKey::of(&template, &id);
            let mut inner = self.lock();
            let pool = inner.pools.entry(key).or_default();
            if !pool.pinned {
                pool.pinned = true;
                pool.target = pool.target.max(1);
                pool.template = Some(template);
            }
        }
        let mut stale = Vec::new();
        {
            let mut inner = self.lock();
            for pool in inner.pools.values_mut() {
                let idle_for = pool.last_claim.map(|t| t.elapsed());
                if idle_for.is_none_or(|d| d >= self.cfg.idle_ttl) {
                    let keep = usize::from(pool.pinned);
                    pool.target = keep;
                    while pool.idle.len() > keep {
                        stale.extend(pool.idle.pop());
                    }
                }
            }
        }
        for w in stale {
            tracing::debug!(container = %w.id, "removing an idle warm container");
            self.discard(w).await;
        }
        self.refill();
    }

    /// Ids of every container this worker's pools own (idle or in use).
    pub fn owned(&self) -> HashSet<String> {
        let inner = self.lock();
        inner
            .pools
            .values()
            .flat_map(|p| p.idle.iter().map(|w| w.id.clone()))
            .chain(inner.in_use.iter().cloned())
            .collect()
    }

    /// Whether any pool is still creating a container.
    pub fn creating(&self) -> bool {
        self.lock().pools.values().any(|p| p.creating > 0)
    }

    /// How many idle warm containers there are.
    pub fn idle(&self) -> usize {
        self.lock().pools.values().map(|p| p.idle.len()).sum()
    }

    /// At shutdown: no more containers are made; the idle ones are removed.
    pub async fn close(&self) {
        self.tasks.close();
        let idle: Vec<WarmContainer> = {
            let mut inner = self.lock();
            inner.closed = true;
            inner
                .pools
                .values_mut()
                .flat_map(|p| p.idle.drain(..))
                .collect()
        };
        for w in idle {
            self.discard(w).await;
        }
        // Those being created are removed by `create` once it sees `closed`.
        self.tasks.wait().await;
    }

    /// Removes this worker's pool containers that no pool owns (a previous
    /// run's, or one that died), and their data slots.
    pub async fn sweep(&self) {
        let listed = match self.rt.list_labelled(POOL_LABEL, Some(&self.worker)).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "cannot list warm containers");
                return;
            }
        };
        let owned = self.owned();
        let creating = self.creating();
        for c in listed {
            if !owned.contains(&c.id) && !creating {
                tracing::info!(container = %c.id, "removing a warm container no pool owns");
                let _ = self.rt.remove(&c.id).await;
            }
        }
        if creating {
            return;
        }
        let owned_slots: HashSet<PathBuf> = {
            let inner = self.lock();
            inner
                .pools
                .values()
                .flat_map(|p| p.idle.iter().map(|w| w.slot.clone()))
                .collect()
        };
        let in_use = !self.lock().in_use.is_empty();
        if let Ok(entries) = std::fs::read_dir(&self.slots) {
            for e in entries.flatten() {
                if !owned_slots.contains(&e.path()) && !in_use {
                    datadir::remove(&e.path());
                }
            }
        }
    }
}

/// A data slot: `/data` with empty `in` and `out`, open to the container's
/// user as `datadir::prepare` leaves a folder.
fn make_slot(slot: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for d in [slot.to_path_buf(), slot.join("in"), slot.join("out")] {
        std::fs::create_dir_all(&d)?;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777))?;
    }
    Ok(())
}

/// Moves a prepared data folder into a warm container's slot, entry by entry
/// (the slot's `in` and `out` are mount points and stay where they are).
pub fn move_in(dir: &Path, slot: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        if name == "in" || name == "out" {
            for inner in std::fs::read_dir(e.path())? {
                let inner = inner?;
                std::fs::rename(inner.path(), slot.join(&name).join(inner.file_name()))?;
            }
        } else {
            std::fs::rename(e.path(), slot.join(&name))?;
        }
    }
    Ok(())
}

/// Moves everything back from the slot (after the container is gone), so
/// the attempt's folder holds the outputs as after a cold start.
pub fn move_back(slot: &Path, dir: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(slot)? {
        let e = e?;
        let target = dir.join(e.file_name());
        if target.is_dir() {
            std::fs::remove_dir_all(&target)?;
        }
        std::fs::rename(e.path(), target)?;
    }
    std::fs::remove_dir(slot)
}
