//! Records the store reads and writes.

use gantry_core::{
    ConfigId, FileId, JobError, JobId, JobStatus, PipelineId, ProjectId, ScheduleId, TokenId,
};
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

/// A tenant and the loosenings of the locked-down defaults its jobs may ask for.
#[derive(Clone, Debug, Serialize)]
pub struct Project {
    pub id: ProjectId,
    /// A stable numeric id (Keboola's `KBC_PROJECTID` is numeric).
    pub number: i64,
    pub allow: Vec<gantry_core::spec::Loosening>,
    /// Most jobs of this project running at once (admin-set); `None`: no cap.
    pub max_running: Option<u32>,
    pub created_at: i64,
    /// The cap on an import's decompressed size; `None`: the default.
    pub import_max_bytes: Option<u64>,
    pub retention: Retention,
}

/// What a project keeps (see `retention`). `None`: the default; `Some(0)`:
/// no limit of that kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Finished jobs (and their events, attempts) older than this many days go.
    pub jobs_days: Option<u32>,
    /// Versions of a table beyond the newest this many go (not the current
    /// one, nor a pinned one).
    pub versions: Option<u32>,
    /// Versions older than this many days go (likewise).
    pub versions_days: Option<u32>,
    /// Files older than this many days go.
    pub files_days: Option<u32>,
}

impl Retention {
    pub const DEFAULT_JOBS_DAYS: u32 = 90;
    pub const DEFAULT_VERSIONS: u32 = 100;
    pub const DEFAULT_VERSIONS_DAYS: u32 = 0;
    pub const DEFAULT_FILES_DAYS: u32 = 0;

    /// The policy with defaults filled in (0: no limit).
    pub fn effective(&self) -> Retention {
        Retention {
            jobs_days: Some(self.jobs_days.unwrap_or(Self::DEFAULT_JOBS_DAYS)),
            versions: Some(self.versions.unwrap_or(Self::DEFAULT_VERSIONS)),
            versions_days: Some(self.versions_days.unwrap_or(Self::DEFAULT_VERSIONS_DAYS)),
            files_days: Some(self.files_days.unwrap_or(Self::DEFAULT_FILES_DAYS)),
        }
    }
}

/// A token as listed: never its secret, nor its hash.
#[derive(Clone, Debug, Serialize)]
pub struct TokenInfo {
    /// A short public id (to revoke it by).
    pub id: TokenId,
    pub project: ProjectId,
    pub admin: bool,
    pub description: String,
    pub created_at: i64,
}

/// A token just made: its secret (shown once, never stored) and its listing.
#[derive(Clone, Debug)]
pub struct NewToken {
    pub secret: String,
    pub info: TokenInfo,
}

/// Who a token speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub project: ProjectId,
    pub admin: bool,
    /// The token's public id and description (Keboola's `KBC_TOKENID`,
    /// `KBC_TOKENDESC` of the jobs it submits).
    pub token_id: TokenId,
    pub token_desc: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Config {
    pub project: ProjectId,
    pub id: ConfigId,
    /// The spec, with secrets sealed.
    pub spec: Value,
    pub state: Value,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, Debug)]
pub struct NewJob {
    pub project: ProjectId,
    pub config_id: Option<ConfigId>,
    /// The spec, with secrets sealed.
    pub spec: Value,
    pub max_attempts: u32,
    pub backoff: Duration,
    /// 0..=2; higher is claimed first.
    pub priority: u8,
    /// Held queued until this long after submission (by the database clock).
    pub delay: Duration,
    /// Held queued until this time (ms since the epoch), if later than `delay`.
    pub run_at: Option<i64>,
    /// Jobs sharing the key run at most `limit` at once. `None`: a job of a
    /// configuration holds that configuration's lock (one at a time).
    pub concurrency: Option<(String, u32)>,
    /// What made the job, if not a direct submission.
    pub trigger: Option<Trigger>,
    /// The public id and description of the token that submitted it.
    pub token_id: Option<String>,
    pub token_desc: Option<String>,
}

/// What started a job other than a submission; kept on the job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Trigger {
    /// A schedule's tick (ms since the epoch).
    Schedule { id: ScheduleId, tick: i64 },
    /// A delivery to an inbound webhook.
    Webhook { id: String, delivery: String },
    /// A task of a pipeline run.
    Pipeline { run: String, phase: u32, task: u32 },
}

impl Trigger {
    /// The schedule that made the job, if one did.
    pub fn schedule_id(&self) -> Option<&ScheduleId> {
        match self {
            Self::Schedule { id, .. } => Some(id),
            Self::Webhook { .. } | Self::Pipeline { .. } => None,
        }
    }
}

