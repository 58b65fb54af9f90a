//! Starting, ordering and holding back work: priority and delay, the
//! configuration lock, concurrency keys and project caps across two workers.

use crate::util::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// The most jobs running at one time, from their start and end times
/// (RFC 3339 with milliseconds, in UTC: they sort as text).
fn max_overlap(jobs: &[Value]) -> usize {
    let mut points: Vec<(String, i32)> = Vec::new();
    for j in jobs {
        points.push((s(&j["started_at"]), 1));
        points.push((s(&j["finished_at"]), -1));
    }
    // An end at the same instant as a start frees its slot first.
    points.sort();
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in points {
        now += d;
        max = max.max(now);
    }
    max as usize
}

#[tokio::test(flavor = "multi_thread")]
async fn priority_orders_claims_and_delay_holds_jobs() {
    // Jobs queued while only the API runs, then one slot works through them.
    let mut g = Gantry::server_only();
    let api = g.client();
    let mut ids = Vec::new();
    for p in [0, 2, 1, 2] {
        let (st, job) = api
            .post("/v1/jobs", json!({"spec": sh("echo hi"), "priority": p}))
            .await;
        assert_eq!(st, 201, "{job}");
        assert_eq!(job["priority"], p);
        ids.push(s(&job["id"]));
    }
    let spec = g.write_spec(
        "delayed.yaml",
        &format!("image: {IMAGE}\ncommand: [echo, late]\n"),
    );
    let out = g.cli(&[
        "jobs",
        "submit",
        spec.to_str().expect("path"),
        "--delay",
        "4s",
        "--priority",
        "2",
        "--output",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let delayed: Value = serde_json::from_str(&stdout(&out)).expect("json");
    let delayed_id = s(&delayed["id"]);
    assert!(
        s(&delayed["waiting"]).starts_with("delayed until "),
        "{delayed}"
    );
    let listing = g.cli(&["jobs", "list"]);
    assert!(
        stdout(&listing).contains("delayed until"),
        "{}",
        stdout(&listing)
    );

    let st = g.stop_with("TERM", Duration::from_secs(10));
    assert!(st.success());
    g.start_with(&[
        "up".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--slots".into(),
        "1".into(),
    ]);
    let api = g.client();
    let mut started = Vec::new();
    for id in &ids {
        let job = api.wait(id).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        started.push((s(&job["started_at"]), id.clone()));
    }
    started.sort();
    let order: Vec<String> = started.into_iter().map(|(_, id)| id).collect();
    assert_eq!(
        order,
        vec![
            ids[1].clone(),
            ids[3].clone(),
            ids[2].clone(),
            ids[0].clone()
        ],
        "high first, then by age; low last"
    );
    let late = api.wait(&delayed_id).await;
    assert_eq!(late["status"], "succeeded", "{late}");
    assert!(
        s(&late["started_at"]) >= s(&late["run_after"]),
        "not before its delay: {late}"
    );

    // Bad timing is refused naming the field, and creates nothing.
    let before = api.get("/v1/jobs?limit=1000").await.1["jobs"]
        .as_array()
        .map_or(0, Vec::len);
    for (body, field) in [
        (json!({"spec": sh("true"), "priority": 3}), "priority"),
        (json!({"spec": sh("true"), "delay": "soon"}), "delay"),
        (
            json!({"spec": sh("true"), "run_after": "tomorrow"}),
            "run_after",
        ),
        (
            json!({"spec": sh("true"), "delay": "1s", "run_after": "2030-01-01T00:00:00Z"}),
            "delay",
        ),
        (
            json!({"spec": {"image": IMAGE, "concurrency": {"key": "", "limit": 1}}}),
            "concurrency.key",
        ),
        (
            json!({"spec": {"image": IMAGE, "concurrency": {"key": "k", "limit": 0}}}),
            "concurrency.limit",
        ),
    ] {
        let (st, err) = api.post("/v1/jobs", body).await;
        assert_eq!(st, 400, "{err}");
        assert!(
            s(&err["error"]["message"]).contains(field),
            "{field}: {err}"
        );
    }
    let after = api.get("/v1/jobs?limit=1000").await.1["jobs"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(before, after);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_configuration_lock_and_a_concurrency_key_hold_across_two_workers() {
    let g = Gantry::up(&["--slots", "2", "--worker-id", "w1"]);
    let _w2 = Extra::spawn(&g, &["worker", "--slots", "2", "--worker-id", "w2"]);
    let api = g.client();
    let (st, _) = api
        .post("/v1/configs", json!({"id": "slow", "spec": sh("sleep 2")}))
        .await;
    assert_eq!(st, 201);

    // Configuration lock: three runs of one configuration, four free slots.
    let mut runs = Vec::new();
    for _ in 0..3 {
        let (st, job) = api.post("/v1/jobs", json!({"config": "slow"})).await;
        assert_eq!(st, 201, "{job}");
        runs.push(s(&job["id"]));
    }
    // While one runs, the others wait and say for which job.
    let deadline = Instant::now() + Duration::from_secs(60);
    let said = loop {
        let (_, list) = api.get("/v1/jobs?status=queued").await;
        let waiting: Vec<String> = list["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|j| j["waiting"].as_str().map(str::to_string))
            .collect();
        if let Some(w) = waiting
            .into_iter()
            .find(|w| w.starts_with("waiting for job"))
        {
            break w;
        }
        assert!(Instant::now() < deadline, "no job said why it waits");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(said.ends_with("of configuration slow"), "{said}");
    let out = g.cli(&["jobs", "list", "--status", "queued"]);
    let shown = stdout(&out);
    assert!(
        shown.contains("of configuration slow") || shown.lines().count() <= 1,
        "{shown}"
    );
    let mut done = Vec::new();
    for id in &runs {
        let job = api.wait(id).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        done.push(job);
    }
    assert_eq!(
        max_overlap(&done),
        1,
        "one run of a configuration at a time: {done:?}"
    );

    // A concurrency key: at most 2 of 4 at once, over both workers' 4 slots.
    let mut keyed = Vec::new();
    for _ in 0..4 {
        let mut spec = sh("sleep 2");
        spec["concurrency"] = json!({"key": "partner-api", "limit": 2});
        keyed.push(api.submit(spec).await);
    }
    let mut done = Vec::new();
    for id in &keyed {
        let job = api.wait(id).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        done.push(job);
    }
    assert_eq!(max_overlap(&done), 2, "{done:?}");
    let workers: std::collections::BTreeSet<String> =
        done.iter().map(|j| s(&j["worker"])).collect();
    assert!(
        workers.iter().all(|w| w == "w1" || w == "w2"),
        "{workers:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_project_cap_holds_jobs_back_and_says_so() {
    let g = Gantry::up(&["--slots", "4"]);
    let out = g.cli(&["projects", "update", "default", "--max-running", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains('1'), "{}", stdout(&out));
    let api = g.client();
    let a = api.submit(sh("sleep 2")).await;
    let b = api.submit(sh("sleep 2")).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, job) = api.get(&format!("/v1/jobs/{b}")).await;
        if s(&job["waiting"]).contains("max_running of 1") {
            break;
        }
        assert!(Instant::now() < deadline, "{job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let done = vec![api.wait(&a).await, api.wait(&b).await];
    assert_eq!(max_overlap(&done), 1, "{done:?}");
    let (st, err) = api
        .call(
            reqwest::Method::PATCH,
            "/v1/projects/default",
            Some(json!({"max_running": -1})),
        )
        .await;
    assert_eq!(st, 400, "{err}");
}
