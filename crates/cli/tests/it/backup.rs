//! Backup and restore, retention: a snapshot taken while jobs run and imports land,
//! the Gantry destroyed, restored into a fresh home: every table version
//! exports byte for byte as before, files, configurations with their state
//! and sealed secrets, and tokens (hashed) come back, and a configuration
//! runs on.

use crate::util::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Every version of every table, exported.
async fn exports(api: &Api) -> BTreeMap<(String, u64), Vec<u8>> {
    let mut all = BTreeMap::new();
    let (_, tables) = api.get("/v1/tables").await;
    for t in tables["tables"].as_array().expect("tables") {
        let id = t["id"].as_str().expect("id").to_string();
        for v in api.versions(&id).await {
            let n = v["version"].as_u64().expect("version");
            let resp = api
                .req(
                    reqwest::Method::GET,
                    &format!("/v1/tables/{id}/export?version={n}"),
                )
                .send()
                .await
                .expect("export");
            assert_eq!(resp.status(), 200, "{id} v{n}");
            all.insert((id.clone(), n), resp.bytes().await.expect("bytes").to_vec());
        }
    }
    all
}

/// Runs the CLI on `home` (no server needed: backup and restore work on the
/// home itself).
fn gantry_on(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(bin())
        .args(args)
        .env("GANTRY_HOME", home)
        .output()
        .expect("run gantry")
}