impl NewJob {
    /// A job due now, normal priority, under the configuration lock.
    pub fn new(
        project: ProjectId,
        config_id: Option<ConfigId>,
        spec: Value,
        max_attempts: u32,
        backoff: Duration,
    ) -> Self {
        Self {
            project,
            config_id,
            spec,
            max_attempts,
            backoff,
            priority: gantry_core::spec::DEFAULT_PRIORITY,
            delay: Duration::ZERO,
            run_at: None,
            concurrency: None,
            trigger: None,
            token_id: None,
            token_desc: None,
        }
    }

    /// The queue entry for a validated spec: its retry policy, priority and
    /// concurrency rule (a configuration's job takes its lock unless the spec
    /// names a concurrency key).
    pub fn from_spec(
        project: ProjectId,
        config_id: Option<ConfigId>,
        stored: Value,
        spec: &gantry_core::Spec,
    ) -> Self {
        let mut job = Self::new(
            project,
            config_id,
            stored,
            spec.retry.attempts,
            spec.retry.backoff,
        );
        job.priority = spec.priority;
        job.concurrency = spec.concurrency.as_ref().map(|c| (c.key.clone(), c.limit));
        job
    }
}

/// Why a queued job is not running yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Waiting {
    /// Delayed (or backing off before a retry) until this time (ms).
    Delayed { until: i64 },
    /// Another job of its configuration is running.
    ConfigLock { job: JobId, config: ConfigId },
    /// Its concurrency key has `limit` jobs running.
    ConcurrencyKey {
        key: String,
        limit: u32,
        running: Vec<JobId>,
    },
    /// Its project runs `max_running` jobs.
    ProjectLimit { project: ProjectId, limit: u32 },
    /// No live worker has every tag it asks for (`worker_tags`).
    NoWorker { tags: Vec<String> },
}

#[derive(Clone, Debug, Serialize)]
pub struct Job {
    pub id: JobId,
    pub project: ProjectId,
    pub config_id: Option<ConfigId>,
    pub status: JobStatus,
    pub spec: Value,
    /// Attempts started so far.
    pub attempt: u32,
    pub max_attempts: u32,
    pub error: Option<JobError>,
    pub exit_code: Option<i64>,
    pub worker_id: Option<String>,
    pub image_digest: Option<String>,
    /// What the worker applied to its last attempt's container.
    pub limits: Option<gantry_core::applied::AppliedLimits>,
    pub cancel_requested: bool,
    /// Milliseconds since the Unix epoch.
    pub queued_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// The public id and description of the token that submitted it.
    pub token_id: Option<String>,
    pub token_desc: Option<String>,
    /// Filled by `get_job`; empty in lists.
    pub attempts: Vec<Attempt>,
    pub priority: u8,
    /// When it is (or was last) due (ms).
    pub run_after: i64,
    pub concurrency: Option<(String, u32)>,
    /// For a queued job (in `get_job` and lists): why it waits, if it does.
    pub waiting: Option<Waiting>,
    pub trigger: Option<Trigger>,
}

/// A stored schedule and where it stands.
#[derive(Clone, Debug, Serialize)]
pub struct ScheduleRow {
    pub project: ProjectId,
    pub id: ScheduleId,
    /// What it runs: a configuration or a pipeline.
    pub config_id: Option<ConfigId>,
    pub pipeline_id: Option<PipelineId>,
    /// The schedule document as written (validated).
    pub doc: Value,
    pub paused: bool,
    /// The next tick to fire (ms); `None` once it has ended.
    pub next_tick: Option<i64>,
    pub last_tick: Option<i64>,
    /// Jobs made so far.
    pub runs: u64,
    pub created_at: i64,
    pub updated_at: i64,
    /// Filled by `get_schedule`: the latest ticks, newest first.
    pub recent: Vec<TickRecord>,
}

#[derive(Clone, Debug)]
pub struct NewSchedule {
    pub id: ScheduleId,
    pub config_id: Option<ConfigId>,
    pub pipeline_id: Option<PipelineId>,
    pub doc: Value,
    pub next_tick: Option<i64>,
    pub max_runs: Option<u64>,
    pub overlap: gantry_core::schedule::Overlap,
}

/// One tick of a schedule and what came of it.
#[derive(Clone, Debug, Serialize)]
pub struct TickRecord {
    pub tick: i64,
    /// `job`, `run` (a pipeline run), `skipped` (overlap) or `missed`.
    pub outcome: String,
    /// The job or pipeline run it made.
    pub made: Option<String>,
    pub note: Option<String>,
    pub created_at: i64,
}

