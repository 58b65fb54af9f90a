//! Gantry's one timestamp convention: records hold milliseconds since the
//! Unix epoch (`i64`), the wire shows RFC 3339 in UTC. The only clock in
//! this crate is [`now_ms`]; everything else takes the time it is given.

use chrono::{DateTime, SecondsFormat, Utc};

/// Milliseconds since the Unix epoch, now (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms.max(0)).unwrap_or(DateTime::UNIX_EPOCH)
}

/// A time on the wire: RFC 3339 in UTC with milliseconds
/// (`2024-05-01T12:00:00.123Z`). Times before 1970 show as the epoch.
pub fn rfc3339(ms: i64) -> String {
    utc(ms).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// RFC 3339 in UTC to the second (`2024-05-01T12:00:00Z`): what Keboola's
/// manifests carry.
pub fn rfc3339_seconds(ms: i64) -> String {
    utc(ms).to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_millis_and_seconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339_seconds(1_700_000_000_123), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(-5), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn now_is_after_2020() {
        assert!(now_ms() > 1_577_836_800_000);
    }
}
