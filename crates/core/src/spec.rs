//! The job spec: parsed from YAML or JSON into a wire document (which rejects
//! unknown keys), then validated into the domain [`Spec`]. Every error names
//! the key path it is about, e.g. `limits.memory`.

use crate::units::{parse_duration, parse_size};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// A spec problem, with the key path it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SpecError {
    pub path: String,
    pub message: String,
}

impl SpecError {
    pub fn at(path: &str, message: impl Into<String>) -> Self {
        Self {
            path: path.to_string(),
            message: message.into(),
        }
    }
}

// ---------------------------------------------------------------- wire form

/// The spec exactly as a user writes it. Unknown keys are errors.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecDoc {
    #[serde(default)]
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub parameters: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub image_parameters: Map<String, Value>,
    /// Keboola's `authorization` (e.g. `oauth_api.credentials`), passed to
    /// `config.json`; `#` keys in it are secrets like parameters'.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub authorization: Map<String, Value>,
    /// The component this spec runs (Keboola's component id, e.g.
    /// `keboola.ex-http`), given to the job as `KBC_COMPONENTID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_id: Option<String>,
    #[serde(default, skip_serializing_if = "Storage::is_empty")]
    pub storage: Storage,
    /// Keboola's processors: images run on the data folder before and after
    /// this one.
    #[serde(default, skip_serializing_if = "Processors::is_empty")]
    pub processors: Processors,
    /// Keboola's configuration rows: run one after another in one job, each
    /// with its own parameters (over the spec's), storage mapping and state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<ConfigRow>,
    /// Keboola's shared code: a configuration whose rows hold code
    /// (`parameters.code_content`), and the rows this spec uses; `{{ id }}`
    /// in its parameters becomes that row's code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_code_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_code_row_ids: Vec<String>,
    /// Keboola's `mode`: `debug` keeps the job's whole data folder as a
    /// file in Storage after the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<RunMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsDoc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<PullPolicy>,
    /// A code package on a stack instead of `image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<crate::image_source::CodeDoc>,
    /// An image built from git instead of `image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<crate::image_source::BuildDoc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryDoc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writable_root: Option<bool>,
    /// 0 (low), 1 (normal, the default) or 2 (high): orders claims before age.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// Jobs sharing `key` run at most `limit` at once (instead of the
    /// configuration lock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<ConcurrencyDoc>,
    /// Runs only on a worker started with every one of these tags
    /// (`gantry worker --tags gpu`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub worker_tags: Vec<String>,
    /// URLs called when the job ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<NotifyDoc>,
}

/// An outbound notification target: a URL called with the job (or pipeline
/// run) when it ends, signed with the Standard Webhooks scheme when a
/// `#secret` (`whsec_...`) is given (sealed at rest like `#` parameters).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyDoc {
    #[serde(default)]
    pub url: String,
    /// `failure` (default) or `always`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<NotifyOn>,
    #[serde(rename = "#secret", default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyOn {
    #[default]
    Failure,
    Always,
}

/// Checks notification targets (the path prefix names the list).
pub fn check_notify(list: &[NotifyDoc], prefix: &str) -> Result<(), SpecError> {
    if list.len() > 10 {
        return Err(SpecError::at(prefix, "at most 10 targets"));
    }
    for (i, n) in list.iter().enumerate() {
        let url = n.url.trim();
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        let host = rest
            .and_then(|r| r.split(['/', '?', '#']).next())
            .unwrap_or("");
        if host.is_empty()
            || url.len() > 2048
            || url.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(SpecError::at(
                &format!("{prefix}[{i}].url"),
                "must be an http:// or https:// URL",
            ));
        }
        if let Some(s) = &n.secret {
            let sealed = s.starts_with("gantry:enc:");
            if !sealed && !s.starts_with("whsec_") {
                return Err(SpecError::at(
                    &format!("{prefix}[{i}].#secret"),
                    "must be a Standard Webhooks secret (whsec_ followed by base64)",
                ));
            }
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencyDoc {
    #[serde(default)]
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<SizeOrNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<SizeOrNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
}

/// `256m` or `268435456`; `10s` or `10`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SizeOrNumber {
    Number(f64),
    Text(String),
}

impl SizeOrNumber {
    fn as_text(&self) -> String {
        match self {
            Self::Number(n) => format!("{n}"),
            Self::Text(t) => t.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<SizeOrNumber>,
    /// Attempts that may be lost with their workers (a worker killed, its
    /// host gone) before the job fails; they do not use up `attempts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_attempts: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PullPolicy {
    #[default]
    IfMissing,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    #[default]
    None,
    Bridge,
}

impl Network {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Bridge => "bridge",
        }
    }
}

/// How a job runs (Keboola's `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunMode {
    #[default]
    Run,
    Debug,
}

