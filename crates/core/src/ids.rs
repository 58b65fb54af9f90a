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
