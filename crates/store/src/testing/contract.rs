//! The contract's corners nobody tested before the suite: tenancy answers
//! *not found* (never another project's data, never another error), a
//! finish racing lease recovery has exactly one winner, version conflicts,
//! tag intersection, tokens revoked by their public id.

use super::{new_job, project, Backend};
use crate::{
    Finish, JobFilter, MadeBy, NewFile, NewSchedule, Segment, StoreError, TableWrite, WriteKind,
};
use gantry_core::job::Outcome;
use gantry_core::schedule::Overlap;
use gantry_core::{ConfigId, JobStatus, ProjectId, ScheduleId, TableId};
use serde_json::json;
use std::time::Duration;

fn not_found<T: std::fmt::Debug>(what: &str, r: crate::Result<T>) {
    match r {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("{what}: expected not found, got {other:?}"),
    }
}

pub(super) fn table_write(table: &TableId, kind: WriteKind, key: &str) -> TableWrite {
    TableWrite {
        table: table.clone(),
        kind,
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
        made_by: MadeBy::Import,
        note: None,
        metadata: None,
    }
}

pub(super) fn file(name: &str, tags: &[&str]) -> NewFile {
    NewFile {
        name: name.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        size: 1,
        object_key: format!("files/{name}"),
    }
}

/// Everything of one project is *not found* from another (a real one),
/// and its lists are empty there.
pub async fn tenancy_answers_not_found(b: &dyn Backend) {
    let store = b.store();
    let acme: ProjectId = "acme".parse().expect("id");
    store.create_project(&acme, &[]).await.expect("project");
    let cfg: ConfigId = "etl".parse().expect("id");
    store
        .create_config(&project(), &cfg, &json!({"image": "x"}))
        .await
        .expect("config");
    let id = store.enqueue(new_job(1)).await.expect("enqueue").id;
    let table: TableId = "in.c-main.t".parse().expect("table");
    store
        .commit_table(&project(), table_write(&table, WriteKind::Replace, "k1"))
        .await
        .expect("table");
    let f = store
        .create_file(&project(), file("a.txt", &["x"]))
        .await
        .expect("file");
    let sched: ScheduleId = "nightly".parse().expect("id");
    store
        .create_schedule(
            &project(),
            NewSchedule {
                id: sched.clone(),
                config_id: Some(cfg.clone()),
                pipeline_id: None,
                doc: json!({"config": "etl", "every": 60}),
                next_tick: Some(1000),
                max_runs: None,
                overlap: Overlap::Skip,
            },
        )
        .await
        .expect("schedule");

    not_found("get_job", store.get_job(&acme, id).await);
    not_found("list_events", store.list_events(&acme, id, 0, 10).await);
    not_found("request_cancel", store.request_cancel(&acme, id).await);
    not_found("get_config", store.get_config(&acme, &cfg).await);
    not_found(
        "update_config",
        store
            .update_config(&acme, &cfg, &json!({"image": "y"}))
            .await,
    );
    not_found("delete_config", store.delete_config(&acme, &cfg).await);
    not_found("get_table", store.get_table(&acme, &table).await);
    not_found("table_versions", store.table_versions(&acme, &table).await);
    not_found(
        "table_version",
        store.table_version(&acme, &table, None).await,
    );
    not_found(
        "pin_version",
        store.pin_version(&acme, &table, 1, true).await,
    );
    not_found("delete_table", store.delete_table(&acme, &table).await);
    not_found("get_file", store.get_file(&acme, f.id).await);
    not_found("get_schedule", store.get_schedule(&acme, &sched).await);
    not_found(
        "delete_schedule",
        store.delete_schedule(&acme, &sched).await,
    );
    let all = JobFilter {
        status: None,
        limit: 100,
        before: None,
    };
    assert!(store.list_jobs(&acme, &all).await.expect("jobs").is_empty());
    assert!(store.list_configs(&acme).await.expect("configs").is_empty());
    assert!(store.list_tables(&acme).await.expect("tables").is_empty());
    assert!(store
        .list_files(&acme, &[], 100)
        .await
        .expect("files")
        .is_empty());
    assert!(store
        .list_schedules(&acme)
        .await
        .expect("schedules")
        .is_empty());
    // Nothing of the owner changed.
    assert_eq!(
        store.get_job(&project(), id).await.expect("job").status,
        JobStatus::Queued
    );
    assert_eq!(
        store
            .get_config(&project(), &cfg)
            .await
            .expect("config")
            .spec["image"],
        "x"
    );
    store
        .get_table(&project(), &table)
        .await
        .expect("table stays");
    // A project that does not exist is not found either.
    not_found(
        "get_project",
        store.get_project(&"nope".parse().expect("id")).await,
    );
}

