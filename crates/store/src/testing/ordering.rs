//! Claim order and hold-backs: priority before age, aging, delays, the
//! configuration lock, concurrency keys and project caps, all decided in the
//! claim's transaction so they hold across workers.

use super::{new_job, project, Backend, LEASE};
use crate::{Store, Waiting};
use gantry_core::job::Outcome;
use gantry_core::{ConfigId, JobId, JobStatus};
use serde_json::json;
use std::time::Duration;

async fn claim_one(store: &dyn Store, worker: &str) -> Option<JobId> {
    let c = store
        .claim(&super::wid(worker), 1, LEASE)
        .await
        .expect("claim");
    c.jobs.first().map(|j| j.job.id)
}

async fn finish(store: &dyn Store, id: JobId, worker: &str) {
    store
        .finish_attempt(
            id,
            1,
            &super::wid(worker),
            &Outcome::succeeded(0),
            None,
            &Default::default(),
        )
        .await
        .expect("finish");
}

pub async fn priority_orders_claims_before_age_and_aging_lifts_waiting_jobs(b: &dyn Backend) {
    let store = b.store();
    let mut ids = Vec::new();
    for p in [0u8, 1, 2, 1] {
        let mut j = new_job(1);
        j.priority = p;
        ids.push(store.enqueue(j).await.expect("enqueue").id);
    }
    let mut order = Vec::new();
    while let Some(id) = claim_one(store.as_ref(), "w").await {
        order.push(id);
    }
    assert_eq!(order, vec![ids[2], ids[1], ids[3], ids[0]]);

    // A low-priority job that has waited over two aging steps ranks as high
    // priority and, being older, goes before a new high-priority job.
    let mut low = new_job(1);
    low.priority = 0;
    let low = store.enqueue(low).await.expect("enqueue").id;
    let mut high = new_job(1);
    high.priority = 2;
    let high = store.enqueue(high).await.expect("enqueue").id;
    b.backdate(
        low,
        Duration::from_millis(2 * crate::AGING_STEP_MS as u64 + 1000),
    )
    .await;
    assert_eq!(store.age_queue().await.expect("age"), 1);
    assert_eq!(claim_one(store.as_ref(), "w").await, Some(low));
    assert_eq!(claim_one(store.as_ref(), "w").await, Some(high));
    let job = store.get_job(&project(), low).await.expect("job");
    assert_eq!(job.priority, 0, "aging does not change the asked priority");
}

pub async fn delayed_jobs_wait_and_say_until_when(b: &dyn Backend) {
    let store = b.store();
    let mut j = new_job(1);
    j.delay = Duration::from_millis(400);
    let id = store.enqueue(j).await.expect("enqueue").id;
    let c = store
        .claim(&super::wid("w"), 4, LEASE)
        .await
        .expect("claim");
    assert!(c.jobs.is_empty());
    let due = c.next_due.expect("next due");
    assert!(due <= Duration::from_millis(400), "{due:?}");
    let job = store.get_job(&project(), id).await.expect("job");
    assert!(
        matches!(job.waiting, Some(Waiting::Delayed { until }) if until == job.run_after),
        "{:?}",
        job.waiting
    );
    assert!(job.run_after >= job.queued_at + 400);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(claim_one(store.as_ref(), "w").await, Some(id));
}

pub async fn the_configuration_lock_holds_across_workers_and_never_blocks_others(b: &dyn Backend) {
    let store = b.store();
    let cfg: ConfigId = "etl".parse().expect("id");
    store
        .create_config(&project(), &cfg, &json!({"image": "x"}))
        .await
        .expect("config");
    let of_cfg = || {
        let mut j = new_job(1);
        j.config_id = Some(cfg.clone());
        j
    };
    let first = store.enqueue(of_cfg()).await.expect("enqueue").id;
    let second = store.enqueue(of_cfg()).await.expect("enqueue").id;
    let other = store.enqueue(new_job(1)).await.expect("enqueue").id;

    // The held second job is skipped, not waited on: the job behind it runs.
    let c = store
        .claim(&super::wid("w1"), 5, LEASE)
        .await
        .expect("claim");
    let got: Vec<JobId> = c.jobs.iter().map(|j| j.job.id).collect();
    assert_eq!(got, vec![first, other]);
    assert_eq!(claim_one(store.as_ref(), "w2").await, None);
    let job = store.get_job(&project(), second).await.expect("job");
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(
        job.waiting,
        Some(Waiting::ConfigLock {
            job: first,
            config: cfg.clone()
        })
    );
    finish(store.as_ref(), first, "w1").await;
    assert_eq!(claim_one(store.as_ref(), "w2").await, Some(second));
}

pub async fn a_concurrency_key_limits_running_jobs_across_workers(b: &dyn Backend) {
    let store = b.store();
    let mut keyed = Vec::new();
    for _ in 0..3 {
        let mut j = new_job(1);
        j.concurrency = Some(("api".into(), 2));
        keyed.push(store.enqueue(j).await.expect("enqueue").id);
    }
    let other = store.enqueue(new_job(1)).await.expect("enqueue").id;
    assert_eq!(claim_one(store.as_ref(), "w1").await, Some(keyed[0]));
    let c = store
        .claim(&super::wid("w2"), 5, LEASE)
        .await
        .expect("claim");
    let got: Vec<JobId> = c.jobs.iter().map(|j| j.job.id).collect();
    assert_eq!(got, vec![keyed[1], other]);
    let job = store.get_job(&project(), keyed[2]).await.expect("job");
    assert_eq!(
        job.waiting,
        Some(Waiting::ConcurrencyKey {
            key: "api".into(),
            limit: 2,
            running: vec![keyed[0], keyed[1]],
        })
    );
    finish(store.as_ref(), keyed[0], "w1").await;
    assert_eq!(claim_one(store.as_ref(), "w1").await, Some(keyed[2]));
}

pub async fn a_project_cap_holds_its_jobs_back(b: &dyn Backend) {
    let store = b.store();
    store
        .set_project_max_running(&project(), Some(1))
        .await
        .expect("cap");
    let a = store.enqueue(new_job(1)).await.expect("enqueue").id;
    let b = store.enqueue(new_job(1)).await.expect("enqueue").id;
    let c = store
        .claim(&super::wid("w1"), 5, LEASE)
        .await
        .expect("claim");
    assert_eq!(c.jobs.len(), 1);
    assert_eq!(claim_one(store.as_ref(), "w2").await, None);
    let job = store.get_job(&project(), b).await.expect("job");
    assert_eq!(
        job.waiting,
        Some(Waiting::ProjectLimit {
            project: project(),
            limit: 1
        })
    );
    store
        .set_project_max_running(&project(), None)
        .await
        .expect("uncap");
    assert_eq!(claim_one(store.as_ref(), "w2").await, Some(b));
    let _ = a;
}
