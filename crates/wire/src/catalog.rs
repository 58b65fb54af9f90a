//! Tables, their versions, and files.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TableView {
    #[schema(value_type = crate::TableParam)]
    pub id: String,
    pub project: String,
    pub columns: Vec<String>,
    pub primary_key: Vec<String>,
    /// The current version.
    pub version: u64,
    pub rows: u64,
    pub bytes: u64,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TableList {
    pub tables: Vec<TableView>,
}

/// One immutable version of a table.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VersionView {
    pub version: u64,
    pub columns: Vec<String>,
    pub primary_key: Vec<String>,
    pub rows: u64,
    pub bytes: u64,
    /// What the write that made it brought.
    pub loaded_rows: u64,
    pub loaded_bytes: u64,
    /// `create`, `import`, `job`, `restore`, `compact`...
    pub made_by: String,
    /// The job that made it, if one did.
    pub job: Option<String>,
    pub note: Option<String>,
    /// How many segments (objects) it is made of.
    pub segments: usize,
    pub created_at: String,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// Kept whatever the retention policy says.
    pub pinned: bool,
    /// On `compact` only: whether a new version was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compacted: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VersionList {
    pub versions: Vec<VersionView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FileView {
    #[schema(value_type = i64)]
    pub id: gantry_core::FileId,
    pub project: String,
    pub name: String,
    pub tags: Vec<String>,
    pub size: u64,
    /// The job that made it, if one did.
    pub job: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FileList {
    pub files: Vec<FileView>,
}