/// One row of a configuration (Keboola's configuration rows).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigRow {
    /// `KBC_CONFIGROWID`; letters, digits, `-`, `_`, `.`.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A disabled row is skipped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_disabled: bool,
    /// Merged over the spec's parameters (the row's win, key by key, at any depth).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub parameters: Map<String, Value>,
    /// The row's mapping; the spec's when empty.
    #[serde(default, skip_serializing_if = "Storage::is_empty")]
    pub storage: Storage,
    /// The row's processors; the spec's when empty.
    #[serde(default, skip_serializing_if = "Processors::is_empty")]
    pub processors: Processors,
}

impl Spec {
    /// The spec one row runs: its parameters over the spec's, its storage
    /// and processors (the spec's when it has none), no rows.
    pub fn for_row(&self, row: &ConfigRow) -> Spec {
        fn merge(base: &mut Map<String, Value>, over: &Map<String, Value>) {
            for (k, v) in over {
                match (base.get_mut(k), v) {
                    (Some(Value::Object(b)), Value::Object(o)) => merge(b, o),
                    _ => {
                        base.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        let mut spec = self.clone();
        merge(&mut spec.parameters, &row.parameters);
        if !row.storage.is_empty() {
            spec.storage = row.storage.clone();
        }
        if !row.processors.is_empty() {
            spec.processors = row.processors.clone();
        }
        spec.rows = Vec::new();
        spec
    }
}

/// Keboola's `processors`: chains of images run on the job's data folder,
/// `before` the component (on its staged inputs) and `after` it (on its
/// outputs); each step's `out/` becomes the next one's `in/`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Processors {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<Processor>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<Processor>,
}

impl Processors {
    pub fn is_empty(&self) -> bool {
        self.before.is_empty() && self.after.is_empty()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Processor {
    pub definition: ProcessorDefinition,
    /// The processor's `config.json` parameters.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub parameters: Map<String, Value>,
    /// Overrides the processor image's CMD (a Gantry extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
}

/// Which image a processor runs: Keboola names it by component id, which
/// Gantry takes as the image reference (`docker tag` a processor's image
/// to its component id), with an optional `tag`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessorDefinition {
    pub component: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

impl ProcessorDefinition {
    /// The image reference it runs.
    pub fn image(&self) -> String {
        match &self.tag {
            Some(t) => format!("{}:{t}", self.component),
            None => self.component.clone(),
        }
    }
}

/// Storage mapping, passed to the container in `config.json` as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    #[serde(default, skip_serializing_if = "InputMapping::is_empty")]
    pub input: InputMapping,
    #[serde(default, skip_serializing_if = "OutputMapping::is_empty")]
    pub output: OutputMapping,
}

impl Storage {
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataTypeSupport {
    #[default]
    None,
    Hints,
    Authoritative,
}

impl DataTypeSupport {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Hints => "hints",
            Self::Authoritative => "authoritative",
        }
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

// -------------------------------------------------------------- domain form

/// Effective resource limits of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Bytes; memory+swap is set to the same value (no swap).
    pub memory: u64,
    pub cpus: f64,
    #[serde(with = "duration_ms")]
    pub timeout: Duration,
    pub pids: i64,
    pub network: Network,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory: 512 << 20,
            cpus: 1.0,
            timeout: Duration::from_secs(3600),
            pids: 512,
            network: Network::None,
        }
    }
}

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Retry policy: total attempts for retryable failures, and the wait between.
#[derive(Debug, Clone, PartialEq)]
pub struct Retry {
    pub attempts: u32,
    pub backoff: Duration,
}

/// A validated job spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub image: String,
    pub command: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    pub parameters: Map<String, Value>,
    pub image_parameters: Map<String, Value>,
    pub authorization: Map<String, Value>,
    pub component_id: Option<String>,
    pub storage: Storage,
    pub processors: Processors,
    pub rows: Vec<ConfigRow>,
    pub shared_code_id: Option<String>,
    pub shared_code_row_ids: Vec<String>,
    pub mode: RunMode,
    pub limits: Limits,
    pub pull: PullPolicy,
    /// Where the image comes from when `image` is empty (filled by the worker).
    pub code: Option<crate::image_source::CodeSource>,
    pub build: Option<crate::image_source::GitBuild>,
    pub retry: Retry,
    /// `uid[:gid]`, numeric, or `root`.
    pub user: String,
    /// The container's root filesystem is writable (read-only by default).
    pub writable_root: bool,
    /// 0..=2; higher is claimed first.
    pub priority: u8,
    pub concurrency: Option<Concurrency>,
    pub worker_tags: Vec<String>,
}

/// At most `limit` running jobs of a project share `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Concurrency {
    pub key: String,
    pub limit: u32,
}

