//! Turning container output into events: splitting bytes into bounded lines,
//! reading structured (JSON / GELF) lines, and hiding secret values.

use aho_corasick::AhoCorasick;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[serde(rename_all = "lowercase")]
#[strum(
    serialize_all = "lowercase",
    parse_err_ty = String,
    parse_err_fn = unknown_stream
)]
pub enum Stream {
    Stdout,
    Stderr,
    /// Gantry's own messages about the job (pulls, retries, dropped output).
    System,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

fn unknown_stream(s: &str) -> String {
    format!("unknown stream '{s}'")
}

/// One log line ready to be stored (sequence number and time come from the store).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub stream: Stream,
    pub level: String,
    pub message: String,
    /// The whole JSON object, when the line was structured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl LogLine {
    pub fn system(level: &str, message: impl Into<String>) -> Self {
        Self {
            stream: Stream::System,
            level: level.to_string(),
            message: message.into(),
            data: None,
        }
    }
}

/// Reads one (already redacted) line. A JSON object with `message`/`level`,
/// or GELF `short_message`/`level` (syslog numbers), is stored structured.
pub fn parse_line(stream: Stream, line: String) -> LogLine {
    let default_level = if stream == Stream::Stderr {
        "warning"
    } else {
        "info"
    };
    let trimmed = line.trim_start();
    if trimmed.starts_with('{') {
        if let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(trimmed) {
            let message = obj
                .get("message")
                .or_else(|| obj.get("short_message"))
                .and_then(|m| m.as_str().map(str::to_string));
            if let Some(message) = message {
                let level = obj
                    .get("level")
                    .map(level_name)
                    .unwrap_or_else(|| default_level.to_string());
                return LogLine {
                    stream,
                    level,
                    message,
                    data: Some(Value::Object(obj)),
                };
            }
        }
    }
    LogLine {
        stream,
        level: default_level.to_string(),
        message: line,
        data: None,
    }
}

fn level_name(v: &Value) -> String {
    match v {
        // GELF uses syslog severities.
        Value::Number(n) => match n.as_i64().unwrap_or(6) {
            i64::MIN..=3 => "error",
            4 => "warning",
            5 | 6 => "info",
            _ => "debug",
        }
        .to_string(),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "warn" | "warning" => "warning".to_string(),
            "err" | "error" | "critical" | "fatal" | "emergency" | "alert" => "error".to_string(),
            "debug" | "trace" => "debug".to_string(),
            _ => "info".to_string(),
        },
        _ => "info".to_string(),
    }
}

pub const REDACTED: &str = "[hidden]";

/// Replaces secret values, in their raw, base64 and JSON-escaped forms.
#[derive(Clone, Debug)]
pub struct Redactor {
    matcher: Option<AhoCorasick>,
}

impl Redactor {
    pub fn new(secrets: &[String]) -> Self {
        let mut patterns: Vec<String> = Vec::new();
        for s in secrets.iter().filter(|s| !s.is_empty()) {
            patterns.push(s.clone());
            let json = serde_json::to_string(s).unwrap_or_default();
            let json = json.trim_matches('"').to_string();
            patterns.push(json);
            for engine in [
                &base64::engine::general_purpose::STANDARD,
                &base64::engine::general_purpose::STANDARD_NO_PAD,
            ] {
                patterns.push(engine.encode(s));
            }
            patterns.push(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s));
        }
        patterns.sort();
        patterns.dedup();
        // Longest first, so a secret that contains another is hidden whole.
        patterns.sort_by_key(|p| std::cmp::Reverse(p.len()));
        let matcher = (!patterns.is_empty()).then(|| {
            AhoCorasick::builder()
                .match_kind(aho_corasick::MatchKind::LeftmostLongest)
                .build(&patterns)
                .ok()
        });
        Self {
            matcher: matcher.flatten(),
        }
    }

    pub fn none() -> Self {
        Self { matcher: None }
    }

    pub fn redact(&self, text: &str) -> String {
        match &self.matcher {
            Some(m) if m.is_match(text) => m.replace_all(text, &vec![REDACTED; m.patterns_len()]),
            _ => text.to_string(),
        }
    }

    pub fn redact_bytes<'a>(&self, bytes: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        match &self.matcher {
            Some(m) if m.is_match(bytes) => std::borrow::Cow::Owned(
                m.replace_all_bytes(bytes, &vec![REDACTED.as_bytes(); m.patterns_len()]),
            ),
            _ => std::borrow::Cow::Borrowed(bytes),
        }
    }
}

/// Splits a byte stream into lines of at most `max_line` bytes. A longer line
/// is cut into pieces, so memory stays bounded whatever the container prints.
#[derive(Debug)]
pub struct LineSplitter {
    buf: Vec<u8>,
    max_line: usize,
}

impl LineSplitter {
    pub fn new(max_line: usize) -> Self {
        Self {
            buf: Vec::new(),
            max_line: max_line.max(1),
        }
    }

