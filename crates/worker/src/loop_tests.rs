//! The worker loop in process, on a real SQLite store and local Storage,
//! with the scripted [`FakeRuntime`](crate::testing::FakeRuntime) instead of
//! Docker: what it does with a job when it shuts down, when its lease was
//! taken away, and with the outputs of an attempt whose commit is refused.

use crate::testing::{Behaviour, FakeRuntime};
use crate::{Worker, WorkerConfig};
use gantry_core::{JobStatus, ProjectId};
use gantry_storage::Storage;
use gantry_store::{Job, NewJob, Store};
use gantry_store_sqlite::SqliteStore;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct Rig {
    _dir: tempfile::TempDir,
    objects: std::path::PathBuf,
    store: Arc<dyn Store>,
    rt: Arc<FakeRuntime>,
    shutdown: CancellationToken,
    worker: tokio::task::JoinHandle<std::io::Result<()>>,
}

fn rig(rt: Arc<FakeRuntime>, grace: Duration) -> Rig {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("gantry.db")).expect("store"));
    let objects = dir.path().join("objects");
    let storage = Storage::open(objects.to_str().expect("path"), store.clone()).expect("storage");
    let mut cfg = WorkerConfig::new("w1".parse().expect("id"), 1, dir.path().join("work"));
    cfg.shutdown_grace = grace;
    cfg.poll = Duration::from_millis(20);
    let worker = Worker::new(
        store.clone(),
        storage,
        rt.clone(),
        gantry_vault::Vault::from_key(&[7; 32]),
        cfg,
    );
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(worker.run(shutdown.clone()));
    Rig {
        _dir: dir,
        objects,
        store,
        rt,
        shutdown,
        worker: handle,
    }
}

impl Rig {
    async fn submit(&self, spec: &str) -> Job {
        let value: serde_json::Value = spec_value(spec);
        self.store
            .enqueue(NewJob::new(
                ProjectId::default_project(),
                None,
                value,
                3,
                Duration::ZERO,
            ))
            .await
            .expect("enqueue")
    }

    async fn job(&self, id: gantry_core::JobId) -> Job {
        self.store
            .get_job(&ProjectId::default_project(), id)
            .await
            .expect("job")
    }

    /// Waits (bounded) until the job is in a final state.
    async fn ended(&self, id: gantry_core::JobId) -> Job {
        for _ in 0..2000 {
            let job = self.job(id).await;
            if job.status.is_terminal() {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("job {id} did not end");
    }

    /// Object files under the local Storage folder.
    fn objects(&self) -> Vec<std::path::PathBuf> {
        fn walk(d: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out)
                } else {
                    out.push(p)
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.objects, &mut out);
        out
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.worker.await.expect("join").expect("worker");
    }
}

/// A spec from `key: value` lines whose values are JSON (or bare strings),
/// checked as the API would.
fn spec_value(spec: &str) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for line in spec.lines() {
        let (k, v) = line.split_once(':').expect("key: value");
        let v = v.trim();
        let value = serde_json::from_str(v).unwrap_or_else(|_| serde_json::json!(v));
        map.insert(k.trim().to_string(), value);
    }
    gantry_core::Spec::from_value(serde_json::Value::Object(map.clone())).expect("a valid spec");
    serde_json::Value::Object(map)
}

fn statuses(job: &Job) -> Vec<String> {
    job.attempts
        .iter()
        .map(|a| a.status.as_str().to_string())
        .collect()
}

#[tokio::test]
async fn shutdown_hands_a_running_job_back_without_counting_it() {
    let rt = FakeRuntime::new(|_| Behaviour {
        hold: true,
        ..Default::default()
    });
    let rig = rig(rt.clone(), Duration::ZERO);
    let job = rig.submit("image: x\ncommand: [\"sleep\"]").await;
    rt.started(1).await;
    let (store, rt2) = (rig.store.clone(), rig.rt.clone());
    rig.stop().await;
    let job = store
        .get_job(&ProjectId::default_project(), job.id)
        .await
        .expect("job");
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(statuses(&job), ["handed_back"]);
    assert!(rt2.calls().iter().any(|c| c.starts_with("stop ")));
    assert!(rt2.left().is_empty(), "left: {:?}", rt2.left());
}

