//! Projects and tokens.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProjectView {
    #[schema(value_type = crate::ProjectParam)]
    pub id: String,
    /// The defaults its specs may loosen.
    #[schema(value_type = Vec<crate::LooseningName>)]
    pub allow: Vec<String>,
    /// The cap on what one import may expand to.
    pub import_max_bytes: u64,
    /// The retention policy in effect (defaults filled in).
    #[schema(value_type = Object)]
    pub retention: Value,
    /// Most jobs running at once; none: no cap.
    pub max_running: Option<u32>,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProjectList {
    pub projects: Vec<ProjectView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    /// The public id (to revoke it by); never the secret.
    #[schema(value_type = crate::TokenIdParam)]
    pub id: gantry_core::TokenId,
    pub project: String,
    pub admin: bool,
    pub description: String,
    pub created_at: String,
    /// The secret: only in the answer that made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenView>,
}

/// A worker as the fleet sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WorkerView {
    #[schema(value_type = crate::WorkerIdParam)]
    pub id: gantry_core::WorkerId,
    pub host: String,
    pub version: String,
    pub tags: Vec<String>,
    pub slots: u32,
    /// Jobs it runs now.
    pub running: u32,
    /// `active`, `draining` or `gone`.
    pub state: String,
    pub started_at: String,
    pub last_heartbeat: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WorkerList {
    pub workers: Vec<WorkerView>,
}
