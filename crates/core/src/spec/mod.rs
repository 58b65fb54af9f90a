//! The job spec: parsed from YAML or JSON into a wire document (which rejects
//! unknown keys), then validated into the domain [`Spec`]. Every error names
//! the key path it is about, e.g. `limits.memory`.

use crate::units::{parse_duration, parse_size};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

mod domain;
mod mapping;
mod wire;

pub use domain::*;
pub use mapping::*;
pub use wire::*;

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