#[tokio::test]
async fn a_result_after_the_lease_was_taken_is_dropped() {
    let rt = FakeRuntime::new(|_| Behaviour {
        hold: true,
        ..Default::default()
    });
    let rig = rig(rt.clone(), Duration::from_secs(5));
    let job = rig.submit("image: x\ncommand: [\"true\"]").await;
    rt.started(1).await;
    // Another worker's upkeep thinks this one died: the attempt is lost.
    rig.store
        .recover_worker(&"w1".parse().expect("id"))
        .await
        .expect("recover");
    rt.release();
    let job = rig.ended(job.id).await;
    // The first attempt's late success was fenced off; the job ran again.
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(job.attempt, 2);
    assert_eq!(statuses(&job), ["lost", "succeeded"]);
    assert!(rt.left().is_empty(), "left: {:?}", rt.left());
    rig.stop().await;
}

#[tokio::test]
async fn outputs_of_a_refused_commit_are_discarded() {
    let rt = FakeRuntime::new(|spec| Behaviour {
        hold: true,
        files: vec![(
            "out/files/report.txt".into(),
            format!("made by {}", spec.name).into_bytes(),
        )],
        ..Default::default()
    });
    let rig = rig(rt.clone(), Duration::from_secs(5));
    let job = rig.submit("image: x\ncommand: [\"true\"]").await;
    rt.started(1).await;
    rig.store
        .recover_worker(&"w1".parse().expect("id"))
        .await
        .expect("recover");
    rt.release();
    let job = rig.ended(job.id).await;
    assert_eq!(statuses(&job), ["lost", "succeeded"]);
    // One upload per attempt; the refused attempt's object is gone, the
    // committed one is the only object left and a file row names it.
    let objects = rig.objects();
    assert_eq!(objects.len(), 1, "objects: {objects:?}");
    let text = std::fs::read_to_string(&objects[0]).expect("object");
    assert!(
        text.ends_with("-2"),
        "the kept object is attempt 2's: {text}"
    );
    rig.stop().await;
}

#[tokio::test]
async fn an_oom_flag_recorded_after_the_exit_still_makes_an_oom() {
    // The engine has the exit (137) before it has recorded the OOM event:
    // the first reads of the exit state say "not OOM-killed".
    let rt = FakeRuntime::new(|_| Behaviour {
        exit_code: 137,
        oom_flag_late_by: Some(3),
        ..Default::default()
    });
    let rig = rig(rt.clone(), Duration::from_secs(5));
    let job = rig
        .submit("image: x\ncommand: [\"dd\"]\nlimits: {\"memory\": \"16m\"}")
        .await;
    let job = rig.ended(job.id).await;
    assert_eq!(job.status, JobStatus::Failed);
    let error = job.error.as_ref().expect("an error");
    assert_eq!(error.kind, gantry_core::ErrorKind::Oom, "{error:?}");
    assert!(error.message.contains("16m"), "{error:?}");
    rig.stop().await;
}

#[tokio::test]
async fn a_plain_exit_137_is_not_an_oom() {
    let rt = FakeRuntime::new(|_| Behaviour {
        exit_code: 137,
        ..Default::default()
    });
    let rig = rig(rt.clone(), Duration::from_secs(5));
    let job = rig.submit("image: x\ncommand: [\"kill9self\"]").await;
    let job = rig.ended(job.id).await;
    let error = job.error.as_ref().expect("an error");
    assert_eq!(error.kind, gantry_core::ErrorKind::ApplicationError);
    assert_eq!(job.exit_code, Some(137));
    rig.stop().await;
}
