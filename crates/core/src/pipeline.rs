//! Pipelines (Keboola's orchestrations): ordered phases, each a set of tasks
//! that run in parallel. The wire document and its validation; whether the
//! configurations exist is the API's check, the run itself the store's.

use crate::spec::SpecError;
use crate::ConfigId;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const MAX_PHASES: usize = 100;
pub const MAX_TASKS: usize = 100;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineDoc {
    #[serde(default)]
    pub phases: Vec<PhaseDoc>,
    /// URLs called when a run ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<crate::spec::NotifyDoc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub tasks: Vec<TaskDoc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskDoc {
    #[serde(default)]
    pub config: String,
    /// Merged over the configuration's `parameters` (top-level keys).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub parameters: Map<String, Value>,
    /// A failure of this task lets the pipeline go on (it then ends `warning`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continue_on_failure: bool,
}

impl PipelineDoc {
    /// Validates a JSON value; errors name the key path (`phases[1].tasks`).
    pub fn from_value(value: Value) -> Result<(PipelineDoc, Vec<Vec<ConfigId>>), SpecError> {
        if !value.is_object() {
            return Err(SpecError::at("pipeline", "must be a mapping with 'phases'"));
        }
        let doc: PipelineDoc = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { "pipeline".into() } else { path };
            let msg = e.inner().to_string();
            SpecError::at(&path, msg.split(" at line ").next().unwrap_or(&msg))
        })?;
        crate::spec::check_notify(&doc.notify, "notify")?;
        if doc.phases.is_empty() {
            return Err(SpecError::at("phases", "must list at least one phase"));
        }
        if doc.phases.len() > MAX_PHASES {
            return Err(SpecError::at(
                "phases",
                format!("at most {MAX_PHASES} phases"),
            ));
        }
        let mut configs = Vec::new();
        for (i, p) in doc.phases.iter().enumerate() {
            if p.tasks.is_empty() {
                return Err(SpecError::at(
                    &format!("phases[{i}].tasks"),
                    "must list at least one task (an empty phase does nothing)",
                ));
            }
            if p.tasks.len() > MAX_TASKS {
                return Err(SpecError::at(
                    &format!("phases[{i}].tasks"),
                    format!("at most {MAX_TASKS} tasks"),
                ));
            }
            let mut phase = Vec::new();
            for (j, t) in p.tasks.iter().enumerate() {
                let c: ConfigId = t.config.parse().map_err(|e: String| {
                    SpecError::at(&format!("phases[{i}].tasks[{j}].config"), e)
                })?;
                phase.push(c);
            }
            configs.push(phase);
        }
        Ok((doc, configs))
    }
}
