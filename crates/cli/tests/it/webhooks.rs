//! Inbound webhooks, signed by an independent client: Python's `hmac`
//! following the Standard Webhooks and GitHub schemes (not Gantry's code).

use crate::util::*;
use serde_json::{json, Value};
use std::process::Command;

const SENDER: &str = r#"
import sys, json, hmac, hashlib, base64, time, urllib.request, urllib.error
url, secret, mode, body, msg_id, ts_off, tamper = sys.argv[1:8]
data = body.encode()
ts = str(int(time.time()) + int(ts_off))
headers = {"content-type": "application/json", "x-sender": "python-test"}
if mode == "standard":
    key = base64.b64decode(secret.split("_", 1)[1])
    mac = hmac.new(key, msg_id.encode() + b"." + ts.encode() + b"." + data, hashlib.sha256)
    sig = base64.b64encode(mac.digest()).decode()
    # Several signatures, as during a key rotation: one that matches nothing first.
    headers.update({"webhook-id": msg_id, "webhook-timestamp": ts,
                    "webhook-signature": "v1,bm90IGEgc2lnbmF0dXJl v1," + sig})
elif mode == "github":
    headers["x-hub-signature-256"] = "sha256=" + hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()
    headers["x-github-delivery"] = msg_id
    headers["x-github-event"] = "push"
elif mode == "token":
    headers["authorization"] = "Bearer " + secret
    headers["webhook-id"] = msg_id
sent = data + (b" " if tamper == "1" else b"")
req = urllib.request.Request(url, data=sent, headers=headers, method="POST")
try:
    r = urllib.request.urlopen(req)
    status, text, h = r.status, r.read().decode(), r.headers
except urllib.error.HTTPError as e:
    status, text, h = e.code, e.read().decode(), e.headers
print(json.dumps({"status": status, "body": json.loads(text) if text else None,
                  "retry_after": h.get("retry-after")}))
"#;

struct Send<'a> {
    url: String,
    secret: &'a str,
    mode: &'a str,
    body: String,
    id: &'a str,
    ts_offset: i64,
    tamper: bool,
}

impl<'a> Send<'a> {
    fn new(g: &Gantry, hook: &str, secret: &'a str, mode: &'a str, id: &'a str) -> Self {
        Self {
            url: format!("{}/v1/hooks/{hook}", g.url),
            secret,
            mode,
            body: json!({"event": "ping", "id": id}).to_string(),
            id,
            ts_offset: 0,
            tamper: false,
        }
    }

    fn go(&self) -> (u16, Value, Option<String>) {
        let out = Command::new("python3")
            .args([
                "-c",
                SENDER,
                &self.url,
                self.secret,
                self.mode,
                &self.body,
                self.id,
            ])
            .arg(self.ts_offset.to_string())
            .arg(if self.tamper { "1" } else { "0" })
            .output()
            .expect("python3");
        assert!(out.status.success(), "{}", stderr(&out));
        let v: Value = serde_json::from_str(&stdout(&out)).expect("sender output");
        (
            v["status"].as_u64().unwrap_or(0) as u16,
            v["body"].clone(),
            v["retry_after"].as_str().map(str::to_string),
        )
    }
}

fn cli_json(g: &Gantry, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let out = g.cli(&all);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    serde_json::from_str(&stdout(&out)).expect("json")
}

