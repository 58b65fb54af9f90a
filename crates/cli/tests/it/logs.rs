//! Logs: line by line, structured when JSON, capped, secrets hidden, followable live.

use crate::util::*;
use base64::Engine;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test(flavor = "multi_thread")]
async fn lines_become_events_and_json_lines_are_structured() {
    let g = Gantry::up(&[]);
    let api = g.client();
    let script = r#"echo plain; echo '{"message": "structured", "level": "error", "rows": 5}'; echo '{"short_message": "gelf", "level": 4}'; printf 'no newline at end'"#;
    let job = api.run(sh(script)).await;
    let events = api.events(job["id"].as_str().expect("id")).await;
    let out: Vec<_> = events.iter().filter(|e| e["stream"] == "stdout").collect();
    assert_eq!(out.len(), 4, "{events:?}");
    assert_eq!(out[0]["message"], "plain");
    assert_eq!(out[0]["level"], "info");
    assert_eq!(out[1]["message"], "structured");
    assert_eq!(out[1]["level"], "error");
    assert_eq!(out[1]["data"]["rows"], 5);
    assert_eq!(out[2]["message"], "gelf");
    assert_eq!(out[2]["level"], "warning");
    assert_eq!(out[3]["message"], "no newline at end");
    // Sequence numbers are dense and ordered.
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_values_are_hidden_in_every_form() {
    let g = Gantry::up(&[]);
    let api = g.client();
    let secret = r"Sup3r\Secret/Value";
    let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
    // The container derives every form from config.json (which holds the
    // JSON-escaped form, Sup3r\\Secret/Value), so the spec never contains it.
    let script = r##"t=$(sed -n 's/.*"#token": "\(.*\)".*/\1/p' /data/config.json)
raw=$(printf '%s' "$t" | sed 's/\\\\/\\/g')
printf 'json: %s\n' "$t"
printf 'raw: %s\n' "$raw"
printf 'b64: %s\n' "$(printf '%s' "$raw" | base64)"
printf 'err %s\n' "$raw" >&2
exit 1"##;
    let mut spec = sh(script);
    spec["parameters"] = json!({"#token": secret, "nested": {"#deep": "another-secret-42"}});
    let job = api.run(spec).await;
    let id = job["id"].as_str().expect("id");
    let all = serde_json::to_string(&api.events(id).await).expect("json");
    assert!(!all.contains("Sup3r"), "secret leaked into events: {all}");
    assert!(!all.contains(&b64), "base64 form leaked: {all}");
    assert!(
        !all.contains("another-secret-42"),
        "nested secret leaked: {all}"
    );
    assert!(all.contains("[hidden]"), "{all}");
    for form in [
        "json: [hidden]",
        "raw: [hidden]",
        "b64: [hidden]",
        "err [hidden]",
    ] {
        assert!(all.contains(form), "{form} in {all}");
    }
    // Nor in the job's error message, nor in the API's view of the job.
    let (_, view) = api.get(&format!("/v1/jobs/{id}")).await;
    let view = view.to_string();
    assert!(
        !view.contains("Sup3r") && !view.contains("another-secret-42"),
        "{view}"
    );
    assert!(
        view.contains("gantry:enc:v1:"),
        "secrets appear sealed: {view}"
    );
    // Nor in Gantry's own log.
    let own = g.log.lock().expect("log").join("\n");
    assert!(
        !own.contains("Sup3r") && !own.contains("another-secret-42") && !own.contains(&b64),
        "{own}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn output_past_the_cap_is_dropped_and_counted() {
    let g = Gantry::up(&["--log-cap", "10k"]);
    let api = g.client();
    // 2,000 lines of 100 bytes = 200 KB, far past 10 KB; plus a 10 MB line with no newline.
    let script = "i=0; while [ $i -lt 2000 ]; do printf '%099d\\n' $i; i=$((i+1)); done; head -c 10000000 /dev/zero | tr '\\0' x";
    let job = api.run(sh(script)).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let id = job["id"].as_str().expect("id");
    let events = api.events(id).await;
    let stored: usize = events
        .iter()
        .filter(|e| e["stream"] == "stdout")
        .map(|e| e["message"].as_str().map_or(0, str::len) + 1)
        .sum();
    assert!(stored <= 10 * 1024, "stored {stored} bytes");
    let notes = api.messages(id, "system").await;
    let note = notes
        .iter()
        .find(|m| m.contains("dropped"))
        .unwrap_or_else(|| panic!("{notes:?}"));
    assert!(note.contains("10k"), "{note}");
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_follow_live_until_the_job_ends() {
    let g = Gantry::up(&[]);
    let api = g.client();
    let id = api
        .submit(sh("echo first; sleep 2; echo second; exit 3"))
        .await;
    let mut child = Command::new(bin())
        .args(["jobs", "logs", &id, "--follow"])
        .env("GANTRY_URL", &g.url)
        .env("GANTRY_HOME", g.home_path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("first"));
    // The first line arrived while the job still ran: it is live.
    let (_, job) = api.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(job["status"], "running", "{job}");
    assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("second"));
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(3), "the exit code follows the job");

    // SSE straight from the API: log events, then one end event.
    let resp = api
        .req(reqwest::Method::GET, &format!("/v1/jobs/{id}/events"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("sse");
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let body = resp.text().await.expect("body");
    assert!(
        body.contains("event: log") && body.contains("event: end"),
        "{body}"
    );
    assert!(body.trim_end().lines().rfind(|l| l.starts_with("event:")) == Some("event: end"));
}

#[tokio::test(flavor = "multi_thread")]
async fn submit_wait_and_jobs_wait_follow_the_job() {
    let g = Gantry::up(&[]);
    let spec = g.write_spec(
        "ok.yaml",
        &format!("image: {IMAGE}\ncommand: [sh, -c, 'sleep 1; echo done']\n"),
    );
    let out = g.cli(&["jobs", "submit", spec.to_str().expect("path"), "--wait"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("succeeded"), "{}", stderr(&out));

    let bad = g.write_spec(
        "bad.yaml",
        &format!("image: {IMAGE}\ncommand: [sh, -c, 'exit 9']\n"),
    );
    let out = g.cli(&["jobs", "submit", bad.to_str().expect("path")]);
    let id = stdout(&out).trim().to_string();
    let waited = g.cli(&["jobs", "wait", &id]);
    assert_eq!(waited.status.code(), Some(9), "{}", stderr(&waited));
    let json_out = g.cli(&["jobs", "show", &id, "--output", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&json_out.stdout).expect("json output");
    assert_eq!(v["error"]["kind"], "application_error");
    let followed = g.cli(&["jobs", "submit", bad.to_str().expect("path"), "--follow"]);
    assert_eq!(followed.status.code(), Some(9));
}