    /// Feeds bytes; calls `emit` with each complete line (without `\n`/`\r\n`).
    pub fn push(&mut self, mut data: &[u8], emit: &mut impl FnMut(&[u8])) {
        while !data.is_empty() {
            match memchr(b'\n', data) {
                Some(pos) => {
                    let (line, rest) = data.split_at(pos);
                    self.append(line, emit);
                    let mut full = std::mem::take(&mut self.buf);
                    if full.last() == Some(&b'\r') {
                        full.pop();
                    }
                    emit(&full);
                    full.clear();
                    self.buf = full;
                    data = &rest[1..];
                }
                None => {
                    self.append(data, emit);
                    data = &[];
                }
            }
        }
    }

    fn append(&mut self, mut data: &[u8], emit: &mut impl FnMut(&[u8])) {
        while self.buf.len() + data.len() > self.max_line {
            let take = self.max_line - self.buf.len();
            self.buf.extend_from_slice(&data[..take]);
            emit(&self.buf);
            self.buf.clear();
            data = &data[take..];
        }
        self.buf.extend_from_slice(data);
    }

    /// Emits what is left at the end of the stream.
    pub fn finish(&mut self, emit: &mut impl FnMut(&[u8])) {
        if !self.buf.is_empty() {
            emit(&self.buf);
            self.buf.clear();
        }
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// The last lines of a stream, bounded in bytes, for error messages.
#[derive(Debug, Default)]
pub struct Tail {
    lines: std::collections::VecDeque<String>,
    bytes: usize,
}

impl Tail {
    const MAX_LINES: usize = 20;
    const MAX_BYTES: usize = 4096;

    pub fn push(&mut self, line: &str) {
        let line: String = line.chars().take(Self::MAX_BYTES).collect();
        self.bytes += line.len();
        self.lines.push_back(line);
        while self.lines.len() > Self::MAX_LINES
            || (self.bytes > Self::MAX_BYTES && self.lines.len() > 1)
        {
            if let Some(l) = self.lines.pop_front() {
                self.bytes -= l.len();
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.lines.iter().all(|l| l.trim().is_empty())
    }

    pub fn text(&self) -> String {
        let v: Vec<&str> = self.lines.iter().map(String::as_str).collect();
        v.join("\n").trim().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> Vec<String> {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut |l| {
                out.push(String::from_utf8_lossy(l).into_owned())
            });
        }
        s.finish(&mut |l| out.push(String::from_utf8_lossy(l).into_owned()));
        out
    }

    #[test]
    fn splits_across_chunks_and_caps_length() {
        assert_eq!(
            split(100, &[b"ab", b"c\nd", b"e\r\n", b"tail"]),
            vec!["abc", "de", "tail"]
        );
        assert_eq!(
            split(4, &[b"abcdefghij\nxy\n"]),
            vec!["abcd", "efgh", "ij", "xy"]
        );
        assert_eq!(split(4, &[b"\n\n"]), vec!["", ""]);
    }

    #[test]
    fn structured_lines() {
        let l = parse_line(
            Stream::Stdout,
            r#"{"message": "hi", "level": "error", "n": 1}"#.into(),
        );
        assert_eq!((l.level.as_str(), l.message.as_str()), ("error", "hi"));
        assert!(l.data.is_some());
        let g = parse_line(
            Stream::Stdout,
            r#"{"short_message": "gelf", "level": 4}"#.into(),
        );
        assert_eq!((g.level.as_str(), g.message.as_str()), ("warning", "gelf"));
        let plain = parse_line(Stream::Stderr, "{not json".into());
        assert_eq!((plain.level.as_str(), plain.data), ("warning", None));
        let no_msg = parse_line(Stream::Stdout, r#"{"a": 1}"#.into());
        assert!(no_msg.data.is_none());
    }

    #[test]
    fn redacts_raw_base64_and_json_forms() {
        let secret = "p@ss\"w/rd".to_string();
        let r = Redactor::new(std::slice::from_ref(&secret));
        let b64 = base64::engine::general_purpose::STANDARD.encode(&secret);
        let json = serde_json::to_string(&secret).expect("json");
        for text in [
            format!("x {secret} y"),
            format!("b64={b64}"),
            format!("{{\"t\": {json}}}"),
        ] {
            let out = r.redact(&text);
            assert!(out.contains(REDACTED), "{out}");
            assert!(!out.contains(&secret) && !out.contains(&b64), "{out}");
        }
        assert_eq!(Redactor::none().redact("abc"), "abc");
    }

    #[test]
    fn tail_keeps_last_lines_bounded() {
        let mut t = Tail::default();
        for i in 0..100 {
            t.push(&format!("line {i}"));
        }
        assert!(t.text().ends_with("line 99"));
        assert!(!t.text().contains("line 79\n"));
    }
}
