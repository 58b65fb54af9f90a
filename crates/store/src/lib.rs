//! Gantry's metadata store and durable job queue: the contract.
//!
//! This crate names no database driver. It holds the traits every backend
//! implements, split by concern ([`AccountStore`], [`ConfigStore`],
//! [`TriggerStore`], [`QueueStore`], [`EventStore`], [`CatalogStore`],
//! [`ChangeFeed`], [`HealthStore`]) and combined by [`Store`] (implemented
//! for every type that implements them all, so `Arc<dyn Store>` is the one
//! handle the API and workers hold); the records ([`model`]); a
//! driver-neutral [`StoreError`]; the domain [`rules`] each backend calls
//! inside its transactions (retries, lost leases, the table-version merge,
//! tokens, announcements); the [`migrate`] plan both backends follow; and,
//! behind the `testing` feature, the conformance suite every backend runs.
//!
//! Backends: `gantry-store-sqlite` (embedded, the default). Leases are timed
//! by the database's clock. A store announces changes ([`Change`]) so waiters
//! wake at once.
#![forbid(unsafe_code)]

pub mod images;
mod iron;
pub mod migrate;
pub mod model;
pub mod retention;
pub mod rules;
#[cfg(feature = "testing")]
pub mod testing;
mod workers;

pub use images::*;
pub use iron::*;
pub use model::*;
pub use rules::{AGING_STEP_MS, NOTIFY_DEADLINE_MS};
pub use workers::*;

use async_trait::async_trait;
use gantry_core::events::LogLine;
use gantry_core::job::Outcome;
use gantry_core::spec::Loosening;
use gantry_core::{
    ConfigId, FileId, JobId, JobStatus, PipelineId, ProjectId, ScheduleId, TableId, TokenId,
    WorkerId,
};
use serde_json::Value;
use std::time::Duration;
use tokio::sync::broadcast;

/// What a store call can fail with, whatever the database behind it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The thing named does not exist, or not in the caller's project
    /// (tenancy answers exactly this, never another project's data).
    #[error("{0} not found")]
    NotFound(String),
    /// The write contradicts what is stored (a duplicate, a version that
    /// moved on, something still in use).
    #[error("{0}")]
    Conflict(String),
    /// The database cannot be reached or is busy for now (a lost
    /// connection, a lock held too long, a pool with no free connection):
    /// the same call may succeed later. See [`StoreError::is_retryable`].
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The database refused the statement (a bug or a broken invariant).
    #[error("database error: {0}")]
    Database(String),
    /// The database's schema is newer than this binary knows: it refuses
    /// to touch it (a newer Gantry migrated it).
    #[error("the database's schema is at version {found}, newer than the {known} this Gantry knows; run a Gantry at least as new as the one that last opened it")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    #[error("the store's worker thread failed: {0}")]
    Internal(String),
}

impl StoreError {
    /// Whether the same call may succeed if made again later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The whole store: every concern. Implemented for each type that
/// implements all of them; callers hold `Arc<dyn Store>`.
pub trait Store:
    AccountStore
    + ConfigStore
    + TriggerStore
    + QueueStore
    + EventStore
    + CatalogStore
    + ChangeFeed
    + HealthStore
    + IronStore
    + WorkerStore
    + ImageCatalog
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: AccountStore
        + ConfigStore
        + TriggerStore
        + QueueStore
        + EventStore
        + CatalogStore
        + ChangeFeed
        + HealthStore
        + IronStore
        + WorkerStore
        + ImageCatalog
        + Send
        + Sync
        + 'static
{
}

/// Every store trait, for callers that hold a concrete backend (method
/// calls on `dyn Store` need no import).
pub mod prelude {
    pub use crate::{
        AccountStore, CatalogStore, ChangeFeed, ConfigStore, EventStore, HealthStore, ImageCatalog,
        IronStore, QueueStore, Store, TriggerStore, WorkerStore,
    };
}

/// Tokens and projects (tenancy).
#[async_trait]
pub trait AccountStore: Send + Sync {
    // ---- tokens
    async fn token_count(&self) -> Result<u64>;
    /// Creates a token and returns its secret; only its hash is stored.
    async fn create_token(
        &self,
        project: &ProjectId,
        admin: bool,
        description: &str,
    ) -> Result<NewToken>;
    /// Creates the first admin token of the `default` project if no token
    /// exists yet, atomically (two servers starting together on an empty
    /// database make exactly one); `None` when one already existed.
    async fn bootstrap_admin_token(&self, description: &str) -> Result<Option<NewToken>>;
    async fn authenticate(&self, secret: &str) -> Result<Option<Principal>>;
    async fn list_tokens(&self, project: Option<&ProjectId>) -> Result<Vec<TokenInfo>>;
    /// Revokes the token with this public id.
    async fn delete_token(&self, id: &TokenId) -> Result<()>;

