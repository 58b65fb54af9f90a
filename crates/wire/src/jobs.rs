//! Jobs: the job view with its attempts, trigger and notifications; a page
//! of jobs; an event; what a submission sends.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorView {
    pub kind: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    pub id: String,
    pub project: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    #[schema(value_type = JobStatusName)]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    pub attempt: u32,
    pub max_attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    /// What the worker applied (memory, cpus, pids, network, loosenings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub limits: Option<gantry_core::applied::AppliedLimits>,
    pub cancel_requested: bool,
    pub queued_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Secrets appear sealed (`gantry:enc:v1:...`), never in clear.
    #[schema(value_type = Object)]
    pub spec: Value,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<AttemptView>,
    pub priority: u8,
    /// When the job is (or was last) due.
    pub run_after: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<ConcurrencyView>,
    /// For a queued job held back: why, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    /// What started it, if not a submission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<TriggerView>,
    /// Outbound notifications of its end, with every delivery attempt (in `GET /v1/jobs/{id}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<NotificationView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConcurrencyView {
    pub key: String,
    pub limit: u32,
}

/// What started a job other than a submission.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TriggerView {
    /// A schedule's tick (RFC 3339).
    Schedule { id: String, tick: String },
    /// A task of a pipeline run.
    Pipeline { run: String, phase: u32, task: u32 },
    /// A delivery to an inbound webhook.
    Webhook { id: String, delivery: String },
}

/// An outbound notification of a job's or run's end.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NotificationView {
    pub url: String,
    /// `pending`, `delivered` or `failed` (given up).
    #[schema(value_type = NotificationStatusName)]
    pub status: String,
    pub last_error: Option<String>,
    pub attempts: Vec<NotificationAttemptView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NotificationAttemptView {
    pub number: u32,
    pub at: String,
    pub status_code: Option<u16>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AttemptView {
    pub number: u32,
    pub worker: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobView>,
    /// Pass as `cursor` for the next (older) page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    pub seq: u64,
    pub attempt: u32,
    pub time: String,
    pub stream: String,
    pub level: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
}

/// A job to submit: an inline spec or a configuration's.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitJob {
    /// An inline spec (send this or `config`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub spec: Option<Value>,
    /// A configuration's id (send this or `spec`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::NameParam>)]
    pub config: Option<String>,
    /// Keboola's `mode`: `debug` keeps the job's data folder in Storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<RunModeName>)]
    pub mode: Option<gantry_core::spec::RunMode>,
    /// 0, 1 or 2; overrides the spec's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 2)]
    pub priority: Option<i64>,
    /// `30s`, `5m`... or a number of seconds (at most 366 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = delay_schema)]
    pub delay: Option<Value>,
    /// RFC 3339, at most 366 days ahead (send this or `delay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub run_after: Option<String>,
}

fn delay_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[0-9]{1,6}(ms|s|m|h)$")),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0))
                .maximum(Some(31_622_400)),
        )
        .build()
        .into()
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitBatch {
    pub jobs: Vec<SubmitJob>,
}

/// The ids of a batch's jobs, in the order sent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchIds {
    pub ids: Vec<String>,
}

/// A job's status.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum JobStatusName {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
}

/// How a job runs (Keboola's `mode`).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum RunModeName {
    Run,
    Debug,
}

/// Where an outbound notification stands.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum NotificationStatusName {
    Pending,
    Delivered,
    /// Given up (its deadline passed).
    Failed,
}
