//! What starts jobs besides a submission: schedules, pipelines and their
//! runs, inbound webhooks and what a delivery to one answers.

use crate::{NotificationView, TriggerView};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// A schedule, with its next fire times and (in `GET`) its latest ticks.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScheduleView {
    #[schema(value_type = crate::NameParam)]
    pub id: String,
    #[schema(value_type = crate::ProjectParam)]
    pub project: String,
    /// The configuration it runs (or `null` when it runs a pipeline).
    #[schema(value_type = Option<crate::NameParam>)]
    pub config: Option<String>,
    /// The pipeline it runs (or `null` when it runs a configuration).
    #[schema(value_type = Option<crate::NameParam>)]
    pub pipeline: Option<String>,
    #[schema(value_type = ScheduleStatusName)]
    pub status: String,
    /// The schedule document as written (cron, timezone, target, missed...).
    #[schema(value_type = Object)]
    pub schedule: Value,
    /// Jobs or runs made so far.
    pub runs: u64,
    /// The next tick to fire (RFC 3339); `null` once it has ended.
    pub next_tick: Option<String>,
    pub last_tick: Option<String>,
    /// The next few fire times (RFC 3339).
    pub next: Vec<String>,
    /// The latest ticks, newest first.
    pub recent: Vec<TickView>,
    pub created_at: String,
    pub updated_at: String,
}

/// Whether a schedule fires.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum ScheduleStatusName {
    Active,
    Paused,
    Ended,
}

/// One tick of a schedule and what came of it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TickView {
    pub tick: String,
    #[schema(value_type = TickOutcomeName)]
    pub outcome: String,
    /// The job it made (outcome `job`).
    #[schema(value_type = Option<crate::JobIdParam>)]
    pub job: Option<String>,
    /// The pipeline run it made (outcome `run`).
    pub run: Option<String>,
    pub note: Option<String>,
}

/// What a tick did: made a job, made a pipeline run, was skipped (overlap) or missed.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum TickOutcomeName {
    Job,
    Run,
    Skipped,
    Missed,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScheduleList {
    pub schedules: Vec<ScheduleView>,
}

/// A stored pipeline (notification secrets are not shown).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PipelineView {
    #[schema(value_type = crate::NameParam)]
    pub id: String,
    #[schema(value_type = crate::ProjectParam)]
    pub project: String,
    pub phases: Vec<PhaseView>,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

/// A phase: tasks that run in parallel.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PhaseView {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub tasks: Vec<TaskView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskView {
    #[schema(value_type = crate::NameParam)]
    pub config: String,
    /// Merged over the configuration's `parameters`; secrets appear sealed.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    #[schema(value_type = Object)]
    pub parameters: Map<String, Value>,
    /// A failure of this task lets the pipeline go on (it then ends `warning`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continue_on_failure: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PipelineList {
    pub pipelines: Vec<PipelineView>,
}

/// A run of a pipeline, with its tasks.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PipelineRunView {
    /// The run's number.
    pub id: String,
    #[schema(value_type = crate::ProjectParam)]
    pub project: String,
    #[schema(value_type = crate::NameParam)]
    pub pipeline: String,
    #[schema(value_type = PipelineRunStatusName)]
    pub status: String,
    /// The phase running now (or where it stopped).
    pub phase: u32,
    pub phases: u32,
    pub cancel_requested: bool,
    pub error: Option<String>,
    pub tasks: Vec<RunTaskView>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// What started it, if not the API.
    pub trigger: Option<TriggerView>,
    /// Outbound notifications of its end (in `GET /v1/pipeline-runs/{id}` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<Vec<NotificationView>>,
}

/// Where a pipeline run is.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum PipelineRunStatusName {
    Queued,
    Running,
    Succeeded,
    Warning,
    Failed,
    Cancelled,
}

/// One task of a pipeline run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunTaskView {
    pub phase: u32,
    pub task: u32,
    #[schema(value_type = crate::NameParam)]
    pub config: String,
    pub continue_on_failure: bool,
    /// `pending`, `skipped`, or its job's status.
    pub status: String,
    #[schema(value_type = Option<crate::JobIdParam>)]
    pub job: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PipelineRunList {
    pub runs: Vec<PipelineRunView>,
}

/// An inbound webhook (its secret only in the answers that make one).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HookView {
    /// `hk_` and 24 hex digits.
    #[schema(pattern = "^hk_[0-9a-f]{24}$")]
    pub id: String,
    #[schema(value_type = crate::ProjectParam)]
    pub project: String,
    #[schema(value_type = Option<crate::NameParam>)]
    pub config: Option<String>,
    #[schema(value_type = Option<crate::NameParam>)]
    pub pipeline: Option<String>,
    /// Where deliveries go, relative to the server (`/v1/hooks/{id}`).
    pub url: String,
    #[schema(value_type = HookAuthName)]
    pub auth: String,
    /// Largest body accepted (bytes).
    pub max_body: u64,
    /// Deliveries per minute accepted.
    pub rate_limit: u32,
    /// Until when the secret before the last rotation is still accepted.
    pub old_secret_valid_until: Option<String>,
    pub created_at: String,
    /// The signing secret (`whsec_...`): shown once, on create and rotate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// How a webhook's deliveries prove themselves.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum HookAuthName {
    /// Standard Webhooks or GitHub signatures with the hook's secret.
    Signature,
    /// A Gantry bearer token of the hook's project.
    Token,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HookList {
    pub webhooks: Vec<HookView>,
}

/// What a delivery made: a job or a pipeline run (exactly one is present).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryAnswer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::JobIdParam>)]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_run: Option<String>,
    /// The delivery's id (new deliveries only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<String>,
    /// Whether this delivery id was seen before (nothing new was made).
    pub replay: bool,
}
