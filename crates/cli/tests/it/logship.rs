//! Log shipping to real receivers: Debian's rsyslog for syslog (RFC 5424
//! over UDP and TCP), this test's own sockets for GELF (UDP and TCP), and a
//! receiver that refuses connections, which must cost the job nothing.

use crate::util::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "s3cr3t-shipping-value";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}

/// rsyslogd in the foreground with its own config, UDP and TCP inputs on
/// loopback, every message written to `out.log` with its structured data.
struct Rsyslog {
    child: Child,
    udp: u16,
    tcp: u16,
    out: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Rsyslog {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let (udp, tcp) = (free_port(), free_port());
        let out = dir.path().join("out.log");
        let conf = dir.path().join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{d}")
module(load="imudp")
module(load="imtcp")
input(type="imudp" address="127.0.0.1" port="{udp}")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
template(name="line" type="string" string="%inputname%|%app-name%|%syslogseverity%|%structured-data%|%msg%\n")
*.* action(type="omfile" file="{out}" template="line")
"#,
                d = dir.path().display(),
                out = out.display()
            ),
        )
        .expect("conf");
        let child = Command::new("rsyslogd")
            .args(["-n", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(dir.path().join("pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rsyslogd (Debian's rsyslog package; scripts/test.sh installs it)");
        let r = Self {
            child,
            udp,
            tcp,
            out,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", tcp)).is_err() {
            assert!(Instant::now() < deadline, "rsyslogd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GELF documents received, with the transport they came by.
type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// GELF documents received on a UDP socket and a TCP listener.
fn gelf_receivers() -> (u16, u16, Received) {
    let got: Received = Arc::default();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    let udp_port = udp.local_addr().expect("addr").port();
    let g = got.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = udp.recv(&mut buf) {
            if let Ok(v) = serde_json::from_slice::<Value>(&buf[..n]) {
                g.lock().expect("lock").push(("udp".into(), v));
            }
        }
    });
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("tcp");
    let tcp_port = tcp.local_addr().expect("addr").port();
    let g = got.clone();
    std::thread::spawn(move || {
        for conn in tcp.incoming().map_while(Result::ok) {
            let g = g.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn);
                let mut doc = Vec::new();
                while r.read_until(0, &mut doc).map(|n| n > 0).unwrap_or(false) {
                    if doc.last() == Some(&0) {
                        doc.pop();
                    }
                    if let Ok(v) = serde_json::from_slice::<Value>(&doc) {
                        g.lock().expect("lock").push(("tcp".into(), v));
                    }
                    doc.clear();
                }
            });
        }
    });
    (udp_port, tcp_port, got)
}

fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn no_file_holds(path: &Path, needle: &str) {
    let mut s = String::new();
    let _ = std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut s));
    assert!(!s.contains(needle), "{} holds the secret", path.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn job_events_and_own_logs_reach_gelf_and_syslog_receivers_without_blocking() {
    let rsyslog = Rsyslog::start();
    let (gelf_udp, gelf_tcp, gelf) = gelf_receivers();
    let targets = format!(
        "syslog+udp://127.0.0.1:{},syslog+tcp://127.0.0.1:{},gelf+udp://127.0.0.1:{gelf_udp},gelf+tcp://127.0.0.1:{gelf_tcp},gelf+tcp://127.0.0.1:1",
        rsyslog.udp, rsyslog.tcp
    );
    let g = Gantry::up_with_env(&[], &[("GANTRY_LOG_SHIP", &targets)]);
    let api = g.client();
    let job = api
        .run(json!({
            "image": IMAGE,
            "command": ["sh", "-c", "echo 'hello from the job'; grep -o 's3cr3t[a-z-]*' /data/config.json; echo oops >&2"],
            "parameters": {"#password": SECRET},
        }))
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let id = job["id"].as_str().expect("id").to_string();

    // syslog, both transports: the job's line with its fields as structured data.
    for input in ["imudp", "imtcp"] {
        let line = eventually(&format!("the job's line over {input}"), || {
            rsyslog
                .lines()
                .into_iter()
                .find(|l| l.starts_with(input) && l.contains("hello from the job"))
        });
        assert!(line.contains("|gantry|6|[gantry@32473 "), "{line}");
        for field in [
            format!("job=\"{id}\""),
            "project=\"default\"".into(),
            "attempt=\"1\"".into(),
            "stream=\"stdout\"".into(),
            "source=\"job\"".into(),
        ] {
            assert!(line.contains(&field), "{field} in {line}");
        }
        // stderr and Gantry's own lines come too.
        eventually("a stderr line", || {
            rsyslog.lines().into_iter().find(|l| {
                l.starts_with(input) && l.contains("stream=\"stderr\"") && l.ends_with("oops")
            })
        });
        eventually("Gantry's own log line", || {
            rsyslog.lines().into_iter().find(|l| {
                l.starts_with(input)
                    && l.contains("source=\"gantry\"")
                    && l.contains("worker started")
            })
        });
    }
    // GELF, both transports.
    for transport in ["udp", "tcp"] {
        let doc = eventually(&format!("the job's line over GELF {transport}"), || {
            gelf.lock()
                .expect("lock")
                .iter()
                .find(|(t, d)| t == transport && d["short_message"] == "hello from the job")
                .map(|(_, d)| d.clone())
        });
        assert_eq!(doc["version"], "1.1");
        assert_eq!(doc["_job"], id.as_str());
        assert_eq!(doc["_project"], "default");
        assert_eq!(doc["_attempt"], "1");
        assert_eq!(doc["_stream"], "stdout");
        assert_eq!(doc["level"], 6);
    }
    // Secrets are hidden as in the API.
    let hidden = api.messages(&id, "stdout").await;
    assert!(hidden.contains(&"[hidden]".to_string()), "{hidden:?}");
    eventually("the redacted line", || {
        rsyslog
            .lines()
            .into_iter()
            .find(|l| l.starts_with("imtcp") && l.ends_with("[hidden]"))
    });
    no_file_holds(&rsyslog.out, SECRET);
    assert!(!format!("{:?}", gelf.lock().expect("lock")).contains(SECRET));

    // The refusing target cost the job nothing; what it could not take is counted.
    let (_, text) = api.get("/metrics").await;
    let text = text.as_str().unwrap_or_default().to_string();
    let dropped: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("gantry_log_ship_dropped_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(dropped >= 1.0, "{text}");
}
