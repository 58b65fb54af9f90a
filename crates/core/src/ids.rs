//! Typed, validated identifiers. Built at parse time, so a value of these
//! types is always safe to use as a path segment, label value or SQL parameter.

use serde::{Deserialize, Serialize};
use std::fmt;

fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !s.starts_with('.')
}

macro_rules! name_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                if valid_name(&s, $max) {
                    Ok(Self(s))
                } else {
                    Err(format!(
                        concat!("invalid ", $what, " '{}': use 1-", $max, " letters, digits, '-', '_' or '.', not starting with '.'"),
                        s.chars().take(80).collect::<String>()
                    ))
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::try_from(s.to_string())
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_id!(
    /// A project (tenant) name, e.g. `default`.
    ProjectId, "project id", 64
);
name_id!(
    /// A configuration's id within its project.
    ConfigId, "configuration id", 128
);

name_id!(
    /// A schedule's id within its project.
    ScheduleId, "schedule id", 128
);

name_id!(
    /// A pipeline's id within its project.
    PipelineId, "pipeline id", 128
);

impl ProjectId {
    pub fn default_project() -> Self {
        Self("default".to_string())
    }
}

/// A job id: a UUIDv7, so ids sort by creation time (used as list cursors).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(uuid::Uuid);

impl JobId {
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl TryFrom<String> for JobId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl std::str::FromStr for JobId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        uuid::Uuid::parse_str(s).map(Self).map_err(|_| {
            format!(
                "invalid job id '{}'",
                s.chars().take(80).collect::<String>()
            )
        })
    }
}

impl From<JobId> for String {
    fn from(v: JobId) -> String {
        v.to_string()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.as_hyphenated().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_reject_paths_and_sql() {
        assert!("etl-daily_1.v2".parse::<ConfigId>().is_ok());
        for bad in [
            "",
            "../x",
            "a/b",
            "x'; DROP TABLE jobs;--",
            ".hidden",
            "a b",
        ] {
            assert!(bad.parse::<ConfigId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn job_ids_sort_by_creation() {
        let a = JobId::new();
        let b = JobId::new();
        assert!(a.to_string() < b.to_string());
        assert_eq!(a.to_string().parse::<JobId>(), Ok(a));
        assert!("nope".parse::<JobId>().is_err());
    }
}

/// A table id, `<stage>.c-<bucket>.<name>` with stage `in` or `out`.
/// Validated so it is never a path or SQL fragment.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TableId(String);

impl TableId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn stage(&self) -> &str {
        self.0.split('.').next().unwrap_or("")
    }

    /// The bucket, e.g. `c-main`.
    pub fn bucket(&self) -> &str {
        self.0.split('.').nth(1).unwrap_or("")
    }

    pub fn name(&self) -> &str {
        self.0.split('.').nth(2).unwrap_or("")
    }
}

fn valid_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 96
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl TryFrom<String> for TableId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('.').collect();
        let ok = parts.len() == 3
            && matches!(parts[0], "in" | "out")
            && parts[1].strip_prefix("c-").is_some_and(valid_part)
            && valid_part(parts[2]);
        if ok {
            Ok(Self(s))
        } else {
            Err(format!(
                "invalid table id '{}': use <stage>.c-<bucket>.<name> with stage 'in' or 'out' and letters, digits, '_' or '-' (e.g. in.c-main.customers)",
                s.chars().take(120).collect::<String>()
            ))
        }
    }
}

impl std::str::FromStr for TableId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::try_from(s.to_string())
    }
}

impl From<TableId> for String {
    fn from(v: TableId) -> String {
        v.0
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod table_tests {
    use super::TableId;

    #[test]
    fn table_ids() {
        let t: TableId = "in.c-main.customers".parse().expect("valid");
        assert_eq!(
            (t.stage(), t.bucket(), t.name()),
            ("in", "c-main", "customers")
        );
        for bad in [
            "",
            "x.c-main.t",
            "in.main.t",
            "in.c-main",
            "in.c-main.t.x",
            "in.c-../t",
            "in.c-main.t;DROP",
            "in.c-.t",
            "in.c-main.",
        ] {
            assert!(bad.parse::<TableId>().is_err(), "{bad}");
        }
    }
}

/// A token's public id: the first 12 hex digits of its hash, lower case.
/// It names a token (to list or revoke it), never authenticates.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TokenId(String);

impl TokenId {
    /// Hex digits of the hash that make the public id.
    pub const LEN: usize = 12;

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The public id of a token whose hash (hex) is `hash`.
    pub fn of_hash(hash: &str) -> Option<Self> {
        hash.get(..Self::LEN).and_then(|h| h.parse().ok())
    }
}

impl TryFrom<String> for TokenId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.len() == Self::LEN && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(s.to_ascii_lowercase()))
        } else {
            Err(format!(
                "invalid token id '{}': use the 12 hex digits `gantry tokens list` shows",
                s.chars().take(80).collect::<String>()
            ))
        }
    }
}

impl std::str::FromStr for TokenId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::try_from(s.to_string())
    }
}

impl From<TokenId> for String {
    fn from(v: TokenId) -> String {
        v.0
    }
}

impl PartialEq<&str> for TokenId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stored file's id: a number the store assigns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FileId(pub i64);

impl FileId {
    pub fn get(self) -> i64 {
        self.0
    }
}

impl std::str::FromStr for FileId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse().map(Self).map_err(|_| {
            format!(
                "invalid file id '{}': a file id is a number",
                s.chars().take(32).collect::<String>()
            )
        })
    }
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A worker's id: 1-128 letters, digits, '-', '_' or '.', not `.` or `..`
/// (a worker names itself; `gantry worker --id` takes up to 64, and its
/// sync-action worker adds `-actions`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkerId(String);

impl WorkerId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for WorkerId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if ok {
            Ok(Self(s))
        } else {
            Err(format!(
                "invalid worker id '{}': use 1-128 letters, digits, '-', '_' or '.'",
                s.chars().take(80).collect::<String>()
            ))
        }
    }
}

impl std::str::FromStr for WorkerId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::try_from(s.to_string())
    }
}

impl From<WorkerId> for String {
    fn from(v: WorkerId) -> String {
        v.0
    }
}

impl PartialEq<&str> for WorkerId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod new_id_tests {
    use super::*;

    #[test]
    fn token_ids_are_twelve_hex_digits_lower_cased() {
        let id: TokenId = "ABCDEF012345".parse().expect("id");
        assert_eq!(id.as_str(), "abcdef012345");
        assert!("abc".parse::<TokenId>().is_err());
        assert!("zzzzzzzzzzzz".parse::<TokenId>().is_err());
        assert_eq!(
            TokenId::of_hash("0123456789abcdef0123").map(String::from),
            Some("0123456789ab".to_string())
        );
        assert_eq!(
            serde_json::to_string(&id).expect("json"),
            "\"abcdef012345\""
        );
    }

    #[test]
    fn file_ids_are_numbers_on_the_wire() {
        let id: FileId = "42".parse().expect("id");
        assert_eq!(serde_json::to_string(&id).expect("json"), "42");
        assert_eq!(serde_json::from_str::<FileId>("7").expect("id"), FileId(7));
        assert!("x".parse::<FileId>().is_err());
        assert_eq!(id.to_string(), "42");
    }

    #[test]
    fn worker_ids_are_safe_names() {
        for ok in ["w1", "host.local-actions", ".hidden", "a_b"] {
            assert!(ok.parse::<WorkerId>().is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(129)] {
            assert!(bad.parse::<WorkerId>().is_err(), "{bad}");
        }
    }
}
