//! Engine faults, against a second, private Docker engine this test starts,
//! kills and restarts (the machine's own engine is left alone): jobs wait in
//! the queue while no engine answers, a job whose engine dies ends as
//! `infrastructure` within a bounded time and is retried, `/readyz` says so.

use crate::util::*;
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SOCK: &str = "/run/gantry-test-engine.sock";
const ROOT: &str = "/var/tmp/gantry-test-engine";
const EXEC: &str = "/run/gantry-test-engine";

fn host() -> String {
    format!("unix://{SOCK}")
}

fn answers() -> bool {
    Command::new("docker")
        .args(["-H", &host(), "info"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A dockerd of its own: socket, data and state folders, no networking.
struct Engine(std::process::Child);

/// The test engine's own bridge. (`--bridge none` would make dockerd delete
/// the host's `docker0`, breaking the main engine.)
const BRIDGE: &str = "gantry-test0";

fn ensure_bridge() {
    let ip = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ip(&["link", "show", BRIDGE]) {
        assert!(
            ip(&["link", "add", BRIDGE, "type", "bridge"]),
            "cannot create {BRIDGE}"
        );
        assert!(ip(&["addr", "add", "10.213.213.1/24", "dev", BRIDGE]));
    }
    ip(&["link", "set", BRIDGE, "up"]);
}

impl Engine {
    fn start() -> Self {
        ensure_bridge();
        let log = std::fs::File::create("/tmp/gantry-test-engine.log").expect("log file");
        let child = Command::new("dockerd")
            .args([
                "--host",
                &host(),
                "--data-root",
                &format!("{ROOT}/data"),
                "--exec-root",
                EXEC,
                "--pidfile",
                &format!("{EXEC}.pid"),
                "--bridge",
                BRIDGE,
                "--iptables=false",
                "--ip6tables=false",
            ])
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start a second dockerd (run the tests as root)");
        let engine = Engine(child);
        let t = Instant::now();
        while !answers() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "the test engine did not start; see /tmp/gantry-test-engine.log"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // Its own image store: copy the test image in when missing.
        let has = Command::new("docker")
            .args(["-H", &host(), "image", "inspect", IMAGE])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !has {
            let st = Command::new("sh")
                .args([
                    "-c",
                    &format!("docker save {IMAGE} | docker -H {} load", host()),
                ])
                .status()
                .expect("copy the image");
            assert!(st.success(), "cannot load {IMAGE} into the test engine");
        }
        engine
    }

    /// The engine dies at once (SIGKILL), as in a crash.
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let t = Instant::now();
        while answers() && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(!answers(), "the test engine still answers");
        // A killed dockerd leaves its pid file behind, which stops a restart.
        let _ = std::fs::remove_file(format!("{EXEC}.pid"));
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(20) {
                if let Ok(Some(_)) = self.0.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn engine_outages_keep_jobs_queued_and_fail_running_ones_as_infrastructure() {
    let mut engine = Engine::start();
    let g = Gantry::up_with_env(&["--slots", "2"], &[("DOCKER_HOST", &host())]);
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
        Engine::start()
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
