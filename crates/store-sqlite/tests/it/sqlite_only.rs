//! What only the SQLite backend has: the database file (secrets never in
//! it), group commit, and migrating databases made by earlier versions.

use crate::{open_sqlite, Sqlite};
use gantry_core::events::LogLine;
use gantry_core::{ConfigId, JobStatus, ProjectId};
use gantry_store::prelude::*;
use gantry_store::testing::{new_job, project, wid};
use gantry_store::{JobFilter, MadeBy, StoreError};
use gantry_store_sqlite::{SqliteStore, MIGRATIONS};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn tokens_are_stored_hashed() {
    let Sqlite { dir, store } = open_sqlite();
    assert_eq!(store.token_count().await.expect("count"), 0);
    let secret = store
        .create_token(&project(), true, "admin")
        .await
        .expect("token")
        .secret;
    let p = store
        .authenticate(&secret)
        .await
        .expect("auth")
        .expect("known");
    assert!(p.admin);
    assert!(store
        .authenticate("gty_wrong")
        .await
        .expect("auth")
        .is_none());
    drop(store);
    let db = std::fs::read(dir.path().join("gantry.db")).expect("db");
    let wal = std::fs::read(dir.path().join("gantry.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }
}

/// Writes that arrive together commit together (group commit), yet each
/// keeps its own outcome: a failing one (a duplicate configuration) is
/// rolled back alone, and every acknowledged write is there afterwards,
/// also for a fresh connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grouped_writes_keep_their_own_outcomes() {
    let Sqlite { dir, store } = open_sqlite();
    let cfg: ConfigId = "dup".parse().expect("id");
    store
        .create_config(&project(), &cfg, &json!({"image": "x"}))
        .await
        .expect("first");
    let mut tasks = Vec::new();
    for i in 0..400 {
        let s = store.clone();
        let cfg = cfg.clone();
        tasks.push(tokio::spawn(async move {
            match i % 4 {
                0 => s
                    .create_config(&project(), &cfg, &json!({"image": "y"}))
                    .await
                    .map(|_| "config"),
                1 => {
                    let id = s.enqueue(new_job(1)).await?.id;
                    s.append_events(id, 1, &[LogLine::system("info", format!("line {i}"))])
                        .await
                        .map(|_| "events")
                }
                _ => s.enqueue(new_job(1)).await.map(|_| "job"),
            }
        }));
    }
    let (mut jobs, mut conflicts) = (0, 0);
    for t in tasks {
        match t.await.expect("join") {
            Ok("job") | Ok("events") => jobs += 1,
            Err(StoreError::Conflict(_)) => conflicts += 1,
            other => panic!("unexpected: {other:?}"),
        }
    }
    assert_eq!((jobs, conflicts), (300, 100));
    let cfgs = store.list_configs(&project()).await.expect("configs");
    assert_eq!(cfgs.len(), 1);
    assert_eq!(cfgs[0].spec["image"], "x", "the duplicates changed nothing");
    drop(store);
    let again = SqliteStore::open(&dir.path().join("gantry.db")).expect("reopen");
    let all = again
        .list_jobs(
            &project(),
            &JobFilter {
                status: None,
                limit: 1000,
                before: None,
            },
        )
        .await
        .expect("list");
    assert_eq!(all.len(), 300);
    for j in all.iter().filter(|j| j.status == JobStatus::Queued).take(3) {
        let _ = again
            .list_events(&project(), j.id, 0, 10)
            .await
            .expect("events");
    }
}

/// Regression: `/readyz` asks the store whether it takes writes; inside a
/// group commit that check must not try to open a second transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_writability_check_holds_inside_a_group_commit() {
    let Sqlite { store, .. } = open_sqlite();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                s.check_writable().await
            } else {
                s.enqueue(new_job(1)).await.map(|_| ())
            }
        }));
    }
    for t in tasks {
        t.await
            .expect("join")
            .expect("every check and enqueue succeeds");
    }
}

