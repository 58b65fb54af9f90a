//! Outbound notifications against a local receiver that fails twice then
//! accepts; signatures checked by Python's `hmac`; SSRF refusal by default.

use crate::util::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
struct Received {
    headers: Vec<(String, String)>,
    body: String,
}

/// A tiny HTTP receiver: answers 500 to the first `fail` requests, then 200.
fn receiver(fail: usize) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head_end, len) = loop {
                let n = s.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break (None, 0);
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..i]).to_string();
                    let len = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0usize);
                    break (Some(i + 4), len);
                }
            };
            let Some(start) = head_end else { continue };
            while buf.len() < start + len {
                let n = s.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let head = String::from_utf8_lossy(&buf[..start]).to_string();
            let headers = head
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let body = String::from_utf8_lossy(&buf[start..]).to_string();
            let n = {
                let mut v = g.lock().expect("lock");
                v.push(Received { headers, body });
                v.len()
            };
            let status = if n <= fail {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = s.write_all(
                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
    });
    (url, got)
}

const VERIFY: &str = r#"
import sys, hmac, hashlib, base64
secret, msg_id, ts, body, sigs = sys.argv[1:6]
key = base64.b64decode(secret.split("_", 1)[1])
want = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body.encode(), hashlib.sha256).digest()).decode()
print("ok" if any(s.split(",", 1)[1] == want for s in sigs.split(" ")) else "bad")
"#;

