//! Two servers (or worker hosts) on one database: two stores, each with its
//! own connections and writer, working one queue at the same time.

use super::{new_job, project, wid, Backend, LEASE};
use crate::{Finish, JobFilter, Store};
use gantry_core::job::Outcome;
use gantry_core::{ConfigId, JobId, JobStatus, PipelineId};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const JOBS: usize = 200;
/// Jobs of each of these configurations may run one at a time.
const CONFIGS: [&str; 2] = ["c1", "c2"];

/// Four claimers on each server, one queue of 200 jobs (a fifth of them
/// under two configuration locks): every job is claimed exactly once, as
/// attempt 1, and no two jobs of one configuration ever run at once, though
/// the claimers run on different servers.
pub async fn two_servers_claim_every_job_once_and_one_configuration_at_a_time(b: &dyn Backend) {
    let (store, other) = (b.store(), b.peer().await);
    for c in CONFIGS {
        let id: ConfigId = c.parse().expect("id");
        store
            .create_config(&project(), &id, &json!({"image": "x"}))
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
    let ids = store.enqueue_batch(jobs).await.expect("enqueue");
    assert_eq!(ids.len(), JOBS);

    // Configurations whose job a claimer holds now; a claimer takes its
    // configuration out before it finishes the job, so the lock in the
    // database is released only after that.
    let running: Arc<Mutex<HashSet<ConfigId>>> = Default::default();
    let claimed: Arc<Mutex<Vec<(JobId, u32)>>> = Default::default();
    let mut tasks = Vec::new();
    for (p, server) in [store.clone(), other.clone()].into_iter().enumerate() {
        for w in 0..4 {
            let (server, running, claimed) = (server.clone(), running.clone(), claimed.clone());
            let worker = wid(&format!("p{p}-w{w}"));
            tasks.push(tokio::spawn(async move {
                loop {
                    if claimed.lock().expect("lock").len() >= JOBS {
                        return;
                    }
                    let claim = server.claim(&worker, 3, LEASE).await.expect("claim");
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
                        let f = server
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
                        assert_eq!(f, Finish::Done(JobStatus::Succeeded));
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

async fn race_advance(servers: &[Arc<dyn Store>; 2]) {
    let mut racers = Vec::new();
    for i in 0..8 {
        let s = servers[i % 2].clone();
        racers.push(tokio::spawn(async move {
            s.advance_pipeline_runs().await.expect("advance")
        }));
    }
    for r in racers {
        r.await.expect("join");
    }
}

async fn job_count(store: &dyn Store) -> usize {
    let all = JobFilter {
        status: None,
        limit: 1000,
        before: None,
    };
    store.list_jobs(&project(), &all).await.expect("jobs").len()
}

/// Claims every queued job and ends it as succeeded, as a worker would:
/// one claim at a time, since jobs of one configuration run one at a time.
async fn run_queued(store: &dyn Store) {
    let worker = wid("w");
    loop {
        let claim = store.claim(&worker, 100, LEASE).await.expect("claim");
        if claim.jobs.is_empty() {
            return;
        }
        for j in claim.jobs {
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
            assert_eq!(f, Finish::Done(JobStatus::Succeeded));
        }
    }
}

/// Both servers move a pipeline run on at the same time, again and again:
/// each task of each phase makes one job, and the run ends once.
pub async fn two_servers_advancing_runs_make_each_tasks_job_once(b: &dyn Backend) {
    let servers = [b.store(), b.peer().await];
    let cfg: ConfigId = "c".parse().expect("id");
    servers[0]
        .create_config(&project(), &cfg, &json!({"image": "x"}))
        .await
        .expect("config");
    let pid: PipelineId = "p".parse().expect("id");
    let task = json!({"config": "c"});
    servers[0]
        .put_pipeline(
            &project(),
            &pid,
            &json!({"phases": [{"tasks": [task, task]}, {"tasks": [task, task]}]}),
            std::slice::from_ref(&cfg),
            true,
        )
        .await
        .expect("pipeline");
    let run = servers[0]
        .start_pipeline_run(&project(), &pid)
        .await
        .expect("run");
    assert_eq!(
        job_count(servers[0].as_ref()).await,
        2,
        "the first phase's jobs"
    );
    race_advance(&servers).await;
    assert_eq!(
        job_count(servers[0].as_ref()).await,
        2,
        "nothing new while they wait"
    );
    run_queued(servers[0].as_ref()).await;
    race_advance(&servers).await;
    race_advance(&servers).await;
    assert_eq!(
        job_count(servers[0].as_ref()).await,
        4,
        "the second phase's jobs, once"
    );
    run_queued(servers[1].as_ref()).await;
    race_advance(&servers).await;
    let done = servers[1]
        .get_pipeline_run(&project(), &run.id)
        .await
        .expect("get run");
    assert_eq!(done.status, "succeeded");
    assert_eq!(job_count(servers[1].as_ref()).await, 4);
    let mut jobs: Vec<_> = done.tasks.iter().filter_map(|t| t.job_id).collect();
    jobs.sort();
    jobs.dedup();
    assert_eq!(jobs.len(), 4, "{:?}", done.tasks);
}
