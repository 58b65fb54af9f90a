//! Sizes (`256m`) and durations (`10s`) as the spec writes them.

use std::time::Duration;

/// Parses a size: a whole number of bytes, or a number with a `k`, `m` or `g`
/// suffix (powers of 1024; an optional trailing `b`/`i`/`ib` is accepted).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix("ib")
        .or_else(|| t.strip_suffix('b'))
        .unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1u64 << 20),
        Some('g') => (&t[..t.len() - 1], 1u64 << 30),
        Some(c) if c.is_ascii_digit() => (t, 1u64),
        _ => {
            return Err(format!(
                "invalid size '{text}': use a number with a k, m or g suffix, e.g. 256m"
            ))
        }
    };
    let value: f64 = num.trim().parse().map_err(|_| {
        format!("invalid size '{text}': use a number with a k, m or g suffix, e.g. 256m")
    })?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("invalid size '{text}': must be a positive number"));
    }
    let bytes = value * mult as f64;
    if bytes > u64::MAX as f64 / 2.0 {
        return Err(format!("invalid size '{text}': too large"));
    }
    Ok(bytes as u64)
}

/// Parses a duration: a number with an `ms`, `s`, `m` or `h` suffix (a bare
/// number means seconds). Compound forms like `1h30m` are accepted too.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let err =
        || format!("invalid duration '{text}': use a number with ms, s, m or h, e.g. 10s or 1h");
    let t = text.trim();
    if t.is_empty() {
        return Err(err());
    }
    if let Ok(secs) = t.parse::<f64>() {
        return secs_to_duration(secs).ok_or_else(err);
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        if num_len == 0 {
            return Err(err());
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| err())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let factor = match rest[..unit_len].trim() {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(err()),
        };
        total += value * factor;
        rest = &rest[unit_len..];
    }
    secs_to_duration(total).ok_or_else(err)
}

fn secs_to_duration(secs: f64) -> Option<Duration> {
    (secs.is_finite() && (0.0..1e12).contains(&secs)).then(|| Duration::from_secs_f64(secs))
}

/// Formats a byte count the way the spec writes it, for messages.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)];
    for (suffix, unit) in UNITS {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    format!("{bytes}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256m"), Ok(256 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert!(parse_size("abc").is_err());
        assert!(parse_size("-5m").is_err());
        assert!(parse_size("").is_err());
        assert_eq!(format_size(256 << 20), "256m");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
    }
}