const COUNTER: &str = r##"n=$(sed -n 's/.*"count": *\([0-9]*\).*/\1/p' /data/in/state.json); n=${n:-0}; grep -q '"#password": "pa55-w0rd-XY' /data/config.json || exit 3; echo "{\"count\": $((n+1))}" > /data/out/state.json; printf 'run\n%s\n' $((n+1)) > /data/out/tables/runs.csv"##;

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_of_a_busy_gantry_restores_every_version_byte_for_byte() {
    let mut g = Gantry::up(&[]);
    let api = g.client();

    // Tables with several versions: full, incremental, primary key, gzip.
    for (q, csv) in [
        ("primary_key=id", "id,name\n1,ann\n2,bob\n"),
        ("incremental=true", "id,name\n2,bea\n3,\"c,d\"\n"),
        ("incremental=true", "id,name,extra\n4,dan,x\n"),
    ] {
        let (s, b) = api.import("in.c-main.people", q, csv).await;
        assert_eq!(s, 201, "{b}");
    }
    let big = format!(
        "n,v\n{}",
        (0..50_000)
            .map(|i| format!("{i},{}\n", i * 7))
            .collect::<String>()
    );
    let (s, _) = api.import("in.c-main.big", "", &big).await;
    assert_eq!(s, 201);
    let resp = api
        .req(reqwest::Method::POST, "/v1/files?name=model.bin&tag=model")
        .body(vec![7u8; 100_000])
        .send()
        .await
        .expect("upload");
    assert_eq!(resp.status(), 201);
    let file: serde_json::Value = resp.json().await.expect("file");

    // A configuration with a sealed secret and state, run twice.
    let mut spec = sh(COUNTER);
    spec["parameters"] = json!({"#password": "pa55-w0rd-XYZZY"});
    spec["storage"] = json!({"output": {"tables": [{"source": "runs.csv", "destination": "out.c-counter.runs", "incremental": true}]}});
    let (s, b) = api
        .post("/v1/configs", json!({"id": "counter", "spec": spec}))
        .await;
    assert_eq!(s, 201, "{b}");
    for _ in 0..2 {
        let (_, job) = api.post("/v1/jobs", json!({"config": "counter"})).await;
        let job = api.wait(job["id"].as_str().expect("id")).await;
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    let o = g.cli(&["projects", "create", "acme"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A schedule (yearly, paused: it fires neither before nor after).
    let (s, sched) = api
        .post(
            "/v1/schedules",
            json!({"id": "yearly", "config": "counter", "cron": "0 0 1 1 *", "timezone": "Europe/Prague"}),
        )
        .await;
    assert_eq!(s, 201, "{sched}");
    let (s, _) = api.post("/v1/schedules/yearly/pause", json!({})).await;
    assert_eq!(s, 200);

    // Busy: jobs writing tables and imports landing while the backup runs.
    let before = exports(&api).await;
    let mut busy = Vec::new();
    for i in 0..4 {
        busy.push(
            api.submit(sh(&format!(
                "sleep 1; printf 'i\\n{i}\\n' > /data/out/tables/out.c-busy.t{i}.csv"
            )))
            .await,
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let importer = {
        let (stop, api) = (stop.clone(), g.client());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let (s, b) = api
                    .import("in.c-main.stream", "incremental=true", &format!("n\n{n}\n"))
                    .await;
                assert_eq!(s, 201, "{b}");
            }
            n
        })
    };
    let dest = tempfile::tempdir().expect("dest");
    let dest_s = dest
        .path()
        .join("nightly")
        .to_str()
        .expect("path")
        .to_string();
    let home = g.home_path().to_path_buf();
    let d = dest_s.clone();
    let out = tokio::task::spawn_blocking(move || gantry_on(&home, &["backup", &d]))
        .await
        .expect("backup");
    assert!(out.status.success(), "{}", stderr(&out));
    stop.store(true, Ordering::Relaxed);
    let imports = importer.await.expect("importer");
    assert!(imports > 0);
    for id in &busy {
        assert_eq!(api.wait(id).await["status"], "succeeded");
    }

    // A second backup copies only what is new.
    let out = gantry_on(g.home_path(), &["backup", &dest_s]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = gantry_on(g.home_path(), &["backup", &dest_s]);
    assert!(
        stderr(&out).contains("(0 copied, 0 bytes;"),
        "{}",
        stderr(&out)
    );
    // The secret key is not in the backup.
    assert!(files_under(dest.path())
        .iter()
        .all(|f| f.file_name().is_some_and(|n| n != "secret.key")));
    assert_in_no_file(dest.path(), "pa55-w0rd-XYZZY");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&dest_s)
        .expect("dest")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700, "the backup folder is private");

    // Everything as of the last backup, then the disaster.
    let after = exports(&api).await;
    let key = std::fs::read(g.home_path().join("secret.key")).expect("key");
    let token = g.token.clone();
    drop(api);
    g.stop_with("TERM", std::time::Duration::from_secs(20));
    for f in std::fs::read_dir(g.home_path()).expect("home") {
        let p = f.expect("entry").path();
        if p.is_dir() {
            std::fs::remove_dir_all(&p).expect("rm");
        } else {
            std::fs::remove_file(&p).expect("rm");
        }
    }

    // Restore into the empty home, the key put back apart.
    let out = gantry_on(g.home_path(), &["restore", &dest_s]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("secret key"), "{}", stderr(&out));
    std::fs::write(g.home_path().join("secret.key"), &key).expect("key");
    std::fs::write(g.home_path().join("token"), &token).expect("token");
    let again = gantry_on(g.home_path(), &["restore", &dest_s]);
    assert_eq!(again.status.code(), Some(2), "not into a used home");
    g.start();
    let api = g.client();

    // The old token works (it was restored hashed); every version is back,
    // byte for byte.
    let restored = exports(&api).await;
    assert_eq!(
        restored.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (k, bytes) in &restored {
        assert!(after[k] == *bytes, "{k:?} differs after the restore");
    }
    for k in before.keys() {
        assert!(
            restored.contains_key(k),
            "{k:?} was there before the backup"
        );
    }
    let resp = api
        .req(
            reqwest::Method::GET,
            &format!("/v1/files/{}/content", file["id"]),
        )
        .send()
        .await
        .expect("file");
    assert_eq!(
        resp.bytes().await.expect("bytes").to_vec(),
        vec![7u8; 100_000]
    );
    let (s, _) = api.get("/v1/projects/acme").await;
    assert_eq!(s, 200);
    let (s, restored_sched) = api.get("/v1/schedules/yearly").await;
    assert_eq!(s, 200, "{restored_sched}");
    assert_eq!(
        restored_sched["schedule"], sched["schedule"],
        "{restored_sched}"
    );
    assert_eq!(restored_sched["status"], "paused", "{restored_sched}");

    // The configuration runs on: its state and its sealed secret came back.
    let (_, state) = api.get("/v1/configs/counter/state").await;
    assert_eq!(state, json!({"count": 2}));
    let (_, job) = api.post("/v1/jobs", json!({"config": "counter"})).await;
    let job = api.wait(job["id"].as_str().expect("id")).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let (_, state) = api.get("/v1/configs/counter/state").await;
    assert_eq!(state, json!({"count": 3}));
    assert_eq!(
        api.rows("out.c-counter.runs").await,
        vec!["run", "1", "2", "3"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_to_an_s3_bucket_restores_into_a_fresh_home() {
    let s3 = S3::start();
    s3.bucket("backups").await;
    let url = format!(
        "s3://backups/nightly?endpoint=http://127.0.0.1:{}&allow_http=true&region=us-east-1",
        s3.port
    );
    let aws = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    let on = |home: &std::path::Path, args: &[&str]| {
        std::process::Command::new(bin())
            .args(args)
            .env("GANTRY_HOME", home)
            .envs(aws)
            .output()
            .expect("run gantry")
    };
    let mut g = Gantry::up(&[]);
    let api = g.client();
    for q in ["", "incremental=true"] {
        let (s, _) = api.import("in.c-main.t", q, "id\n1\n").await;
        assert_eq!(s, 201);
    }
    let out = on(g.home_path(), &["backup", &url]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = on(g.home_path(), &["backup", &url]);
    assert!(
        stderr(&out).contains("(0 copied, 0 bytes; 2 already there)"),
        "{}",
        stderr(&out)
    );
    let before = exports(&api).await;
    drop(api);
    let key = std::fs::read(g.home_path().join("secret.key")).expect("key");
    let token = g.token.clone();
    g.stop_with("TERM", std::time::Duration::from_secs(20));

    let fresh = tempfile::tempdir().expect("home");
    let out = on(fresh.path(), &["restore", &url]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(fresh.path().join("secret.key"), &key).expect("key");
    std::fs::write(fresh.path().join("token"), &token).expect("token");
    // The restored home replaces the old one under the same test harness.
    g.home = fresh;
    g.start();
    let api = g.client();
    assert_eq!(exports(&api).await, before);
    assert_eq!(before.len(), 2);
}

/// RFC 3339 time `days` from now (the clock retention is run at).
fn days_from_now(days: u32) -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("+{days} days"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .expect("date");
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_with_a_moved_clock_removes_what_the_policy_says_and_never_what_is_in_use() {
    let g = Gantry::up(&[]);
    let api = g.client();
    let done = api.run(sh("echo one; echo two")).await;
    assert_eq!(done["status"], "succeeded");
    let done = done["id"].as_str().expect("id").to_string();
    for i in 1..=5 {
        let (s, _) = api.import("in.c-main.t", "", &format!("v\n{i}\n")).await;
        assert_eq!(s, 201);
    }
    let o = g.cli(&["tables", "pin", "in.c-main.t", "--version", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let resp = api
        .req(reqwest::Method::POST, "/v1/files?name=old.txt")
        .body("old")
        .send()
        .await
        .expect("upload");
    assert_eq!(resp.status(), 201);
    let file: serde_json::Value = resp.json().await.expect("file");
    let o = g.cli(&[
        "projects",
        "update",
        "default",
        "--keep-jobs-days",
        "30",
        "--keep-versions",
        "2",
        "--keep-files-days",
        "10",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, p) = api.get("/v1/projects/default").await;
    assert_eq!(
        p["retention"],
        json!({"jobs_days": 30, "versions": 2, "versions_days": 0, "files_days": 10})
    );
    let objects = g.home_path().join("objects");
    assert_eq!(files_under(&objects).len(), 6);

    // Today: only the versions past the newest 2 go (not the pinned one); a
    // dry run says so and removes nothing.
    let o = g.cli(&["retention", "--dry-run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "default\tversion\tin.c-main.t\t3\ndefault\tversion\tin.c-main.t\t1\n"
    );
    assert!(stderr(&o).contains("would remove 0 jobs"), "{}", stderr(&o));
    assert_eq!(api.versions("in.c-main.t").await.len(), 5);

    // 40 days on, while a job runs: the old job and its events go, versions
    // and files wait.
    let running = api.submit(sh("sleep 60")).await;
    api.wait_status(&running, "running").await;
    let later = days_from_now(40);
    let o = g.cli(&["retention", "--at", &later]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("removed 1 jobs ("), "{}", stderr(&o));
    assert!(stderr(&o).contains("left for later"), "{}", stderr(&o));
    assert_eq!(api.get(&format!("/v1/jobs/{done}")).await.0, 404);
    assert_eq!(api.versions("in.c-main.t").await.len(), 5);
    assert_eq!(
        api.get(&format!("/v1/jobs/{running}")).await.1["status"],
        "running"
    );

    // Once nothing runs: versions 1 and 3, the file and their objects go;
    // the current and the pinned version stay and read.
    let (s, _) = api
        .post(&format!("/v1/jobs/{running}/cancel"), json!({}))
        .await;
    assert_eq!(s, 200);
    api.wait(&running).await;
    let o = g.cli(&["retention", "--at", &later]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("2 versions, 1 files, 3 objects"),
        "{}",
        stderr(&o)
    );
    let left: Vec<u64> = api
        .versions("in.c-main.t")
        .await
        .iter()
        .map(|v| v["version"].as_u64().expect("n"))
        .collect();
    assert_eq!(left, vec![5, 4, 2]);
    assert_eq!(files_under(&objects).len(), 3);
    assert_eq!(api.rows("in.c-main.t").await, vec!["v", "5"]);
    let (s, _) = api.get("/v1/tables/in.c-main.t/export?version=2").await;
    assert_eq!(s, 200);
    let (s, _) = api.get("/v1/tables/in.c-main.t/export?version=1").await;
    assert_eq!(s, 404);
    assert_eq!(api.get(&format!("/v1/files/{}", file["id"])).await.0, 404);

    // Unpinned, the old version is past the policy at the next run.
    let o = g.cli(&["tables", "pin", "in.c-main.t", "--version", "2", "--unpin"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let pinned: Vec<bool> = api
        .versions("in.c-main.t")
        .await
        .iter()
        .map(|v| v["pinned"].as_bool().expect("pinned"))
        .collect();
    assert_eq!(pinned, vec![false, false, false]);
    let o = g.cli(&["retention", "--at", &later]);
    assert!(o.status.success(), "{}", stderr(&o));
    let left: Vec<u64> = api
        .versions("in.c-main.t")
        .await
        .iter()
        .map(|v| v["version"].as_u64().expect("n"))
        .collect();
    assert_eq!(left, vec![5, 4]);
}
