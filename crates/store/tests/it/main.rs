//! The SQLite store and queue, for real, in a temporary folder.

mod images;
mod ordering;
mod schedules;

use gantry_core::events::LogLine;
use gantry_core::job::Outcome;
use gantry_core::{ConfigId, ErrorKind, JobStatus, ProjectId};
use gantry_store::{Change, Finish, JobFilter, NewJob, SqliteStore, Store, StoreError};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

pub(crate) fn open() -> (tempfile::TempDir, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().expect("tmp");
    let store = SqliteStore::open(&dir.path().join("gantry.db")).expect("open");
    (dir, Arc::new(store))
}

pub(crate) fn project() -> ProjectId {
    ProjectId::default_project()
}

pub(crate) fn new_job(attempts: u32) -> NewJob {
    NewJob::new(
        project(),
        None,
        json!({"image": "x"}),
        attempts,
        Duration::from_millis(0),
    )
}

pub(crate) const LEASE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn concurrent_claims_never_hand_out_a_job_twice() {
    let (_d, store) = open();
    for _ in 0..200 {
        store.enqueue(new_job(1)).await.expect("enqueue");
    }
    let mut handles = Vec::new();
    for w in 0..8 {
        let s = store.clone();
        handles.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let claim = s.claim(&format!("w{w}"), 7, LEASE).await.expect("claim");
                if claim.jobs.is_empty() {
                    return got;
                }
                got.extend(claim.jobs.into_iter().map(|j| j.job.id));
            }
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.expect("join"));
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 200);
    assert_eq!(unique.len(), 200);
}

#[tokio::test]
async fn retries_count_failures_and_success_saves_state() {
    let (_d, store) = open();
    let cfg: ConfigId = "etl".parse().expect("id");
    store
        .create_config(&project(), &cfg, &json!({"image": "x"}))
        .await
        .expect("config");
    let mut job = new_job(2);
    job.config_id = Some(cfg.clone());
    let id = store.enqueue(job).await.expect("enqueue").id;

    let c = store.claim("w", 1, LEASE).await.expect("claim");
    assert_eq!(c.jobs[0].state, json!({}));
    let fail = Outcome::failed(ErrorKind::ApplicationError, "boom", Some(3));
    let f = store
        .finish_attempt(
            id,
            1,
            "w",
            &fail,
            Some(&json!({"x": 1})),
            &Default::default(),
        )
        .await
        .expect("finish");
    assert!(matches!(f, Finish::Retrying { .. }));
    assert_eq!(
        store.get_config(&project(), &cfg).await.expect("cfg").state,
        json!({}),
        "no state from a failure"
    );

    let c = store.claim("w", 1, LEASE).await.expect("claim");
    assert_eq!(c.jobs[0].job.attempt, 2);
    let f = store
        .finish_attempt(
            id,
            2,
            "w",
            &Outcome::succeeded(0),
            Some(&json!({"x": 2})),
            &Default::default(),
        )
        .await
        .expect("finish");
    assert_eq!(f, Finish::Done(JobStatus::Succeeded));
    assert_eq!(
        store.get_config(&project(), &cfg).await.expect("cfg").state,
        json!({"x": 2})
    );
    let job = store.get_job(&project(), id).await.expect("job");
    assert_eq!(job.attempts.len(), 2);
    assert_eq!(job.attempts[0].status, "failed");

    // A user error is final even with attempts left.
    let id = store.enqueue(new_job(5)).await.expect("enqueue").id;
    store.claim("w", 1, LEASE).await.expect("claim");
    let f = store
        .finish_attempt(
            id,
            1,
            "w",
            &Outcome::failed(ErrorKind::UserError, "bad", Some(1)),
            None,
            &Default::default(),
        )
        .await
        .expect("finish");
    assert_eq!(f, Finish::Done(JobStatus::Failed));
}