pub const DEFAULT_PRIORITY: u8 = 1;
pub const MAX_PRIORITY: u8 = 2;
pub const MAX_CONCURRENCY_LIMIT: i64 = 10_000;

/// The largest `retry.lost_attempts`.
pub const MAX_LOST_ATTEMPTS: i64 = 20;

/// Most tags a spec may ask of its worker, or a worker may have.
pub const MAX_WORKER_TAGS: usize = 16;

/// Checks worker tags: 1-64 characters of `a-z`, `0-9`, `-`, `_`, `.`;
/// at most [`MAX_WORKER_TAGS`], no duplicates.
pub fn check_worker_tags(tags: &[String], path: &str) -> Result<(), SpecError> {
    if tags.len() > MAX_WORKER_TAGS {
        return Err(SpecError::at(
            path,
            format!("at most {MAX_WORKER_TAGS} tags"),
        ));
    }
    for (i, t) in tags.iter().enumerate() {
        let ok = (1..=64).contains(&t.len())
            && t.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
        if !ok {
            return Err(SpecError::at(
                &format!("{path}[{i}]"),
                "must be 1-64 characters of a-z, 0-9, '-', '_' and '.'",
            ));
        }
        if tags[..i].contains(t) {
            return Err(SpecError::at(&format!("{path}[{i}]"), "is given twice"));
        }
    }
    Ok(())
}

/// Checks a priority given as a number (specs, submissions).
pub fn check_priority(p: i64, path: &str) -> Result<u8, SpecError> {
    if !(0..=MAX_PRIORITY as i64).contains(&p) {
        return Err(SpecError::at(
            path,
            "must be 0 (low), 1 (normal) or 2 (high)",
        ));
    }
    Ok(p as u8)
}

/// A way a spec loosens the locked-down defaults. Each must be allowed by the
/// job's project (`gantry projects update ID --allow ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Loosening {
    /// `user: root` (or uid 0).
    RootUser,
    /// `limits.network: bridge`.
    BridgeNetwork,
    /// `writable_root: true`.
    WritableRoot,
}

impl Loosening {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RootUser => "root-user",
            Self::BridgeNetwork => "bridge-network",
            Self::WritableRoot => "writable-root",
        }
    }

    /// The spec field that asks for it, for error messages.
    pub fn field(self) -> &'static str {
        match self {
            Self::RootUser => "user",
            Self::BridgeNetwork => "limits.network",
            Self::WritableRoot => "writable_root",
        }
    }
}

