//! Wire types: what clients see. Built from the store's records, never the
//! records themselves, so internals can change without breaking clients.

use gantry_store::{Attempt, Config, Event, Job, Trigger, Waiting};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

pub fn rfc3339(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

#[derive(Serialize, ToSchema)]
pub struct ErrorView {
    pub kind: String,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct JobView {
    pub id: String,
    pub project: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    #[schema(value_type = JobStatusName)]
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    pub attempt: u32,
    pub max_attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<Value>,
    pub cancel_requested: bool,
    pub queued_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Secrets appear sealed (`gantry:enc:v1:...`), never in clear.
    #[schema(value_type = Object)]
    pub spec: Value,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<AttemptView>,
    pub priority: u8,
    /// When the job is (or was last) due.
    pub run_after: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Value>,
    /// For a queued job held back: why, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    /// What started it, if not a submission: `{"kind": "schedule", "id", "tick"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Value>,
    /// Outbound notifications of its end, with every delivery attempt (in `GET /v1/jobs/{id}`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub notifications: Vec<Value>,
}

pub fn notification_view(n: gantry_store::NotificationView) -> Value {
    serde_json::json!({
        "url": n.url,
        "status": n.status,
        "last_error": n.last_error,
        "attempts": n.attempts.iter().map(|a| serde_json::json!({
            "number": a.number,
            "at": rfc3339(a.at),
            "status_code": a.status_code,
            "error": a.error,
        })).collect::<Vec<_>>(),
    })
}

pub fn trigger_view(t: &Trigger) -> Value {
    match t {
        Trigger::Schedule { id, tick } => {
            serde_json::json!({"kind": "schedule", "id": id, "tick": rfc3339(*tick)})
        }
        Trigger::Pipeline { run, phase, task } => {
            serde_json::json!({"kind": "pipeline", "run": run, "phase": phase, "task": task})
        }
        Trigger::Webhook { id, delivery } => {
            serde_json::json!({"kind": "webhook", "id": id, "delivery": delivery})
        }
    }
}

/// A job's reason to wait, as a sentence.
pub fn waiting_text(w: &Waiting) -> String {
    match w {
        Waiting::Delayed { until } => format!("delayed until {}", rfc3339(*until)),
        Waiting::ConfigLock { job, config } => {
            format!("waiting for job {job} of configuration {config}")
        }
        Waiting::ConcurrencyKey {
            key,
            limit,
            running,
        } => {
            let ids: Vec<String> = running.iter().map(|j| j.to_string()).collect();
            format!(
                "waiting: concurrency key '{key}' has {} of {limit} jobs running ({})",
                running.len(),
                ids.join(", ")
            )
        }
        Waiting::ProjectLimit { project, limit } => {
            format!("waiting: project '{project}' runs its max_running of {limit} jobs")
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AttemptView {
    pub number: u32,
    pub worker: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    pub started_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

impl From<Attempt> for AttemptView {
    fn from(a: Attempt) -> Self {
        Self {
            number: a.number,
            worker: a.worker_id,
            status: a.status,
            error: a.error.map(|e| ErrorView {
                kind: e.kind.as_str().into(),
                message: e.message,
            }),
            exit_code: a.exit_code,
            image_digest: a.image_digest,
            started_at: rfc3339(a.started_at),
            finished_at: a.finished_at.map(rfc3339),
        }
    }
}

impl From<Job> for JobView {
    fn from(j: Job) -> Self {
        Self {
            id: j.id.to_string(),
            project: j.project.to_string(),
            config: j.config_id.map(|c| c.to_string()),
            status: j.status.as_str().into(),
            // Only a failed job carries its error; a retried one shows it on its attempts.
            error: j
                .error
                .filter(|_| j.status.is_terminal())
                .map(|e| ErrorView {
                    kind: e.kind.as_str().into(),
                    message: e.message,
                }),
            exit_code: j.exit_code,
            attempt: j.attempt,
            max_attempts: j.max_attempts,
            worker: j.worker_id,
            image_digest: j.image_digest,
            limits: j.limits,
            cancel_requested: j.cancel_requested,
            queued_at: rfc3339(j.queued_at),
            started_at: j.started_at.map(rfc3339),
            finished_at: j.finished_at.map(rfc3339),
            spec: j.spec,
            attempts: j.attempts.into_iter().map(Into::into).collect(),
            priority: j.priority,
            run_after: rfc3339(j.run_after),
            concurrency: j
                .concurrency
                .map(|(key, limit)| serde_json::json!({"key": key, "limit": limit})),
            waiting: j.waiting.as_ref().map(waiting_text),
            trigger: j.trigger.as_ref().map(trigger_view),
            notifications: Vec::new(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobView>,
    /// Pass as `cursor` for the next (older) page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct EventView {
    pub seq: u64,
    pub attempt: u32,
    pub time: String,
    pub stream: String,
    pub level: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        Self {
            seq: e.seq,
            attempt: e.attempt,
            time: rfc3339(e.time),
            stream: e.stream,
            level: e.level,
            message: e.message,
            data: e.data,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ConfigView {
    pub id: String,
    pub project: String,
    #[schema(value_type = Object)]
    pub spec: Value,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Config> for ConfigView {
    fn from(c: Config) -> Self {
        Self {
            id: c.id.to_string(),
            project: c.project.to_string(),
            spec: c.spec,
            version: c.version,
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitJob {
    /// An inline spec (send this or `config`).
    #[schema(value_type = Option<Object>)]
    pub spec: Option<Value>,
    /// A configuration's id (send this or `spec`).
    #[schema(value_type = Option<crate::doc::NameParam>)]
    pub config: Option<String>,
    /// Keboola's `mode`: `debug` keeps the job's data folder in Storage.
    #[schema(value_type = Option<RunModeName>)]
    pub mode: Option<gantry_core::spec::RunMode>,
    /// 0, 1 or 2; overrides the spec's.
    #[schema(minimum = 0, maximum = 2)]
    pub priority: Option<i64>,
    /// `30s`, `5m`... or a number of seconds (at most 366 days).
    #[schema(schema_with = delay_schema)]
    pub delay: Option<Value>,
    /// RFC 3339, at most 366 days ahead (send this or `delay`).
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

/// The ids of a batch's jobs, in the order sent.
#[derive(Serialize, ToSchema)]
pub struct BatchIds {
    pub ids: Vec<String>,
}

/// The project's configurations.
#[derive(Serialize, ToSchema)]
pub struct ConfigList {
    pub configs: Vec<ConfigView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitBatch {
    pub jobs: Vec<SubmitJob>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConfig {
    #[schema(value_type = crate::doc::NameParam)]
    pub id: String,
    #[schema(value_type = Object)]
    pub spec: Value,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    #[schema(value_type = Object)]
    pub spec: Value,
}
