//! What a worker applied to a job's container, recorded on the job (and
//! shown as the job's `limits`). The JSON form is the stored one: records
//! written by earlier versions read back as they were (keys this version
//! does not know are kept in `other`).

use crate::job::JobStatus;
use crate::spec::{Loosening, Network};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedLimits {
    /// Bytes.
    pub memory: u64,
    /// Bytes of memory plus swap: the same as `memory` (no swap).
    pub memory_swap: u64,
    pub cpus: f64,
    pub timeout_ms: u64,
    pub pids: i64,
    pub network: Network,
    /// The user the container ran as (`uid:gid` or a name).
    pub user: String,
    pub read_only_root: bool,
    /// The defaults the project let the spec loosen (absent in records
    /// written before loosenings existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loosened: Option<Vec<Loosening>>,
    /// Bytes of the `/tmp` tmpfs.
    pub tmp_size: u64,
    /// Linux capabilities kept: `none`.
    pub capabilities: String,
    pub no_new_privileges: bool,
    /// Whether the container was started for the job or taken warm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Start>,
    /// With processors: each step that ran, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<StepRecord>>,
    /// Keys this version does not know, kept as read.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// How an attempt's container was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Start {
    /// Created and started for this job.
    Cold,
    /// Taken from a warm pool.
    Warm,
}

/// One step of a job with processors (`processors.before[0]`, `component`...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: String,
    pub image: String,
    pub image_digest: Option<String>,
    pub status: JobStatus,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) {
        let typed: AppliedLimits = serde_json::from_str(text).expect(text);
        assert_eq!(serde_json::to_string(&typed).expect("json"), text);
    }

    #[test]
    fn stored_records_read_and_write_back_byte_for_byte() {
        // What workers write today (with a step), before `start`, before
        // `loosened`, and with a key from elsewhere.
        round_trip(
            r#"{"memory":536870912,"memory_swap":536870912,"cpus":1.0,"timeout_ms":3600000,"pids":512,"network":"none","user":"1000:1000","read_only_root":true,"loosened":["root-user","bridge-network"],"tmp_size":268435456,"capabilities":"none","no_new_privileges":true,"start":"warm","steps":[{"step":"component","image":"busybox","image_digest":null,"status":"succeeded"}]}"#,
        );
        round_trip(
            r#"{"memory":16777216,"memory_swap":16777216,"cpus":0.5,"timeout_ms":1000,"pids":64,"network":"bridge","user":"root","read_only_root":false,"loosened":[],"tmp_size":268435456,"capabilities":"none","no_new_privileges":true}"#,
        );
        round_trip(
            r#"{"memory":1,"memory_swap":1,"cpus":1.0,"timeout_ms":1,"pids":1,"network":"none","user":"1000:1000","read_only_root":true,"tmp_size":1,"capabilities":"none","no_new_privileges":true,"later":{"x":1}}"#,
        );
    }
}
