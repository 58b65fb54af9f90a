//! The storage mapping: which tables and files a job reads and writes,
//! passed to the container in `config.json` as written, and the path checks
//! that keep it inside the job's data folder.

use super::*;

/// The storage mapping (Keboola's `storage`), passed to the container in `config.json` as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageMapping {
    #[serde(default, skip_serializing_if = "InputMapping::is_empty")]
    pub input: InputMapping,
    #[serde(default, skip_serializing_if = "OutputMapping::is_empty")]
    pub output: OutputMapping,
}

impl StorageMapping {
    pub fn is_empty(&self) -> bool {
        self.input.is_empty() && self.output.is_empty()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputMapping {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<InputTable>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<InputFiles>,
    /// Keboola: give a workspace read access to all of Storage. Accepted and
    /// ignored (see [`Spec::ignored_keys`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_storage_access: Option<bool>,
}

impl InputMapping {
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.files.is_empty() && self.read_only_storage_access.is_none()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputMapping {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<OutputTable>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<OutputFile>,
    /// Keboola's `data_type_support`: which manifest format components
    /// write (`KBC_DATA_TYPE_SUPPORT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_type_support: Option<DataTypeSupport>,
}

impl OutputMapping {
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.files.is_empty() && self.data_type_support.is_none()
    }
}

/// Keboola's data type support of a project or output mapping: with `none`
/// the `keboola-component` library writes legacy manifests (`columns`), with
/// `hints` or `authoritative` the newer `schema` ones.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, strum::IntoStaticStr,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum DataTypeSupport {
    #[default]
    None,
    Hints,
    Authoritative,
}

impl DataTypeSupport {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WhereOperator {
    #[default]
    Eq,
    Ne,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputTable {
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub where_column: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub where_values: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub where_operator: Option<WhereOperator>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Keboola: types of columns loaded into a workspace. Accepted and
    /// ignored (see [`Spec::ignored_keys`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column_types: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputFiles {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Keboola: an Elasticsearch query over files. Accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Keboola: tags added to the staged files after a successful job.
    /// Accepted and ignored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processed_tags: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputTable {
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_where_column: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_where_values: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_where_operator: Option<WhereOperator>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_always: Option<bool>,
    /// Keboola's newer output mapping: columns with types and a primary key,
    /// stored as the table's metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Vec<Value>>,
    /// Keboola: metadata of the table, stored with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_metadata: Option<Value>,
    /// Keboola: metadata of its columns, stored with the table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column_metadata: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputFile {
    pub source: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

pub(crate) fn validate_storage(storage: &StorageMapping) -> Result<(), SpecError> {
    for (i, t) in storage.input.tables.iter().enumerate() {
        if t.source.trim().is_empty() {
            return Err(SpecError::at(
                &format!("storage.input.tables[{i}].source"),
                "must not be empty",
            ));
        }
        if let Some(d) = &t.destination {
            check_file_name(d)
                .map_err(|m| SpecError::at(&format!("storage.input.tables[{i}].destination"), m))?;
        }
    }
    for (i, t) in storage.output.tables.iter().enumerate() {
        check_relative_path(&t.source)
            .map_err(|m| SpecError::at(&format!("storage.output.tables[{i}].source"), m))?;
    }
    for (i, f) in storage.output.files.iter().enumerate() {
        check_relative_path(&f.source)
            .map_err(|m| SpecError::at(&format!("storage.output.files[{i}].source"), m))?;
    }
    Ok(())
}

/// A single file name: no separators, no `..`, no NUL.
pub fn check_file_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 255
        || name == "."
        || name == ".."
        || name.contains(['/', '\\', '\0'])
    {
        return Err(format!("'{name}' is not a plain file name"));
    }
    Ok(())
}

/// A path relative to an output folder that cannot escape it.
pub fn check_relative_path(path: &str) -> Result<(), String> {
    if path.is_empty() || path.starts_with('/') || path.contains('\0') || path.len() > 1024 {
        return Err(format!("'{path}' must be a relative path"));
    }
    if path
        .split('/')
        .any(|seg| seg == ".." || seg.is_empty() && path.contains("//"))
    {
        return Err(format!("'{path}' must not contain '..'"));
    }
    Ok(())
}