/// A database made by Gantry as of 65e5b4f (the last version with its
/// migrations in a Rust array; `tests/fixtures/gantry-65e5b4f.db`, made by
/// that code with a project and its cap, a token, a configuration with
/// state, a finished job with its attempt, a table version and a tagged
/// file, and a queued job) opens unchanged: its schema version is the one
/// the `.sql` files end at, and every record reads back.
#[tokio::test]
async fn a_database_made_by_the_previous_release_opens_with_its_data() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("gantry.db");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/gantry-65e5b4f.db"
        ),
        &path,
    )
    .expect("fixture");
    let version = |p: &std::path::Path| -> i64 {
        rusqlite::Connection::open(p)
            .expect("db")
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version")
    };
    assert_eq!(version(&path), 10, "the fixture is at the old array's end");
    let store = SqliteStore::open(&path).expect("open");
    assert_eq!(version(&path), MIGRATIONS.last().expect("some").version);
    let acme: ProjectId = "acme".parse().expect("id");
    let p = store.get_project(&acme).await.expect("project");
    assert_eq!((p.number, p.max_running), (2, Some(3)));
    let who = store
        .authenticate("gty_49e346ec0af1f97f97fe7c4c11789610120ca48845a6fbc5")
        .await
        .expect("auth")
        .expect("the old token still works");
    assert_eq!(
        (who.project, who.token_id.as_str(), who.token_desc.as_str()),
        (acme.clone(), "b9f2037b1132", "fixture token")
    );
    let cfg = store
        .get_config(&acme, &"etl".parse::<ConfigId>().expect("id"))
        .await
        .expect("config");
    assert_eq!(cfg.state, json!({"cursor": 7}));
    let all = JobFilter {
        status: None,
        limit: 10,
        before: None,
    };
    let jobs = store.list_jobs(&acme, &all).await.expect("jobs");
    assert_eq!(jobs.len(), 1);
    let job = store.get_job(&acme, jobs[0].id).await.expect("job");
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(job.token_id.as_deref(), Some("b9f2037b1132"));
    assert_eq!(job.attempts[0].status, "succeeded");
    let v = store
        .table_version(&acme, &"in.c-main.orders".parse().expect("t"), None)
        .await
        .expect("version");
    assert_eq!((v.version, v.made_by, v.rows), (1, MadeBy::Job, 2));
    assert_eq!(v.job_id, Some(job.id));
    let files = store
        .list_files(&acme, &["a".into(), "b".into()], 10)
        .await
        .expect("files");
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].name, "report.txt");
    // The queued job of the default project is claimed as before.
    let claim = store
        .claim(&wid("w"), 10, Duration::from_secs(30))
        .await
        .expect("claim");
    assert_eq!(claim.jobs.len(), 1);
    assert_eq!(claim.jobs[0].job.project, project());
    // And new writes go on from there.
    let t = store
        .create_token(&acme, false, "new")
        .await
        .expect("token");
    assert!(store.authenticate(&t.secret).await.expect("auth").is_some());
}

/// A database migrated by a newer Gantry is refused, naming both versions,
/// and left as it was.
#[tokio::test]
async fn a_schema_newer_than_the_binary_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("gantry.db");
    drop(SqliteStore::open(&path).expect("create"));
    let known = MIGRATIONS.last().expect("some").version;
    rusqlite::Connection::open(&path)
        .expect("db")
        .pragma_update(None, "user_version", known + 5)
        .expect("bump");
    let err = match SqliteStore::open(&path) {
        Err(e) => e,
        Ok(_) => panic!("a newer schema was opened"),
    };
    assert!(
        matches!(err, StoreError::SchemaTooNew { found, known: k } if found == known + 5 && k == known),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&(known + 5).to_string()) && text.contains(&known.to_string()),
        "{text}"
    );
}

