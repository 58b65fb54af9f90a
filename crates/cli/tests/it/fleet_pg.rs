//! A fleet on PostgreSQL and an S3 bucket, end to end: one `gantry server`
//! and two `gantry worker` processes, each worker with a home and a Docker
//! engine of its own (nothing shared but the database and the bucket); a
//! worker killed with its engine mid-job; a Postgres restart mid-job; two
//! servers starting together on an empty database.

use crate::util::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// What a fleet's processes share: the database, the bucket, the key.
struct Shared {
    _s3: S3,
    _dir: tempfile::TempDir,
    db: String,
    env: Vec<(String, String)>,
}

async fn shared() -> Shared {
    use std::os::unix::fs::PermissionsExt;
    let s3 = S3::start();
    s3.bucket("fleet").await;
    let db = gantry_store_postgres::testing::fresh_database().await;
    let dir = tempfile::tempdir().expect("tmp");
    let key = dir.path().join("fleet.key");
    std::fs::write(&key, [9u8; 32]).expect("key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let storage = format!(
        "s3://fleet/gantry?endpoint=http://127.0.0.1:{}&allow_http=true&region=us-east-1",
        s3.port
    );
    let env = vec![
        ("GANTRY_DATABASE_URL".to_string(), db.clone()),
        ("GANTRY_STORAGE_URL".to_string(), storage),
        (
            "GANTRY_SECRET_KEY_FILE".to_string(),
            key.display().to_string(),
        ),
        ("AWS_ACCESS_KEY_ID".to_string(), "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY".to_string(), "test".to_string()),
    ];
    Shared {
        _s3: s3,
        _dir: dir,
        db,
        env,
    }
}

