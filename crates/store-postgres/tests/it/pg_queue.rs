//! The queue across processes: two stores on one database stand for two
//! servers (or worker hosts), each with its own pool, claiming from one
//! queue at the same time.

use crate::open_pg;
use gantry_core::job::Outcome;
use gantry_core::{ConfigId, JobId, JobStatus, ProjectId};
use gantry_store::prelude::*;
use gantry_store::testing::{new_job, project, wid, LEASE};
use gantry_store::{JobFilter, StoreError};
use gantry_store_postgres::PgStore;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const JOBS: usize = 200;
/// Jobs of each of these configurations may run one at a time.
const CONFIGS: [&str; 2] = ["c1", "c2"];

/// Two stores ("processes"), four claimers on each, one queue of 200 jobs
/// (a fifth of them under two configuration locks): every job is claimed
/// exactly once, as attempt 1, and no two jobs of one configuration ever
/// run at once, though the claimers run in different pools.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_claim_every_job_exactly_once() {
    let pg = open_pg().await;
    let other = Arc::new(PgStore::connect(&pg.url).await.expect("connect"));
    for c in CONFIGS {
        let id: ConfigId = c.parse().expect("id");
        pg.store
            .create_config(&project(), &id, &serde_json::json!({"image": "x"}))
            .await
            .expect("config");
    }
    let jobs: Vec<_> = (0..JOBS)
        .map(|i| {
            let mut j = new_job(1);
            if i % 5 == 0 {
                j.config_id = Some(CONFIGS[i / 5 % 2].parse().expect("id"));
            }
            j
        })
        .collect();
    let ids = pg.store.enqueue_batch(jobs).await.expect("enqueue");
    assert_eq!(ids.len(), JOBS);

    // Configurations whose job a claimer holds now; a claimer takes its
    // configuration out before it finishes the job, so the lock in the
    // database is released only after that.
    let running: Arc<Mutex<HashSet<ConfigId>>> = Default::default();
    let claimed: Arc<Mutex<Vec<(JobId, u32)>>> = Default::default();
    let mut tasks = Vec::new();
    for (p, store) in [pg.store.clone(), other.clone()].into_iter().enumerate() {
        for w in 0..4 {
            let (store, running, claimed) = (store.clone(), running.clone(), claimed.clone());
            let worker = wid(&format!("p{p}-w{w}"));
            tasks.push(tokio::spawn(async move {
                loop {
                    if claimed.lock().expect("lock").len() >= JOBS {
                        return;
                    }
                    let claim = store.claim(&worker, 3, LEASE).await.expect("claim");
                    if claim.jobs.is_empty() {
                        // Held back by a configuration another claimer
                        // runs: poll again soon.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                    for j in &claim.jobs {
                        claimed
                            .lock()
                            .expect("lock")
                            .push((j.job.id, j.job.attempt));
                        if let Some(c) = &j.job.config_id {
                            assert!(
                                running.lock().expect("lock").insert(c.clone()),
                                "two jobs of {c} run at once"
                            );
                        }
                    }
                    for j in &claim.jobs {
                        if let Some(c) = &j.job.config_id {
                            running.lock().expect("lock").remove(c);
                        }
                        let f = store
                            .finish_attempt(
                                j.job.id,
                                j.job.attempt,
                                &worker,
                                &Outcome::succeeded(0),
                                None,
                                &Default::default(),
                            )
                            .await
                            .expect("finish");
                        assert_eq!(f, gantry_store::Finish::Done(JobStatus::Succeeded));
                    }
                }
            }));
        }
    }
    tokio::time::timeout(Duration::from_secs(120), async {
        for t in tasks {
            t.await.expect("a claimer failed");
        }
    })
    .await
    .expect("every job claimed in time");

    let claimed = claimed.lock().expect("lock").clone();
    let mut times: HashMap<JobId, usize> = HashMap::new();
    for (id, attempt) in &claimed {
        assert_eq!(*attempt, 1, "job {id} claimed as attempt {attempt}");
        *times.entry(*id).or_default() += 1;
    }
    assert_eq!(claimed.len(), JOBS, "claims: {}", claimed.len());
    assert_eq!(times.len(), JOBS);
    assert!(ids.iter().all(|id| times.get(id) == Some(&1)));
    let counts = other.count_by_status().await.expect("counts");
    assert_eq!(counts, vec![(JobStatus::Succeeded, JOBS as u64)]);
}

