//! Keboola's sync actions: which configuration and action a request names,
//! checked and resolved into what the engine runs (the engine itself is the
//! caller's: only a process with a worker has one).

use crate::{ConfigError, Control};
use gantry_core::{ConfigId, ProjectId};
use gantry_store::Principal;
use serde_json::Value;

/// Why a sync action cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// Not an action name (or `run`, which is a job).
    #[error("'{0}' is not a sync action name (letters, digits, '-', '_', '.'; 'run' is a job: POST /v1/jobs)")]
    InvalidName(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl From<gantry_store::StoreError> for ActionError {
    fn from(e: gantry_store::StoreError) -> Self {
        Self::Config(e.into())
    }
}

/// A sync action to run: a configuration's spec (secrets sealed) with
/// `action` set, run at once outside the queue.
#[derive(Clone, Debug)]
pub struct ActionRequest {
    pub project: ProjectId,
    pub project_number: i64,
    pub config: ConfigId,
    pub spec: Value,
    pub state: Value,
    pub action: String,
    pub token_id: gantry_core::TokenId,
    pub token_desc: String,
}

impl Control {
    /// The sync action `action` of configuration `id`, as the caller's
    /// token runs it: its spec (secrets sealed) and state, the project's
    /// number.
    pub async fn action_request(
        &self,
        caller: &Principal,
        id: ConfigId,
        action: String,
    ) -> Result<ActionRequest, ActionError> {
        if !gantry_core::spec::valid_action(&action) {
            return Err(ActionError::InvalidName(action));
        }
        let config = self.store.get_config(&caller.project, &id).await?;
        let project_number = self.store.get_project(&caller.project).await?.number;
        Ok(ActionRequest {
            project: caller.project.clone(),
            project_number,
            config: id,
            spec: config.spec,
            state: config.state,
            action,
            token_id: caller.token_id.clone(),
            token_desc: caller.token_desc.clone(),
        })
    }
}
