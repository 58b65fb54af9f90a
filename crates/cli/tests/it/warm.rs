//! Warm starts: the same answers as a cold start (the locked-down probe,
//! exit codes, a command the image cannot run), a pool container killed
//! behind the worker's back, and no pool container left after a shutdown, a
//! crash or an engine restart's worth of dead containers.

use crate::util::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// `gantry up` with warm starts on and the test image listed; returns once
/// its pool holds a started container.
fn warm_gantry() -> Gantry {
    let env = warm_flags_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let g = Gantry::up_with_env(&["--slots", "2"], &env);
    pool_ready(&g);
    g
}

fn pool(g: &Gantry) -> Vec<String> {
    docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=io.gantry.pool={}", g.worker_id()),
        "--filter",
        "status=running",
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

fn pool_ready(g: &Gantry) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while pool(g).is_empty() {
        assert!(Instant::now() < deadline, "no warm container came up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const PROBE: &str = r#"
echo "uid=$(id -u) gid=$(id -g)"
grep -E '^(CapEff|CapBnd|CapPrm|CapInh|CapAmb|NoNewPrivs|Seccomp)' /proc/self/status
echo "ifaces=$(ls /sys/class/net | tr '\n' ' ')"
touch /rootfs-write 2>/dev/null && echo root=writable || echo root=readonly
touch /tmp/x && echo tmp=writable
touch /data/out/x && echo data=writable
touch /data/in/x 2>/dev/null && echo in=writable || echo in=readonly
echo "home=$HOME pwd=$(pwd) args=$0"
ls -A /data/out | tr '\n' ' '; echo
ls -A /tmp | tr '\n' ' '; echo
ls -l /proc/self/fd/0 | sed 's/.*-> //'
read -r line && echo "stdin=$line" || echo stdin=eof
cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max
cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes
env | grep -v -E '^(HOSTNAME|GANTRY_JOB_ID|KBC_RUNID|KBC_URL|KBC_STACKID|KBC_TOKENID|KBC_TOKENDESC)=' | sort
"#;

async fn probe(api: &Api, spec: serde_json::Value) -> (serde_json::Value, String) {
    let job = api.run(spec).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let out = api
        .messages(job["id"].as_str().expect("id"), "stdout")
        .await
        .join("\n");
    (job, out)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_locked_down_probe_answers_the_same_warm_and_cold() {
    let mut spec = sh(PROBE);
    spec["limits"] = json!({"memory": "300m", "pids": 77});
    let cold = Gantry::up_with_env(&[], &[("GANTRY_WARM", "false")]);
    let (cold_job, cold_out) = probe(&cold.client(), spec.clone()).await;
    assert_eq!(cold_job["limits"]["start"], "cold", "{cold_job}");
    let warm = warm_gantry();
    let (warm_job, warm_out) = probe(&warm.client(), spec).await;
    assert_eq!(warm_job["limits"]["start"], "warm", "{warm_job}");
    assert_eq!(warm_out, cold_out, "warm and cold answer differently");
    // And the answers are the locked-down ones.
    for want in [
        "uid=65534 gid=65534",
        "CapEff:\t0000000000000000",
        "CapBnd:\t0000000000000000",
        "NoNewPrivs:\t1",
        "Seccomp:\t2",
        "ifaces=lo ",
        "root=readonly",
        "in=readonly",
        "/dev/null",
        "stdin=eof",
        "home=/tmp pwd=/ args=sh",
    ] {
        assert!(warm_out.contains(want), "{want}: {warm_out}");
    }
    assert!(
        warm_out.lines().any(|l| l.trim() == "77"),
        "pids: {warm_out}"
    );
    assert!(
        warm_out
            .lines()
            .any(|l| l.trim() == (300u64 << 20).to_string()),
        "memory: {warm_out}"
    );
    let mut cold_limits = cold_job["limits"].clone();
    let mut warm_limits = warm_job["limits"].clone();
    cold_limits["start"] = json!(null);
    warm_limits["start"] = json!(null);
    assert_eq!(cold_limits, warm_limits);
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_codes_and_an_unrunnable_command_are_the_same_warm_and_cold() {
    let cold = Gantry::up_with_env(&[], &[("GANTRY_WARM", "false")]);
    let warm = warm_gantry();
    let bad = json!({"image": IMAGE, "command": ["/no/such/program"]});
    let cold_bad = cold.client().run(bad.clone()).await;
    pool_ready(&warm);
    let warm_bad = warm.client().run(bad).await;
    assert_eq!(warm_bad["limits"]["start"], "warm", "{warm_bad}");
    for job in [&cold_bad, &warm_bad] {
        assert_eq!(job["status"], "failed", "{job}");
        assert_eq!(job["error"]["kind"], "user_error", "{job}");
        let msg = job["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains("the container cannot start"), "{msg}");
    }
    pool_ready(&warm);
    let job = warm.client().run(sh("echo first; exit 3")).await;
    assert_eq!(job["limits"]["start"], "warm", "{job}");
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["exit_code"], 3, "{job}");
    let out = warm
        .client()
        .messages(job["id"].as_str().expect("id"), "stdout")
        .await;
    assert_eq!(out, ["first"], "output from its first byte");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_pool_container_means_a_cold_start_not_a_failure() {
    let g = warm_gantry();
    let killed = pool(&g);
    for id in &killed {
        docker(&["kill", id]);
        // Stopped, not merely signalled: a container killed during its
        // hand-over ends the job as a cold one killed at its start would.
        docker(&["wait", id]);
    }
    // The dead one is given up on; the job starts cold (or on a container
    // made since), never fails for it.
    let job = g.client().run(sh("echo ok")).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let all = docker(&["ps", "-aq", "--no-trunc"]);
    for id in &killed {
        assert!(
            !all.lines().any(|l| l.starts_with(id.as_str())),
            "{id} left"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_pool_container_outlives_a_shutdown_or_a_crash() {
    let mut g = warm_gantry();
    let worker = g.worker_id();
    let label = format!("io.gantry.pool={worker}");
    // A crash leaves the pool; the next start of the same worker removes it.
    g.stop_with("KILL", Duration::from_secs(10));
    assert!(!containers_labelled(&label).is_empty());
    g.start();
    pool_ready(&g);
    let job = g.client().run(sh("true")).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    g.stop_with("TERM", Duration::from_secs(60));
    assert!(
        containers_labelled(&label).is_empty(),
        "left: {:?}",
        containers_labelled(&label)
    );
    assert!(
        !g.home_path().join("work.warm").exists()
            || std::fs::read_dir(g.home_path().join("work.warm"))
                .map(|d| d.count() == 0)
                .unwrap_or(true)
    );
}