/// A scheduler's decision about a due tick, applied by the store only if the
/// schedule still expects `expected` (else another scheduler got there first).
#[derive(Clone, Debug)]
pub struct FireTick {
    pub project: ProjectId,
    pub id: ScheduleId,
    pub expected: i64,
    /// The tick to run, with its job or pipeline.
    pub fire: Option<(i64, Fire)>,
    /// A tick passed over (missed while down, policy `skip`).
    pub missed: Option<i64>,
    pub next: Option<i64>,
}

/// What a tick starts.
#[derive(Clone, Debug)]
// One per fired tick, moved once: boxing the job would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Fire {
    Job(NewJob),
    Pipeline(PipelineId),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fired {
    Job(JobId),
    /// A pipeline run (its id).
    Run(String),
    /// Overlap `skip`: this job (or pipeline run) of the schedule was still queued or running.
    Skipped(String),
    Missed,
    /// Another scheduler fired this tick, or the schedule changed.
    Lost,
}

/// Where an attempt stands (stored and shown as its snake_case name).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    strum::AsRefStr,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum AttemptStatus {
    Running,
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
    /// Its lease was lost (its worker died or restarted).
    Lost,
    /// Its worker gave the job back unstarted or unfinished (a graceful stop); not counted.
    HandedBack,
}

impl AttemptStatus {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The attempt status of a job status reported at an attempt's end.
    pub fn ended(status: JobStatus) -> Self {
        match status {
            JobStatus::Succeeded => Self::Succeeded,
            JobStatus::Failed => Self::Failed,
            JobStatus::Cancelled => Self::Cancelled,
            JobStatus::TimedOut => Self::TimedOut,
            JobStatus::Queued | JobStatus::Running => Self::Running,
        }
    }
}

impl From<AttemptStatus> for String {
    fn from(s: AttemptStatus) -> Self {
        s.as_str().to_string()
    }
}

impl PartialEq<&str> for AttemptStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// What made a table version: the truth is the writers (`gantry tables
/// import`/`create`, a job's output mapping, a `gantry run --commit`,
/// compaction, a restore of an older version).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Serialize,
    strum::AsRefStr,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum MadeBy {
    /// An import (`POST .../import`, `gantry tables import`).
    #[default]
    Import,
    /// An empty table created explicitly (`POST /v1/tables`).
    Create,
    /// A job's output mapping, committed with its status.
    Job,
    /// A `gantry run --commit` (no job).
    Run,
    /// Compaction (replaced rows dropped).
    Compact,
    /// A restore of an older version.
    Restore,
}