/// The migration files are exactly the list the backend runs: a file added
/// without being listed (or the reverse) fails here.
#[test]
fn every_migration_file_is_listed_in_order() {
    let mut files: Vec<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
            .expect("migrations")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
    files.sort();
    let listed: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
    assert_eq!(files, listed);
    gantry_store::migrate::pending(0, MIGRATIONS).expect("numbered 1, 2, ...");
}

/// Two processes opening one new database at once migrate it once.
#[tokio::test]
async fn opening_one_database_twice_at_once_migrates_it_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("gantry.db");
    let (a, b) = (path.clone(), path.clone());
    let t1 = std::thread::spawn(move || SqliteStore::open(&a).map(|_| ()));
    let t2 = std::thread::spawn(move || SqliteStore::open(&b).map(|_| ()));
    t1.join().expect("join").expect("first");
    t2.join().expect("join").expect("second");
    let store = SqliteStore::open(&path).expect("open");
    assert_eq!(
        store
            .get_project(&ProjectId::default_project())
            .await
            .expect("default")
            .number,
        1,
        "the first migration ran once (one default project)"
    );
    assert_eq!(store.list_projects().await.expect("projects").len(), 1);
}

/// The hold-back lookups of a claim (and of why a job waits) use their
/// sparse indexes; none scans the jobs.
#[test]
fn the_hold_back_lookups_use_their_indexes() {
    let Sqlite { dir, store } = open_sqlite();
    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join("gantry.db")).expect("db");
    let plan = |sql: &str| -> String {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("plan");
        let rows: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(3))
            .expect("rows")
            .collect::<rusqlite::Result<_>>()
            .expect("collect");
        rows.join("\n")
    };
    let claim = plan(
        &gantry_store_sqlite::NEXT_CLAIMABLE
            .replace("?1", "8")
            .replace("?2", "'[]'"),
    );
    for index in ["jobs_claim", "jobs_running_config", "jobs_running_key"] {
        assert!(claim.contains(index), "{index} not used:\n{claim}");
    }
    let by_config = plan(
        "SELECT id FROM jobs WHERE status = 'running' AND project_id = 'p' AND config_id = 'c' LIMIT 1",
    );
    assert!(by_config.contains("jobs_running_config"), "{by_config}");
    let by_key = plan(
        "SELECT id FROM jobs WHERE status = 'running' AND project_id = 'p' AND concurrency_key = 'k' ORDER BY id",
    );
    // (Sorted by id, SQLite prefers the project's index; either way no scan.)
    assert!(!by_key.contains("SCAN jobs"), "{by_key}");
    let by_schedule = plan(
        "SELECT id FROM jobs WHERE project_id = 'p' AND schedule_id = 's' AND status IN ('queued', 'running') ORDER BY id LIMIT 1",
    );
    assert!(!by_schedule.contains("SCAN jobs"), "{by_schedule}");
}

