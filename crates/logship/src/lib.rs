//! Log shipping: job events and Gantry's own log lines forwarded to GELF
//! (UDP, TCP) and syslog (RFC 5424 over UDP, TCP) receivers.
//!
//! Shipping never holds anything up: a record is offered to a bounded queue
//! per target with `try_send`, and a record that does not fit, or that a
//! target cannot take (a TCP receiver down), is dropped and counted
//! (`gantry_log_ship_dropped_total`). Job events arrive already redacted by
//! the log pipeline; Gantry's own lines never carry secrets.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Records waiting per target before new ones are dropped.
const QUEUE: usize = 10_000;
/// Largest GELF UDP chunk (payload included), as Graylog's inputs expect.
const GELF_CHUNK: usize = 8192;
/// GELF allows at most this many chunks per message.
const GELF_MAX_CHUNKS: usize = 128;
/// A syslog message over UDP is cut to this many bytes.
const SYSLOG_UDP_MAX: usize = 8192;

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("log shipping target {0:?}: expected gelf+udp://, gelf+tcp://, syslog+udp:// or syslog+tcp:// followed by host:port")]
    Scheme(String),
    #[error("log shipping target {0:?}: the address must be an IP address and port (e.g. 127.0.0.1:12201)")]
    Address(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Gelf,
    Syslog,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// One receiver, e.g. `gelf+udp://127.0.0.1:12201`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub format: Format,
    pub transport: Transport,
    pub addr: SocketAddr,
}

impl std::str::FromStr for Target {
    type Err = TargetError;
    fn from_str(s: &str) -> Result<Self, TargetError> {
        let (scheme, addr) = s
            .split_once("://")
            .ok_or_else(|| TargetError::Scheme(s.to_string()))?;
        let (format, transport) = match scheme {
            "gelf+udp" | "gelf" => (Format::Gelf, Transport::Udp),
            "gelf+tcp" => (Format::Gelf, Transport::Tcp),
            "syslog+udp" | "syslog" => (Format::Syslog, Transport::Udp),
            "syslog+tcp" => (Format::Syslog, Transport::Tcp),
            _ => return Err(TargetError::Scheme(s.to_string())),
        };
        let addr = addr
            .trim_end_matches('/')
            .parse()
            .map_err(|_| TargetError::Address(s.to_string()))?;
        Ok(Self {
            format,
            transport,
            addr,
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let format = match self.format {
            Format::Gelf => "gelf",
            Format::Syslog => "syslog",
        };
        let transport = match self.transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        };
        write!(f, "{format}+{transport}://{}", self.addr)
    }
}

/// Severity, as syslog numbers it (GELF uses the same levels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
    Debug = 7,
}

impl Severity {
    /// From a job event's or a tracing level's name.
    pub fn from_level(level: &str) -> Self {
        match level.to_ascii_lowercase().as_str() {
            "error" | "err" | "fatal" | "critical" | "crit" | "alert" | "emerg" => Self::Error,
            "warning" | "warn" => Self::Warning,
            "notice" => Self::Notice,
            "debug" | "trace" => Self::Debug,
            _ => Self::Info,
        }
    }
}

/// One line to ship, with its fields (job, project, configuration, attempt,
/// stream for job events; the event's fields for Gantry's own lines).
#[derive(Clone, Debug)]
pub struct Record {
    pub time: SystemTime,
    pub severity: Severity,
    pub message: String,
    /// Field names are `[a-z_]`; values are plain strings.
    pub fields: BTreeMap<&'static str, String>,
}

struct Shipper {
    queues: Vec<mpsc::Sender<Record>>,
}

static SHIPPER: OnceLock<Shipper> = OnceLock::new();

/// Starts one sender task per target (on the current tokio runtime). Called
/// once per process; later calls are ignored.
pub fn install(targets: &[Target]) {
    if targets.is_empty() {
        return;
    }
    let host = hostname();
    let queues = targets
        .iter()
        .map(|t| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(send_loop(t.clone(), host.clone(), rx));
            tx
        })
        .collect();
    let _ = SHIPPER.set(Shipper { queues });
}

/// Whether any target is installed (callers may skip building records).
pub fn enabled() -> bool {
    SHIPPER.get().is_some()
}