/// A worker finishing just as its lease is recovered: either the finish
/// lands (and recovery takes nothing) or recovery takes the attempt back
/// (and the finish is fenced off as stale), never both, never neither.
pub async fn a_finish_racing_lease_recovery_has_one_winner(b: &dyn Backend) {
    let store = b.store();
    for round in 0..20 {
        let id = store.enqueue(new_job(2)).await.expect("enqueue").id;
        let claim = store
            .claim(&super::wid("racer"), 1, Duration::from_millis(1))
            .await
            .expect("claim");
        assert_eq!(claim.jobs.len(), 1, "round {round}");
        // The lease (1 ms, by the database's clock, which is this
        // machine's) is over once 20 ms have passed.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (s1, s2) = (store.clone(), store.clone());
        let finish = tokio::spawn(async move {
            s1.finish_attempt(
                id,
                1,
                &super::wid("racer"),
                &Outcome::succeeded(0),
                None,
                &Default::default(),
            )
            .await
        });
        let recover = tokio::spawn(async move { s2.recover_expired().await });
        let finish = finish.await.expect("join").expect("finish");
        let recovered = recover.await.expect("join").expect("recover");
        let job = store.get_job(&project(), id).await.expect("job");
        match finish {
            Finish::Done(JobStatus::Succeeded) => {
                assert!(!recovered.contains(&id), "round {round}: both won");
                assert_eq!(job.status, JobStatus::Succeeded);
                assert_eq!(job.attempts[0].status, "succeeded");
            }
            Finish::Stale => {
                assert_eq!(recovered, vec![id], "round {round}: neither won");
                assert_eq!(job.status, JobStatus::Queued, "one failure of two allowed");
                assert_eq!(job.attempts[0].status, "lost");
                // Take it off the queue for the next round.
                store.request_cancel(&project(), id).await.expect("cancel");
            }
            other => panic!("round {round}: unexpected {other:?}"),
        }
    }
}