async fn wait_notified(api: &Api, job: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (_, j) = api.get(&format!("/v1/jobs/{job}")).await;
        if j["notifications"][0]["status"] == status {
            return j;
        }
        assert!(
            Instant::now() < deadline,
            "notification never {status}: {j}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn notifications_are_signed_retried_and_recorded() {
    let (url, got) = receiver(2);
    let secret = "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHMtMTIzNDU2Nzg=";
    let g = Gantry::up(&["--allow-private-notify-targets"]);
    let api = g.client();
    let mut spec = sh("echo failing; exit 3");
    spec["notify"] = json!([{"url": url, "#secret": secret}]);
    let id = api.submit(spec).await;
    assert_eq!(api.wait(&id).await["status"], "failed");
    let job = wait_notified(&api, &id, "delivered").await;
    let codes: Vec<Value> = job["notifications"][0]["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["status_code"].clone())
        .collect();
    assert_eq!(codes, vec![json!(500), json!(500), json!(200)], "{job}");
    assert_eq!(
        job["spec"]["notify"][0]["#secret"]
            .as_str()
            .map(|s| s.starts_with("gantry:enc:")),
        Some(true)
    );
    assert_in_no_file(g.home_path(), secret);

    let received = got.lock().expect("lock").clone();
    assert_eq!(received.len(), 3);
    let last = &received[2];
    let h = |k: &str| {
        last.headers
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .expect(k)
    };
    let body: Value = serde_json::from_str(&last.body).expect("json body");
    assert_eq!(body["type"], "job.ended");
    assert_eq!(body["job"]["id"], id.as_str());
    assert_eq!(body["job"]["status"], "failed");
    let out = Command::new("python3")
        .args([
            "-c",
            VERIFY,
            secret,
            &h("webhook-id"),
            &h("webhook-timestamp"),
            &last.body,
            &h("webhook-signature"),
        ])
        .output()
        .expect("python3");
    assert_eq!(stdout(&out).trim(), "ok", "{}", stderr(&out));
    let shown = stdout(&g.cli(&["jobs", "show", &id]));
    assert!(
        shown.contains(&format!("{url} delivered (500, 500, 200)")),
        "{shown}"
    );

    // on: failure (the default) says nothing about a success; on: always does.
    let mut quiet = sh("true");
    quiet["notify"] = json!([{"url": url}]);
    let quiet = api.submit(quiet).await;
    api.wait(&quiet).await;
    let mut loud = sh("true");
    loud["notify"] = json!([{"url": url, "on": "always"}]);
    let loud = api.submit(loud).await;
    api.wait(&loud).await;
    wait_notified(&api, &loud, "delivered").await;
    let (_, q) = api.get(&format!("/v1/jobs/{quiet}")).await;
    assert!(q.get("notifications").is_none(), "{q}");

    // A pipeline run's end.
    let (st, _) = api
        .post("/v1/configs", json!({"id": "n", "spec": sh("true")}))
        .await;
    assert_eq!(st, 201);
    let (st, p) = api
        .post(
            "/v1/pipelines",
            json!({"id": "np", "phases": [{"tasks": [{"config": "n"}]}], "notify": [{"url": url, "on": "always"}]}),
        )
        .await;
    assert_eq!(st, 201, "{p}");
    let (_, run) = api.post("/v1/pipelines/np/run", json!({})).await;
    let run_id = run["id"].as_str().expect("run").to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, r) = api.get(&format!("/v1/pipeline-runs/{run_id}")).await;
        if r["notifications"][0]["status"] == "delivered" {
            break;
        }
        assert!(Instant::now() < deadline, "{r}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let last = got.lock().expect("lock").last().cloned().expect("received");
    let body: Value = serde_json::from_str(&last.body).expect("json");
    assert_eq!(body["type"], "pipeline_run.ended");
    assert_eq!(body["run"]["id"], run_id.as_str());
    assert_eq!(body["run"]["status"], "succeeded");

    // Bad targets are refused naming the field.
    for (n, field) in [
        (json!([{"url": "ftp://example.com/x"}]), "notify[0].url"),
        (
            json!([{"url": "http://x/", "#secret": "hunter2"}]),
            "notify[0].#secret",
        ),
        (
            json!([{"url": "http://x/", "on": "sometimes"}]),
            "notify[0].on",
        ),
    ] {
        let mut spec = sh("true");
        spec["notify"] = n;
        let (st, err) = api.post("/v1/jobs", json!({"spec": spec})).await;
        assert_eq!(st, 400, "{err}");
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with(field),
            "{field}: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn private_targets_are_refused_unless_allowed() {
    let (url, got) = receiver(0);
    let g = Gantry::up(&[]);
    let api = g.client();
    let mut spec = sh("exit 3");
    spec["notify"] = json!([{"url": url}]);
    let id = api.submit(spec).await;
    api.wait(&id).await;
    let job = wait_notified(&api, &id, "failed").await;
    let err = job["notifications"][0]["last_error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        err.contains("refused") && err.contains("127.0.0.1"),
        "{job}"
    );
    assert_eq!(
        job["notifications"][0]["attempts"].as_array().map(Vec::len),
        Some(1)
    );
    assert!(
        got.lock().expect("lock").is_empty(),
        "nothing reached the private address"
    );
}

/// `https://` targets speak TLS and verify the certificate: a receiver with
/// a self-signed certificate (openssl's own TLS server) is reached, its
/// certificate refused, and the attempt records why.
#[tokio::test(flavor = "multi_thread")]
async fn https_targets_verify_the_certificate() {
    let dir = tempfile::tempdir().expect("tmp");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut server = std::process::Command::new("openssl")
        .args([
            "s_server",
            "-quiet",
            "-www",
            "-accept",
            &port.to_string(),
            "-cert",
        ])
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "s_server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let g = Gantry::up(&["--allow-private-notify-targets"]);
    let api = g.client();
    let mut spec = sh("exit 3");
    spec["notify"] = json!([{"url": format!("https://127.0.0.1:{port}/hook")}]);
    let id = api.submit(spec).await;
    api.wait(&id).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let err = loop {
        let (_, j) = api.get(&format!("/v1/jobs/{id}")).await;
        if let Some(e) = j["notifications"][0]["last_error"].as_str() {
            break e.to_string();
        }
        assert!(Instant::now() < deadline, "no attempt recorded: {j}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = server.kill();
    let _ = server.wait();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}
