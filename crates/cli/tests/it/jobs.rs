//! Jobs end with truthful statuses, retry as the spec says, and leave no
//! container behind.

use crate::util::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn exit_codes_map_to_statuses_and_error_kinds() {
    let g = Gantry::up(&[]);
    let api = g.client();

    let ok = api.run(sh("echo fine")).await;
    assert_eq!(ok["status"], "succeeded", "{ok}");
    assert_eq!(ok["exit_code"], 0);
    assert!(
        ok["image_digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:")),
        "{ok}"
    );
    for key in ["queued_at", "started_at", "finished_at", "worker", "limits"] {
        assert!(!ok[key].is_null(), "{key} missing: {ok}");
    }

    let user = api
        .run(sh("echo progress; echo 'the input is bad' >&2; exit 1"))
        .await;
    assert_eq!(user["status"], "failed");
    assert_eq!(user["error"]["kind"], "user_error");
    assert_eq!(
        user["error"]["message"], "the input is bad",
        "stderr tail is the message: {user}"
    );

    let stdout_only = api.run(sh("echo only stdout here; exit 1")).await;
    assert_eq!(
        stdout_only["error"]["message"], "only stdout here",
        "{stdout_only}"
    );

    let app = api.run(sh("echo crash >&2; exit 3")).await;
    assert_eq!(app["status"], "failed");
    assert_eq!(app["error"]["kind"], "application_error");
    assert_eq!(app["exit_code"], 3);
    assert!(
        app["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("crash")),
        "{app}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_application_errors_but_never_user_errors() {
    let g = Gantry::up(&[]);
    let api = g.client();

    let mut spec = sh("echo try; exit 4");
    spec["retry"] = json!({"attempts": 3, "backoff": "100ms"});
    let id = api.submit(spec).await;
    let job = api.wait(&id).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["kind"], "application_error");
    assert_eq!(job["attempt"], 3);
    let attempts = job["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 3, "{job}");
    assert!(attempts
        .iter()
        .all(|a| a["status"] == "failed" && a["error"]["kind"] == "application_error"));
    let system = api.messages(&id, "system").await;
    assert!(
        system
            .iter()
            .any(|m| m.contains("retrying in 100ms as attempt 2")),
        "{system:?}"
    );
    // Every attempt's output is kept.
    assert_eq!(api.messages(&id, "stdout").await, vec!["try", "try", "try"]);

    let mut user = sh("exit 1");
    user["retry"] = json!({"attempts": 3, "backoff": "100ms"});
    let job = api.run(user).await;
    assert_eq!(job["error"]["kind"], "user_error");
    assert_eq!(
        job["attempts"].as_array().map(Vec::len),
        Some(1),
        "user errors are not retried: {job}"
    );

    // Each attempt gets a fresh data folder: nothing one attempt wrote is seen
    // by the next.
    let mut fresh = sh("test -e /data/out/marker && exit 0; touch /data/out/marker; exit 5");
    fresh["retry"] = json!({"attempts": 2, "backoff": "10ms"});
    let job = api.run(fresh).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["attempt"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_images_fail_without_retrying() {
    let g = Gantry::up(&[]);
    let api = g.client();
    let never = api.run(json!({"image": "gantry-test/absent:9", "pull": "never", "retry": {"attempts": 3, "backoff": "10ms"}})).await;
    assert_eq!(never["status"], "failed");
    assert_eq!(never["error"]["kind"], "image_not_found", "{never}");
    assert_eq!(never["attempt"], 1);

    // No registry answers here: an outage, not a missing image (issue 15),
    // so the job fails as infrastructure after its retries and says why.
    let pulled = api
        .run(json!({"image": "127.0.0.1:1/nothing/here:1", "pull": "if-missing", "retry": {"attempts": 3, "backoff": "10ms"}}))
        .await;
    assert_eq!(pulled["error"]["kind"], "infrastructure", "{pulled}");
    assert!(
        pulled["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("does not answer")),
        "{pulled}"
    );
    assert_eq!(pulled["attempt"], 3, "retried: {pulled}");

    // `always` asks the registry for the tag's digest; none answers here, so
    // the image the engine holds runs and the log says why (issue 15).
    let always = api.run(json!({"image": IMAGE, "pull": "always"})).await;
    assert_eq!(always["status"], "succeeded", "{always}");
    let id = always["id"].as_str().expect("id");
    let system = api.messages(id, "system").await;
    assert!(
        system.iter().any(|m| m.contains("does not answer")),
        "{system:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_command_or_an_image_without_cmd_is_a_clear_user_error() {
    let g = Gantry::up(&[]);
    let api = g.client();
    let job = api
        .run(json!({"image": IMAGE, "command": ["/no/such/binary"]}))
        .await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["error"]["kind"], "user_error", "{job}");
    assert!(
        job["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("/no/such/binary")),
        "{job}"
    );

    // An image with neither CMD nor a command in the spec.
    let nocmd = "gantry-test/nocmd:1";
    if docker(&["images", "-q", nocmd]).is_empty() {
        let id = docker(&["create", IMAGE]);
        let st = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("docker export {id} | docker import - {nocmd}"))
            .status()
            .expect("import");
        docker(&["rm", &id]);
        assert!(st.success());
    }
    let job = api.run(json!({"image": nocmd})).await;
    assert_eq!(job["error"]["kind"], "user_error", "{job}");
    let msg = job["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(msg.contains("no command"), "{msg}");
    assert_eq!(job["attempt"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn containers_are_labelled_while_running_and_removed_after() {
    // Job labels are set when a container is created, so only a cold start
    // has them (a warm container keeps its pool's: see ARCHITECTURE.md,
    // "Warm starts"); this test pins the cold contract in both suite modes.
    let g = Gantry::up_with_env(&[], &[("GANTRY_WARM", "false")]);
    let api = g.client();
    let id = api.submit(sh("sleep 2")).await;
    api.wait_status(&id, "running").await;
    let mut found = Vec::new();
    for _ in 0..100 {
        found = containers_labelled(&format!("io.gantry.job={id}"));
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(found.len(), 1, "one container for the running job");
    let labels = docker(&["inspect", "-f", "{{json .Config.Labels}}", &found[0]]);
    let labels: serde_json::Value = serde_json::from_str(&labels).expect("labels");
    assert_eq!(labels["io.gantry.attempt"], "1");
    assert_eq!(labels["io.gantry.worker"], g.worker_id());
    assert_eq!(labels["io.gantry.project"], "default");
    let job = api.wait(&id).await;
    assert_eq!(job["status"], "succeeded");

    // Whatever the outcome, nothing stays.
    for spec in [
        sh("exit 1"),
        sh("exit 7"),
        json!({"image": IMAGE, "command": ["/nope"]}),
    ] {
        api.run(spec).await;
    }
    assert!(
        containers_labelled(&format!("io.gantry.worker={}", g.worker_id())).is_empty(),
        "containers left behind"
    );
    let work = g.home_path().join("work");
    assert_eq!(
        std::fs::read_dir(&work).expect("work dir").count(),
        0,
        "data folders left behind"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_at_most_slots_jobs_at_once() {
    let g = Gantry::up(&["--slots", "2"]);
    let api = g.client();
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(api.submit(sh("sleep 1")).await);
    }
    let mut max_running = 0;
    // Until every job has ended, whatever its end (a failed one must fail
    // the test, not keep it waiting), within a deadline.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (_, page) = api.get("/v1/jobs?status=running").await;
        let running = page["jobs"].as_array().map_or(0, Vec::len);
        max_running = max_running.max(running);
        let (_, all) = api.get("/v1/jobs?limit=10").await;
        let jobs = all["jobs"].as_array().cloned().unwrap_or_default();
        let ended = jobs
            .iter()
            .filter(|j| !matches!(j["status"].as_str(), Some("queued" | "running")))
            .count();
        if ended == 4 {
            for j in &jobs {
                assert_eq!(j["status"], "succeeded", "{j}");
            }
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "jobs did not end: {all}"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(ids.len(), 4);
    assert_eq!(max_running, 2, "two slots, two jobs at a time");
}

/// A real registry (Debian's docker-registry) on a loopback port, for pulls.
struct Registry {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .expect("config");
        let child = std::process::Command::new("docker-registry")
            .args(["serve", config.to_str().expect("path")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry is installed by scripts/test.sh");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pulls_a_missing_image_with_progress_as_events() {
    let g = Gantry::up(&[]);
    let api = g.client();
    let reg = Registry::start();
    let image = format!(
        "127.0.0.1:{}/gantry/busybox:pull-{}",
        reg.port,
        std::process::id()
    );
    docker(&["tag", IMAGE, &image]);
    let pushed = std::process::Command::new("docker")
        .args(["push", &image])
        .output()
        .expect("push");
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    docker(&["rmi", &image]);
    assert!(
        docker(&["images", "-q", &image]).is_empty(),
        "the tag is gone locally"
    );

    let job = api
        .run(json!({"image": image, "command": ["echo", "pulled"], "pull": "if-missing"}))
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let id = job["id"].as_str().expect("id");
    let system = api.messages(id, "system").await;
    assert!(
        system.iter().any(|m| m.starts_with("pulling image")),
        "{system:?}"
    );
    assert!(
        system.iter().any(|m| m.starts_with("pull: ")),
        "progress lines: {system:?}"
    );
    assert_eq!(api.messages(id, "stdout").await, vec!["pulled"]);

    // Present now: `never` runs it without pulling; `always` asks the
    // registry and pulls nothing, the digest being the same.
    let never = api
        .run(json!({"image": image, "command": ["true"], "pull": "never"}))
        .await;
    assert_eq!(never["status"], "succeeded", "{never}");
    let always = api
        .run(json!({"image": image, "command": ["true"], "pull": "always"}))
        .await;
    assert_eq!(always["status"], "succeeded", "{always}");
    let msgs = api
        .messages(always["id"].as_str().expect("id"), "system")
        .await;
    assert!(msgs.iter().any(|m| m.contains("is up to date")), "{msgs:?}");
    docker(&["rmi", &image]);

    // A registry that answers but has no such image: image_not_found, not retried.
    let missing = format!("127.0.0.1:{}/gantry/nothing:1", reg.port);
    let job = api
        .run(json!({"image": missing, "retry": {"attempts": 3, "backoff": "10ms"}}))
        .await;
    assert_eq!(job["error"]["kind"], "image_not_found", "{job}");
    assert_eq!(job["attempt"], 1);
}