/// Writes computed from a state that moved on are conflicts, and change nothing.
pub async fn version_conflicts_are_conflicts(b: &dyn Backend) {
    let store = b.store();
    let table: TableId = "in.c-main.v".parse().expect("table");
    let v1 = store
        .commit_table(&project(), table_write(&table, WriteKind::Replace, "k1"))
        .await
        .expect("v1");
    assert_eq!((v1.version, v1.made_by), (1, MadeBy::Import));
    let v2 = store
        .commit_table(
            &project(),
            table_write(&table, WriteKind::Rewrite { base_version: 1 }, "k2"),
        )
        .await
        .expect("rewrite of the current version");
    assert_eq!(v2.version, 2);
    match store
        .commit_table(
            &project(),
            table_write(&table, WriteKind::Rewrite { base_version: 1 }, "k3"),
        )
        .await
    {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("a rewrite of version 1 after 2: {other:?}"),
    }
    let info = store.get_table(&project(), &table).await.expect("table");
    assert_eq!(info.version, 2, "the conflict wrote nothing");
    assert_eq!(
        store
            .table_versions(&project(), &table)
            .await
            .expect("versions")
            .len(),
        2
    );
    // An append builds on whatever is current.
    let v3 = store
        .commit_table(&project(), table_write(&table, WriteKind::Append, "k4"))
        .await
        .expect("append");
    assert_eq!((v3.version, v3.segments.len(), v3.rows), (3, 2, 2));
    // A create makes a new table only, whatever its kind.
    let mut create = table_write(&table, WriteKind::Replace, "k5");
    create.made_by = MadeBy::Create;
    match store.commit_table(&project(), create.clone()).await {
        Err(StoreError::Conflict(m)) => assert!(m.contains("already exists"), "{m}"),
        other => panic!("a create of an existing table: {other:?}"),
    }
    assert_eq!(
        store
            .get_table(&project(), &table)
            .await
            .expect("table")
            .version,
        3,
        "the refused create wrote nothing"
    );
    create.table = "in.c-main.fresh".parse().expect("table");
    let made = store
        .commit_table(&project(), create)
        .await
        .expect("a create of a new table");
    assert_eq!((made.version, made.made_by), (1, MadeBy::Create));
    // A configuration made twice.
    let cfg: ConfigId = "dup".parse().expect("id");
    store
        .create_config(&project(), &cfg, &json!({"image": "x"}))
        .await
        .expect("first");
    assert!(matches!(
        store
            .create_config(&project(), &cfg, &json!({"image": "y"}))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let c = store.get_config(&project(), &cfg).await.expect("config");
    assert_eq!((c.version, c.spec["image"].as_str()), (1, Some("x")));
}

/// `list_files` with tags returns the files having every tag asked (an
/// intersection), newest first; no tags: every file.
pub async fn files_are_listed_by_every_tag_asked(b: &dyn Backend) {
    let store = b.store();
    let ab = store
        .create_file(&project(), file("ab", &["a", "b"]))
        .await
        .expect("ab");
    let a = store
        .create_file(&project(), file("a", &["a"]))
        .await
        .expect("a");
    let bc = store
        .create_file(&project(), file("bc", &["b", "c"]))
        .await
        .expect("bc");
    let _none = store
        .create_file(&project(), file("none", &[]))
        .await
        .expect("none");
    let names = |tags: &[&str]| {
        let store = store.clone();
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        async move {
            store
                .list_files(&project(), &tags, 100)
                .await
                .expect("list")
                .into_iter()
                .map(|f| f.name)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(names(&["a", "b"]).await, vec!["ab"]);
    assert_eq!(names(&["a"]).await, vec!["a", "ab"]);
    assert_eq!(names(&["b"]).await, vec!["bc", "ab"]);
    assert_eq!(names(&["b", "c"]).await, vec!["bc"]);
    assert!(names(&["a", "c"]).await.is_empty());
    assert!(names(&["zzz"]).await.is_empty());
    assert_eq!(names(&[]).await.len(), 4);
    assert_eq!(
        store
            .list_files(&project(), &[], 2)
            .await
            .expect("limit")
            .len(),
        2
    );
    let got = store.get_file(&project(), a.id).await.expect("file");
    assert_eq!(got.tags, vec!["a"]);
    assert!(ab.id < a.id && a.id < bc.id, "ids grow");
}

/// A token is revoked by its public id (any case): it stops
/// authenticating; the others keep working; an unknown or malformed id
/// is not found.
pub async fn tokens_are_revoked_by_public_id(b: &dyn Backend) {
    let store = b.store();
    let keep = store
        .create_token(&project(), false, "keep")
        .await
        .expect("token");
    let gone = store
        .create_token(&project(), false, "gone")
        .await
        .expect("token");
    assert_eq!(gone.info.id.as_str().len(), gantry_core::TokenId::LEN);
    assert!(
        !gone.secret.contains(gone.info.id.as_str()),
        "the id is not part of the secret"
    );
    let listed = store.list_tokens(Some(&project())).await.expect("list");
    assert_eq!(listed.len(), 2);
    store
        .delete_token(
            &gone
                .info
                .id
                .as_str()
                .to_ascii_uppercase()
                .parse()
                .expect("an upper-case id parses"),
        )
        .await
        .expect("revoke");
    assert!(store
        .authenticate(&gone.secret)
        .await
        .expect("auth")
        .is_none());
    let p = store
        .authenticate(&keep.secret)
        .await
        .expect("auth")
        .expect("still valid");
    assert_eq!(p.token_id, keep.info.id);
    not_found("revoked twice", store.delete_token(&gone.info.id).await);
    not_found(
        "unknown",
        store
            .delete_token(&"000000000000".parse().expect("id"))
            .await,
    );
    assert!(
        "x'; --".parse::<gantry_core::TokenId>().is_err(),
        "a malformed id never reaches the store"
    );
    assert_eq!(store.token_count().await.expect("count"), 1);
}

/// A token authenticates by its secret only, for its project, and says so.
pub async fn a_token_authenticates_by_its_secret_only(b: &dyn Backend) {
    let store = b.store();
    assert_eq!(store.token_count().await.expect("count"), 0);
    let acme: ProjectId = "acme".parse().expect("id");
    store.create_project(&acme, &[]).await.expect("project");
    let t = store.create_token(&acme, false, "ci").await.expect("token");
    let p = store
        .authenticate(&t.secret)
        .await
        .expect("auth")
        .expect("known");
    assert_eq!(
        (p.project, p.admin, p.token_desc.as_str()),
        (acme.clone(), false, "ci")
    );
    assert!(store
        .authenticate("gty_wrong")
        .await
        .expect("auth")
        .is_none());
    assert!(store
        .authenticate(t.info.id.as_str())
        .await
        .expect("auth")
        .is_none());
    assert_eq!(
        store
            .list_tokens(Some(&project()))
            .await
            .expect("list")
            .len(),
        0
    );
    assert_eq!(store.list_tokens(None).await.expect("list").len(), 1);
}

/// A webhook delivery makes its job once: the same delivery id again
/// answers what it made the first time and makes nothing; the job sees the
/// delivery's body when claimed.
pub async fn a_webhook_delivery_makes_its_job_once(b: &dyn Backend) {
    let store = b.store();
    let cfg: ConfigId = "hooked".parse().expect("id");
    store
        .create_config(&project(), &cfg, &json!({"image": "x"}))
        .await
        .expect("config");
    store
        .create_hook(crate::HookRow {
            project: project(),
            id: "h1".into(),
            config_id: Some(cfg.clone()),
            pipeline_id: None,
            auth: "signature".into(),
            secret_sealed: "sealed".into(),
            old_secret_sealed: None,
            old_until: None,
            max_body: 1024,
            rate_per_min: 60,
            created_at: 0,
        })
        .await
        .expect("hook");
    let job = |delivery: &str| {
        let mut j = new_job(1);
        j.config_id = Some(cfg.clone());
        j.trigger = Some(crate::Trigger::Webhook {
            id: "h1".into(),
            delivery: delivery.into(),
        });
        crate::Fire::Job(j)
    };
    let first = store
        .deliver(
            "h1",
            "d1",
            b"{\"a\":1}".to_vec(),
            json!({"hook": "h1"}),
            job("d1"),
        )
        .await
        .expect("deliver");
    let crate::Delivered::New(made, crate::DeliveredKind::Job) = first else {
        panic!("expected a new job: {first:?}");
    };
    let again = store
        .deliver(
            "h1",
            "d1",
            b"{\"a\":2}".to_vec(),
            json!({"hook": "h1"}),
            job("d1"),
        )
        .await
        .expect("replay");
    assert_eq!(again, crate::Delivered::Replay(made.clone()));
    assert_eq!(
        store.find_delivery("h1", "d1").await.expect("find"),
        Some(made.clone())
    );
    assert_eq!(store.find_delivery("h1", "d2").await.expect("find"), None);
    let all = JobFilter {
        status: None,
        limit: 10,
        before: None,
    };
    assert_eq!(
        store.list_jobs(&project(), &all).await.expect("jobs").len(),
        1
    );
    let claim = store
        .claim(&super::wid("w"), 1, super::LEASE)
        .await
        .expect("claim");
    assert_eq!(claim.jobs[0].job.id.to_string(), made);
    let payload = claim.jobs[0].webhook.as_ref().expect("payload");
    assert_eq!(payload.body, b"{\"a\":1}", "the first delivery's body");
}

/// A job that ends queues the notifications its spec asks for (every one
/// on failure, `on: always` ones on success), and a job that asks for none
/// queues none.
pub async fn notifications_are_queued_as_a_job_asks(b: &dyn Backend) {
    let store = b.store();
    let run = |spec: serde_json::Value, ok: bool| {
        let store = store.clone();
        async move {
            let mut j = new_job(1);
            j.spec = spec;
            let id = store.enqueue(j).await.expect("enqueue").id;
            let claim = store
                .claim(&super::wid("w"), 1, super::LEASE)
                .await
                .expect("claim");
            assert_eq!(claim.jobs[0].job.id, id);
            let outcome = if ok {
                Outcome::succeeded(0)
            } else {
                Outcome::failed(gantry_core::ErrorKind::UserError, "bad", Some(1))
            };
            store
                .finish_attempt(id, 1, &super::wid("w"), &outcome, None, &Default::default())
                .await
                .expect("finish");
            store
                .list_notifications(&project(), "job", &id.to_string())
                .await
                .expect("notifications")
                .into_iter()
                .map(|n| n.url)
                .collect::<Vec<_>>()
        }
    };
    let notify = json!([
        {"url": "https://a.example/h"},
        {"url": "https://b.example/h", "on": "always"}
    ]);
    assert!(run(json!({"image": "x"}), false).await.is_empty());
    assert_eq!(
        run(json!({"image": "x", "notify": notify}), false).await,
        vec!["https://a.example/h", "https://b.example/h"]
    );
    assert_eq!(
        run(json!({"image": "x", "notify": notify}), true).await,
        vec!["https://b.example/h"]
    );
    assert!(run(json!({"image": "x", "notify": "nonsense"}), false)
        .await
        .is_empty());
}
