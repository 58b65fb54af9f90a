//! The fleet's workers: each registers when it starts, beats while it runs
//! and says when it stops; an operator drains one (it claims nothing more
//! and lets its running jobs finish). A worker's tags decide which jobs it
//! may claim: a job whose spec names `worker_tags` runs only on a worker
//! that has every one of them.

use crate::Result;
use async_trait::async_trait;
use gantry_core::WorkerId;
use serde::Serialize;

/// How long a worker may stay silent before it counts as gone (ms): a few
/// heartbeats (5 s each by default) and more than a lease (30 s).
pub const GONE_AFTER_MS: i64 = 45_000;

/// Where a worker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, strum::EnumString, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum WorkerState {
    /// Claims jobs.
    Active,
    /// Claims nothing more; its running jobs finish.
    Draining,
    /// Stopped, or silent for longer than [`GONE_AFTER_MS`].
    Gone,
}

impl WorkerState {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The state a stored state means at `now` given when it was last seen.
    pub fn at(stored: WorkerState, last_seen: i64, now: i64) -> Self {
        if now - last_seen > GONE_AFTER_MS {
            Self::Gone
        } else {
            stored
        }
    }
}

/// A worker as it registers.
#[derive(Clone, Debug)]
pub struct NewWorker {
    pub id: WorkerId,
    pub host: String,
    pub version: String,
    pub tags: Vec<String>,
    pub slots: u32,
}

/// A worker as the fleet sees it.
#[derive(Clone, Debug, Serialize)]
pub struct WorkerInfo {
    pub id: WorkerId,
    pub host: String,
    pub version: String,
    pub tags: Vec<String>,
    pub slots: u32,
    /// Jobs it runs now (by the queue, not by its own report).
    pub running: u32,
    pub state: WorkerState,
    /// Milliseconds since the epoch.
    pub started_at: i64,
    pub last_seen: i64,
}

#[async_trait]
pub trait WorkerStore: Send + Sync {
    /// Registers (or re-registers, after a restart) a worker as active.
    async fn register_worker(&self, w: NewWorker) -> Result<WorkerInfo>;
    /// Marks the worker alive now; answers its state (`Draining` when an
    /// operator drained it).
    async fn worker_beat(&self, id: &WorkerId) -> Result<WorkerState>;
    /// Every worker ever registered that is not gone for long, newest first.
    async fn list_workers(&self) -> Result<Vec<WorkerInfo>>;
    /// Stops a worker's claims; its running jobs finish.
    async fn drain_worker(&self, id: &WorkerId) -> Result<WorkerInfo>;
    /// Records that a worker stopped (it is gone at once).
    async fn worker_stopped(&self, id: &WorkerId) -> Result<()>;
}
