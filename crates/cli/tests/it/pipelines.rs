//! Pipelines on the real binary, engine and store: phases in order, a
//! parallel phase, continue_on_failure, a hard failure, a cancel, and a
//! server restart in the middle of a run.

use crate::util::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

async fn config(api: &Api, id: &str, spec: Value) {
    let (st, body) = api
        .post("/v1/configs", json!({"id": id, "spec": spec}))
        .await;
    assert_eq!(st, 201, "{body}");
}

async fn wait_run(api: &Api, run: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (st, r) = api.get(&format!("/v1/pipeline-runs/{run}")).await;
        assert_eq!(st, 200, "{r}");
        if matches!(
            r["status"].as_str(),
            Some("succeeded" | "warning" | "failed" | "cancelled")
        ) {
            return r;
        }
        assert!(Instant::now() < deadline, "run did not end: {r}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn job(api: &Api, id: &Value) -> Value {
    let (st, j) = api.get(&format!("/v1/jobs/{}", s(id))).await;
    assert_eq!(st, 200, "{j}");
    j
}

#[tokio::test(flavor = "multi_thread")]
async fn three_phases_run_in_order_with_a_parallel_phase_and_a_soft_failure() {
    let g = Gantry::up(&["--slots", "4"]);
    let api = g.client();
    config(&api, "extract", sh("echo extract")).await;
    config(&api, "par-a", sh("sleep 2; echo a")).await;
    let mut par_b = sh("sleep 2; cat /data/config.json");
    par_b["parameters"] = json!({"who": "config", "keep": 1});
    config(&api, "par-b", par_b).await;
    config(&api, "soft", sh("echo soft fails; exit 3")).await;
    config(&api, "load", sh("echo load")).await;
    let file = g.write_spec(
        "pipeline.yaml",
        "phases:\n\
         - name: extract\n  tasks: [{config: extract}]\n\
         - name: transform\n  tasks:\n  - {config: par-a}\n  - {config: par-b, parameters: {who: task}}\n  - {config: soft, continue_on_failure: true}\n\
         - name: load\n  tasks: [{config: load}]\n",
    );
    let out = g.cli(&["pipelines", "create", "full", file.to_str().expect("path")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("phase 1 transform: par-a, par-b, soft (continue on failure)"),
        "{}",
        stdout(&out)
    );

    let out = g.cli(&["pipelines", "run", "full", "--wait"]);
    assert!(out.status.success(), "warning exits 0: {}", stderr(&out));
    let shown = stdout(&out);
    assert!(shown.contains("warning"), "{shown}");
    let run_id = shown
        .lines()
        .find_map(|l| l.strip_prefix("run"))
        .map(|r| r.trim().to_string())
        .expect("run id");
    let (_, run) = api.get(&format!("/v1/pipeline-runs/{run_id}")).await;
    assert_eq!(run["status"], "warning", "{run}");
    let tasks = run["tasks"].as_array().expect("tasks").clone();
    let status: Vec<(String, String)> = tasks
        .iter()
        .map(|t| (s(&t["config"]), s(&t["status"])))
        .collect();
    assert_eq!(
        status,
        [
            ("extract", "succeeded"),
            ("par-a", "succeeded"),
            ("par-b", "succeeded"),
            ("soft", "failed"),
            ("load", "succeeded")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .to_vec()
    );
    let mut jobs = Vec::new();
    for t in &tasks {
        jobs.push(job(&api, &t["job"]).await);
    }
    // Phases in order: each starts after every job of the one before ended.
    let by_phase = |p: u64| -> Vec<&Value> {
        tasks
            .iter()
            .zip(&jobs)
            .filter(|(t, _)| t["phase"] == p)
            .map(|(_, j)| j)
            .collect()
    };
    for p in 1..3u64 {
        let prev_end = by_phase(p - 1)
            .iter()
            .map(|j| s(&j["finished_at"]))
            .max()
            .expect("end");
        for j in by_phase(p) {
            assert!(
                s(&j["started_at"]) >= prev_end,
                "phase {p} started early: {j}"
            );
        }
    }
    // The transform phase ran in parallel.
    let (a, b) = (&jobs[1], &jobs[2]);
    assert!(
        s(&a["started_at"]) < s(&b["finished_at"]) && s(&b["started_at"]) < s(&a["finished_at"]),
        "par-a and par-b overlap: {a} {b}"
    );
    assert_eq!(jobs[2]["trigger"]["kind"], "pipeline");
    assert_eq!(jobs[2]["trigger"]["run"], run_id.as_str());
    assert_eq!(jobs[2]["trigger"]["phase"], 1);
    let cfg = api.messages(&s(&jobs[2]["id"]), "stdout").await.join("");
    assert!(
        cfg.contains("\"who\": \"task\"") && cfg.contains("\"keep\": 1"),
        "overrides merged: {cfg}"
    );

    let listed = stdout(&g.cli(&["pipelines", "runs", "full"]));
    assert!(
        listed.contains(&run_id) && listed.contains("warning"),
        "{listed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hard_failure_stops_the_pipeline_and_a_cancel_stops_its_jobs() {
    let g = Gantry::up(&["--slots", "2", "--shutdown-grace", "5s"]);
    let api = g.client();
    config(&api, "hard", sh("exit 4")).await;
    config(&api, "never", sh("echo never")).await;
    config(&api, "slow", sh("sleep 120")).await;
    let phases =
        |first: &str| json!([{"tasks": [{"config": first}]}, {"tasks": [{"config": "never"}]}]);
    let (st, _) = api
        .post(
            "/v1/pipelines",
            json!({"id": "stop", "phases": phases("hard")}),
        )
        .await;
    assert_eq!(st, 201);
    let (st, run) = api.post("/v1/pipelines/stop/run", json!({})).await;
    assert_eq!(st, 201, "{run}");
    let run = wait_run(&api, &s(&run["id"])).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(s(&run["error"]).contains("configuration hard"), "{run}");
    assert_eq!(run["tasks"][1]["status"], "skipped", "{run}");
    assert_eq!(run["tasks"][1]["job"], Value::Null, "{run}");

    // Cancel while the first phase runs.
    let (st, _) = api
        .post(
            "/v1/pipelines",
            json!({"id": "long", "phases": phases("slow")}),
        )
        .await;
    assert_eq!(st, 201);
    let (_, run) = api.post("/v1/pipelines/long/run", json!({})).await;
    let run_id = s(&run["id"]);
    let first = s(&run["tasks"][0]["job"]);
    api.wait_status(&first, "running").await;
    let out = g.cli(&["pipelines", "cancel", &run_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run = wait_run(&api, &run_id).await;
    assert_eq!(run["status"], "cancelled", "{run}");
    assert_eq!(api.wait(&first).await["status"], "cancelled");
    assert_eq!(run["tasks"][1]["status"], "skipped", "{run}");

    // Bad pipelines name the field and make nothing; a used configuration stays.
    for (body, field) in [
        (json!({"id": "bad", "phases": []}), "phases"),
        (
            json!({"id": "bad", "phases": [{"tasks": []}]}),
            "phases[0].tasks",
        ),
        (
            json!({"id": "bad", "phases": [{"tasks": [{"config": "nope"}]}]}),
            "phases[0].tasks[0].config",
        ),
        (
            json!({"id": "bad", "phases": [{"tasks": [{"config": "hard", "retries": 2}]}]}),
            "phases[0].tasks[0].retries",
        ),
    ] {
        let (st, err) = api.post("/v1/pipelines", body).await;
        assert_eq!(st, 400, "{err}");
        let msg = s(&err["error"]["message"]);
        assert!(msg.starts_with(field), "{field}: {err}");
    }
    let (_, list) = api.get("/v1/pipelines").await;
    assert_eq!(
        list["pipelines"].as_array().map(Vec::len),
        Some(2),
        "{list}"
    );
    let (st, err) = api
        .call(reqwest::Method::DELETE, "/v1/configs/never", None)
        .await;
    assert_eq!(st, 409, "{err}");
    assert!(s(&err["error"]["message"]).contains("long"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_server_carries_a_pipeline_on() {
    let mut g = Gantry::up(&["--shutdown-grace", "30s"]);
    let api = g.client();
    config(&api, "first", sh("sleep 3; echo first")).await;
    config(&api, "second", sh("echo second")).await;
    let (st, _) = api
        .post(
            "/v1/pipelines",
            json!({"id": "resume", "phases": [{"tasks": [{"config": "first"}]}, {"tasks": [{"config": "second"}]}]}),
        )
        .await;
    assert_eq!(st, 201);
    let (_, run) = api.post("/v1/pipelines/resume/run", json!({})).await;
    let run_id = s(&run["id"]);
    api.wait_status(&s(&run["tasks"][0]["job"]), "running")
        .await;
    // Stopped mid-pipeline: the running job finishes in the grace period,
    // nothing is left in memory.
    let st = g.stop_with("TERM", Duration::from_secs(40));
    assert!(st.success());
    let stopped = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    g.start();
    let api = g.client();
    let run = wait_run(&api, &run_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let first = job(&api, &run["tasks"][0]["job"]).await;
    assert_eq!(first["status"], "succeeded");
    assert_eq!(
        first["attempt"], 1,
        "finished during the grace period: {first}"
    );
    let second = job(&api, &run["tasks"][1]["job"]).await;
    let queued = humantime::parse_rfc3339(&s(&second["queued_at"])).expect("time");
    let queued = queued
        .duration_since(UNIX_EPOCH)
        .expect("epoch")
        .as_millis();
    assert!(
        queued > stopped,
        "phase 2 started by the restarted server: {second}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schedule_starts_pipeline_runs() {
    let g = Gantry::up(&[]);
    let api = g.client();
    config(&api, "tiny", sh("echo tiny")).await;
    let (st, _) = api
        .post(
            "/v1/pipelines",
            json!({"id": "p", "phases": [{"tasks": [{"config": "tiny"}]}]}),
        )
        .await;
    assert_eq!(st, 201);
    let out = g.cli(&[
        "schedules",
        "create",
        "ps",
        "--pipeline",
        "p",
        "--every",
        "2s",
        "--max-runs",
        "2",
        "--overlap",
        "allow",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let deadline = Instant::now() + Duration::from_secs(60);
    let runs = loop {
        let (_, list) = api.get("/v1/pipelines/p/runs").await;
        let runs = list["runs"].as_array().cloned().unwrap_or_default();
        let (_, sched) = api.get("/v1/schedules/ps").await;
        if runs.len() >= 2 && sched["status"] == "ended" {
            break runs;
        }
        assert!(Instant::now() < deadline, "{list} {sched}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(runs.len(), 2, "{runs:?}");
    let mut ticks = Vec::new();
    for r in &runs {
        assert_eq!(r["trigger"]["kind"], "schedule", "{r}");
        assert_eq!(r["trigger"]["id"], "ps", "{r}");
        ticks.push(s(&r["trigger"]["tick"]));
        let end = wait_run(&api, &s(&r["id"])).await;
        assert_eq!(end["status"], "succeeded", "{end}");
    }
    ticks.dedup();
    assert_eq!(ticks.len(), 2, "one run per tick");
    let (st, err) = api
        .call(reqwest::Method::DELETE, "/v1/pipelines/p", None)
        .await;
    assert_eq!(st, 409, "{err}");
    assert!(s(&err["error"]["message"]).contains("ps"), "{err}");
}
