//! Durability and lifecycle: restarts lose no queued job, a dead worker's
//! jobs are taken back, SIGTERM lets jobs finish or hands them back.

use crate::util::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn queued_jobs_survive_a_restart() {
    // Jobs queued while only the API runs...
    let mut g = Gantry::server_only();
    let api = g.client();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(api.submit(sh(&format!("echo job {i}"))).await);
    }
    let st = g.stop_with("TERM", Duration::from_secs(10));
    assert!(st.success(), "{st:?}");
    // ...run once `gantry up` starts on the same home.
    g.start_with(&["up".into(), "--listen".into(), "127.0.0.1:0".into()]);
    let api = g.client();
    for (i, id) in ids.iter().enumerate() {
        let job = api.wait(id).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(api.messages(id, "stdout").await, vec![format!("job {i}")]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_running_jobs_finish() {
    let mut g = Gantry::up(&["--shutdown-grace", "30s"]);
    let api = g.client();
    let id = api.submit(sh("sleep 2; echo finished")).await;
    api.wait_status(&id, "running").await;
    let st = g.stop_with("TERM", Duration::from_secs(25));
    assert!(st.success(), "{st:?}");
    g.start();
    let job = g.client().wait(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(
        job["attempt"], 1,
        "it finished during the grace period: {job}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_grace_period_jobs_go_back_to_the_queue() {
    let mut g = Gantry::up(&["--shutdown-grace", "1s"]);
    let api = g.client();
    // Runs long the first time; the second attempt sees its data folder is fresh and ends.
    let id = api.submit(sh("echo attempt; sleep 1000")).await;
    api.wait_status(&id, "running").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let st = g.stop_with("TERM", Duration::from_secs(20));
    assert!(st.success(), "{st:?}");
    assert!(
        containers_labelled(&format!("io.gantry.job={id}")).is_empty(),
        "the container was stopped and removed"
    );
    g.start();
    let api = g.client();
    let job = api.wait_status(&id, "running").await;
    assert_eq!(job["attempt"], 2, "{job}");
    let (_, full) = api.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(full["attempts"][0]["status"], "handed_back", "{full}");
    let (_, cancelled) = api
        .post(&format!("/v1/jobs/{id}/cancel"), serde_json::json!({}))
        .await;
    assert_eq!(cancelled["cancel_requested"], true);
    let end = api.wait(&id).await;
    assert_eq!(end["status"], "cancelled");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_worker_leaves_nothing_lost_or_running_forever() {
    let mut g = Gantry::up(&[]);
    let api = g.client();
    // The default spec (retry.attempts 1), as a new user would send it: the
    // lost attempt is Gantry's fault and does not use up that attempt.
    let id = api
        .submit(sh("test -e /tmp/never; echo run; sleep 3; echo ok"))
        .await;
    api.wait_status(&id, "running").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let worker = g.worker_id();
    let st = g.stop_with("KILL", Duration::from_secs(5));
    assert!(!st.success());
    // The dead process's container is still there...
    assert_eq!(containers_labelled(&format!("io.gantry.job={id}")).len(), 1);
    // ...until the worker starts again: it takes its jobs back and sweeps.
    g.start();
    let api = g.client();
    let job = api.wait(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["attempt"], 2);
    assert_eq!(job["attempts"][0]["status"], "lost", "{job}");
    assert!(
        containers_labelled(&format!("io.gantry.worker={worker}")).is_empty(),
        "dead attempt's container removed"
    );
}

/// Regression: the SIGTERM handler was installed by a spawned task, which
/// under load could run after the server said it was listening; a TERM
/// sent at once then killed the process (seen as a failed exit in
/// `storage::outputs_commit_exactly_once_whatever_the_crash_point`).
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_right_after_the_listening_line_is_a_clean_shutdown() {
    for _ in 0..5 {
        let mut g = Gantry::up(&[]);
        let st = g.stop_with("TERM", Duration::from_secs(20));
        assert!(st.success(), "{st:?}: {:?}", g.log.lock().expect("log"));
        let mut s = Gantry::server_only();
        let st = s.stop_with("TERM", Duration::from_secs(20));
        assert!(st.success(), "{st:?}: {:?}", s.log.lock().expect("log"));
    }
}
