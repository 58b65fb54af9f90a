//! The domain form: the validated [`Spec`] a job runs with, its limits and
//! retry policy, parsing and validation, and the parameter helpers (shared
//! code, secrets).

use super::*;

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
    pub storage: StorageMapping,
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
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::Display,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
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
        self.into()
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
