//! The fleet: workers register and are listed, tags route jobs to the
//! workers that have them (a job no live worker can take says so), a
//! drained worker claims nothing more while its running job finishes.

use crate::util::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn workers(g: &Gantry) -> Vec<Value> {
    let o = g.cli(&["workers", "list", "--output", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).expect("json");
    v["workers"].as_array().expect("workers").clone()
}

fn worker<'a>(list: &'a [Value], id: &str) -> &'a Value {
    list.iter()
        .find(|w| w["id"] == id)
        .unwrap_or_else(|| panic!("no worker {id} in {list:?}"))
}

/// Waits until `check` holds for the worker list.
fn until(g: &Gantry, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = workers(g);
        if check(&list) {
            return list;
        }
        assert!(Instant::now() < deadline, "{what}: {list:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn tagged(script: &str, tags: &[&str]) -> Value {
    let mut spec = sh(script);
    spec["worker_tags"] = json!(tags);
    spec
}

#[tokio::test(flavor = "multi_thread")]
async fn tags_route_jobs_workers_are_listed_and_a_drained_worker_finishes_its_job() {
    let g = Gantry::up(&["--tags", "blue"]);
    let api = g.client();
    let blue = g.worker_id();
    let red = Extra::spawn(&g, &["worker", "--worker-id", "w-red", "--tags", "red,eu"]);
    red.wait_log("worker started", Duration::from_secs(30));
    let list = until(&g, "both registered", |l| {
        l.iter().any(|w| w["id"] == "w-red") && l.iter().any(|w| w["id"] == blue.as_str())
    });
    let r = worker(&list, "w-red");
    assert_eq!(r["tags"], json!(["red", "eu"]), "{r}");
    assert_eq!(r["state"], "active", "{r}");
    assert!(r["host"].as_str().is_some_and(|h| !h.is_empty()), "{r}");
    assert!(
        r["version"].is_string() && r["slots"].as_u64() > Some(0),
        "{r}"
    );
    assert_eq!(worker(&list, &blue)["tags"], json!(["blue"]));
    let o = g.cli(&["workers", "list"]);
    let table = stdout(&o);
    assert!(table.starts_with("ID "), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("w-red ") && l.contains("red,eu") && l.contains("active")),
        "{table}"
    );

    // Tags route: every red job on w-red, every blue one on the other.
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push((
            "w-red",
            api.submit(tagged(&format!("echo red {i}"), &["red"])).await,
        ));
        ids.push((
            blue.as_str(),
            api.submit(tagged(&format!("echo blue {i}"), &["blue"]))
                .await,
        ));
    }
    let both = api.submit(tagged("echo both", &["red", "eu"])).await;
    for (want, id) in &ids {
        let job = api.wait(id).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(job["attempts"][0]["worker"], *want, "{job}");
    }
    assert_eq!(api.wait(&both).await["attempts"][0]["worker"], "w-red");

    // A job no live worker can take says so instead of waiting silently.
    let gpu = api.submit(tagged("echo gpu", &["gpu"])).await;
    let (_, job) = api.get(&format!("/v1/jobs/{gpu}")).await;
    assert_eq!(job["status"], "queued", "{job}");
    let waiting = job["waiting"].as_str().unwrap_or_default();
    assert!(waiting.contains("no live worker has the tags gpu"), "{job}");
    let (s, bad) = api
        .post("/v1/jobs", json!({"spec": tagged("true", &["GPU!"])}))
        .await;
    assert_eq!(s, 400, "{bad}");
    assert!(bad.to_string().contains("worker_tags[0]"), "{bad}");

    // Drain w-red while it runs a job: the job finishes there, the next red
    // job waits (no live active worker has the tag), the list says draining.
    let running = api.submit(tagged("sleep 2; echo done", &["red"])).await;
    api.wait_status(&running, "running").await;
    let o = g.cli(&["workers", "drain", "w-red", "--wait", "--output", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let drained: Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(drained["state"], "draining", "{drained}");
    assert_eq!(
        drained["running"], 0,
        "--wait returns once it runs nothing: {drained}"
    );
    let job = api.wait(&running).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["attempts"][0]["worker"], "w-red");
    let next = api.submit(tagged("echo later", &["red"])).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, job) = api.get(&format!("/v1/jobs/{next}")).await;
    assert_eq!(
        job["status"], "queued",
        "a drained worker claims nothing: {job}"
    );
    assert!(
        job["waiting"].as_str().unwrap_or_default().contains("red"),
        "{job}"
    );

    // The dashboard's workers page (admins): the same list, and a drain button.
    let mut ui = crate::dashboard::Ui::new(&g.url);
    assert_eq!(ui.login(&g.token).await.0, 303);
    let (s, page) = ui.get("/ui/workers").await;
    assert_eq!(s, 200, "{page}");
    assert!(
        page.contains("w-red") && page.contains("draining") && page.contains("red, eu"),
        "{page}"
    );
    let (s, location, _) = ui
        .post(
            &format!("/ui/workers/{}/drain", crate::dashboard::urlenc(&blue)),
            &[],
            None,
            None,
        )
        .await;
    assert_eq!((s, location.as_str()), (303, "/ui/workers"));
    let list = workers(&g);
    assert_eq!(worker(&list, &blue)["state"], "draining");

    // A stopped worker is gone at once; a project token cannot see workers.
    drop(red);
    until(&g, "w-red gone", |l| worker(l, "w-red")["state"] == "gone");
    assert!(g.cli(&["projects", "create", "acme"]).status.success());
    let o = g.cli(&["tokens", "create", "--project", "acme", "--output", "json"]);
    let t: Value = serde_json::from_str(&stdout(&o)).expect("json");
    let acme = Api {
        http: reqwest::Client::new(),
        url: g.url.clone(),
        token: Some(t["token"].as_str().expect("token").to_string()),
    };
    assert_eq!(acme.get("/v1/workers").await.0, 403);
    let mut acme_ui = crate::dashboard::Ui::new(&g.url);
    assert_eq!(
        acme_ui.login(acme.token.as_deref().expect("token")).await.0,
        303
    );
    assert_eq!(acme_ui.get("/ui/workers").await.0, 404);
    assert_eq!(acme.post("/v1/workers/w-red/drain", json!({})).await.0, 403);
    let (s, _) = api.post("/v1/workers/nobody/drain", json!({})).await;
    assert_eq!(s, 404);
}