/// The queue's answers about another project's job are *not found* (or an
/// empty list), never its data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_projects_jobs_are_not_found() {
    let pg = open_pg().await;
    let acme: ProjectId = "acme".parse().expect("id");
    pg.store.create_project(&acme, &[]).await.expect("project");
    let id = pg.store.enqueue(new_job(1)).await.expect("enqueue").id;
    let not_found = |what: &str, r: Result<(), StoreError>| match r {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("{what}: expected not found, got {other:?}"),
    };
    not_found("get_job", pg.store.get_job(&acme, id).await.map(|_| ()));
    not_found(
        "list_events",
        pg.store.list_events(&acme, id, 0, 10).await.map(|_| ()),
    );
    not_found(
        "request_cancel",
        pg.store.request_cancel(&acme, id).await.map(|_| ()),
    );
    let all = JobFilter {
        status: None,
        limit: 100,
        before: None,
    };
    assert!(pg
        .store
        .list_jobs(&acme, &all)
        .await
        .expect("jobs")
        .is_empty());
    let job = pg.store.get_job(&project(), id).await.expect("job");
    assert_eq!(
        job.status,
        JobStatus::Queued,
        "the owner's job is untouched"
    );
}

/// Readiness and the figures for metrics read the queue as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_figures_count_the_queue() {
    let pg = open_pg().await;
    pg.store.check_writable().await.expect("writable");
    let jobs: Vec<_> = (0..3).map(|_| new_job(1)).collect();
    pg.store.enqueue_batch(jobs).await.expect("enqueue");
    let c = pg.store.claim(&wid("w"), 1, LEASE).await.expect("claim");
    assert_eq!(c.jobs.len(), 1);
    assert_eq!(
        c.jobs[0].project_number, 1,
        "the default project is number 1"
    );
    let mut counts = pg.store.count_by_status().await.expect("counts");
    counts.sort_by_key(|(s, _)| s.as_str());
    assert_eq!(
        counts,
        vec![(JobStatus::Queued, 2), (JobStatus::Running, 1)]
    );
    let f = pg.store.figures().await.expect("figures");
    assert_eq!(f.queues.len(), 1);
    let q = &f.queues[0];
    assert_eq!((q.project.clone(), q.queued, q.running), (project(), 2, 1));
    assert_eq!(f.storage.len(), 1, "one project");
    assert_eq!(f.storage[0].files, 0);
    // Projects are numbered in order of creation.
    let acme: ProjectId = "acme".parse().expect("id");
    let p = pg.store.create_project(&acme, &[]).await.expect("project");
    assert_eq!(p.number, 2);
    assert!(matches!(
        pg.store.create_project(&acme, &[]).await,
        Err(StoreError::Conflict(_))
    ));
}

/// An attempt's outputs (table versions, files) commit with its status, in
/// one transaction; a stale end (its lease was taken back) commits none.
/// Needs the catalog (`catalog::apply_table_write`, `catalog::insert_file`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_commit_with_the_end_and_a_stale_end_commits_none() {
    use gantry_store::{MadeBy, NewFile, Outputs, Segment, TableWrite, WriteKind};
    let pg = open_pg().await;
    let table: gantry_core::TableId = "in.c-main.t".parse().expect("table");
    let outputs = |key: &str| Outputs {
        tables: vec![TableWrite {
            table: table.clone(),
            kind: WriteKind::Replace,
            columns: vec!["id".into()],
            primary_key: vec![],
            segments: vec![Segment {
                key: key.into(),
                columns: vec!["id".into()],
                rows: 1,
                bytes: 2,
                header: 3,
                created_at: 1,
            }],
            loaded_rows: 1,
            loaded_bytes: 2,
            made_by: MadeBy::Job,
            note: None,
            metadata: None,
        }],
        files: vec![NewFile {
            name: format!("{key}.txt"),
            tags: vec!["out".into()],
            size: 1,
            object_key: format!("files/{key}"),
        }],
    };
    let id = pg.store.enqueue(new_job(1)).await.expect("enqueue").id;
    pg.store
        .claim(&wid("dead"), 1, Duration::from_millis(1))
        .await
        .expect("claim");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(pg.store.recover_expired().await.expect("recover"), vec![id]);
    pg.store
        .claim(&wid("alive"), 1, LEASE)
        .await
        .expect("claim");
    let stale = pg
        .store
        .finish_attempt(
            id,
            1,
            &wid("dead"),
            &Outcome::succeeded(0),
            None,
            &outputs("late"),
        )
        .await
        .expect("finish");
    assert_eq!(stale, gantry_store::Finish::Stale);
    assert!(matches!(
        pg.store.get_table(&project(), &table).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(pg
        .store
        .list_files(&project(), &[], 10)
        .await
        .expect("files")
        .is_empty());
    let done = pg
        .store
        .finish_attempt(
            id,
            2,
            &wid("alive"),
            &Outcome::succeeded(0),
            None,
            &outputs("k"),
        )
        .await
        .expect("finish");
    assert_eq!(done, gantry_store::Finish::Done(JobStatus::Succeeded));
    let v = pg
        .store
        .table_version(&project(), &table, None)
        .await
        .expect("version");
    assert_eq!((v.version, v.job_id), (1, Some(id)));
    let files = pg
        .store
        .list_files(&project(), &[], 10)
        .await
        .expect("files");
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].job_id, Some(id));
}