/// Retention and IronWorker: a finished task goes with its job (its Iron row
/// too, or the job's row could not go), and the files Iron still needs (a
/// code's config, a live schedule's payload) stay whatever their age, while
/// other old files go.
#[tokio::test]
async fn retention_takes_iron_tasks_with_their_jobs_and_keeps_the_files_iron_needs() {
    let Sqlite { dir, store } = open_sqlite();
    let p = project();
    let file = |name: &str| gantry_store::NewFile {
        name: name.into(),
        tags: vec!["t".into()],
        size: 1,
        object_key: format!("files/{name}"),
    };
    let config = store.create_file(&p, file("config")).await.expect("file");
    let old = store.create_file(&p, file("old")).await.expect("file");
    let doc = gantry_store::IronCodeDoc {
        image: Some("busybox".into()),
        config_file: Some(gantry_store::IronFile {
            id: config.id,
            tag: "iron-config-x".into(),
        }),
        ..Default::default()
    };
    let code = store.put_iron_code(&p, "hello", &doc).await.expect("code");
    let id = gantry_core::JobId::new();
    let task = gantry_store::IronTask {
        code_id: code.id.clone(),
        code_name: code.name.clone(),
        code_rev: 1,
        code_history_id: code.latest.id.clone(),
        payload: "{}".into(),
        payload_file: None,
        label: None,
        cluster: "default".into(),
        priority: 0,
        timeout: 60,
        delay: 0,
        schedule_id: None,
        percent: None,
        progress_msg: None,
    };
    store
        .queue_iron_tasks(vec![(id, new_job(1), task)])
        .await
        .expect("queue");
    store
        .claim(&wid("w"), 1, Duration::from_secs(30))
        .await
        .expect("claim");
    store
        .finish_attempt(
            id,
            1,
            &wid("w"),
            &gantry_core::job::Outcome::succeeded(0),
            None,
            &Default::default(),
        )
        .await
        .expect("finish");
    store
        .set_project_retention(
            &p,
            &gantry_store::Retention {
                jobs_days: Some(1),
                files_days: Some(1),
                ..Default::default()
            },
        )
        .await
        .expect("policy");
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_millis() as i64
        + 3 * 86_400_000;
    let removed = gantry_store_sqlite::retention::run(&dir.path().join("gantry.db"), later, false)
        .expect("retention");
    let mine = removed
        .iter()
        .find(|r| r.project == p.as_str())
        .expect("project");
    assert_eq!(mine.jobs, 1);
    assert_eq!(
        mine.files.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        vec![old.id],
        "only the file Iron does not need goes"
    );
    assert!(matches!(
        store.get_iron_task(&p, id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(store.get_file(&p, config.id).await.is_ok());
}

/// A job's applied limits are stored as the JSON text earlier versions
/// wrote (same keys, same order), and records in older shapes (before
/// `loosened` or `start`, with keys this version does not know, or the
/// text `null`) read back as they were.
#[tokio::test]
async fn applied_limits_keep_their_stored_json() {
    let Sqlite { dir, store } = open_sqlite();
    let id = store.enqueue(new_job(1)).await.expect("enqueue").id;
    let claim = store
        .claim(&wid("w1"), 1, Duration::from_secs(60))
        .await
        .expect("claim");
    assert_eq!(claim.jobs.len(), 1);
    let today = r#"{"memory":536870912,"memory_swap":536870912,"cpus":1.0,"timeout_ms":3600000,"pids":512,"network":"none","user":"1000:1000","read_only_root":true,"loosened":["writable-root"],"tmp_size":268435456,"capabilities":"none","no_new_privileges":true,"start":"cold"}"#;
    let limits: gantry_core::applied::AppliedLimits = serde_json::from_str(today).expect("typed");
    store
        .record_attempt(
            id,
            1,
            &gantry_store::AttemptInfo {
                image_digest: None,
                limits: Some(limits.clone()),
            },
        )
        .await
        .expect("record");
    let conn = rusqlite::Connection::open(dir.path().join("gantry.db")).expect("db");
    let stored: String = conn
        .query_row(
            "SELECT limits FROM jobs WHERE id = ?1",
            [id.to_string()],
            |r| r.get(0),
        )
        .expect("row");
    assert_eq!(stored, today);
    assert_eq!(
        store.get_job(&project(), id).await.expect("job").limits,
        Some(limits)
    );
    let older = r#"{"memory":1,"memory_swap":1,"cpus":0.5,"timeout_ms":1,"pids":1,"network":"bridge","user":"root","read_only_root":false,"tmp_size":1,"capabilities":"none","no_new_privileges":true,"gone":[1]}"#;
    for (text, shown) in [(older, Some(older)), ("null", None)] {
        conn.execute(
            "UPDATE jobs SET limits = ?2 WHERE id = ?1",
            rusqlite::params![id.to_string(), text],
        )
        .expect("update");
        let read = store.get_job(&project(), id).await.expect("job").limits;
        assert_eq!(
            read.map(|l| serde_json::to_string(&l).expect("json"))
                .as_deref(),
            shown
        );
    }
}