impl std::fmt::Display for Loosening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Spec {
    /// Keboola storage keys this spec uses that Gantry accepts but does not
    /// act on, each with why; recorded on every job of the spec.
    pub fn ignored_keys(&self) -> Vec<String> {
        let mut out = Vec::new();
        let input = &self.storage.input;
        if input.read_only_storage_access.is_some() {
            out.push(
                "storage.input.read_only_storage_access is ignored: Gantry gives jobs no \
                 workspace, only the mapped inputs (read-only in /data/in)"
                    .to_string(),
            );
        }
        for (i, t) in input.tables.iter().enumerate() {
            if t.column_types.is_some() {
                out.push(format!(
                    "storage.input.tables[{i}].column_types is ignored: it types columns \
                     loaded into a database workspace; Gantry stages CSV files, where Keboola \
                     ignores it too"
                ));
            }
        }
        for (i, f) in input.files.iter().enumerate() {
            if f.query.is_some() {
                out.push(format!(
                    "storage.input.files[{i}].query is ignored: Gantry has no search index; \
                     files are chosen by their tags only"
                ));
            }
            if !f.processed_tags.is_empty() {
                out.push(format!(
                    "storage.input.files[{i}].processed_tags is ignored: Gantry does not tag \
                     staged files after a job yet"
                ));
            }
        }
        out
    }

    /// The loosenings of the locked-down defaults this spec asks for.
    pub fn loosenings(&self) -> Vec<Loosening> {
        let uid = self.user.split(':').next().unwrap_or_default();
        let root = self.user == "root" || uid.bytes().all(|b| b == b'0');
        let mut out = Vec::new();
        if root {
            out.push(Loosening::RootUser);
        }
        if self.limits.network == Network::Bridge {
            out.push(Loosening::BridgeNetwork);
        }
        if self.writable_root {
            out.push(Loosening::WritableRoot);
        }
        out
    }

    /// Checks the loosenings against what a project allows; the error names
    /// the field and how an admin allows it.
    pub fn check_allowed(&self, project: &str, allowed: &[Loosening]) -> Result<(), SpecError> {
        match self.loosenings().into_iter().find(|l| !allowed.contains(l)) {
            None => Ok(()),
            Some(l) => Err(SpecError::at(
                l.field(),
                format!(
                    "project '{project}' does not allow {l}; an admin can allow it with \
                     `gantry projects update {project} --allow {l}`"
                ),
            )),
        }
    }
}

pub const DEFAULT_USER: &str = "65534:65534";
pub const MIN_MEMORY: u64 = 6 << 20;
pub const MAX_MEMORY: u64 = 1 << 40;
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
pub const MAX_ATTEMPTS: i64 = 20;
pub const MAX_BACKOFF: Duration = Duration::from_secs(24 * 3600);
/// Environment names Gantry sets itself; a spec may not override them.
pub const RESERVED_ENV: [&str; 4] = [
    "KBC_DATADIR",
    "GANTRY_JOB_ID",
    "GANTRY_PROJECT",
    "GANTRY_CONFIG_ID",
];

impl Spec {
    /// Parses YAML or JSON text (JSON is YAML, so one parser serves both).
    pub fn parse(text: &str) -> Result<(SpecDoc, Spec), SpecError> {
        let value: Value = serde_yaml_ng::from_str(text)
            .map_err(|e| SpecError::at("spec", format!("not valid YAML or JSON: {e}")))?;
        Self::from_value(value)
    }

    /// Validates a JSON value (e.g. from an API body).
    pub fn from_value(value: Value) -> Result<(SpecDoc, Spec), SpecError> {
        if !value.is_object() {
            return Err(SpecError::at(
                "spec",
                "must be a mapping with at least an 'image' key",
            ));
        }
        let doc: SpecDoc = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." {
                "spec".to_string()
            } else {
                path
            };
            SpecError::at(&path, clean_serde_message(&e.inner().to_string()))
        })?;
        let spec = doc.validate()?;
        Ok((doc, spec))
    }
}

