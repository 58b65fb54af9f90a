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