#[tokio::test]
async fn expired_leases_are_taken_back_and_late_results_are_fenced_off() {
    let (_d, store) = open();
    let id = store.enqueue(new_job(2)).await.expect("enqueue").id;
    store
        .claim("dead", 1, Duration::from_millis(1))
        .await
        .expect("claim");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(store.recover_expired().await.expect("recover"), vec![id]);
    let job = store.get_job(&project(), id).await.expect("job");
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(job.attempts[0].status, "lost");

    let c = store.claim("alive", 1, LEASE).await.expect("claim");
    assert_eq!(c.jobs[0].job.attempt, 2);
    // The dead worker wakes up and reports: nothing changes.
    let stale = store
        .finish_attempt(
            id,
            1,
            "dead",
            &Outcome::succeeded(0),
            None,
            &Default::default(),
        )
        .await
        .expect("finish");
    assert_eq!(stale, Finish::Stale);
    // Heartbeats keep a live lease from expiring.
    store.heartbeat("alive", LEASE).await.expect("beat");
    assert!(store.recover_expired().await.expect("recover").is_empty());
    let done = store
        .finish_attempt(
            id,
            2,
            "alive",
            &Outcome::succeeded(0),
            None,
            &Default::default(),
        )
        .await
        .expect("finish");
    assert_eq!(done, Finish::Done(JobStatus::Succeeded));

    // Out of attempts, a lost lease fails the job as infrastructure.
    let id = store.enqueue(new_job(1)).await.expect("enqueue").id;
    store
        .claim("dead", 1, Duration::from_millis(1))
        .await
        .expect("claim");
    tokio::time::sleep(Duration::from_millis(20)).await;
    store.recover_expired().await.expect("recover");
    let job = store.get_job(&project(), id).await.expect("job");
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.error.map(|e| e.kind), Some(ErrorKind::Infrastructure));
}

#[tokio::test]
async fn hand_back_does_not_use_up_an_attempt_and_recover_worker_takes_all() {
    let (_d, store) = open();
    let id = store.enqueue(new_job(1)).await.expect("enqueue").id;
    store.claim("w", 1, LEASE).await.expect("claim");
    store.hand_back(id, 1, "w").await.expect("hand back");
    let c = store.claim("w", 1, LEASE).await.expect("claim");
    assert_eq!(c.jobs.len(), 1, "queued again");
    // Restarted worker: its running jobs come back whatever their lease.
    assert_eq!(store.recover_worker("w").await.expect("recover"), vec![id]);
    let job = store.get_job(&project(), id).await.expect("job");
    assert_eq!(
        job.status,
        JobStatus::Failed,
        "attempt 2 was lost and only one failure was allowed"
    );
    assert_eq!(job.attempts[0].status, "handed_back");
}

#[tokio::test]
async fn events_are_numbered_and_changes_announced() {
    let (_d, store) = open();
    let mut changes = store.subscribe();
    let id = store.enqueue(new_job(1)).await.expect("enqueue").id;
    assert_eq!(changes.recv().await.expect("change"), Change::Enqueued);
    let lines: Vec<LogLine> = (0..3)
        .map(|i| LogLine::system("info", format!("l{i}")))
        .collect();
    store.append_events(id, 1, &lines).await.expect("append");
    store
        .append_events(id, 1, &lines[..1])
        .await
        .expect("append");
    assert_eq!(changes.recv().await.expect("change"), Change::Events(id));
    let ev = store
        .list_events(&project(), id, 2, 100)
        .await
        .expect("list");
    assert_eq!(ev.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4]);
    // Another project sees nothing.
    let other: ProjectId = "other".parse().expect("p");
    assert!(matches!(
        store.list_events(&other, id, 0, 10).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.get_job(&other, id).await,
        Err(StoreError::NotFound(_))
    ));

    // Cancel: queued at once, running flagged.
    let cancelled = store.request_cancel(&project(), id).await.expect("cancel");
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    let id2 = store.enqueue(new_job(1)).await.expect("enqueue").id;
    store.claim("w", 1, LEASE).await.expect("claim");
    let flagged = store.request_cancel(&project(), id2).await.expect("cancel");
    assert!(flagged.cancel_requested && flagged.status == JobStatus::Running);
    assert_eq!(store.heartbeat("w", LEASE).await.expect("beat"), vec![id2]);
    let page = store
        .list_jobs(
            &project(),
            &JobFilter {
                status: None,
                limit: 10,
                before: None,
            },
        )
        .await
        .expect("list");
    assert_eq!(page.len(), 2);
}

#[tokio::test]
async fn tokens_are_stored_hashed() {
    let (dir, store) = open();
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
    let (dir, store) = open();
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
    let (_d, store) = open();
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
