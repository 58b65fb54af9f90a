//! Configurations: a stored spec (sealed, checked against the project's
//! policy like a submission) with its state.

use crate::{Control, SubmitError};
use gantry_core::{ConfigId, ProjectId, SpecError};
use gantry_store::{Config, StoreError};
use serde_json::Value;

/// Why a configuration operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The spec is invalid or loosens what the project does not allow.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// Not found, a conflict (it exists already), or the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<SubmitError> for ConfigError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Spec(e) => Self::Spec(e),
            SubmitError::Store(e) => Self::Store(e),
            // Sealing a spec answers only the two above.
            other => Self::Spec(SpecError::at("spec", other.to_string())),
        }
    }
}

impl Control {
    pub async fn list_configs(&self, project: &ProjectId) -> Result<Vec<Config>, ConfigError> {
        Ok(self.store.list_configs(project).await?)
    }

    pub async fn get_config(
        &self,
        project: &ProjectId,
        id: &ConfigId,
    ) -> Result<Config, ConfigError> {
        Ok(self.store.get_config(project, id).await?)
    }

    pub async fn create_config(
        &self,
        project: &ProjectId,
        id: &ConfigId,
        spec: Value,
    ) -> Result<Config, ConfigError> {
        let (stored, _) = self.seal_spec(project, spec).await?;
        Ok(self.store.create_config(project, id, &stored).await?)
    }

    pub async fn update_config(
        &self,
        project: &ProjectId,
        id: &ConfigId,
        spec: Value,
    ) -> Result<Config, ConfigError> {
        let (stored, _) = self.seal_spec(project, spec).await?;
        Ok(self.store.update_config(project, id, &stored).await?)
    }

    pub async fn delete_config(
        &self,
        project: &ProjectId,
        id: &ConfigId,
    ) -> Result<(), ConfigError> {
        Ok(self.store.delete_config(project, id).await?)
    }
}
