//! The fleet's workers: registered and listed, tags pick the jobs a worker
//! claims, a drained worker claims nothing, a stopped one is gone.

use super::{new_job, Backend, LEASE};
use crate::{NewWorker, StoreError, Waiting, WorkerState};
use serde_json::json;

fn w(id: &str, tags: &[&str]) -> NewWorker {
    NewWorker {
        id: super::wid(id),
        host: "h".into(),
        version: "1".into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        slots: 2,
    }
}

pub async fn workers_register_claim_by_tags_drain_and_stop(b: &dyn Backend) {
    let store = b.store();
    store
        .register_worker(w("blue", &["blue"]))
        .await
        .expect("register");
    let red = store
        .register_worker(w("red", &["red", "eu"]))
        .await
        .expect("register");
    assert_eq!(
        (red.state, red.running, red.tags.len()),
        (WorkerState::Active, 0, 2)
    );
    assert_eq!(store.list_workers().await.expect("list").len(), 2);

    let mut job = new_job(1);
    job.spec = json!({"image": "x", "worker_tags": ["red", "eu"]});
    let tagged = store.enqueue(job).await.expect("enqueue").id;
    assert!(store
        .claim(&super::wid("blue"), 5, LEASE)
        .await
        .expect("claim")
        .jobs
        .is_empty());
    assert!(
        store
            .claim(&super::wid("stranger"), 5, LEASE)
            .await
            .expect("claim")
            .jobs
            .is_empty(),
        "an unregistered worker has no tags"
    );
    let c = store
        .claim(&super::wid("red"), 5, LEASE)
        .await
        .expect("claim");
    assert_eq!(
        c.jobs.iter().map(|j| j.job.id).collect::<Vec<_>>(),
        [tagged]
    );
    let red = store.list_workers().await.expect("list");
    let red = red.iter().find(|x| x.id == "red").expect("red");
    assert_eq!(red.running, 1);

    // Nobody has `gpu`: the job says so.
    let mut job = new_job(1);
    job.spec = json!({"image": "x", "worker_tags": ["gpu"]});
    let gpu = store.enqueue(job).await.expect("enqueue");
    assert_eq!(
        gpu.waiting,
        Some(Waiting::NoWorker {
            tags: vec!["gpu".into()]
        })
    );

    // Drained: no claims, even of untagged jobs; beats say so.
    let d = store.drain_worker(&super::wid("red")).await.expect("drain");
    assert_eq!(d.state, WorkerState::Draining);
    assert_eq!(
        store.worker_beat(&super::wid("red")).await.expect("beat"),
        WorkerState::Draining
    );
    let plain = store.enqueue(new_job(1)).await.expect("enqueue").id;
    assert!(store
        .claim(&super::wid("red"), 5, LEASE)
        .await
        .expect("claim")
        .jobs
        .is_empty());
    assert_eq!(
        store
            .claim(&super::wid("blue"), 5, LEASE)
            .await
            .expect("claim")
            .jobs[0]
            .job
            .id,
        plain
    );
    // Restarting (registering again) makes it active.
    store
        .register_worker(w("red", &["red"]))
        .await
        .expect("register");
    assert_eq!(
        store.worker_beat(&super::wid("red")).await.expect("beat"),
        WorkerState::Active
    );

    store
        .worker_stopped(&super::wid("blue"))
        .await
        .expect("stopped");
    let list = store.list_workers().await.expect("list");
    assert_eq!(
        list.iter().find(|x| x.id == "blue").map(|x| x.state),
        Some(WorkerState::Gone)
    );
    assert!(matches!(
        store.drain_worker(&super::wid("nobody")).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.worker_beat(&super::wid("nobody")).await,
        Err(StoreError::NotFound(_))
    ));
}

/// Servers starting together on an empty store make one admin token.
pub async fn the_admin_token_is_bootstrapped_once(b: &dyn Backend) {
    let store = b.store();
    let tries: Vec<_> = (0..8)
        .map(|_| {
            let s = store.clone();
            tokio::spawn(async move { s.bootstrap_admin_token("first").await })
        })
        .collect();
    let mut made = Vec::new();
    for t in tries {
        if let Some(tok) = t.await.expect("join").expect("bootstrap") {
            made.push(tok);
        }
    }
    assert_eq!(made.len(), 1, "exactly one admin token");
    let p = store
        .authenticate(&made[0].secret)
        .await
        .expect("auth")
        .expect("valid");
    assert!(p.admin);
    assert_eq!(store.token_count().await.expect("count"), 1);
    assert!(store
        .bootstrap_admin_token("again")
        .await
        .expect("b")
        .is_none());
}