/// Offers a record to every target; never waits.
pub fn ship(record: Record) {
    let Some(s) = SHIPPER.get() else { return };
    for q in &s.queues {
        if q.try_send(record.clone()).is_err() {
            gantry_metrics::global().log_ship_dropped(1);
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "gantry".to_string())
}

async fn send_loop(target: Target, host: String, mut rx: mpsc::Receiver<Record>) {
    let metrics = gantry_metrics::global();
    match target.transport {
        Transport::Udp => {
            let bind: SocketAddr = if target.addr.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let sock = match tokio::net::UdpSocket::bind(bind).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(target = %target, error = %e, "cannot open a UDP socket for log shipping");
                    return;
                }
            };
            while let Some(r) = rx.recv().await {
                let datagrams = match target.format {
                    Format::Gelf => gelf_chunks(&gelf(&r, &host)),
                    Format::Syslog => {
                        let mut m = syslog(&r, &host).into_bytes();
                        m.truncate(SYSLOG_UDP_MAX);
                        vec![m]
                    }
                };
                for d in datagrams {
                    if sock.send_to(&d, target.addr).await.is_err() {
                        metrics.log_ship_dropped(1);
                        break;
                    }
                }
            }
        }
        Transport::Tcp => {
            let mut conn: Option<tokio::net::TcpStream> = None;
            let mut retry_at = tokio::time::Instant::now();
            let mut backoff = Duration::from_millis(100);
            while let Some(r) = rx.recv().await {
                if conn.is_none() && tokio::time::Instant::now() >= retry_at {
                    match tokio::time::timeout(
                        Duration::from_secs(2),
                        tokio::net::TcpStream::connect(target.addr),
                    )
                    .await
                    {
                        Ok(Ok(c)) => {
                            conn = Some(c);
                            backoff = Duration::from_millis(100);
                        }
                        _ => {
                            retry_at = tokio::time::Instant::now() + backoff;
                            backoff = (backoff * 2).min(Duration::from_secs(30));
                        }
                    }
                }
                let Some(c) = conn.as_mut() else {
                    metrics.log_ship_dropped(1);
                    continue;
                };
                let frame = match target.format {
                    // GELF over TCP: one JSON document, then a NUL byte.
                    Format::Gelf => {
                        let mut f = gelf(&r, &host).into_bytes();
                        f.push(0);
                        f
                    }
                    // RFC 6587 octet counting: "LEN SP MSG".
                    Format::Syslog => {
                        let m = syslog(&r, &host);
                        format!("{} {m}", m.len()).into_bytes()
                    }
                };
                let sent = tokio::time::timeout(Duration::from_secs(5), c.write_all(&frame)).await;
                if !matches!(sent, Ok(Ok(()))) {
                    conn = None;
                    metrics.log_ship_dropped(1);
                }
            }
        }
    }
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A GELF 1.1 document: fields as `_name` additional fields.
fn gelf(r: &Record, host: &str) -> String {
    let mut doc = serde_json::Map::new();
    doc.insert("version".into(), "1.1".into());
    doc.insert("host".into(), host.into());
    let short: String = r.message.lines().next().unwrap_or_default().to_string();
    if short.len() < r.message.len() {
        doc.insert("full_message".into(), r.message.clone().into());
    }
    doc.insert("short_message".into(), short.into());
    doc.insert(
        "timestamp".into(),
        serde_json::json!((unix_seconds(r.time) * 1000.0).round() / 1000.0),
    );
    doc.insert("level".into(), (r.severity as u8).into());
    for (k, v) in &r.fields {
        // `_id` is reserved by GELF.
        let name = if *k == "id" {
            "_gantry_id".to_string()
        } else {
            format!("_{k}")
        };
        doc.insert(name, v.clone().into());
    }
    serde_json::Value::Object(doc).to_string()
}

/// Splits a GELF document into UDP datagrams: whole if it fits, else GELF
/// chunks (magic 0x1e 0x0f, an 8-byte message id, sequence number and
/// count); a document past 128 chunks is cut to what fits.
fn gelf_chunks(doc: &str) -> Vec<Vec<u8>> {
    let bytes = doc.as_bytes();
    if bytes.len() <= GELF_CHUNK {
        return vec![bytes.to_vec()];
    }
    let body = GELF_CHUNK - 12;
    let id: [u8; 8] = rand::random();
    let parts: Vec<&[u8]> = bytes.chunks(body).take(GELF_MAX_CHUNKS).collect();
    let count = parts.len() as u8;
    parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| {
            let mut d = Vec::with_capacity(12 + part.len());
            d.extend_from_slice(&[0x1e, 0x0f]);
            d.extend_from_slice(&id);
            d.push(i as u8);
            d.push(count);
            d.extend_from_slice(part);
            d
        })
        .collect()
}

