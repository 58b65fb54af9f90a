//! Engine faults, against a second, private Docker engine this test starts,
//! kills and restarts (the machine's own engine is left alone): jobs wait in
//! the queue while no engine answers, a job whose engine dies ends as
//! `infrastructure` within a bounded time and is retried, `/readyz` says so.

use crate::util::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn engine_outages_keep_jobs_queued_and_fail_running_ones_as_infrastructure() {
    let mut engine = PrivateEngine::start("test-engine");
    let g = Gantry::up_with_env(&["--slots", "2"], &[("DOCKER_HOST", &engine.host())]);
    let api = g.client();
    let (s, ready) = api.get("/readyz").await;
    assert_eq!(s, 200, "{ready}");

    // A running job whose engine dies: infrastructure, within a bounded
    // time, and retried per its spec.
    let mut spec = sh("echo started; sleep 60");
    spec["retry"] = json!({"attempts": 2, "backoff": "1s"});
    let id = api.submit(spec).await;
    let t = Instant::now();
    loop {
        let (_, job) = api.get(&format!("/v1/jobs/{id}")).await;
        if job["status"] == "running"
            && api
                .messages(&id, "stdout")
                .await
                .iter()
                .any(|m| m == "started")
        {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "never ran: {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    engine.kill();
    let killed = Instant::now();

    // While no engine answers: not ready, and the job (now waiting for its
    // second attempt) and a new one stay queued instead of failing.
    let t = Instant::now();
    loop {
        let (s, body) = api.get("/readyz").await;
        if s == 503 {
            let msg = body["error"]["message"].as_str().unwrap_or_default();
            assert!(msg.contains("container engine does not answer"), "{body}");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(15), "still ready: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let queued = api.submit(sh("echo after the outage")).await;
    let t = Instant::now();
    let (job, first) = loop {
        let (_, job) = api.get(&format!("/v1/jobs/{id}")).await;
        let first = job["attempts"][0].clone();
        if first["status"] != "running" {
            break (job, first);
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the attempt did not end within a bounded time: {job}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!(
        "the attempt ended {:?} after the engine died",
        killed.elapsed()
    );
    assert_eq!(first["error"]["kind"], "infrastructure", "{job}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    for j in [&id, &queued] {
        let (_, job) = api.get(&format!("/v1/jobs/{j}")).await;
        assert_eq!(job["status"], "queued", "no engine, no failure: {job}");
    }

    // The engine comes back: ready again, and both jobs run to success.
    let engine = {
        drop(engine);
        PrivateEngine::start("test-engine")
    };
    let job = api.wait(&id).await;
    assert_eq!(
        job["status"], "succeeded",
        "retried after the outage: {job}"
    );
    let job = api.wait(&queued).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let (s, _) = api.get("/readyz").await;
    assert_eq!(s, 200);
    drop(engine);
}