async fn webhook_jobs(api: &Api) -> usize {
    let (_, list) = api.get("/v1/jobs?limit=1000").await;
    list["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|j| j["trigger"]["kind"] == "webhook")
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_webhooks_run_once_and_bad_signatures_are_refused() {
    let g = Gantry::up(&[]);
    let api = g.client();
    let script = "cat /data/in/files/webhook.json; echo; cat /data/in/files/webhook.json.manifest";
    let (st, _) = api
        .post("/v1/configs", json!({"id": "hooked", "spec": sh(script)}))
        .await;
    assert_eq!(st, 201);
    let hook = cli_json(&g, &["webhooks", "create", "--config", "hooked"]);
    let id = hook["id"].as_str().expect("id").to_string();
    let secret = hook["secret"]
        .as_str()
        .expect("secret shown once")
        .to_string();
    assert!(secret.starts_with("whsec_"), "{hook}");
    let shown = cli_json(&g, &["webhooks", "show", &id]);
    assert!(shown.get("secret").is_none(), "never shown again: {shown}");
    assert_in_no_file(g.home_path(), &secret);

    // A valid Standard Webhooks delivery runs the configuration with the body.
    let (st, body, _) = Send::new(&g, &id, &secret, "standard", "msg_1").go();
    assert_eq!(st, 202, "{body}");
    let job_id = body["job"].as_str().expect("job").to_string();
    let job = api.wait(&job_id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(
        job["trigger"],
        json!({"kind": "webhook", "id": id, "delivery": "msg_1"})
    );
    let out = api.messages(&job_id, "stdout").await.join("\n");
    assert!(out.contains(r#"{"event":"ping","id":"msg_1"}"#), "{out}");
    assert!(out.contains("\"x-sender\": \"python-test\""), "{out}");
    assert!(out.contains("\"delivery\": \"msg_1\""), "{out}");

    // Replayed: the same job, nothing new runs.
    let (st, body, _) = Send::new(&g, &id, &secret, "standard", "msg_1").go();
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["job"], job_id.as_str());
    assert_eq!(body["replay"], true);
    assert_eq!(webhook_jobs(&api).await, 1);

    // Stale, tampered, unsigned, signed with another key: 401, nothing made.
    let mut stale = Send::new(&g, &id, &secret, "standard", "msg_2");
    stale.ts_offset = -600;
    let mut future = Send::new(&g, &id, &secret, "standard", "msg_3");
    future.ts_offset = 600;
    let mut tampered = Send::new(&g, &id, &secret, "standard", "msg_4");
    tampered.tamper = true;
    let unsigned = Send::new(&g, &id, "", "none", "msg_5");
    let wrong = Send::new(
        &g,
        &id,
        "whsec_d3Jvbmcga2V5IHdyb25nIGtleQ==",
        "standard",
        "msg_6",
    );
    for s in [&stale, &future, &tampered, &unsigned, &wrong] {
        let (st, body, _) = s.go();
        assert_eq!(st, 401, "{}: {body}", s.id);
    }
    assert_eq!(webhook_jobs(&api).await, 1);

    // GitHub's scheme, keyed by the secret text.
    let (st, body, _) = Send::new(&g, &id, &secret, "github", "gh-1").go();
    assert_eq!(st, 202, "{body}");

    // Rotation: the new secret works, the old one too during the grace period...
    let rotated = cli_json(&g, &["webhooks", "rotate", &id, "--grace", "1h"]);
    let second = rotated["secret"].as_str().expect("new secret").to_string();
    assert_ne!(second, secret);
    assert!(rotated["old_secret_valid_until"].is_string(), "{rotated}");
    assert_eq!(Send::new(&g, &id, &second, "standard", "r-1").go().0, 202);
    assert_eq!(Send::new(&g, &id, &secret, "standard", "r-2").go().0, 202);
    // ...and not after it.
    let third = cli_json(&g, &["webhooks", "rotate", &id, "--grace", "0s"]);
    let third = third["secret"].as_str().expect("secret").to_string();
    assert_eq!(Send::new(&g, &id, &second, "standard", "r-3").go().0, 401);
    assert_eq!(Send::new(&g, &id, &secret, "standard", "r-4").go().0, 401);
    assert_eq!(Send::new(&g, &id, &third, "standard", "r-5").go().0, 202);
    assert_eq!(webhook_jobs(&api).await, 5);

    // A body over the hook's limit; the per-hook rate limit.
    let (st, small) = api
        .post(
            "/v1/webhooks",
            json!({"config": "hooked", "max_body": 1024, "rate_limit": 2}),
        )
        .await;
    assert_eq!(st, 201, "{small}");
    let small_id = small["id"].as_str().expect("id").to_string();
    let small_secret = small["secret"].as_str().expect("secret").to_string();
    let mut big = Send::new(&g, &small_id, &small_secret, "standard", "big");
    big.body = json!({"pad": "x".repeat(2000)}).to_string();
    let (st, body, _) = big.go();
    assert_eq!(st, 413, "{body}");
    assert_eq!(
        Send::new(&g, &small_id, &small_secret, "standard", "s-1")
            .go()
            .0,
        202
    );
    let (st, body, retry) = Send::new(&g, &small_id, &small_secret, "standard", "s-2").go();
    assert_eq!(st, 429, "{body}");
    let retry: u64 = retry.expect("Retry-After").parse().expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");

    // A hook that takes a bearer token of its project instead.
    let tok = cli_json(
        &g,
        &[
            "webhooks", "create", "--config", "hooked", "--auth", "token",
        ],
    );
    assert!(tok.get("secret").is_none(), "{tok}");
    let tok_id = tok["id"].as_str().expect("id").to_string();
    assert_eq!(Send::new(&g, &tok_id, &g.token, "token", "t-1").go().0, 202);
    assert_eq!(
        Send::new(&g, &tok_id, "gty_wrong", "token", "t-2").go().0,
        401
    );
    assert_eq!(
        Send::new(&g, &tok_id, &g.token, "standard", "t-3").go().0,
        401
    );

    // Bad input names the field and makes nothing; a used configuration stays.
    for (body, field) in [
        (json!({"config": "missing"}), "config"),
        (json!({"config": "hooked", "auth": "basic"}), "auth"),
        (json!({"config": "hooked", "max_body": 0}), "max_body"),
    ] {
        let (st, err) = api.post("/v1/webhooks", body).await;
        assert_eq!(st, 400, "{err}");
        let msg = err["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.starts_with(field), "{field}: {err}");
    }
    let (_, list) = api.get("/v1/webhooks").await;
    assert_eq!(list["webhooks"].as_array().map(Vec::len), Some(3), "{list}");
    let (st, err) = api
        .call(reqwest::Method::DELETE, "/v1/configs/hooked", None)
        .await;
    assert_eq!(st, 409, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&id),
        "{err}"
    );
    let (st, _) = api.post(&format!("/v1/hooks/{id}x"), json!({})).await;
    assert_eq!(st, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_starts_a_pipeline_run_whose_tasks_see_the_body() {
    let g = Gantry::up(&[]);
    let api = g.client();
    for id in ["w1", "w2"] {
        let (st, _) = api
            .post(
                "/v1/configs",
                json!({"id": id, "spec": sh("cat /data/in/files/webhook.json")}),
            )
            .await;
        assert_eq!(st, 201);
    }
    let (st, _) = api
        .post(
            "/v1/pipelines",
            json!({"id": "wp", "phases": [{"tasks": [{"config": "w1"}]}, {"tasks": [{"config": "w2"}]}]}),
        )
        .await;
    assert_eq!(st, 201);
    let hook = cli_json(&g, &["webhooks", "create", "--pipeline", "wp"]);
    let id = hook["id"].as_str().expect("id").to_string();
    let secret = hook["secret"].as_str().expect("secret").to_string();
    let (st, body, _) = Send::new(&g, &id, &secret, "standard", "p-1").go();
    assert_eq!(st, 202, "{body}");
    let run_id = body["pipeline_run"].as_str().expect("run").to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let run = loop {
        let (_, r) = api.get(&format!("/v1/pipeline-runs/{run_id}")).await;
        if r["status"] != "queued" && r["status"] != "running" {
            break r;
        }
        assert!(std::time::Instant::now() < deadline, "{r}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        run["trigger"],
        json!({"kind": "webhook", "id": id, "delivery": "p-1"})
    );
    for t in run["tasks"].as_array().expect("tasks") {
        let job = t["job"].as_str().expect("job");
        let out = api.messages(job, "stdout").await.join("\n");
        assert!(out.contains(r#"{"event":"ping","id":"p-1"}"#), "{out}");
    }
    let (st, body, _) = Send::new(&g, &id, &secret, "standard", "p-1").go();
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["pipeline_run"], run_id.as_str());
    let (_, runs) = api.get("/v1/pipelines/wp/runs").await;
    assert_eq!(
        runs["runs"].as_array().map(Vec::len),
        Some(1),
        "a replay starts nothing"
    );
    let (st, err) = api
        .call(reqwest::Method::DELETE, "/v1/pipelines/wp", None)
        .await;
    assert_eq!(st, 409, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&id),
        "{err}"
    );
}