/// A fleet shares one secret key, given by file: refused when others may
/// read it; used (not `$GANTRY_HOME/secret.key`) when it is private.
#[tokio::test(flavor = "multi_thread")]
async fn the_shared_secret_key_file_must_be_private_and_is_used() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tmp");
    let key = dir.path().join("fleet.key");
    std::fs::write(&key, [7u8; 32]).expect("key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let o = std::process::Command::new(bin())
        .args(["server", "--listen", "127.0.0.1:0"])
        .env("GANTRY_HOME", dir.path().join("home"))
        .env("GANTRY_SECRET_KEY_FILE", &key)
        .output()
        .expect("run");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("chmod 600"), "{}", stderr(&o));

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let key_arg = key.display().to_string();
    let g = Gantry::up(&["--secret-key-file", &key_arg]);
    assert!(
        !g.home_path().join("secret.key").exists(),
        "no key of its own is made when one is given"
    );
    let mut spec = sh("echo \"$(cat /data/config.json)\"");
    spec["parameters"] = json!({"#password": "hunter2-in-the-fleet"});
    let job = g.client().run(spec).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    // The job got the secret opened with that key (and its log hides it).
    let out = g
        .client()
        .messages(job["id"].as_str().expect("id"), "stdout")
        .await;
    assert!(out.iter().any(|l| l.contains("[hidden]")), "{out:?}");
    assert!(!out.iter().any(|l| l.contains("hunter2")), "{out:?}");
}