    // ---- projects

    async fn create_project(&self, id: &ProjectId, allow: &[Loosening]) -> Result<Project>;
    async fn get_project(&self, id: &ProjectId) -> Result<Project>;
    async fn list_projects(&self) -> Result<Vec<Project>>;
    async fn set_project_allow(&self, id: &ProjectId, allow: &[Loosening]) -> Result<Project>;
    /// Sets the cap on an import's decompressed size (`None`: the default).
    async fn set_project_import_max(&self, id: &ProjectId, max: Option<u64>) -> Result<Project>;
    async fn set_project_retention(&self, id: &ProjectId, policy: &Retention) -> Result<Project>;
    /// Caps the jobs of a project running at once (`None`: no cap).
    async fn set_project_max_running(&self, id: &ProjectId, max: Option<u32>) -> Result<Project>;
}

/// Configurations (a spec and its state from the last successful run).
#[async_trait]
pub trait ConfigStore: Send + Sync {
    async fn create_config(
        &self,
        project: &ProjectId,
        id: &ConfigId,
        spec: &Value,
    ) -> Result<Config>;
    async fn update_config(
        &self,
        project: &ProjectId,
        id: &ConfigId,
        spec: &Value,
    ) -> Result<Config>;
    async fn get_config(&self, project: &ProjectId, id: &ConfigId) -> Result<Config>;
    async fn list_configs(&self, project: &ProjectId) -> Result<Vec<Config>>;
    async fn delete_config(&self, project: &ProjectId, id: &ConfigId) -> Result<()>;
}

/// What starts jobs besides a submission: schedules, inbound webhooks,
/// pipelines (and their runs), and the notifications sent when they end.
#[async_trait]
pub trait TriggerStore: Send + Sync {
    // ---- schedules
    async fn create_schedule(&self, project: &ProjectId, s: NewSchedule) -> Result<ScheduleRow>;
    async fn list_schedules(&self, project: &ProjectId) -> Result<Vec<ScheduleRow>>;
    /// With its latest ticks.
    async fn get_schedule(&self, project: &ProjectId, id: &ScheduleId) -> Result<ScheduleRow>;
    /// Pauses (`next_tick` kept) or resumes (from `next_tick`, so the paused
    /// time is not caught up) a schedule.
    async fn set_schedule_paused(
        &self,
        project: &ProjectId,
        id: &ScheduleId,
        paused: bool,
        next_tick: Option<i64>,
    ) -> Result<ScheduleRow>;
    async fn delete_schedule(&self, project: &ProjectId, id: &ScheduleId) -> Result<()>;
    /// Unpaused schedules of every project whose next tick is at or before `now`.
    async fn due_schedules(&self, now: i64) -> Result<Vec<ScheduleRow>>;
    /// The earliest next tick of any unpaused schedule.
    async fn next_schedule_tick(&self) -> Result<Option<i64>>;
    /// Applies a scheduler's decision in one transaction: claims the tick
    /// (unique per schedule and tick), checks overlap, makes the job, moves
    /// the schedule on. Exactly once per tick whatever the number of schedulers.
    async fn fire_tick(&self, f: FireTick) -> Result<Fired>;

