//! Limits and lock-down: memory (OOM from the engine's state), timeout,
//! cancel, pids, network and the container's security settings.

use crate::util::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn memory_limit_kills_with_oom_naming_the_limit() {
    let g = Gantry::up(&[]);
    let api = g.client();
    // The container's main process itself goes past the limit, so the kernel
    // kills it: exit 137 with the engine's OOM flag.
    let mut spec = sh("exec dd if=/dev/zero of=/dev/null bs=64M count=1");
    spec["limits"] = json!({"memory": "16m"});
    let job = api.run(spec).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["kind"], "oom", "{job}");
    assert_eq!(job["exit_code"], 137, "{job}");
    assert!(
        job["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("16m")),
        "{job}"
    );
    assert_eq!(job["limits"]["memory"], 16 << 20);
    assert_eq!(
        job["limits"]["memory_swap"],
        16 << 20,
        "no swap: memory+swap == memory"
    );

    // A child killed for the limit while the main process goes on and exits 0
    // is a success, whether or not the engine has flagged the OOM by the time
    // the container is inspected (it sometimes has not).
    let mut survivor = sh("dd if=/dev/zero of=/dev/null bs=64M count=1; echo survived");
    survivor["limits"] = json!({"memory": "16m"});
    let job = api.run(survivor).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["exit_code"], 0, "{job}");
    let id = job["id"].as_str().expect("id");
    assert!(
        api.messages(id, "stdout")
            .await
            .contains(&"survived".to_string()),
        "the shell went on after its child was killed"
    );

    // Exit 137 without an OOM is an ordinary application error.
    let killed = api.run(sh("exit 137")).await;
    assert_eq!(killed["error"]["kind"], "application_error", "{killed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn timeout_stops_the_container_and_reports_timed_out() {
    let g = Gantry::up(&[]);
    let api = g.client();
    // A process that handles SIGTERM stops at once.
    let mut spec =
        sh("trap 'echo got TERM; exit 143' TERM; echo started; while true; do sleep 0.1; done");
    spec["limits"] = json!({"timeout": "1s"});
    let t = Instant::now();
    let job = api.run(spec).await;
    assert_eq!(job["status"], "timed_out", "{job}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "stopped on SIGTERM, not after the grace period"
    );
    let id = job["id"].as_str().expect("id");
    assert!(
        api.messages(id, "stdout")
            .await
            .contains(&"got TERM".to_string()),
        "SIGTERM reached the job"
    );

    // One that ignores SIGTERM is killed after the 10 s grace period.
    let mut stubborn = sh("trap '' TERM; while true; do sleep 0.1; done");
    stubborn["limits"] = json!({"timeout": "500ms"});
    let t = Instant::now();
    let job = api.run(stubborn).await;
    assert_eq!(job["status"], "timed_out", "{job}");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(10) && took < Duration::from_secs(30),
        "took {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_stops_running_jobs_and_drops_queued_ones() {
    let g = Gantry::up(&["--slots", "1"]);
    let api = g.client();
    let running = api
        .submit(sh(
            "trap 'exit 143' TERM; echo up; while true; do sleep 0.1; done",
        ))
        .await;
    api.wait_status(&running, "running").await;
    let queued = api.submit(sh("echo never")).await;

    let (status, job) = api
        .post(&format!("/v1/jobs/{queued}/cancel"), json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        job["status"], "cancelled",
        "a queued job is cancelled at once"
    );

    let t = Instant::now();
    let out = g.cli(&["jobs", "cancel", &running]);
    assert!(out.status.success(), "{}", stderr(&out));
    let job = api.wait(&running).await;
    assert_eq!(job["status"], "cancelled", "{job}");
    assert!(
        t.elapsed() < Duration::from_secs(12),
        "within the grace period"
    );
    assert!(containers_labelled(&format!("io.gantry.job={running}")).is_empty());
    let (_, never) = api.get(&format!("/v1/jobs/{queued}")).await;
    assert_eq!(never["status"], "cancelled");
    assert!(
        never["started_at"].is_null(),
        "the cancelled queued job never ran: {never}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn containers_run_locked_down_by_default() {
    let g = Gantry::up(&[]);
    let api = g.client();
    let probe = r#"
echo "uid=$(id -u) gid=$(id -g)"
grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status
echo "ifaces=$(ls /sys/class/net | tr '\n' ' ')"
touch /rootfs-write 2>/dev/null && echo root=writable || echo root=readonly
touch /tmp/x && echo tmp=writable
touch /data/out/x && echo data=writable
echo "home=$HOME"
cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max
"#;
    let job = api.run(sh(probe)).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let out = api
        .messages(job["id"].as_str().expect("id"), "stdout")
        .await
        .join("\n");
    assert!(out.contains("uid=65534 gid=65534"), "{out}");
    assert!(
        out.contains("CapEff:\t0000000000000000"),
        "no capabilities: {out}"
    );
    assert!(out.contains("CapBnd:\t0000000000000000"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("ifaces=lo "), "network none: {out}");
    assert!(out.contains("root=readonly"), "{out}");
    assert!(
        out.contains("tmp=writable") && out.contains("data=writable"),
        "{out}"
    );
    assert!(out.contains("home=/tmp"), "{out}");
    assert!(out.lines().any(|l| l.trim() == "512"), "pids limit: {out}");
    let limits = &job["limits"];
    assert_eq!(limits["network"], "none");
    assert_eq!(limits["user"], "65534:65534");
    assert_eq!(limits["pids"], 512);

    assert_eq!(limits["read_only_root"], true);
    assert_eq!(limits["loosened"], json!([]));

    // Loosening is an explicit spec field, refused unless the project allows
    // it, and recorded on the job.
    let mut loose = sh(
        "ls /sys/class/net | tr '\\n' ' '; echo; id -u; touch /rootfs-write && echo root=writable",
    );
    loose["limits"] = json!({"network": "bridge", "pids": 64, "cpus": 0.5});
    loose["user"] = json!("root");
    loose["writable_root"] = json!(true);
    for (field, value, allow) in [
        ("user", json!("0:0"), "root-user"),
        ("limits", json!({"network": "bridge"}), "bridge-network"),
        ("writable_root", json!(true), "writable-root"),
    ] {
        let mut one = sh("true");
        one[field] = value;
        let (status, body) = api.post("/v1/jobs", json!({ "spec": one })).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["code"], "invalid_spec", "{body}");
        let msg = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains("project 'default' does not allow")
                && msg.contains(allow)
                && msg.contains("gantry projects update default --allow"),
            "{msg}"
        );
    }
    let (status, body) = api
        .post("/v1/configs", json!({"id": "loose", "spec": loose.clone()}))
        .await;
    assert_eq!(status, 400, "configurations are checked too: {body}");

    let o = g.cli(&[
        "projects",
        "update",
        "default",
        "--allow",
        "root-user,bridge-network,writable-root",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("root-user,bridge-network,writable-root"),
        "{}",
        stdout(&o)
    );
    let job = api.run(loose).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let out = api
        .messages(job["id"].as_str().expect("id"), "stdout")
        .await
        .join("\n");
    assert!(out.contains("eth0"), "{out}");
    assert!(out.lines().any(|l| l == "0"), "root when asked: {out}");
    assert!(out.contains("root=writable"), "{out}");
    assert_eq!(job["limits"]["network"], "bridge");
    assert_eq!(job["limits"]["cpus"], 0.5);
    assert_eq!(job["limits"]["read_only_root"], false);
    assert_eq!(
        job["limits"]["loosened"],
        json!(["root-user", "bridge-network", "writable-root"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pids_limit_stops_fork_bombs() {
    let g = Gantry::up(&[]);
    let api = g.client();
    let mut spec = sh("i=0; while [ $i -lt 40 ]; do sleep 5 & i=$((i+1)); done; wait; echo done");
    spec["limits"] = json!({"pids": 16, "timeout": "20s"});
    let job = api.run(spec).await;
    let id = job["id"].as_str().expect("id");
    let err = api.messages(id, "stderr").await.join("\n");
    assert!(
        err.contains("fork")
            || err.contains("Resource temporarily unavailable")
            || err.contains("can't"),
        "{err} / {job}"
    );
}