fn clean_serde_message(msg: &str) -> String {
    // serde_json appends " at line 1 column 2" for text input; values have no lines.
    msg.split(" at line ").next().unwrap_or(msg).to_string()
}

impl SpecDoc {
    pub fn validate(&self) -> Result<Spec, SpecError> {
        let image = self.image.trim();
        let (code, build) = crate::image_source::check_sources(self)?;
        if image.is_empty() && code.is_none() && build.is_none() {
            return Err(SpecError::at("image", "is required and must not be empty"));
        }
        if image.len() > 512 || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(SpecError::at(
                "image",
                "must be an image reference like registry/team/app:1.4",
            ));
        }
        if let Some(cmd) = &self.command {
            if cmd.is_empty() {
                return Err(SpecError::at(
                    "command",
                    "must not be an empty list (leave it out to use the image's CMD)",
                ));
            }
            if let Some(i) = cmd.iter().position(|a| a.contains('\0')) {
                return Err(SpecError::at(
                    &format!("command[{i}]"),
                    "must not contain NUL",
                ));
            }
        }
        for (k, v) in &self.env {
            let valid = !k.is_empty()
                && !k.as_bytes()[0].is_ascii_digit()
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(SpecError::at(
                    &format!("env.{k}"),
                    "is not a valid variable name (letters, digits, '_')",
                ));
            }
            if RESERVED_ENV.contains(&k.as_str()) {
                return Err(SpecError::at(
                    &format!("env.{k}"),
                    "is set by Gantry and cannot be overridden",
                ));
            }
            if v.contains('\0') {
                return Err(SpecError::at(&format!("env.{k}"), "must not contain NUL"));
            }
        }
        let limits = self.validate_limits()?;
        let retry = self.validate_retry()?;
        let user = match self.user.as_deref().map(str::trim) {
            None => DEFAULT_USER.to_string(),
            Some(u) => {
                if !valid_user(u) {
                    return Err(SpecError::at(
                        "user",
                        "must be numeric 'uid' or 'uid:gid', or 'root'",
                    ));
                }
                u.to_string()
            }
        };
        validate_storage(&self.storage)?;
        for (stage, list) in [
            ("before", &self.processors.before),
            ("after", &self.processors.after),
        ] {
            for (i, p) in list.iter().enumerate() {
                let image = p.definition.image();
                if p.definition.component.trim().is_empty()
                    || image.len() > 512
                    || image.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(SpecError::at(
                        &format!("processors.{stage}[{i}].definition.component"),
                        "must be an image reference (a processor's component id tagged locally)",
                    ));
                }
                if p.command
                    .as_ref()
                    .is_some_and(|c| c.is_empty() || c.iter().any(|a| a.contains('\0')))
                {
                    return Err(SpecError::at(
                        &format!("processors.{stage}[{i}].command"),
                        "must be a non-empty list without NUL",
                    ));
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, row) in self.rows.iter().enumerate() {
            if !valid_action(&row.id) && row.id != "run" {
                return Err(SpecError::at(
                    &format!("rows[{i}].id"),
                    "must be 1-64 letters, digits, '-', '_' or '.'",
                ));
            }
            if !seen.insert(row.id.as_str()) {
                return Err(SpecError::at(
                    &format!("rows[{i}].id"),
                    format!("'{}' is the id of another row", row.id),
                ));
            }
            validate_storage(&row.storage).map_err(|e| SpecError {
                path: format!("rows[{i}].{}", e.path),
                message: e.message,
            })?;
        }
        if let Some(c) = &self.component_id {
            if c.is_empty()
                || c.len() > 256
                || c.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(SpecError::at(
                    "component_id",
                    "must be a component id like keboola.ex-http",
                ));
            }
        }
        check_notify(&self.notify, "notify")?;
        let priority = match self.priority {
            Some(p) => check_priority(p, "priority")?,
            None => DEFAULT_PRIORITY,
        };
        let concurrency = match &self.concurrency {
            None => None,
            Some(c) => {
                let key = c.key.trim();
                if key.is_empty() || key.len() > 200 || key.chars().any(char::is_control) {
                    return Err(SpecError::at(
                        "concurrency.key",
                        "must be 1 to 200 characters without control characters",
                    ));
                }
                let limit = c.limit.unwrap_or(1);
                if !(1..=MAX_CONCURRENCY_LIMIT).contains(&limit) {
                    return Err(SpecError::at(
                        "concurrency.limit",
                        format!("must be between 1 and {MAX_CONCURRENCY_LIMIT}"),
                    ));
                }
                Some(Concurrency {
                    key: key.to_string(),
                    limit: limit as u32,
                })
            }
        };
        check_worker_tags(&self.worker_tags, "worker_tags")?;
        Ok(Spec {
            image: image.to_string(),
            command: self.command.clone(),
            env: self.env.clone(),
            parameters: self.parameters.clone(),
            image_parameters: self.image_parameters.clone(),
            authorization: self.authorization.clone(),
            component_id: self.component_id.clone(),
            storage: self.storage.clone(),
            processors: self.processors.clone(),
            rows: self.rows.clone(),
            mode: self.mode.unwrap_or_default(),
            shared_code_id: self.shared_code_id.clone(),
            shared_code_row_ids: self.shared_code_row_ids.clone(),
            limits,
            pull: self.pull.unwrap_or_default(),
            code,
            build,
            retry,
            user,
            writable_root: self.writable_root.unwrap_or(false),
            priority,
            concurrency,
            worker_tags: self.worker_tags.clone(),
        })
    }

    fn validate_limits(&self) -> Result<Limits, SpecError> {
        let mut limits = Limits::default();
        let Some(doc) = &self.limits else {
            return Ok(limits);
        };
        if let Some(m) = &doc.memory {
            let bytes = parse_size(&m.as_text()).map_err(|e| SpecError::at("limits.memory", e))?;
            if !(MIN_MEMORY..=MAX_MEMORY).contains(&bytes) {
                return Err(SpecError::at(
                    "limits.memory",
                    "must be between 6m and 1024g",
                ));
            }
            limits.memory = bytes;
        }
        if let Some(c) = doc.cpus {
            if !(c.is_finite() && (0.01..=1024.0).contains(&c)) {
                return Err(SpecError::at(
                    "limits.cpus",
                    "must be between 0.01 and 1024",
                ));
            }
            limits.cpus = c;
        }
        if let Some(t) = &doc.timeout {
            let d = parse_duration(&t.as_text()).map_err(|e| SpecError::at("limits.timeout", e))?;
            if d < Duration::from_millis(100) || d > MAX_TIMEOUT {
                return Err(SpecError::at(
                    "limits.timeout",
                    "must be between 100ms and 168h",
                ));
            }
            limits.timeout = d;
        }
        if let Some(p) = doc.pids {
            if !(8..=1_000_000).contains(&p) {
                return Err(SpecError::at(
                    "limits.pids",
                    "must be between 8 and 1000000",
                ));
            }
            limits.pids = p;
        }
        if let Some(n) = doc.network {
            limits.network = n;
        }
        Ok(limits)
    }

    fn validate_retry(&self) -> Result<Retry, SpecError> {
        let mut retry = Retry {
            attempts: 1,
            backoff: Duration::from_secs(10),
        };
        let Some(doc) = &self.retry else {
            return Ok(retry);
        };
        if let Some(l) = doc.lost_attempts {
            if !(1..=MAX_LOST_ATTEMPTS).contains(&l) {
                return Err(SpecError::at(
                    "retry.lost_attempts",
                    format!("must be between 1 and {MAX_LOST_ATTEMPTS}"),
                ));
            }
        }
        if let Some(a) = doc.attempts {
            if !(1..=MAX_ATTEMPTS).contains(&a) {
                return Err(SpecError::at(
                    "retry.attempts",
                    format!("must be between 1 and {MAX_ATTEMPTS}"),
                ));
            }
            retry.attempts = a as u32;
        }
        if let Some(b) = &doc.backoff {
            let d = parse_duration(&b.as_text()).map_err(|e| SpecError::at("retry.backoff", e))?;
            if d > MAX_BACKOFF {
                return Err(SpecError::at("retry.backoff", "must be at most 24h"));
            }
            retry.backoff = d;
        }
        Ok(retry)
    }
}

