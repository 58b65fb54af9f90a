//! Input and output mapping (Keboola's Common Interface): what a job reads
//! from Storage into `/data/in`, and what it wrote to `/data/out` that
//! becomes table versions and files.
//!
//! Nothing from the container is trusted: outputs are read only after it
//! stopped, without following symlinks; anything but regular files and
//! (for sliced tables) folders of regular files is refused.

use crate::csvscan::Dialect;
use crate::read::{self, Staged};
use crate::tables::{CsvInput, DeleteWhere, LoadOptions};
use crate::{new_key, OutputLimits, ReadFilter, Result, Storage, StorageError};
use futures_util::StreamExt;
use gantry_core::spec::{check_file_name, InputMapping, OutputMapping, OutputTable, WhereOperator};
use gantry_core::{ProjectId, TableId};
use gantry_store::{NewFile, Outputs, Segment};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

mod collecting;
mod files;
mod staging;

pub use staging::StagedInputs;

/// Outputs ready to commit, and the objects written for them.
#[derive(Debug, Default)]
pub struct Collected {
    pub outputs: Outputs,
    pub fresh_segments: Vec<Segment>,
    pub fresh_files: Vec<String>,
}

/// Largest manifest read from a container.
const MAX_MANIFEST: u64 = 1 << 20;

/// Keboola's manifests show times to the second.
use gantry_core::time::rfc3339_seconds as rfc3339;

use gantry_core::time::now_ms;

/// `-7 days`, `-2 hours`, `-30 minutes` (relative to now) or an RFC 3339 time.
/// The read an input table mapping asks for (`at` names it in errors).
pub fn read_filter(m: &gantry_core::spec::InputTable, at: &str) -> Result<ReadFilter> {
    Ok(ReadFilter {
        columns: m.columns.clone(),
        where_column: m.where_column.clone(),
        where_values: m.where_values.clone(),
        where_operator: m.where_operator.unwrap_or_default(),
        changed_since: m
            .changed_since
            .as_deref()
            .map(|c| parse_changed_since(c, now_ms()))
            .transpose()
            .map_err(|e| StorageError::Invalid(format!("{at}: {e}")))?,
        limit: m.limit,
    })
}

pub fn parse_changed_since(text: &str, now_ms: i64) -> Result<i64, String> {
    let t = text.trim();
    if let Ok(time) = humantime::parse_rfc3339_weak(t) {
        return Ok(time
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64));
    }
    let rel = t.strip_prefix('-').unwrap_or(t).trim();
    let split = rel.find(|c: char| !c.is_ascii_digit()).unwrap_or(rel.len());
    let (n, unit) = rel.split_at(split);
    let n: i64 = n
        .parse()
        .map_err(|_| format!("changed_since '{text}': use e.g. '-7 days' or an RFC 3339 time"))?;
    let unit_ms: i64 = match unit.trim().trim_end_matches('s') {
        "second" | "sec" | "" => 1_000,
        "minute" | "min" | "m" => 60_000,
        "hour" | "h" => 3_600_000,
        "day" | "d" => 86_400_000,
        "week" | "w" => 604_800_000,
        _ => {
            return Err(format!(
                "changed_since '{text}': unknown unit '{}'",
                unit.trim()
            ))
        }
    };
    Ok(now_ms - n * unit_ms)
}

#[cfg(test)]
mod tests {
    use super::parse_changed_since;

    #[test]
    fn changed_since_forms() {
        let now = 1_000_000_000_000;
        assert_eq!(
            parse_changed_since("-7 days", now),
            Ok(now - 7 * 86_400_000)
        );
        assert_eq!(parse_changed_since("-1 hour", now), Ok(now - 3_600_000));
        assert_eq!(parse_changed_since("-30 minutes", now), Ok(now - 1_800_000));
        assert_eq!(
            parse_changed_since("2001-09-09T01:46:40Z", now),
            Ok(1_000_000_000_000)
        );
        assert!(parse_changed_since("yesterday", now).is_err());
        assert!(parse_changed_since("-3 fortnights", now).is_err());
    }
}
