//! IronWorker API v2, driven by Iron.io's own clients: Python's
//! `iron-worker` 1.3.8 (PyPI) and the npm `iron_worker` client, installed by
//! `scripts/test.sh`. Quirks of the wire contract are checked with raw HTTP.

use crate::util::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::process::Command;

fn python() -> String {
    std::env::var("GANTRY_TEST_IRON_PYTHON")
        .unwrap_or_else(|_| "/var/tmp/gantry-iron/bin/python".into())
}

/// Runs a Python script with Iron's client configured for `g` (host, port,
/// protocol, project and token passed as the client's own `IRON_*`
/// variables) and returns what it prints as JSON.
fn py(g: &Gantry, token: &str, project: &str, script: &str, args: &[&str]) -> Value {
    let port = g.url.rsplit(':').next().expect("port");
    let o = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .env("IRON_HOST", "127.0.0.1")
        .env("IRON_PORT", port)
        .env("IRON_PROTOCOL", "http")
        .env("IRON_PROJECT_ID", project)
        .env("IRON_TOKEN", token)
        .output()
        .unwrap_or_else(|e| panic!("{} (installed by scripts/test.sh): {e}", python()));
    assert!(
        o.status.success(),
        "python failed:\n{}\n{}",
        stdout(&o),
        stderr(&o)
    );
    let text = stdout(&o);
    serde_json::from_str(text.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Registers a Docker-image code the way Iron's CLI does, through the
/// Python client's own transport and multipart encoder (its boundary holds
/// a `$`), with the CLI's "unset" sentinels.
const REGISTER: &str = r#"
import json, sys
from iron_worker import IronWorker
w = IronWorker()
name, image, command, extra = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
data = {"name": name, "image": image, "command": command, "config": "", "env_vars": {},
        "max_concurrency": -1, "retries": 0, "retries_delay": 0, "default_priority": -3,
        "stack": "", "runtime": "", "file_name": "", "host": ""}
data.update(extra)
ct, body = IronWorker.encode_multipart_formdata([("data", json.dumps(data))], [])
r = w.client.post(url="codes", body=body, headers={"Content-Type": ct})
print(json.dumps(r["body"]))
"#;

/// A whole session: codes, tasks with payloads read back from logs, an
/// erroring task, cancel, retry, progress, lists by code and status.
const SESSION: &str = r#"
import json, sys, time
from iron_worker import IronWorker, Task
w = IronWorker()
out = {}
codes = w.codes()
out["codes"] = sorted([[c.name, c.revision] for c in codes])
hello = [c for c in codes if c.name == "hello"][0]
code = w.code(hello.id)
out["code"] = {"id": code.id, "name": code.name, "revision": code.revision}
out["revisions"] = sorted(r.revision for r in w.revisions(hello.id))

# Tasks with payloads: a dict (sent as JSON) and a plain string.
t1 = w.queue(code_name="hello", payload={"n": 1, "word": "caf\u00e9"}, label="first")
t2 = w.queue(code_name="hello", payload="plain text", priority=2)
t1 = w.wait_for_task(t1)
t2 = w.wait_for_task(t2)
out["t1"] = {"status": t1.status, "scheduled": t1.scheduled, "payload": t1.payload,
             "label": t1.label, "msg": t1.message, "created": t1.created_at.isoformat(),
             "code_rev": t1.code_rev, "duration": t1.duration}
out["t1_log"] = w.log(t1)
out["t1_id"] = t1.id
out["t2_log"] = w.log(t2)
out["t2_priority"] = t2.priority
out["t1_stdout"] = w.stdout(t1)

# An erroring task.
bad = w.wait_for_task(w.queue(code_name="fails", payload="{}"))
out["bad"] = {"status": bad.status, "msg": bad.message}

# Cancel a long one.
slow = w.queue(code_name="slow", payload="{}")
w.cancel(slow)
out["slow"] = w.wait_for_task(slow).status

# Progress, then retry (a new task with the same payload).
w.setProgress(t1, 42, "half way")
out["progress"] = w.client.get("tasks/%s" % t1.id)["body"]["percent"]
again = w.retry(t1, delay=0)
again_id = again["tasks"][0]["id"]
again_task = w.wait_for_task(Task({"id": again_id}))
out["retry"] = {"new_id": again_id != t1.id, "status": again_task.status,
                "payload": again_task.payload}

# Lists: by code, by status.
out["by_code"] = sorted(t.status for t in w.tasks_by_code_name("fails"))
errors = w.client.get("tasks?error=1")["body"]["tasks"]
out["errors"] = sorted(t["code_name"] for t in errors)
out["all"] = len(w.tasks(per_page=100))
print(json.dumps(out))
"#;

async fn admin_token(g: &Gantry) -> String {
    g.token.clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_client_registers_queues_reads_logs_cancels_retries_and_lists() {
    let g = Gantry::up(&[]);
    let token = admin_token(&g).await;
    let cmd = r#"echo start; cat "$PAYLOAD_FILE"; echo; echo "task=$TASK_ID dir=$TASK_DIR"; cat "$CONFIG_FILE"; echo; echo "env=$GREETING"; test -w "$TASK_DIR" && echo writable; echo to-stderr >&2"#;
    let first = py(
        &g,
        &token,
        "default",
        REGISTER,
        &[
            "hello",
            IMAGE,
            "echo old revision",
            r#"{"unknown_key": true}"#,
        ],
    );
    assert_eq!(first["rev"], 1, "{first}");
    assert_eq!(first["msg"], "Upload successful.", "{first}");
    let second = py(
        &g,
        &token,
        "default",
        REGISTER,
        &[
            "hello",
            IMAGE,
            cmd,
            r#"{"config": "{\"db\": \"x\"}", "env_vars": {"GREETING": "hi"}}"#,
        ],
    );
    assert_eq!(second["id"], first["id"], "same name, same code: {second}");
    assert_eq!(second["rev"], 2, "{second}");
    py(
        &g,
        &token,
        "default",
        REGISTER,
        &["fails", IMAGE, "echo oops >&2; exit 3", "{}"],
    );
    py(
        &g,
        &token,
        "default",
        REGISTER,
        &["slow", IMAGE, "sleep 300", "{}"],
    );

    let out = py(&g, &token, "default", SESSION, &[]);
    assert_eq!(
        out["codes"],
        json!([["fails", 1], ["hello", 2], ["slow", 1]]),
        "{out}"
    );
    assert_eq!(out["revisions"], json!([1, 2]), "{out}");
    let t1 = &out["t1"];
    assert_eq!(t1["status"], "complete", "{out}");
    assert_eq!(
        t1["scheduled"], false,
        "a task must not look like a schedule: {out}"
    );
    assert_eq!(t1["payload"], json!({"n": 1, "word": "café"}), "{out}");
    assert_eq!(t1["label"], "first");
    assert_eq!(t1["msg"], "", "a successful task has an empty msg: {out}");
    assert_eq!(t1["code_rev"], "2", "{out}");
    let log = out["t1_log"].as_str().expect("log");
    let id = out["t1_id"].as_str().expect("id");
    assert!(
        log.contains(r#"{"n": 1, "word": "caf\u00e9"}"#),
        "payload verbatim: {log}"
    );
    assert!(log.contains(&format!("task={id} dir=/tmp")), "{log}");
    assert!(log.contains(r#"{"db": "x"}"#), "config file: {log}");
    assert!(log.contains("env=hi") && log.contains("writable"), "{log}");
    assert!(log.contains("to-stderr"), "the log has both streams: {log}");
    let stdout_only = out["t1_stdout"].as_str().expect("stdout");
    assert!(
        stdout_only.contains("start") && !stdout_only.contains("to-stderr"),
        "{stdout_only}"
    );
    assert!(
        out["t2_log"].as_str().expect("log").contains("plain text"),
        "{out}"
    );
    assert_eq!(out["t2_priority"], 2);
    assert_eq!(out["bad"]["status"], "error", "{out}");
    let msg = out["bad"]["msg"].as_str().expect("msg");
    assert!(msg.contains("application") && msg.contains('3'), "{msg}");
    assert_eq!(out["slow"], "cancelled", "{out}");
    assert_eq!(out["progress"], 42, "{out}");
    assert_eq!(out["retry"]["new_id"], true, "{out}");
    assert_eq!(out["retry"]["status"], "complete", "{out}");
    assert_eq!(
        out["retry"]["payload"],
        json!({"n": 1, "word": "café"}),
        "{out}"
    );
    assert_eq!(out["by_code"], json!(["error"]), "{out}");
    assert_eq!(out["errors"], json!(["fails"]), "{out}");
    assert_eq!(out["all"], 5, "{out}");

    // The tasks are Gantry jobs, visible in /v1/jobs.
    let (status, job) = g.client().get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["status"], "succeeded", "{job}");
}

/// A schedule (`run_every` 60 s, `run_times` 1) fires at once and then
/// says `complete`; another is cancelled.
const SCHEDULES: &str = r#"
import json, sys, time, datetime
from iron_worker import IronWorker, Task
w = IronWorker()
out = {}
s = w.queue(code_name="hello", payload='{"from": "schedule"}', run_every=60, run_times=1)
out["scheduled"] = s.scheduled
deadline = time.time() + 60
while True:
    got = w.task(s)
    if got.run_count == 1 and got.status == "complete":
        break
    if time.time() > deadline:
        raise SystemExit("schedule did not complete: %r" % vars(got))
    time.sleep(0.3)
out["status"] = got.status
out["run_count"] = got.run_count
out["last_run_time"] = got.last_run_time is not None
later = w.queue(code_name="hello", payload="{}", run_every=3600,
                start_at=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1))
out["next_start"] = w.task(later).next_start.isoformat()
w.cancel(later)
out["cancelled"] = w.task(later).status
out["listed"] = sorted(x["status"] for x in w.client.get("schedules")["body"]["schedules"])
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_schedule_fires_completes_after_run_times_and_can_be_cancelled() {
    let g = Gantry::up(&[]);
    let token = g.token.clone();
    py(
        &g,
        &token,
        "default",
        REGISTER,
        &[
            "hello",
            IMAGE,
            r#"cat "$PAYLOAD_FILE"; echo " task=$TASK_ID""#,
            "{}",
        ],
    );
    let out = py(&g, &token, "default", SCHEDULES, &[]);
    assert_eq!(out["scheduled"], true, "{out}");
    assert_eq!(out["status"], "complete", "{out}");
    assert_eq!(out["run_count"], 1, "{out}");
    assert_eq!(out["last_run_time"], true, "{out}");
    assert_eq!(out["cancelled"], "cancelled", "{out}");
    assert_eq!(out["listed"], json!(["cancelled", "complete"]), "{out}");

    // The task the schedule made is listed as a task, with its payload and
    // its own id in TASK_ID.
    let api = g.client();
    let (_, tasks) = api.get("/2/projects/default/tasks?code_name=hello").await;
    let tasks = tasks["tasks"].as_array().expect("tasks").clone();
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    let t = &tasks[0];
    assert!(t["schedule_id"].is_string(), "{t}");
    let id = t["id"].as_str().expect("id");
    // The schedule is complete once it has made its last task; the task
    // itself may still run.
    api.wait(id).await;
    let (_, t) = api.get(&format!("/2/projects/default/tasks/{id}")).await;
    assert_eq!(t["status"], "complete", "{t}");
    let log = api
        .req(Method::GET, &format!("/2/projects/default/tasks/{id}/log"))
        .send()
        .await
        .expect("log")
        .text()
        .await
        .expect("text");
    assert_eq!(log, format!("{{\"from\": \"schedule\"}} task={id}\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_tokens_tenancy_and_the_quirks_of_the_wire() {
    let g = Gantry::up(&[]);
    let token = g.token.clone();
    let http = reqwest::Client::new();
    py(
        &g,
        &token,
        "default",
        REGISTER,
        &["hook", IMAGE, r#"cat "$PAYLOAD_FILE""#, "{}"],
    );
    let base = format!("{}/2/projects/default", g.url);

    // The webhook: the raw body is the payload, the token in ?oauth=.
    let r = http
        .post(format!("{base}/tasks/webhook?code_name=hook&oauth={token}"))
        .body("raw body, not JSON")
        .send()
        .await
        .expect("webhook");
    assert_eq!(r.status(), 200);
    let made: Value = r.json().await.expect("json");
    let id = made["id"].as_str().expect("id").to_string();
    g.client().wait(&id).await;
    let log = http
        .get(format!("{base}/tasks/{id}/log"))
        .header("Authorization", format!("OAuth {token}"))
        .header("Accept", "application/json")
        .send()
        .await
        .expect("log");
    assert!(
        log.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/plain"),
        "the log is text whatever Accept says"
    );
    assert_eq!(log.text().await.expect("text"), "raw body, not JSON\n");
    // Nothing in an Iron request loosens the sandbox: no network unless the
    // project allows bridge-network.
    let (_, job) = g.client().get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(job["spec"]["limits"]["network"], "none", "{job}");
    assert!(g
        .cli(&["projects", "update", "default", "--allow", "bridge-network"])
        .status
        .success());
    let r = http
        .post(format!("{base}/tasks/webhook?code_name=hook&oauth={token}"))
        .body("again")
        .send()
        .await
        .expect("webhook");
    let made: Value = r.json().await.expect("json");
    let (_, job) = g
        .client()
        .get(&format!("/v1/jobs/{}", made["id"].as_str().expect("id")))
        .await;
    assert_eq!(job["spec"]["limits"]["network"], "bridge", "{job}");

    // A wrong token: 401 with Iron's body.
    let r = http
        .get(format!("{base}/codes"))
        .header("Authorization", "OAuth not-a-token")
        .send()
        .await
        .expect("401");
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/json");
    let body: Value = r.json().await.expect("json");
    assert!(body["msg"].is_string(), "{body}");

    // Another project's id, with a valid token: 404, like a missing one.
    assert!(g.cli(&["projects", "create", "acme"]).status.success());
    let o = g.cli(&["tokens", "create", "--project", "acme", "--output", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let acme: Value = serde_json::from_str(&stdout(&o)).expect("json");
    let acme = acme["token"].as_str().expect("token").to_string();
    let r = http
        .get(format!("{base}/tasks/{id}"))
        .header("Authorization", format!("OAuth {acme}"))
        .send()
        .await
        .expect("404");
    assert_eq!(r.status(), 404);
    let r = http
        .get(format!("{}/2/projects/acme/tasks/{id}", g.url))
        .header("Authorization", format!("OAuth {acme}"))
        .send()
        .await
        .expect("404");
    assert_eq!(r.status(), 404, "acme cannot see default's task");
    // The Python client reports the 404 as an HTTPError with the status.
    let script = r#"
import json, sys
from requests.exceptions import HTTPError
from iron_worker import IronWorker
try:
    IronWorker().task(sys.argv[1])
    print(json.dumps({"status": 200}))
except HTTPError as e:
    print(json.dumps({"status": e.response.status_code}))
"#;
    assert_eq!(py(&g, &acme, "default", script, &[&id])["status"], 404);
    assert_eq!(py(&g, &acme, "acme", script, &[&id])["status"], 404);

    // Bearer works too; the CLI's unset priority (-3) means the code's
    // default; unknown keys and nulls are accepted.
    let r = http
        .post(format!("{base}/tasks"))
        .bearer_auth(&token)
        .json(
            &json!({"tasks": [{"code_name": "hook", "payload": "x", "priority": -3,
                                  "label": null, "cluster": null, "name": "hook", "sync": false,
                                  "something_new": 1}]}),
        )
        .send()
        .await
        .expect("queue");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["msg"], "Queued up");
    let queued = body["tasks"][0]["id"].as_str().expect("id").to_string();
    let r = http
        .get(format!("{base}/tasks/{queued}"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    let t: Value = r.json().await.expect("json");
    assert_eq!(t["priority"], 0, "{t}");
    assert_eq!(t["cluster"], "default", "{t}");

    // A cluster is a worker tag: no worker here has `gpu`, so the task
    // waits and its job says why; a cluster that is no valid tag is refused.
    let r = http
        .post(format!("{base}/tasks"))
        .bearer_auth(&token)
        .json(&json!({"tasks": [{"code_name": "hook", "payload": "", "cluster": "gpu"}]}))
        .send()
        .await
        .expect("queue");
    let body: Value = r.json().await.expect("json");
    let gpu = body["tasks"][0]["id"].as_str().expect("id").to_string();
    let (_, job) = g.client().get(&format!("/v1/jobs/{gpu}")).await;
    assert_eq!(job["spec"]["worker_tags"], json!(["gpu"]), "{job}");
    assert!(
        job["waiting"].as_str().unwrap_or_default().contains("gpu"),
        "{job}"
    );
    let r = http
        .post(format!("{base}/tasks"))
        .bearer_auth(&token)
        .json(&json!({"tasks": [{"code_name": "hook", "payload": "", "cluster": "Not A Tag"}]}))
        .send()
        .await
        .expect("queue");
    assert_eq!(r.status(), 400);
    for key in [
        "start_at",
        "end_at",
        "next_start",
        "last_run_time",
        "run_count",
        "run_every",
    ] {
        assert!(t.get(key).is_none(), "a task has no '{key}': {t}");
    }
    assert!(
        chrono::DateTime::parse_from_rfc3339(t["created_at"].as_str().expect("time")).is_ok(),
        "{t}"
    );

    // Limits: a payload over 64 KB, run_every under 60, priority 3, and a
    // page bigger than 100 are refused with Iron's body.
    let big = "x".repeat(64 * 1024 + 1);
    for (path, body, want) in [
        (
            "tasks",
            json!({"tasks": [{"code_name": "hook", "payload": big}]}),
            413,
        ),
        (
            "schedules",
            json!({"schedules": [{"code_name": "hook", "payload": "", "run_every": 30}]}),
            400,
        ),
        (
            "tasks",
            json!({"tasks": [{"code_name": "hook", "payload": "", "priority": 3}]}),
            400,
        ),
        (
            "tasks",
            json!({"tasks": [{"code_name": "nope", "payload": ""}]}),
            404,
        ),
    ] {
        let r = http
            .post(format!("{base}/{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), want, "{path}");
        let b: Value = r.json().await.expect("json");
        assert!(b["msg"].is_string(), "{b}");
    }
    let r = http
        .get(format!("{base}/tasks?per_page=101"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("page");
    assert_eq!(r.status(), 400);

    // A wrong verb and an unknown route answer Iron-shaped, with a type.
    let r = http
        .delete(format!("{base}/tasks"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("405");
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["content-type"], "application/json");
    let r = http
        .get(format!("{base}/nothing/here"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("404");
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/json");
    // Cancel sends no body and no content type (as the Python client does).
    let r = http
        .post(format!("{base}/tasks/{queued}/cancel"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("cancel");
    assert_eq!(r.status(), 200);

    // A task that has written nothing yet has no log: 404, which Python's
    // wait helper retries; once it has ended, its (empty) log is there.
    py(
        &g,
        &token,
        "default",
        REGISTER,
        &["quiet", IMAGE, "sleep 300", "{}"],
    );
    let r = http
        .post(format!("{base}/tasks"))
        .bearer_auth(&token)
        .json(&json!({"tasks": [{"code_name": "quiet", "payload": ""}]}))
        .send()
        .await
        .expect("queue");
    let body: Value = r.json().await.expect("json");
    let quiet = body["tasks"][0]["id"].as_str().expect("id").to_string();
    let log = |id: String| {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        async move {
            http.get(format!("{base}/tasks/{id}/log"))
                .bearer_auth(&token)
                .send()
                .await
                .expect("log")
        }
    };
    let r = log(quiet.clone()).await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/json");
    http.post(format!("{base}/tasks/{quiet}/cancel"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("cancel");
    g.client().wait_status(&quiet, "cancelled").await;
    let r = log(quiet).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .expect("ct")
        .starts_with("text/plain"));

    // A code's config is held to Iron's 64 KB too.
    let script = r#"
import json, sys
from requests.exceptions import HTTPError
from iron_worker import IronWorker
data = {"name": "big", "image": sys.argv[1], "config": "x" * (64 * 1024 + 1)}
ct, body = IronWorker.encode_multipart_formdata([("data", json.dumps(data))], [])
try:
    IronWorker().client.post(url="codes", body=body, headers={"Content-Type": ct})
    print(json.dumps({"status": 200}))
except HTTPError as e:
    print(json.dumps({"status": e.response.status_code, "body": e.response.json()}))
"#;
    let out = py(&g, &token, "default", script, &[IMAGE]);
    assert_eq!(out["status"], 413, "{out}");
    assert!(
        out["body"]["msg"].as_str().expect("msg").contains("config"),
        "{out}"
    );
}

/// Python 3's `postCode` sends the zip as the text of a bytes literal
/// (`b'PK...'`); Gantry decodes it, keeps the zip (downloadable as it was)
/// and runs it as a legacy runtime code: its file, with Iron's
/// `-payload/-config/-id/-d` arguments, on the stack named like its runtime
/// (refused, saying how to add one, until an admin registers it).
#[tokio::test(flavor = "multi_thread")]
async fn a_python_zip_upload_is_decoded_stored_and_runs_on_its_runtimes_stack() {
    let g = Gantry::up(&[]);
    let token = g.token.clone();
    let script = r#"
import json, os, sys, tempfile, zipfile, hashlib
from iron_worker import IronWorker, CodePackage
d = tempfile.mkdtemp()
with open(os.path.join(d, "worker.py"), "w") as f:
    f.write("import sys\nargs = dict(zip(sys.argv[1::2], sys.argv[2::2]))\n"
            "print('payload', open(args['-payload']).read())\n"
            "print('id', args['-id'], 'dir', args['-d'])\n")
path = os.path.join(d, "w.zip")
with zipfile.ZipFile(path, "w") as z:
    z.write(os.path.join(d, "worker.py"), "worker.py")
w = IronWorker()
code = CodePackage(name="zipped")
code.executable = "worker.py"
code.zip_path = path
made = w.postCode(code)
raw = w.client.get("codes/%s" % made.id)["body"]
print(json.dumps({"id": made.id, "sha": hashlib.sha256(open(path, "rb").read()).hexdigest(),
                  "checksum": raw["latest_checksum"], "runtime": raw["runtime"]}))
"#;
    let out = py(&g, &token, "default", script, &[]);
    assert_eq!(
        out["checksum"], out["sha"],
        "the stored zip is the real one: {out}"
    );
    assert_eq!(out["runtime"], "python", "{out}");
    let id = out["id"].as_str().expect("id");
    let r = reqwest::Client::new()
        .get(format!("{}/2/projects/default/codes/{id}/download", g.url))
        .header("Authorization", format!("OAuth {token}"))
        .send()
        .await
        .expect("download");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/zip");
    assert!(r.headers()["content-disposition"]
        .to_str()
        .expect("cd")
        .contains("zipped_1.zip"));
    let bytes = r.bytes().await.expect("bytes");
    assert!(bytes.starts_with(b"PK\x03\x04"));
    // A file part that is no zip is refused, and nothing is registered.
    let body = "--XX\r\nContent-Disposition: form-data; name=\"data\"\r\n\r\n\
        {\"name\": \"notzip\", \"runtime\": \"sh\", \"file_name\": \"a.sh\"}\r\n\
        --XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.zip\"\r\n\r\n\
        #!/bin/sh\necho hi\n\r\n--XX--\r\n";
    let r = reqwest::Client::new()
        .post(format!("{}/2/projects/default/codes", g.url))
        .header("Authorization", format!("OAuth {token}"))
        .header("Content-Type", "multipart/form-data; boundary=XX")
        .body(body)
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status(), 400);
    let (_, codes) = g.client().get("/2/projects/default/codes").await;
    assert_eq!(
        codes["codes"].as_array().expect("codes").len(),
        1,
        "{codes}"
    );

    // No stack for the runtime yet: refused, saying how to add one.
    let api = g.client();
    let queue = json!({"tasks": [{"code_name": "zipped", "payload": "{\"n\": 7}"}]});
    let (status, body) = api
        .call(
            Method::POST,
            "/2/projects/default/tasks",
            Some(queue.clone()),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["msg"]
            .as_str()
            .expect("msg")
            .contains("gantry stacks add python"),
        "{body}"
    );
    // An admin registers the stack; the task runs the zip's file on it.
    let o = g.cli(&["stacks", "add", "python", "gantry-test/python:1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, stacks) = api.get("/2/stacks").await;
    assert_eq!(stacks, json!(["python"]));
    let (status, body) = api
        .call(Method::POST, "/2/projects/default/tasks", Some(queue))
        .await;
    assert_eq!(status, 200, "{body}");
    let task = body["tasks"][0]["id"].as_str().expect("id").to_string();
    let job = api.wait(&task).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let log = api
        .req(
            Method::GET,
            &format!("/2/projects/default/tasks/{task}/log"),
        )
        .send()
        .await
        .expect("log")
        .text()
        .await
        .expect("text");
    assert!(log.contains("payload {\"n\": 7}"), "{log}");
    assert!(log.contains(&format!("id {task} dir /tmp")), "{log}");
}

/// The npm client (Iron's Node.js binding) queues a task and reads it back.
#[tokio::test(flavor = "multi_thread")]
async fn the_node_client_queues_and_reads_a_task() {
    let Ok(dir) = std::env::var("GANTRY_TEST_IRON_NODE") else {
        // scripts/test.sh installs the client wherever npm is; without Node
        // there is no client to test.
        assert!(
            Command::new("node").arg("--version").output().is_err(),
            "node is installed: run the suite through scripts/test.sh to get the npm client"
        );
        return;
    };
    let g = Gantry::up(&[]);
    let token = g.token.clone();
    py(
        &g,
        &token,
        "default",
        REGISTER,
        &["node", IMAGE, r#"cat "$PAYLOAD_FILE""#, "{}"],
    );
    let port = g.url.rsplit(':').next().expect("port").to_string();
    let script = r#"
const iron = require('iron_worker');
const [port, token] = process.argv.slice(1);
const w = new iron.Client({scheme: 'http', host: '127.0.0.1', port: Number(port),
                           token: token, project_id: 'default'});
w.tasksCreate('node', {from: 'node'}, {priority: 1}, (err, res) => {
  if (err) { console.error(err); process.exit(1); }
  const poll = () => w.tasksGet(res.id, (err, t) => {
    if (err) { console.error(err); process.exit(1); }
    if (t.status === 'queued' || t.status === 'running') return setTimeout(poll, 200);
    w.tasksLog(res.id, (err, log) => {
      if (err) { console.error(err); process.exit(1); }
      console.log(JSON.stringify({status: t.status, log: String(log)}));
    });
  });
  poll();
});
"#;
    let o = Command::new("node")
        .arg("-e")
        .arg(script)
        .arg(&port)
        .arg(&token)
        .env("NODE_PATH", format!("{dir}/node_modules"))
        .output()
        .expect("node");
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let out: Value = serde_json::from_str(stdout(&o).trim()).expect("json");
    assert_eq!(out["status"], "complete", "{out}");
    assert_eq!(out["log"], "{\"from\":\"node\"}\n", "{out}");
}
