//! Records the store reads and writes.

use gantry_core::{ConfigId, JobError, JobId, JobStatus, ProjectId};
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

/// Who a token speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub project: ProjectId,
    pub admin: bool,
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
    pub limits: Option<Value>,
    pub cancel_requested: bool,
    /// Milliseconds since the Unix epoch.
    pub queued_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Filled by `get_job`; empty in lists.
    pub attempts: Vec<Attempt>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Attempt {
    pub number: u32,
    pub worker_id: String,
    /// `running`, a final job status, `lost` (worker died) or `handed_back`.
    pub status: String,
    pub error: Option<JobError>,
    pub exit_code: Option<i64>,
    pub image_digest: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

#[derive(Clone, Debug, Default)]
pub struct AttemptInfo {
    pub image_digest: Option<String>,
    pub limits: Option<Value>,
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

#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub seq: u64,
    pub attempt: u32,
    /// Milliseconds since the Unix epoch.
    pub time: i64,
    pub stream: String,
    pub level: String,
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
