//! Configurations: a stored spec with its version.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConfigView {
    pub id: String,
    pub project: String,
    #[schema(value_type = Object)]
    pub spec: Value,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

/// The project's configurations.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConfigList {
    pub configs: Vec<ConfigView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConfig {
    #[schema(value_type = crate::NameParam)]
    pub id: String,
    #[schema(value_type = Object)]
    pub spec: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    #[schema(value_type = Object)]
    pub spec: Value,
}
