//! IronWorker's objects: codes revision by name, tasks are jobs with their
//! Iron fields (queued all or none, listed by code and status, progress
//! kept), schedules stand on a configuration and a schedule, and another
//! project sees none of it.

use super::{new_job, project, Backend};
use crate::{
    IronCodeDoc, IronScheduleDoc, IronTask, IronTaskFilter, NewIronSchedule, NewSchedule,
    StoreError,
};
use gantry_core::schedule::Overlap;
use gantry_core::{JobId, JobStatus, ProjectId};
use serde_json::json;

fn task(code: &crate::IronCode, payload: &str) -> IronTask {
    IronTask {
        code_id: code.id.clone(),
        code_name: code.name.clone(),
        code_rev: code.latest.rev,
        code_history_id: code.latest.id.clone(),
        payload: payload.into(),
        payload_file: None,
        label: None,
        cluster: "default".into(),
        priority: 0,
        timeout: 3600,
        delay: 0,
        schedule_id: None,
        percent: None,
        progress_msg: None,
    }
}

pub async fn iron_codes_tasks_and_schedules(b: &dyn Backend) {
    let store = b.store();
    let p = project();
    let doc = IronCodeDoc {
        image: Some("busybox".into()),
        command: Some("echo 1".into()),
        ..Default::default()
    };
    let first = store.put_iron_code(&p, "hello", &doc).await.expect("code");
    assert_eq!(first.latest.rev, 1);
    let doc2 = IronCodeDoc {
        command: Some("echo 2".into()),
        ..doc.clone()
    };
    let second = store.put_iron_code(&p, "hello", &doc2).await.expect("code");
    assert_eq!(
        (second.id.as_str(), second.latest.rev),
        (first.id.as_str(), 2)
    );
    assert_ne!(
        second.latest.id, first.latest.id,
        "each revision has its id"
    );
    let other = store.put_iron_code(&p, "other", &doc).await.expect("code");
    let names: Vec<_> = store
        .list_iron_codes(&p, 0, 10)
        .await
        .expect("list")
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["hello", "other"]);
    let revs: Vec<_> = store
        .iron_code_revisions(&p, &first.id, 0, 10)
        .await
        .expect("revs")
        .into_iter()
        .map(|r| (r.rev, r.doc.command))
        .collect();
    assert_eq!(
        revs,
        [(2, Some("echo 2".into())), (1, Some("echo 1".into()))]
    );
    assert_eq!(
        store.find_iron_code(&p, "hello").await.expect("find").id,
        first.id
    );

    // Tasks: all or none, listed by code and status.
    let (a, b_id, c) = (JobId::new(), JobId::new(), JobId::new());
    store
        .queue_iron_tasks(vec![
            (a, new_job(1), task(&second, "a")),
            (b_id, new_job(1), task(&second, "b")),
            (c, new_job(1), task(&other, "c")),
        ])
        .await
        .expect("queue");
    let dup = store
        .queue_iron_tasks(vec![
            (JobId::new(), new_job(1), task(&second, "d")),
            (a, new_job(1), task(&second, "again")),
        ])
        .await;
    assert!(dup.is_err(), "a duplicate id fails the whole batch");
    let listed = |code: Option<&str>, statuses: Vec<JobStatus>| {
        let store = store.clone();
        let p = p.clone();
        let code = code.map(str::to_string);
        async move {
            let mut v: Vec<String> = store
                .list_iron_tasks(
                    &p,
                    &IronTaskFilter {
                        code_name: code,
                        statuses,
                        limit: 100,
                        ..Default::default()
                    },
                )
                .await
                .expect("list")
                .into_iter()
                .map(|(_, t)| t.payload)
                .collect();
            v.sort();
            v
        }
    };
    assert_eq!(listed(None, vec![]).await, ["a", "b", "c"]);
    assert_eq!(listed(Some("hello"), vec![]).await, ["a", "b"]);
    assert_eq!(listed(None, vec![JobStatus::Queued]).await, ["a", "b", "c"]);
    assert!(listed(None, vec![JobStatus::Failed]).await.is_empty());
    // A plain job is no task.
    let plain = store.enqueue(new_job(1)).await.expect("job");
    assert!(matches!(
        store.get_iron_task(&p, plain.id).await,
        Err(StoreError::NotFound(_))
    ));
    store
        .set_iron_progress(&p, a, 42, Some("half".into()))
        .await
        .expect("progress");
    let (job, t) = store.get_iron_task(&p, a).await.expect("task");
    assert_eq!(
        (job.id, t.percent, t.progress_msg.as_deref()),
        (a, Some(42), Some("half"))
    );

    // Schedules: a configuration and a schedule made with it, in one go.
    let s = store
        .create_iron_schedule(
            &p,
            NewIronSchedule {
                id: "s1".into(),
                code_id: second.id.clone(),
                doc: IronScheduleDoc {
                    code_name: "hello".into(),
                    payload: "{}".into(),
                    payload_file: None,
                    run_every: Some(60),
                    run_times: Some(2),
                    start_at: None,
                    end_at: None,
                    priority: 0,
                    timeout: 3600,
                    delay: 0,
                    label: None,
                    cluster: "default".into(),
                },
                config_id: "iron-s1".parse().expect("id"),
                spec: json!({"image": "busybox"}),
                schedule: NewSchedule {
                    id: "iron-s1".parse().expect("id"),
                    config_id: Some("iron-s1".parse().expect("id")),
                    pipeline_id: None,
                    doc: json!({"config": "iron-s1", "every": 60}),
                    next_tick: Some(i64::MAX / 2),
                    max_runs: Some(2),
                    overlap: Overlap::Allow,
                },
            },
        )
        .await
        .expect("schedule");
    assert!(!s.cancelled);
    store
        .get_config(&p, &s.config_id)
        .await
        .expect("its configuration");
    assert_eq!(
        store
            .iron_schedules_of_code(&p, &second.id)
            .await
            .expect("of code")
            .len(),
        1
    );
    let s = store.cancel_iron_schedule(&p, "s1").await.expect("cancel");
    assert!(s.cancelled);
    let row = store.get_schedule(&p, &s.schedule_id).await.expect("row");
    assert!(row.paused && row.next_tick.is_none(), "{row:?}");
    assert!(store
        .iron_schedules_of_code(&p, &second.id)
        .await
        .expect("of code")
        .is_empty());

    // Another project sees none of it.
    let acme: ProjectId = "acme".parse().expect("id");
    store.create_project(&acme, &[]).await.expect("project");
    for r in [
        store.get_iron_code(&acme, &first.id).await.map(|_| ()),
        store.find_iron_code(&acme, "hello").await.map(|_| ()),
        store.get_iron_task(&acme, a).await.map(|_| ()),
        store.set_iron_progress(&acme, a, 1, None).await,
        store.get_iron_schedule(&acme, "s1").await.map(|_| ()),
        store.cancel_iron_schedule(&acme, "s1").await.map(|_| ()),
        store.delete_iron_code(&acme, &first.id).await,
    ] {
        assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
    }
    assert!(store
        .list_iron_codes(&acme, 0, 10)
        .await
        .expect("list")
        .is_empty());
    assert!(store
        .list_iron_tasks(
            &acme,
            &IronTaskFilter {
                limit: 10,
                ..Default::default()
            }
        )
        .await
        .expect("list")
        .is_empty());

    // Deleting a code keeps its tasks.
    store.delete_iron_code(&p, &first.id).await.expect("delete");
    assert!(matches!(
        store.get_iron_code(&p, &first.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(listed(Some("hello"), vec![]).await, ["a", "b"]);
}