impl MadeBy {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl PartialEq<&str> for MadeBy {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Attempt {
    pub number: u32,
    pub worker_id: String,
    pub status: AttemptStatus,
    pub error: Option<JobError>,
    pub exit_code: Option<i64>,
    pub image_digest: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

#[derive(Clone, Debug, Default)]
pub struct AttemptInfo {
    pub image_digest: Option<String>,
    pub limits: Option<gantry_core::applied::AppliedLimits>,
}

#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub limit: usize,
    /// Only jobs older than this one (ids sort by creation).
    pub before: Option<JobId>,
}

#[derive(Clone, Debug)]
pub struct ClaimedJob {
    pub job: Job,
    /// The configuration's state from its last successful run (`{}` if none).
    pub state: Value,
    /// The project's stable numeric id.
    pub project_number: i64,
    /// For a job made by a webhook: the delivery's body and its manifest.
    pub webhook: Option<WebhookPayload>,
}

#[derive(Clone, Debug)]
pub struct WebhookPayload {
    pub body: Vec<u8>,
    /// `{"hook", "delivery", "headers": {...}, "received_at"}`.
    pub manifest: Value,
}

/// An inbound webhook: its secret is stored sealed.
#[derive(Clone, Debug)]
pub struct HookRow {
    pub project: ProjectId,
    pub id: String,
    /// What it runs: a configuration or a pipeline.
    pub config_id: Option<ConfigId>,
    pub pipeline_id: Option<PipelineId>,
    /// `signature` (Standard Webhooks or GitHub) or `token` (a Gantry bearer token).
    pub auth: String,
    pub secret_sealed: String,
    /// The secret before the last rotation, valid until `old_until` (ms).
    pub old_secret_sealed: Option<String>,
    pub old_until: Option<i64>,
    pub max_body: u64,
    /// Deliveries per minute accepted.
    pub rate_per_min: u32,
    pub created_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivered {
    /// The job or pipeline run made (its id).
    New(String, DeliveredKind),
    /// This delivery id was seen before: what it made then; nothing new.
    Replay(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveredKind {
    Job,
    Run,
}

#[derive(Clone, Debug, Default)]
pub struct Claim {
    pub jobs: Vec<ClaimedJob>,
    /// When the next queued job falls due, if one is waiting on a backoff.
    pub next_due: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finish {
    /// The job reached this final status.
    Done(JobStatus),
    /// The job went back to the queue for another attempt.
    Retrying { after: Duration },
    /// The attempt had lost its lease; nothing was written.
    Stale,
}

/// A log line's level, as `gantry_core::events` reads it from a line
/// (JSON `level`, GELF severities) or as Gantry's own lines say it.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    strum::AsRefStr,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum LogLevel {
    Debug,
    Info,
    Warning,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl From<LogLevel> for String {
    fn from(l: LogLevel) -> Self {
        l.as_str().to_string()
    }
}

impl PartialEq<&str> for LogLevel {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub seq: u64,
    pub attempt: u32,
    /// Milliseconds since the Unix epoch.
    pub time: i64,
    pub stream: String,
    pub level: LogLevel,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// A committed change, announced to this process's subscribers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Enqueued,
    Events(JobId),
    Status(JobId, JobStatus),
    CancelRequested(JobId),
}

/// One immutable object of a table's content: a CSV of the segment's
/// columns, a header line of `header` bytes then the rows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Segment {
    /// Object key in the object store.
    pub key: String,
    /// The segment's own columns, in its order (a table may have grown since).
    pub columns: Vec<String>,
    pub rows: u64,
    /// Bytes of the rows (the header not counted).
    pub bytes: u64,
    /// Bytes of the header line the object starts with: 0 for objects of
    /// the rows alone (how segments were written before headers were kept).
    #[serde(default)]
    pub header: u64,
    /// When these rows last changed (ms since the epoch).
    pub created_at: i64,
}

/// A table as it is now (its current version).
#[derive(Clone, Debug, Serialize)]
pub struct TableInfo {
    pub project: ProjectId,
    pub id: gantry_core::TableId,
    pub version: u64,
    pub columns: Vec<String>,
    pub primary_key: Vec<String>,
    /// Rows stored (replaced rows of primary-key tables count until compaction).
    pub rows: u64,
    pub bytes: u64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One immutable version of a table.
#[derive(Clone, Debug, Serialize)]
pub struct TableVersion {
    pub version: u64,
    pub columns: Vec<String>,
    pub primary_key: Vec<String>,
    pub segments: Vec<Segment>,
    pub rows: u64,
    pub bytes: u64,
    /// What this load brought.
    pub loaded_rows: u64,
    pub loaded_bytes: u64,
    pub made_by: MadeBy,
    pub job_id: Option<JobId>,
    pub note: Option<String>,
    pub created_at: i64,
    /// Keboola table and column metadata (types), canonical form
    /// ([`gantry_core::metadata`]); `None` when the table has none.
    pub metadata: Option<Value>,
    /// Kept whatever the retention policy says.
    pub pinned: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteKind {
    /// The new version is exactly `segments`.
    Replace,
    /// The new version is the current one's segments plus `segments`;
    /// new columns are appended to the table's.
    Append,
    /// Like `Replace`, but computed from `base_version` (e.g. rows deleted by
    /// `delete_where` before an incremental load): fails if the table moved on.
    Rewrite { base_version: u64 },
}

/// A new table version to commit.
#[derive(Clone, Debug)]
pub struct TableWrite {
    pub table: gantry_core::TableId,
    pub kind: WriteKind,
    pub columns: Vec<String>,
    pub primary_key: Vec<String>,
    pub segments: Vec<Segment>,
    pub loaded_rows: u64,
    pub loaded_bytes: u64,
    pub made_by: MadeBy,
    pub note: Option<String>,
    /// Metadata this load brings (merged over the table's).
    pub metadata: Option<Value>,
}

#[derive(Clone, Debug)]
pub struct NewFile {
    pub name: String,
    pub tags: Vec<String>,
    pub size: u64,
    pub object_key: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct FileInfo {
    pub id: FileId,
    pub project: ProjectId,
    pub name: String,
    pub tags: Vec<String>,
    pub size: u64,
    pub object_key: String,
    pub job_id: Option<JobId>,
    pub created_at: i64,
}

/// What a finished attempt stores, committed with its status.
#[derive(Clone, Debug, Default)]
pub struct Outputs {
    pub tables: Vec<TableWrite>,
    pub files: Vec<NewFile>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PipelineRow {
    pub project: ProjectId,
    pub id: PipelineId,
    /// The validated pipeline document (task parameters sealed).
    pub doc: Value,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A pipeline run: a durable entity advanced by the store.
#[derive(Clone, Debug, Serialize)]
pub struct PipelineRun {
    pub id: String,
    pub project: ProjectId,
    pub pipeline: PipelineId,
    /// `queued`, `running`, `succeeded`, `warning`, `failed`, `cancelled`.
    pub status: String,
    /// The phase running now (or where it stopped).
    pub phase: u32,
    pub phases: u32,
    pub cancel_requested: bool,
    pub error: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub tasks: Vec<RunTask>,
    /// What started it, if not the API.
    pub trigger: Option<Trigger>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunTask {
    pub phase: u32,
    pub task: u32,
    pub config_id: ConfigId,
    pub continue_on_failure: bool,
    /// `pending`, `skipped`, or its job's status.
    pub status: String,
    pub job_id: Option<JobId>,
    pub error: Option<String>,
}

/// A notification to send (leased to the caller for a while).
#[derive(Clone, Debug)]
pub struct Notification {
    pub id: i64,
    pub project: ProjectId,
    /// `job` or `pipeline_run`.
    pub subject_kind: String,
    pub subject_id: String,
    pub url: String,
    /// A `whsec_` secret, sealed; `None`: sent unsigned.
    pub secret_sealed: Option<String>,
    pub body: String,
    pub attempts: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct NotificationView {
    pub id: i64,
    pub url: String,
    /// `pending`, `delivered` or `failed` (given up).
    pub status: String,
    pub attempts: Vec<NotificationAttempt>,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct NotificationAttempt {
    pub number: u32,
    pub at: i64,
    pub status_code: Option<u16>,
    pub error: Option<String>,
}

/// One project's queue, for metrics.
#[derive(Clone, Debug)]
pub struct QueueStat {
    pub project: ProjectId,
    pub queued: u64,
    pub running: u64,
    /// How long the oldest due queued job has been due, in ms (0 when none).
    pub oldest_due_ms: u64,
}

/// One project's Storage use, for metrics.
#[derive(Clone, Debug)]
pub struct StorageStat {
    pub project: ProjectId,
    /// Bytes of every table's current version.
    pub table_bytes: u64,
    pub table_versions: u64,
    pub file_bytes: u64,
    pub files: u64,
}

/// What `/metrics` reads from the store at scrape time, in one snapshot.
#[derive(Clone, Debug, Default)]
pub struct StoreFigures {
    pub by_status: Vec<(JobStatus, u64)>,
    pub queues: Vec<QueueStat>,
    pub storage: Vec<StorageStat>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names stored in the database (strum) and shown on the wire
    /// (serde) are one and the same, and are the strings used before these
    /// were enums.
    #[test]
    fn stored_and_wire_names_agree_and_are_the_old_strings() {
        fn check<T: Serialize + Copy + std::str::FromStr + PartialEq + std::fmt::Debug>(
            all: &[(T, &str)],
            name: impl Fn(T) -> &'static str,
        ) {
            for (v, s) in all {
                assert_eq!(name(*v), *s);
                assert_eq!(serde_json::to_string(v).expect("json"), format!("\"{s}\""));
                assert_eq!(s.parse::<T>().ok(), Some(*v));
            }
        }
        check(
            &[
                (MadeBy::Import, "import"),
                (MadeBy::Create, "create"),
                (MadeBy::Job, "job"),
                (MadeBy::Run, "run"),
                (MadeBy::Compact, "compact"),
                (MadeBy::Restore, "restore"),
            ],
            MadeBy::as_str,
        );
        check(
            &[
                (AttemptStatus::Running, "running"),
                (AttemptStatus::Succeeded, "succeeded"),
                (AttemptStatus::Failed, "failed"),
                (AttemptStatus::Cancelled, "cancelled"),
                (AttemptStatus::TimedOut, "timed_out"),
                (AttemptStatus::Lost, "lost"),
                (AttemptStatus::HandedBack, "handed_back"),
            ],
            AttemptStatus::as_str,
        );
        check(
            &[
                (LogLevel::Debug, "debug"),
                (LogLevel::Info, "info"),
                (LogLevel::Warning, "warning"),
                (LogLevel::Error, "error"),
            ],
            LogLevel::as_str,
        );
        for s in gantry_core::JobStatus::ALL {
            if s.is_terminal() {
                assert_eq!(AttemptStatus::ended(s).as_str(), s.as_str());
            }
        }
    }
}
