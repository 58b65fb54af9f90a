//! The wire form: the spec exactly as a user writes it (unknown keys are
//! errors), before validation.

use super::*;

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
    #[serde(default, skip_serializing_if = "StorageMapping::is_empty")]
    pub storage: StorageMapping,
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
    pub(crate) fn as_text(&self) -> String {
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

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, strum::IntoStaticStr,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Network {
    #[default]
    None,
    Bridge,
}

impl Network {
    pub fn as_str(self) -> &'static str {
        self.into()
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
    #[serde(default, skip_serializing_if = "StorageMapping::is_empty")]
    pub storage: StorageMapping,
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