impl Shared {
    fn env(&self) -> Vec<(&str, &str)> {
        self.env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

async fn db_count(url: &str, sql: &str) -> i64 {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client.query_one(sql, &[]).await.expect("query").get(0)
}

async fn wait_for(
    what: &str,
    within: Duration,
    mut f: impl AsyncFnMut() -> Option<Value>,
) -> Value {
    let t = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(t.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn job(api: &Api, id: &str) -> Value {
    api.get(&format!("/v1/jobs/{id}")).await.1
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fleet_on_postgres_spreads_jobs_keeps_tags_and_survives_a_killed_worker_and_engine() {
    let shared = shared().await;
    let g = Gantry::server_with_env(&[], &shared.env());
    let api = g.client();
    let mut engines = [
        PrivateEngine::start("fleet-a"),
        PrivateEngine::start("fleet-b"),
    ];
    let homes = [
        tempfile::tempdir().expect("home"),
        tempfile::tempdir().expect("home"),
    ];
    let spawn = |i: usize| {
        let (name, tag) = [("w-a", "a"), ("w-b", "b")][i];
        let host = engines[i].host();
        let home = homes[i].path().display().to_string();
        Extra::spawn_env(
            &g,
            &[
                "worker",
                "--worker-id",
                name,
                "--tags",
                tag,
                "--slots",
                "2",
                "--lease",
                "6s",
            ],
            &[
                ("DOCKER_HOST", host.as_str()),
                ("GANTRY_HOME", home.as_str()),
            ],
        )
    };
    let mut workers = [spawn(0), spawn(1)];
    wait_for(
        "both workers registered",
        Duration::from_secs(30),
        async || {
            let (_, list) = api.get("/v1/workers").await;
            let active = list["workers"]
                .as_array()
                .map(|w| w.iter().filter(|w| w["state"] == "active").count())
                .unwrap_or(0);
            (active == 2).then_some(list)
        },
    )
    .await;

    // Four jobs of 3 s on two workers of two slots each: both take some.
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(api.submit(sh(&format!("sleep 3; echo job {i}"))).await);
    }
    let mut ran_on = std::collections::BTreeSet::new();
    for id in &ids {
        let j = api.wait(id).await;
        assert_eq!(j["status"], "succeeded", "{j}");
        ran_on.insert(j["worker"].as_str().expect("worker").to_string());
    }
    assert_eq!(ran_on.len(), 2, "jobs spread over both workers: {ran_on:?}");

    // A tagged job lands only on the worker with that tag.
    let mut tagged = sh("echo tagged");
    tagged["worker_tags"] = json!(["b"]);
    let j = api.run(tagged).await;
    assert_eq!(j["status"], "succeeded", "{j}");
    assert_eq!(j["worker"], "w-b", "{j}");
    // One no worker has says so instead of waiting silently.
    let mut orphan = sh("echo never");
    orphan["worker_tags"] = json!(["gpu"]);
    let orphan = api.submit(orphan).await;
    let j = wait_for("a waiting reason", Duration::from_secs(10), async || {
        let j = job(&api, &orphan).await;
        j["waiting"].is_string().then_some(j)
    })
    .await;
    assert_eq!(j["status"], "queued", "{j}");
    assert!(
        j["waiting"].as_str().is_some_and(|w| w.contains("gpu")),
        "{j}"
    );

    // A worker and its engine die mid-job: the job runs again on the other
    // one, and its output table gets exactly one version.
    let mut spec = sh("echo started; sleep 4; printf 'id,v\\n1,x\\n' > /data/out/tables/fleet.csv");
    spec["retry"] = json!({"attempts": 1});
    let id = api.submit(spec).await;
    let running = wait_for("the job running", Duration::from_secs(30), async || {
        let j = job(&api, &id).await;
        let started = api
            .messages(&id, "stdout")
            .await
            .iter()
            .any(|m| m == "started");
        (j["status"] == "running" && started).then_some(j)
    })
    .await;
    let victim = usize::from(running["worker"] == "w-b");
    let survivor = 1 - victim;
    workers[victim].kill();
    engines[victim].kill();
    let j = api.wait(&id).await;
    assert_eq!(j["status"], "succeeded", "{j}");
    let statuses: Vec<&str> = j["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["status"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(statuses, ["lost", "succeeded"], "{j}");
    assert_eq!(j["worker"], ["w-a", "w-b"][survivor], "{j}");
    assert_eq!(
        api.versions("out.c-adhoc.fleet").await.len(),
        1,
        "the output landed exactly once"
    );
    assert_eq!(api.rows("out.c-adhoc.fleet").await, vec!["id,v", "1,x"]);

    // Draining the survivor while a job runs: it finishes, nothing new starts.
    let long = api.submit(sh("echo started; sleep 3")).await;
    wait_for("the job running", Duration::from_secs(30), async || {
        let j = job(&api, &long).await;
        (j["status"] == "running").then_some(j)
    })
    .await;
    let name = ["w-a", "w-b"][survivor];
    let (s, body) = api
        .post(&format!("/v1/workers/{name}/drain"), json!({}))
        .await;
    assert_eq!(s, 200, "{body}");
    let after = api.submit(sh("echo after the drain")).await;
    let j = api.wait(&long).await;
    assert_eq!(j["status"], "succeeded", "a draining worker finishes: {j}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let j = job(&api, &after).await;
    assert_eq!(
        j["status"], "queued",
        "a draining worker claims nothing: {j}"
    );

    // Nothing but the database and the bucket was shared: no worker wrote
    // into the server's home, and the server's home has no objects.
    assert!(!g.home_path().join("objects").exists());
    assert!(
        db_count(&shared.db, "SELECT COUNT(*) FROM workers").await >= 2,
        "both workers registered in the shared database"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_restart_mid_job_loses_nothing_and_a_cut_off_worker_fences_itself() {
    let cluster = gantry_store_postgres::testing::Cluster::start().expect("a cluster");
    let db = gantry_store_postgres::testing::fresh_database_on(&cluster.admin_url()).await;
    let g = Gantry::up_with_env(&["--lease", "6s"], &[("GANTRY_DATABASE_URL", db.as_str())]);
    let api = g.client();
    let mut spec = sh("echo started; sleep 10; echo done");
    spec["retry"] = json!({"attempts": 1});
    let id = api.submit(spec).await;
    wait_for("the job running", Duration::from_secs(30), async || {
        let started = api
            .messages(&id, "stdout")
            .await
            .iter()
            .any(|m| m == "started");
        started.then_some(Value::Null)
    })
    .await;

    cluster.stop_server();
    let down = Instant::now();
    // Not ready while the database is down.
    wait_for("/readyz saying 503", Duration::from_secs(20), async || {
        let (s, body) = api.get("/readyz").await;
        (s == 503).then_some(body)
    })
    .await;
    // Within a lease, the worker stops its own container (self-fencing):
    // another worker could take the job once the lease runs out.
    let label = format!("io.gantry.job={id}");
    let t = Instant::now();
    while !containers_labelled(&label).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the container outlived the lease"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "the container was stopped {:?} after the database went down",
        down.elapsed()
    );
    assert!(down.elapsed() < Duration::from_secs(12));

    cluster.restart();
    wait_for("/readyz saying 200", Duration::from_secs(30), async || {
        let (s, body) = api.get("/readyz").await;
        (s == 200).then_some(body)
    })
    .await;
    // Nothing lost, nothing left running: the job runs again and succeeds,
    // and the lost attempt did not use up its one attempt.
    let j = api.wait(&id).await;
    assert_eq!(j["status"], "succeeded", "{j}");
    // The fenced attempt went back to the queue (handed back by its worker
    // once the database answered, or taken back as lost at its lease's end).
    let first = j["attempts"][0]["status"].as_str().unwrap_or_default();
    assert!(matches!(first, "handed_back" | "lost"), "{j}");
    let out = api.messages(&id, "stdout").await;
    assert!(out.iter().any(|m| m == "done"), "{out:?}");
    // A new job runs as usual after the outage.
    let j = api.run(sh("echo after")).await;
    assert_eq!(j["status"], "succeeded", "{j}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_servers_starting_together_on_an_empty_database_migrate_once_and_make_one_admin_token()
{
    let db = gantry_store_postgres::testing::fresh_database().await;
    let homes = [
        tempfile::tempdir().expect("home"),
        tempfile::tempdir().expect("home"),
    ];
    let mut children: Vec<std::process::Child> = homes
        .iter()
        .map(|h| {
            std::process::Command::new(bin())
                .args(["server", "--listen", "127.0.0.1:0"])
                .env("GANTRY_HOME", h.path())
                .env("GANTRY_DATABASE_URL", &db)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let mut logs = Vec::new();
    for c in &mut children {
        use std::io::BufRead;
        let stderr = c.stderr.take().expect("stderr");
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let listening = line.starts_with("Gantry API listening on ");
            lines.push(line);
            if listening {
                break;
            }
        }
        logs.push(lines);
    }
    for c in &mut children {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let _ = c.wait();
    }
    for l in &logs {
        assert!(
            l.iter().any(|x| x.starts_with("Gantry API listening on ")),
            "both started: {logs:?}"
        );
    }
    let made = logs
        .iter()
        .flatten()
        .filter(|l| l.starts_with("Admin token"))
        .count();
    assert_eq!(made, 1, "exactly one server made the admin token: {logs:?}");
    let files = homes
        .iter()
        .filter(|h| h.path().join("token").exists())
        .count();
    assert_eq!(files, 1);
    assert_eq!(db_count(&db, "SELECT COUNT(*) FROM tokens").await, 1);
    assert_eq!(db_count(&db, "SELECT COUNT(*) FROM gantry_schema").await, 1);
    assert_eq!(
        db_count(&db, "SELECT version FROM gantry_schema").await,
        gantry_store_postgres::MIGRATIONS.len() as i64
    );
}

#[test]
fn a_bad_database_url_or_an_unreachable_database_stops_the_server_with_a_message() {
    let home = tempfile::tempdir().expect("home");
    let run = |url: &str| {
        let o = std::process::Command::new(bin())
            .args(["server", "--listen", "127.0.0.1:0", "--database-url", url])
            .env("GANTRY_HOME", home.path())
            .output()
            .expect("run");
        assert!(!o.status.success(), "{url} was accepted");
        let err = stderr(&o);
        assert!(!err.contains("panicked"), "{err}");
        assert!(!err.contains("hunter2"), "the password is not shown: {err}");
        err
    };
    let err = run("postgres://gantry:hunter2@127.0.0.1:1/gantry");
    assert!(err.contains("cannot reach the database"), "{err}");
    let err = run("postgres://gantry:hunter2@[::1/gantry");
    assert!(err.contains("not valid"), "{err}");
    let err = run("mysql://gantry:hunter2@db/gantry");
    assert!(err.contains("must be a PostgreSQL URL"), "{err}");
}
