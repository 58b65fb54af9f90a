//! Prometheus metrics, checked by Prometheus's own `promtool`: the API
//! server's `/metrics` (store figures, HTTP requests) and a separate
//! `gantry worker`'s (its slots, job timings, log volume).

use crate::util::*;
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

/// `promtool check metrics` must accept the text with no problem at all.
fn promtool_accepts(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/test.sh installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{text}"
    );
}

/// The value of one sample line (`name{labels} value`), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn scrape(url: &str, token: Option<&str>) -> String {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("scrape");
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"]
        .to_str()
        .expect("ct")
        .to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    resp.text().await.expect("body")
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_pass_promtool_and_count_jobs_requests_and_queues() {
    let g = Gantry::server_only();
    let api = g.client();
    // A worker in its own process, serving its own metrics.
    let mut worker = Command::new(bin())
        .args(["worker", "--slots", "2", "--metrics-listen", "127.0.0.1:0"])
        .envs(g.vars())
        .env("GANTRY_HOME", g.home_path())
        .env("GANTRY_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn worker");
    let stderr = worker.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("Gantry worker metrics on ") {
                let _ = tx.send(url.to_string());
            }
        }
    });
    let worker_url = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the worker prints its metrics address");

    let ok = api
        .run(json!({"image": IMAGE, "command": ["echo", "one line"]}))
        .await;
    assert_eq!(ok["status"], "succeeded", "{ok}");
    let bad = api
        .run(json!({"image": IMAGE, "command": ["sh", "-c", "exit 3"]}))
        .await;
    assert_eq!(bad["status"], "failed", "{bad}");
    let (s, _) = api.get("/v1/jobs/not-a-job").await;
    assert_eq!(s, 404);
    // A table version, for the Storage figures.
    let (s, _) = api.import("in.c-main.t", "", "id\n1\n2\n").await;
    assert_eq!(s, 201);

    let server = scrape(&format!("{}/metrics", g.url), Some(&g.token)).await;
    promtool_accepts(&server);
    assert_eq!(
        sample(&server, r#"gantry_jobs{status="succeeded"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&server, r#"gantry_jobs{status="failed"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&server, r#"gantry_queue_depth{project="default"}"#),
        None,
        "no queued or running job"
    );
    assert!(
        sample(
            &server,
            r#"gantry_http_requests_total{method="GET",route="/v1/jobs/{id}",status="404"}"#
        ) >= Some(1.0),
        "{server}"
    );
    assert_eq!(
        sample(
            &server,
            r#"gantry_storage_table_versions{project="default"}"#
        ),
        Some(1.0)
    );
    assert!(
        sample(
            &server,
            r#"gantry_storage_bytes{kind="tables",project="default"}"#
        ) > Some(0.0)
    );
    assert!(server.contains("gantry_build_info{version="), "{server}");

    let w = scrape(&worker_url, None).await;
    promtool_accepts(&w);
    assert_eq!(
        sample(&w, r#"gantry_jobs_started_total{project="default"}"#),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &w,
            r#"gantry_jobs_finished_total{error_kind="",project="default",status="succeeded"}"#
        ),
        Some(1.0),
        "{w}"
    );
    assert_eq!(
        sample(
            &w,
            r#"gantry_jobs_finished_total{error_kind="application_error",project="default",status="failed"}"#
        ),
        Some(1.0),
        "{w}"
    );
    for h in [
        "gantry_job_queue_wait_seconds_count",
        "gantry_container_start_seconds_count",
        "gantry_job_run_seconds_count",
        "gantry_output_commit_seconds_count",
    ] {
        assert_eq!(sample(&w, h), Some(2.0), "{h}\n{w}");
    }
    assert!(sample(&w, r#"gantry_log_lines_total{outcome="captured"}"#) >= Some(1.0));
    let id = std::fs::read_to_string(g.home_path().join("worker-id")).expect("worker id");
    let id = id.trim();
    assert_eq!(
        sample(&w, &format!(r#"gantry_worker_free_slots{{worker="{id}"}}"#)),
        Some(2.0),
        "{w}"
    );
    assert_eq!(
        sample(&w, &format!(r#"gantry_worker_up{{worker="{id}"}}"#)),
        Some(1.0)
    );

    // Queue figures: with the worker stopped, a submitted job stays queued
    // and the server reports the depth and the age of the oldest due job.
    let _ = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status();
    let _ = worker.wait();
    let id = api
        .submit(json!({"image": IMAGE, "command": ["true"]}))
        .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let server = scrape(&format!("{}/metrics", g.url), Some(&g.token)).await;
    promtool_accepts(&server);
    assert_eq!(
        sample(&server, r#"gantry_queue_depth{project="default"}"#),
        Some(1.0),
        "{id}"
    );
    assert!(
        sample(
            &server,
            r#"gantry_queue_oldest_age_seconds{project="default"}"#
        ) >= Some(1.0),
        "{server}"
    );
}
