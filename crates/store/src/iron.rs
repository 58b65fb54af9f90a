//! IronWorker's objects, kept beside Gantry's own: codes (named, revisioned
//! things to run), the Iron fields of tasks (a task IS a Gantry job; this
//! holds only what Iron adds: payload, label, cluster, progress) and Iron
//! schedules (each IS a Gantry schedule running a configuration made for it).

use crate::{Job, NewJob, Result};
use async_trait::async_trait;
use gantry_core::{ConfigId, JobId, JobStatus, ProjectId, ScheduleId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A Storage file made for Iron (a payload, a code's config) and the tag
/// that selects exactly it for staging.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IronFile {
    pub id: gantry_core::FileId,
    pub tag: String,
}

/// What one revision of a code runs. Stored as one JSON document.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IronCodeDoc {
    /// A Docker image (Iron's current model), or none for a legacy runtime zip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// One shell command line; none: the image's own entrypoint and CMD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Iron's `config` string, handed to tasks as `CONFIG_FILE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub env_vars: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    #[serde(default)]
    pub retries: u32,
    /// Seconds between retries.
    #[serde(default)]
    pub retries_delay: u32,
    /// Iron priority 0..=2 used when a task gives none.
    #[serde(default)]
    pub default_priority: u8,
    /// Legacy runtime codes: the runtime (`sh`, `python`, ...) and the file to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// The uploaded zip: a Storage file of the project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zip_file: Option<gantry_core::FileId>,
    /// A legacy runtime zip is also a code package (`NAME@REV`) that runs
    /// on the stack named like its runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// The Storage file holding `config` (staged for tasks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_file: Option<IronFile>,
    /// SHA-256 of the zip, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

/// One revision of a code.
#[derive(Clone, Debug, Serialize)]
pub struct IronCodeRev {
    pub code_id: String,
    /// The revision's own id (Iron's `latest_history_id` / `code_history_id`).
    pub id: String,
    pub name: String,
    pub rev: u32,
    pub doc: IronCodeDoc,
    pub created_at: i64,
}

/// A code and its latest revision.
#[derive(Clone, Debug, Serialize)]
pub struct IronCode {
    pub project: ProjectId,
    pub id: String,
    pub name: String,
    pub latest: IronCodeRev,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What Iron adds to a job that is one of its tasks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IronTask {
    pub code_id: String,
    pub code_name: String,
    pub code_rev: u32,
    pub code_history_id: String,
    /// The payload string exactly as queued.
    pub payload: String,
    /// The Storage file that holds the payload (staged as `PAYLOAD_FILE`).
    pub payload_file: Option<IronFile>,
    pub label: Option<String>,
    pub cluster: String,
    /// Iron priority 0..=2.
    pub priority: u8,
    /// Seconds.
    pub timeout: u64,
    pub delay: u64,
    /// The Iron schedule that made it.
    pub schedule_id: Option<String>,
    pub percent: Option<u8>,
    pub progress_msg: Option<String>,
}

/// An Iron schedule's own fields (the timing lives in its Gantry schedule).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IronScheduleDoc {
    pub code_name: String,
    pub payload: String,
    pub payload_file: Option<IronFile>,
    pub run_every: Option<u64>,
    pub run_times: Option<u64>,
    /// RFC 3339, as given.
    pub start_at: Option<String>,
    pub end_at: Option<String>,
    pub priority: u8,
    pub timeout: u64,
    pub delay: u64,
    pub label: Option<String>,
    pub cluster: String,
}

/// A stored Iron schedule with the Gantry objects it stands on.
#[derive(Clone, Debug, Serialize)]
pub struct IronSchedule {
    pub project: ProjectId,
    pub id: String,
    pub code_id: String,
    pub doc: IronScheduleDoc,
    /// The Gantry schedule and the configuration it runs.
    pub schedule_id: ScheduleId,
    pub config_id: ConfigId,
    pub cancelled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A new Iron schedule: its Gantry configuration (spec sealed) and schedule
/// are created with it, in one transaction.
#[derive(Clone, Debug)]
pub struct NewIronSchedule {
    pub id: String,
    pub code_id: String,
    pub doc: IronScheduleDoc,
    pub config_id: ConfigId,
    pub spec: Value,
    pub schedule: crate::NewSchedule,
}

/// Which tasks to list (newest first).
#[derive(Clone, Debug, Default)]
pub struct IronTaskFilter {
    pub code_name: Option<String>,
    /// Any of these (none: all).
    pub statuses: Vec<JobStatus>,
    /// On the time queued (ms), inclusive.
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub offset: u64,
    pub limit: u64,
}

#[async_trait]
pub trait IronStore: Send + Sync + 'static {
    /// Registers a code: a new one at revision 1, or the next revision of the
    /// project's code of that name (same id).
    async fn put_iron_code(
        &self,
        project: &ProjectId,
        name: &str,
        doc: &IronCodeDoc,
    ) -> Result<IronCode>;
    async fn list_iron_codes(
        &self,
        project: &ProjectId,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<IronCode>>;
    async fn get_iron_code(&self, project: &ProjectId, id: &str) -> Result<IronCode>;
    async fn find_iron_code(&self, project: &ProjectId, name: &str) -> Result<IronCode>;
    async fn iron_code_revisions(
        &self,
        project: &ProjectId,
        id: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<IronCodeRev>>;
    /// Removes the code and its revisions (its tasks stay, naming it).
    async fn delete_iron_code(&self, project: &ProjectId, id: &str) -> Result<()>;
    /// Queues tasks as jobs with the given ids, all or none.
    async fn queue_iron_tasks(&self, tasks: Vec<(JobId, NewJob, IronTask)>) -> Result<()>;
    /// A job and its Iron fields; a job that is not an Iron task is not found.
    async fn get_iron_task(&self, project: &ProjectId, id: JobId) -> Result<(Job, IronTask)>;
    async fn list_iron_tasks(
        &self,
        project: &ProjectId,
        filter: &IronTaskFilter,
    ) -> Result<Vec<(Job, IronTask)>>;
    /// Records a task's progress (0..=100 and a message).
    async fn set_iron_progress(
        &self,
        project: &ProjectId,
        id: JobId,
        percent: u8,
        msg: Option<String>,
    ) -> Result<()>;
    async fn create_iron_schedule(
        &self,
        project: &ProjectId,
        s: NewIronSchedule,
    ) -> Result<IronSchedule>;
    async fn get_iron_schedule(&self, project: &ProjectId, id: &str) -> Result<IronSchedule>;
    async fn list_iron_schedules(
        &self,
        project: &ProjectId,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<IronSchedule>>;
    /// Cancels it: its Gantry schedule is paused for good.
    async fn cancel_iron_schedule(&self, project: &ProjectId, id: &str) -> Result<IronSchedule>;
    /// The live (not cancelled) schedules of a code, whose configurations
    /// follow its latest revision.
    async fn iron_schedules_of_code(
        &self,
        project: &ProjectId,
        code_id: &str,
    ) -> Result<Vec<IronSchedule>>;
}