/// An RFC 5424 message: facility user (1), Gantry's fields as structured
/// data `[gantry@32473 ...]`, the message after a BOM-less space.
fn syslog(r: &Record, host: &str) -> String {
    let pri = 8 + r.severity as u8;
    let time = humantime::format_rfc3339_millis(r.time);
    let mut sd = String::new();
    if !r.fields.is_empty() {
        sd.push_str("[gantry@32473");
        for (k, v) in &r.fields {
            sd.push(' ');
            sd.push_str(k);
            sd.push_str("=\"");
            for c in v.chars() {
                if matches!(c, '"' | '\\' | ']') {
                    sd.push('\\');
                }
                sd.push(c);
            }
            sd.push('"');
        }
        sd.push(']');
    } else {
        sd.push('-');
    }
    // One line per message: newlines inside become spaces.
    let msg = r.message.replace(['\n', '\r'], " ");
    let pid = std::process::id();
    format!("<{pri}>1 {time} {host} gantry {pid} - {sd} {msg}")
}

/// A tracing layer that ships Gantry's own log lines (with their fields),
/// at the level the process logs at.
pub struct OwnLogs;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for OwnLogs {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if !enabled() {
            return;
        }
        let mut v = Visitor::default();
        event.record(&mut v);
        let mut fields: BTreeMap<&'static str, String> = v.fields.into_iter().collect();
        fields.insert("source", "gantry".into());
        ship(Record {
            time: SystemTime::now(),
            severity: Severity::from_level(event.metadata().level().as_str()),
            message: v.message,
            fields,
        });
    }
}

#[derive(Default)]
struct Visitor {
    message: String,
    fields: Vec<(&'static str, String)>,
}

impl tracing::field::Visit for Visitor {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.fields.push((field.name(), value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.fields.push((field.name(), format!("{value:?}")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        let mut fields = BTreeMap::new();
        fields.insert("job", "0193".to_string());
        fields.insert("note", "a \"quoted\" ]bracket\\".to_string());
        Record {
            time: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            severity: Severity::Warning,
            message: "first\nsecond".into(),
            fields,
        }
    }

    #[test]
    fn targets_parse_and_bad_ones_are_named() {
        let t: Target = "gelf+tcp://127.0.0.1:12201".parse().expect("parse");
        assert_eq!((t.format, t.transport), (Format::Gelf, Transport::Tcp));
        assert_eq!(t.to_string(), "gelf+tcp://127.0.0.1:12201");
        assert!("http://x:1".parse::<Target>().is_err());
        assert!("syslog+udp://logs.example:514".parse::<Target>().is_err());
    }

    #[test]
    fn syslog_messages_follow_rfc5424() {
        let m = syslog(&record(), "h");
        assert!(
            m.starts_with("<12>1 2023-11-14T22:13:20.123Z h gantry "),
            "{m}"
        );
        assert!(
            m.ends_with(
                r#" - [gantry@32473 job="0193" note="a \"quoted\" \]bracket\\"] first second"#
            ),
            "{m}"
        );
    }

    #[test]
    fn gelf_documents_and_chunks() {
        let d: serde_json::Value = serde_json::from_str(&gelf(&record(), "h")).expect("json");
        assert_eq!(d["version"], "1.1");
        assert_eq!(d["short_message"], "first");
        assert_eq!(d["full_message"], "first\nsecond");
        assert_eq!(d["level"], 4);
        assert_eq!(d["_job"], "0193");
        assert_eq!(d["timestamp"], 1_700_000_000.123);
        let big = "x".repeat(20_000);
        let chunks = gelf_chunks(&big);
        assert_eq!(chunks.len(), 3);
        assert!(chunks
            .iter()
            .all(|c| c.len() <= GELF_CHUNK && c[..2] == [0x1e, 0x0f]));
        assert_eq!((chunks[2][10], chunks[2][11]), (2, 3));
        let joined: Vec<u8> = chunks.iter().flat_map(|c| c[12..].to_vec()).collect();
        assert_eq!(joined, big.as_bytes());
    }
}