    // ---- inbound webhooks
    async fn create_hook(&self, hook: HookRow) -> Result<HookRow>;
    async fn list_hooks(&self, project: &ProjectId) -> Result<Vec<HookRow>>;
    /// `project: None` finds it in any project (the inbound URL has none).
    async fn get_hook(&self, project: Option<&ProjectId>, id: &str) -> Result<HookRow>;
    async fn delete_hook(&self, project: &ProjectId, id: &str) -> Result<()>;
    /// Replaces the secret; the old one stays valid for `grace`.
    async fn rotate_hook(
        &self,
        project: &ProjectId,
        id: &str,
        secret_sealed: &str,
        grace: Duration,
    ) -> Result<HookRow>;
    /// Records a delivery and makes its job in one transaction; a delivery id
    /// seen before returns its job and makes nothing.
    async fn deliver(
        &self,
        hook: &str,
        delivery: &str,
        body: Vec<u8>,
        manifest: Value,
        what: Fire,
    ) -> Result<Delivered>;
    /// The job or pipeline run a delivery made, if it was seen before.
    async fn find_delivery(&self, hook: &str, delivery: &str) -> Result<Option<String>>;

    // ---- outbound notifications
    /// Pending notifications due now, leased for `lease` so no other server
    /// sends them meanwhile; those past their deadline are given up first.
    async fn due_notifications(&self, lease: Duration, limit: usize) -> Result<Vec<Notification>>;
    /// Records one delivery attempt: delivered, or retried in `retry_in`
    /// (given up once that passes the deadline).
    async fn record_notification_attempt(
        &self,
        id: i64,
        status_code: Option<u16>,
        error: Option<&str>,
        delivered: bool,
        retry_in: Duration,
    ) -> Result<()>;
    /// A job's (`job`) or pipeline run's (`pipeline_run`) notifications with every attempt.
    async fn list_notifications(
        &self,
        project: &ProjectId,
        kind: &str,
        subject: &str,
    ) -> Result<Vec<NotificationView>>;

    // ---- pipelines
    /// Creates (`create`) or replaces a pipeline; `configs` are the
    /// configurations it names (a configuration in use cannot be deleted).
    async fn put_pipeline(
        &self,
        project: &ProjectId,
        id: &PipelineId,
        doc: &Value,
        configs: &[ConfigId],
        create: bool,
    ) -> Result<PipelineRow>;
    async fn get_pipeline(&self, project: &ProjectId, id: &PipelineId) -> Result<PipelineRow>;
    async fn list_pipelines(&self, project: &ProjectId) -> Result<Vec<PipelineRow>>;
    async fn delete_pipeline(&self, project: &ProjectId, id: &PipelineId) -> Result<()>;
    /// Starts a run (its first phase's jobs are queued in the same transaction).
    async fn start_pipeline_run(&self, project: &ProjectId, id: &PipelineId)
        -> Result<PipelineRun>;
    async fn get_pipeline_run(&self, project: &ProjectId, run: &str) -> Result<PipelineRun>;
    async fn list_pipeline_runs(
        &self,
        project: &ProjectId,
        pipeline: Option<&PipelineId>,
    ) -> Result<Vec<PipelineRun>>;
    /// Cancels a run: its queued jobs at once, its running ones via their workers.
    async fn cancel_pipeline_run(&self, project: &ProjectId, run: &str) -> Result<PipelineRun>;
    /// Moves every unfinished run on from what its jobs did (idempotent; any
    /// server may call it). Returns how many runs changed.
    async fn advance_pipeline_runs(&self) -> Result<u64>;
}

/// The durable job queue and its attempts (leases, fencing, retries).
#[async_trait]
pub trait QueueStore: Send + Sync {
    // ---- jobs, client side
    async fn enqueue(&self, job: NewJob) -> Result<Job>;
    /// Enqueues many jobs in one transaction; returns their ids in order.
    async fn enqueue_batch(&self, jobs: Vec<NewJob>) -> Result<Vec<JobId>>;
    async fn get_job(&self, project: &ProjectId, id: JobId) -> Result<Job>;
    async fn list_jobs(&self, project: &ProjectId, filter: &JobFilter) -> Result<Vec<Job>>;
    /// A queued job is cancelled at once; a running one is flagged for its worker.
    async fn request_cancel(&self, project: &ProjectId, id: JobId) -> Result<Job>;