fn valid_user(u: &str) -> bool {
    if u == "root" {
        return true;
    }
    let mut parts = u.split(':');
    let numeric = |p: Option<&str>| {
        p.is_some_and(|p| !p.is_empty() && p.len() <= 10 && p.bytes().all(|b| b.is_ascii_digit()))
    };
    match (parts.next(), parts.next(), parts.next()) {
        (uid, None, None) => numeric(uid),
        (uid, Some(gid), None) => numeric(uid) && numeric(Some(gid)),
        _ => false,
    }
}

fn validate_storage(storage: &Storage) -> Result<(), SpecError> {
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

/// A valid sync action name (Keboola's `action` in `config.json`):
/// letters, digits, `-`, `_`, `.`, at most 64; not `run`, which is a job.
pub fn valid_action(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name != "run"
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
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

/// Replaces Keboola shared-code placeholders in `params`: a string that is
/// exactly `{{ id }}` (spaces optional) becomes the row's code as it is (a
/// string or a list of lines), an array item likewise; inside a longer
/// string the code is put in as text (lines joined by `\n`). Only the
/// `rows` given (id → code) are replaced.
pub fn apply_shared_code(params: &mut Map<String, Value>, rows: &[(String, Value)]) {
    fn as_text(code: &Value) -> String {
        match code {
            Value::String(s) => s.clone(),
            Value::Array(a) => a
                .iter()
                .map(|l| l.as_str().map_or_else(|| l.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join("\n"),
            other => other.to_string(),
        }
    }
    fn whole(s: &str, rows: &[(String, Value)]) -> Option<Value> {
        let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?.trim();
        rows.iter()
            .find(|(id, _)| id == inner)
            .map(|(_, c)| c.clone())
    }
    fn walk(v: &mut Value, rows: &[(String, Value)]) {
        match v {
            Value::String(s) => {
                if let Some(code) = whole(s, rows) {
                    *v = code;
                    return;
                }
                for (id, code) in rows {
                    for p in [format!("{{{{ {id} }}}}"), format!("{{{{{id}}}}}")] {
                        if s.contains(&p) {
                            *s = s.replace(&p, &as_text(code));
                        }
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, rows)),
            Value::Object(m) => m.values_mut().for_each(|x| walk(x, rows)),
            _ => {}
        }
    }
    for v in params.values_mut() {
        walk(v, rows);
    }
}

/// Calls `f` on every map of a spec (as JSON) that may hold `#` secrets:
/// `parameters`, `authorization` and each row's `parameters`.
pub fn visit_secret_maps<E, F>(spec: &mut Value, mut f: F) -> Result<(), E>
where
    F: FnMut(&mut Map<String, Value>) -> Result<(), E>,
{
    let Some(obj) = spec.as_object_mut() else {
        return Ok(());
    };
    for key in ["parameters", "authorization"] {
        if let Some(Value::Object(m)) = obj.get_mut(key) {
            f(m)?;
        }
    }
    if let Some(Value::Array(rows)) = obj.get_mut("rows") {
        for row in rows {
            if let Some(Value::Object(m)) = row.get_mut("parameters") {
                f(m)?;
            }
        }
    }
    Ok(())
}

/// Collects every value under a key starting with `#`, at any depth.
pub fn secret_values(params: &Map<String, Value>) -> Vec<String> {
    fn walk(v: &Value, secret: bool, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    walk(v, secret || k.starts_with('#'), out);
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, secret, out)),
            Value::String(s) if secret && !s.is_empty() => out.push(s.clone()),
            Value::Number(n) if secret => out.push(n.to_string()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (k, v) in params {
        walk(v, k.starts_with('#'), &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> SpecError {
        Spec::parse(text).expect_err("should fail")
    }

    #[test]
    fn minimal_spec_gets_locked_down_defaults() {
        let (_, spec) = Spec::parse("image: busybox").expect("parses");
        assert_eq!(spec.user, DEFAULT_USER);
        assert_eq!(spec.limits.network, Network::None);
        assert_eq!(spec.pull, PullPolicy::IfMissing);
        assert_eq!(spec.retry.attempts, 1);
    }

    #[test]
    fn full_spec_from_yaml_and_json() {
        let yaml = r##"
image: registry.example/team/app:1.4
command: ["python3", "/code/main.py"]
env: {LOG_LEVEL: info}
parameters:
  url: https://example.com
  "#token": secret
storage:
  input:
    tables:
      - source: in.c-main.customers
        destination: customers.csv
        columns: [id, name]
        where_column: country
        where_values: [CZ, SK]
        where_operator: eq
        changed_since: "-7 days"
        limit: 1000
    files:
      - tags: [model]
        limit: 1
  output:
    tables:
      - source: result.csv
        destination: out.c-main.result
        incremental: true
        primary_key: [id]
    files:
      - source: report.pdf
        tags: [report]
limits: {memory: 256m, cpus: 1.0, timeout: 1h, pids: 512, network: none}
pull: if-missing
retry: {attempts: 3, backoff: 10s}
user: "65534:65534"
"##;
        let (doc, spec) = Spec::parse(yaml).expect("parses");
        assert_eq!(spec.limits.memory, 256 << 20);
        assert_eq!(spec.retry.attempts, 3);
        assert_eq!(secret_values(&spec.parameters), vec!["secret".to_string()]);
        // Round trip through JSON gives the same spec.
        let json = serde_json::to_string(&doc).expect("json");
        let (_, again) = Spec::parse(&json).expect("parses");
        assert_eq!(spec, again);
    }

    #[test]
    fn errors_name_the_key_path() {
        let e = err("image: x\nlimits: {memroy: 1g}");
        assert_eq!(e.path, "limits.memroy");
        assert!(e.message.contains("memroy"), "{e}");
        let e = err("image: x\nstorage: {input: {tables: [{source: a, bogus: 1}]}}");
        assert_eq!(e.path, "storage.input.tables[0].bogus");
        assert!(e.message.contains("bogus"));
        assert_eq!(
            err("image: x\nlimits: {memory: lots}").path,
            "limits.memory"
        );
        assert_eq!(err("image: x\nlimits: {memory: 1k}").path, "limits.memory");
        assert_eq!(err("image: x\nlimits: {cpus: 0}").path, "limits.cpus");
        assert_eq!(
            err("image: x\nlimits: {timeout: 30d}").path,
            "limits.timeout"
        );
        assert_eq!(err("image: x\nlimits: {pids: 0}").path, "limits.pids");
        assert_eq!(
            err("image: x\nlimits: {network: host}").path,
            "limits.network"
        );
        assert_eq!(err("image: ''").path, "image");
        assert_eq!(err("command: [x]").path, "image");
        assert_eq!(err("image: x\nuser: nobody").path, "user");
        assert_eq!(
            err("image: x\nenv: {KBC_DATADIR: /x}").path,
            "env.KBC_DATADIR"
        );
        assert_eq!(err("image: x\nretry: {attempts: 0}").path, "retry.attempts");
        assert_eq!(err("image: x\npull: sometimes").path, "pull");
        assert_eq!(
            err("image: x\nstorage: {output: {files: [{source: ../etc/passwd}]}}").path,
            "storage.output.files[0].source"
        );
        assert_eq!(err("[1, 2]").path, "spec");
        assert_eq!(err("image: [unclosed").path, "spec");
    }

    #[test]
    fn nested_secrets_are_found() {
        let params: Map<String, Value> =
            serde_json::from_str(r##"{"a": 1, "#b": "x", "c": {"#d": ["y", 5]}, "e": "plain"}"##)
                .expect("json");
        let mut found = secret_values(&params);
        found.sort();
        assert_eq!(found, vec!["5", "x", "y"]);
    }
}
