//! The queue: claims, attempts, leases, fencing, events, cancels.

use super::{new_job, project, Backend, LEASE};
use crate::{Change, Finish, JobFilter, StoreError};
use gantry_core::events::LogLine;
use gantry_core::job::Outcome;
use gantry_core::{ConfigId, ErrorKind, JobStatus, ProjectId};
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;

pub async fn concurrent_claims_never_hand_out_a_job_twice(b: &dyn Backend) {
    let store = b.store();
    for _ in 0..200 {
        store.enqueue(new_job(1)).await.expect("enqueue");
    }
    let mut handles = Vec::new();
    for w in 0..8 {
        let s = store.clone();
        handles.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let claim = s
                    .claim(&super::wid(&format!("w{w}")), 7, LEASE)
                    .await
                    .expect("claim");
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

pub async fn retries_count_failures_and_success_saves_state(b: &dyn Backend) {
    let store = b.store();
    let cfg: ConfigId = "etl".parse().expect("id");
    store
        .create_config(&project(), &cfg, &json!({"image": "x"}))
        .await
        .expect("config");
    let mut job = new_job(2);
    job.config_id = Some(cfg.clone());
    let id = store.enqueue(job).await.expect("enqueue").id;

    let c = store
        .claim(&super::wid("w"), 1, LEASE)
        .await
        .expect("claim");
    assert_eq!(c.jobs[0].state, json!({}));
    let fail = Outcome::failed(ErrorKind::ApplicationError, "boom", Some(3));
    let f = store
        .finish_attempt(
            id,
            1,
            &super::wid("w"),
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

    let c = store
        .claim(&super::wid("w"), 1, LEASE)
        .await
        .expect("claim");
    assert_eq!(c.jobs[0].job.attempt, 2);
    let f = store
        .finish_attempt(
            id,
            2,
            &super::wid("w"),
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
    store
        .claim(&super::wid("w"), 1, LEASE)
        .await
        .expect("claim");
    let f = store
        .finish_attempt(
            id,
            1,
            &super::wid("w"),
            &Outcome::failed(ErrorKind::UserError, "bad", Some(1)),
            None,
            &Default::default(),
        )
        .await
        .expect("finish");
    assert_eq!(f, Finish::Done(JobStatus::Failed));
}

pub async fn expired_leases_are_taken_back_and_late_results_are_fenced_off(b: &dyn Backend) {
    let store = b.store();
    let id = store.enqueue(new_job(2)).await.expect("enqueue").id;
    store
        .claim(&super::wid("dead"), 1, Duration::from_millis(1))
        .await
        .expect("claim");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(store.recover_expired().await.expect("recover"), vec![id]);
    let job = store.get_job(&project(), id).await.expect("job");
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(job.attempts[0].status, "lost");

    let c = store
        .claim(&super::wid("alive"), 1, LEASE)
        .await
        .expect("claim");
    assert_eq!(c.jobs[0].job.attempt, 2);
    // The dead worker wakes up and reports: nothing changes.
    let stale = store
        .finish_attempt(
            id,
            1,
            &super::wid("dead"),
            &Outcome::succeeded(0),
            None,
            &Default::default(),
        )
        .await
        .expect("finish");
    assert_eq!(stale, Finish::Stale);
    // Heartbeats keep a live lease from expiring.
    store
        .heartbeat(&super::wid("alive"), LEASE)
        .await
        .expect("beat");
    assert!(store.recover_expired().await.expect("recover").is_empty());
    let done = store
        .finish_attempt(
            id,
            2,
            &super::wid("alive"),
            &Outcome::succeeded(0),
            None,
            &Default::default(),
        )
        .await
        .expect("finish");
    assert_eq!(done, Finish::Done(JobStatus::Succeeded));

    // A lost attempt does not use up `retry.attempts` (one here): the job
    // runs again until the bound of lost attempts (3 by default), then it
    // fails as infrastructure, saying which bound stopped it.
    let id = store.enqueue(new_job(1)).await.expect("enqueue").id;
    for lost in 1..=crate::rules::DEFAULT_MAX_LOST {
        let c = store
            .claim(&super::wid("dead"), 1, Duration::from_millis(1))
            .await
            .expect("claim");
        assert_eq!(c.jobs.len(), 1, "lost {lost}: claimed again");
        tokio::time::sleep(Duration::from_millis(20)).await;
        store.recover_expired().await.expect("recover");
        let job = store.get_job(&project(), id).await.expect("job");
        if lost < crate::rules::DEFAULT_MAX_LOST {
            assert_eq!(job.status, JobStatus::Queued, "lost {lost}");
        } else {
            assert_eq!(job.status, JobStatus::Failed);
            let e = job.error.expect("error");
            assert_eq!(e.kind, ErrorKind::Infrastructure);
            assert!(e.message.contains("retry.lost_attempts"), "{}", e.message);
            assert_eq!(job.attempts.len(), 3);
        }
    }
    // A spec's own bound.
    let mut one = new_job(5);
    one.spec = serde_json::json!({"image": "x", "retry": {"lost_attempts": 1}});
    let id = store.enqueue(one).await.expect("enqueue").id;
    store
        .claim(&super::wid("dead"), 1, Duration::from_millis(1))
        .await
        .expect("claim");
    tokio::time::sleep(Duration::from_millis(20)).await;
    store.recover_expired().await.expect("recover");
    let job = store.get_job(&project(), id).await.expect("job");
    assert_eq!(job.status, JobStatus::Failed, "one lost attempt allowed");
}

pub async fn hand_back_does_not_use_up_an_attempt_and_recover_worker_takes_all(b: &dyn Backend) {
    let store = b.store();
    let id = store.enqueue(new_job(1)).await.expect("enqueue").id;
    store
        .claim(&super::wid("w"), 1, LEASE)
        .await
        .expect("claim");
    store
        .hand_back(id, 1, &super::wid("w"))
        .await
        .expect("hand back");
    let c = store
        .claim(&super::wid("w"), 1, LEASE)
        .await
        .expect("claim");
    assert_eq!(c.jobs.len(), 1, "queued again");
    // Restarted worker: its running jobs come back whatever their lease.
    assert_eq!(
        store
            .recover_worker(&super::wid("w"))
            .await
            .expect("recover"),
        vec![id]
    );
    let job = store.get_job(&project(), id).await.expect("job");
    assert_eq!(
        job.status,
        JobStatus::Queued,
        "a lost attempt is run again, even with one attempt allowed"
    );
    assert_eq!(job.attempts[0].status, "handed_back");
    assert_eq!(job.attempts[1].status, "lost");
}

pub async fn events_are_numbered_and_changes_announced(b: &dyn Backend) {
    let store = b.store();
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
    assert_eq!(ev[0].level, crate::LogLevel::Info);
    // Levels come back as one of four; one outside them reads as info.
    store
        .append_events(
            id,
            1,
            &[
                LogLine::system("warning", "w"),
                LogLine::system("notice", "n"),
            ],
        )
        .await
        .expect("append");
    let ev = store
        .list_events(&project(), id, 4, 100)
        .await
        .expect("list");
    assert_eq!(
        ev.iter().map(|e| e.level.as_str()).collect::<Vec<_>>(),
        vec!["warning", "info"]
    );
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
    store
        .claim(&super::wid("w"), 1, LEASE)
        .await
        .expect("claim");
    let flagged = store.request_cancel(&project(), id2).await.expect("cancel");
    assert!(flagged.cancel_requested && flagged.status == JobStatus::Running);
    assert_eq!(
        store
            .heartbeat(&super::wid("w"), LEASE)
            .await
            .expect("beat"),
        vec![id2]
    );
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

/// An attempt's outputs (table versions, files) commit with its status, in
/// one transaction; a stale end (its lease was taken back) commits none.
pub async fn outputs_commit_with_the_end_and_a_stale_end_commits_none(b: &dyn Backend) {
    use super::contract::{file, table_write};
    use crate::{MadeBy, Outputs, WriteKind};
    let store = b.store();
    let table: gantry_core::TableId = "in.c-main.t".parse().expect("table");
    let outputs = |key: &str| {
        let mut write = table_write(&table, WriteKind::Replace, key);
        write.made_by = MadeBy::Job;
        Outputs {
            tables: vec![write],
            files: vec![file(&format!("{key}.txt"), &["out"])],
        }
    };
    let id = store.enqueue(new_job(1)).await.expect("enqueue").id;
    store
        .claim(&super::wid("dead"), 1, Duration::from_millis(1))
        .await
        .expect("claim");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(store.recover_expired().await.expect("recover"), vec![id]);
    store
        .claim(&super::wid("alive"), 1, LEASE)
        .await
        .expect("claim");
    let stale = store
        .finish_attempt(
            id,
            1,
            &super::wid("dead"),
            &Outcome::succeeded(0),
            None,
            &outputs("late"),
        )
        .await
        .expect("finish");
    assert_eq!(stale, Finish::Stale);
    assert!(matches!(
        store.get_table(&project(), &table).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(store
        .list_files(&project(), &[], 10)
        .await
        .expect("files")
        .is_empty());
    let done = store
        .finish_attempt(
            id,
            2,
            &super::wid("alive"),
            &Outcome::succeeded(0),
            None,
            &outputs("k"),
        )
        .await
        .expect("finish");
    assert_eq!(done, Finish::Done(JobStatus::Succeeded));
    let v = store
        .table_version(&project(), &table, None)
        .await
        .expect("version");
    assert_eq!((v.version, v.job_id, v.made_by), (1, Some(id), MadeBy::Job));
    let files = store.list_files(&project(), &[], 10).await.expect("files");
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].job_id, Some(id));
}

/// Readiness and the figures for metrics read the queue as it is; projects
/// are numbered in order of creation.
pub async fn health_figures_count_the_queue(b: &dyn Backend) {
    let store = b.store();
    store.check_writable().await.expect("writable");
    let jobs: Vec<_> = (0..3).map(|_| new_job(1)).collect();
    store.enqueue_batch(jobs).await.expect("enqueue");
    let c = store
        .claim(&super::wid("w"), 1, LEASE)
        .await
        .expect("claim");
    assert_eq!(c.jobs.len(), 1);
    assert_eq!(
        c.jobs[0].project_number, 1,
        "the default project is number 1"
    );
    let mut counts = store.count_by_status().await.expect("counts");
    counts.sort_by_key(|(s, _)| s.as_str());
    assert_eq!(
        counts,
        vec![(JobStatus::Queued, 2), (JobStatus::Running, 1)]
    );
    let f = store.figures().await.expect("figures");
    assert_eq!(f.queues.len(), 1);
    let q = &f.queues[0];
    assert_eq!((q.project.clone(), q.queued, q.running), (project(), 2, 1));
    assert_eq!(f.storage.len(), 1, "one project");
    assert_eq!(f.storage[0].files, 0);
    let acme: ProjectId = "acme".parse().expect("id");
    let p = store.create_project(&acme, &[]).await.expect("project");
    assert_eq!(p.number, 2);
    assert!(matches!(
        store.create_project(&acme, &[]).await,
        Err(StoreError::Conflict(_))
    ));
}