    // ---- jobs, worker side
    /// Claims up to `max` due jobs for `worker`, each as a new attempt under a
    /// lease: highest effective priority first, then oldest; jobs held back by
    /// a configuration lock, a concurrency key or the project's `max_running`
    /// are skipped, never waited on.
    async fn claim(&self, worker: &WorkerId, max: usize, lease: Duration) -> Result<Claim>;
    /// Raises the effective priority of jobs queued for long (one level per
    /// [`AGING_STEP_MS`]); returns how many changed.
    async fn age_queue(&self) -> Result<u64>;
    /// Renews the leases of `worker`'s running jobs; returns those asked to cancel.
    async fn heartbeat(&self, worker: &WorkerId, lease: Duration) -> Result<Vec<JobId>>;
    async fn record_attempt(&self, id: JobId, attempt: u32, info: &AttemptInfo) -> Result<()>;
    /// Ends an attempt. Fenced: does nothing (returns `Stale`) if the lease was lost.
    async fn finish_attempt(
        &self,
        id: JobId,
        attempt: u32,
        worker: &WorkerId,
        outcome: &Outcome,
        new_state: Option<&Value>,
        outputs: &Outputs,
    ) -> Result<Finish>;
    /// Returns a job to the queue without counting the attempt (graceful shutdown).
    async fn hand_back(&self, id: JobId, attempt: u32, worker: &WorkerId) -> Result<()>;
    /// Takes back jobs whose lease expired (their worker died): retried or failed.
    async fn recover_expired(&self) -> Result<Vec<JobId>>;
    /// Takes back every job still leased to `worker` (a previous run of this worker).
    async fn recover_worker(&self, worker: &WorkerId) -> Result<Vec<JobId>>;
}

/// A job's log lines and system events.
#[async_trait]
pub trait EventStore: Send + Sync {
    async fn append_events(&self, id: JobId, attempt: u32, lines: &[LogLine]) -> Result<()>;
    async fn list_events(
        &self,
        project: &ProjectId,
        id: JobId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>>;
}

/// The catalog of tables (versions) and files; contents live in the object
/// store.
#[async_trait]
pub trait CatalogStore: Send + Sync {
    async fn commit_table(&self, project: &ProjectId, write: TableWrite) -> Result<TableVersion>;
    /// Commits what a `gantry run --commit` produced, in one transaction:
    /// its table versions and files (no job), and its new state into the
    /// configuration (into `rows.<row>` for a row). A missing configuration
    /// commits nothing.
    async fn commit_run(
        &self,
        project: &ProjectId,
        config: Option<&ConfigId>,
        row: Option<&str>,
        new_state: Option<&Value>,
        outputs: &Outputs,
    ) -> Result<()>;
    async fn get_table(&self, project: &ProjectId, id: &TableId) -> Result<TableInfo>;
    async fn list_tables(&self, project: &ProjectId) -> Result<Vec<TableInfo>>;
    /// Newest first.
    async fn table_versions(&self, project: &ProjectId, id: &TableId) -> Result<Vec<TableVersion>>;
    /// `None` means the current version.
    async fn table_version(
        &self,
        project: &ProjectId,
        id: &TableId,
        version: Option<u64>,
    ) -> Result<TableVersion>;
    /// Pins (or unpins) a version: retention never removes a pinned one.
    async fn pin_version(
        &self,
        project: &ProjectId,
        table: &TableId,
        version: u64,
        pinned: bool,
    ) -> Result<TableVersion>;
    /// Deletes a table and its versions; returns the object keys no version uses any more.
    async fn delete_table(&self, project: &ProjectId, id: &TableId) -> Result<Vec<String>>;
    async fn create_file(&self, project: &ProjectId, file: NewFile) -> Result<FileInfo>;
    async fn get_file(&self, project: &ProjectId, id: FileId) -> Result<FileInfo>;
    /// Newest first; only files having every tag in `tags`.
    async fn list_files(
        &self,
        project: &ProjectId,
        tags: &[String],
        limit: usize,
    ) -> Result<Vec<FileInfo>>;
}

/// Readiness and figures for metrics.
#[async_trait]
pub trait HealthStore: Send + Sync {
    async fn check_writable(&self) -> Result<()>;
    async fn count_by_status(&self) -> Result<Vec<(JobStatus, u64)>>;
    /// Queue and Storage figures for metrics, read in one snapshot.
    async fn figures(&self) -> Result<StoreFigures>;
}

/// Changes committed, announced to subscribers (see [`rules::announce`]).
pub trait ChangeFeed: Send + Sync {
    /// Changes committed from now on (in this process).
    fn subscribe(&self) -> broadcast::Receiver<Change>;
}
