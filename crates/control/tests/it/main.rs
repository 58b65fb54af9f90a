//! The control layer on a real SQLite store, a local object store and a
//! vault in a temp folder: one submit for every caller, the policy as it is
//! now, secrets sealed, all-or-nothing batches, admin-only tokens.

use gantry_control::{CatalogError, Control, Source, Submission, SubmitError, TokenError, Upload};
use gantry_core::spec::Loosening;
use gantry_core::{ConfigId, ProjectId};
use gantry_store::{Principal, Store};
use gantry_store_sqlite::SqliteStore;
use serde_json::json;
use std::sync::Arc;

struct Fixture {
    _dir: tempfile::TempDir,
    control: Control,
    store: Arc<dyn Store>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("gantry.db")).expect("store"));
    let objects = dir.path().join("objects");
    std::fs::create_dir_all(&objects).expect("objects dir");
    let storage = gantry_storage::Storage::open(&objects.display().to_string(), store.clone())
        .expect("storage");
    let vault = gantry_vault::Vault::open_or_create(&dir.path().join("key")).expect("vault");
    Fixture {
        control: Control::new(store.clone(), storage, vault),
        store,
        _dir: dir,
    }
}

fn project() -> ProjectId {
    ProjectId::default_project()
}

fn caller(admin: bool) -> Principal {
    Principal {
        project: project(),
        admin,
        token_id: "0123456789ab".parse().expect("id"),
        token_desc: "test".into(),
    }
}

#[tokio::test]
async fn a_configuration_job_meets_the_projects_policy_as_it_is_now() {
    let f = fixture();
    f.store
        .set_project_allow(&project(), &[Loosening::RootUser])
        .await
        .expect("allow root");
    let id: ConfigId = "nightly".parse().expect("config id");
    f.control
        .create_config(&project(), &id, json!({"image": "busybox", "user": "root"}))
        .await
        .expect("allowed while the project allows root");
    // The admin tightens the policy: a schedule's or webhook's job (prepared,
    // not submitted through HTTP) is refused like an API submission.
    f.store
        .set_project_allow(&project(), &[])
        .await
        .expect("tighten");
    let err = f
        .control
        .prepare(&project(), Submission::new(Source::Config(id)))
        .await
        .expect_err("root no longer allowed");
    assert!(
        matches!(&err, SubmitError::Spec(e) if e.path == "user"),
        "{err:?}"
    );
}

#[tokio::test]
async fn submit_seals_secrets_and_records_the_token() {
    let f = fixture();
    let spec = json!({"image": "busybox", "parameters": {"#password": "hunter2", "plain": 1}});
    let job = f
        .control
        .submit(
            &project(),
            Submission::new(Source::Spec(spec)).by(&caller(false)),
        )
        .await
        .expect("submitted");
    let sealed = job.spec["parameters"]["#password"]
        .as_str()
        .expect("a string");
    assert!(sealed.starts_with(gantry_vault::PREFIX), "{sealed}");
    assert!(!job.spec.to_string().contains("hunter2"));
    assert_eq!(job.spec["parameters"]["plain"], json!(1));
    assert_eq!(job.token_id.as_deref(), Some("0123456789ab"));
}

#[tokio::test]
async fn a_batch_with_one_bad_job_queues_none_and_names_it() {
    let f = fixture();
    let good = Submission::new(Source::Spec(json!({"image": "busybox"})));
    let bad = Submission::new(Source::Spec(json!({"image": ""})));
    let err = f
        .control
        .submit_batch(&project(), vec![good.clone(), bad])
        .await
        .expect_err("one is invalid");
    assert!(
        matches!(&err, SubmitError::InBatch { index: 1, .. }),
        "{err:?}"
    );
    let jobs = f
        .store
        .list_jobs(
            &project(),
            &gantry_store::JobFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .expect("list");
    assert!(jobs.is_empty(), "nothing queued: {jobs:?}");
    let err = f
        .control
        .submit_batch(&project(), Vec::new())
        .await
        .expect_err("empty");
    assert!(matches!(err, SubmitError::Invalid(_)));
}

#[tokio::test]
async fn tokens_need_an_admin_and_an_existing_project() {
    let f = fixture();
    let err = f
        .control
        .create_token(&caller(false), &project(), false, "x")
        .await
        .expect_err("not an admin");
    assert!(matches!(err, TokenError::Forbidden));
    let ghost: ProjectId = "ghost".parse().expect("project id");
    let err = f
        .control
        .create_token(&caller(true), &ghost, false, "x")
        .await
        .expect_err("no such project");
    assert!(
        matches!(
            err,
            TokenError::Store(gantry_store::StoreError::NotFound(_))
        ),
        "{err:?}"
    );
    let made = f
        .control
        .create_token(&caller(true), &project(), false, "ci")
        .await
        .expect("made");
    f.control
        .revoke_token(&caller(true), &made.info.id)
        .await
        .expect("revoked");
    assert!(f
        .store
        .authenticate(&made.secret)
        .await
        .expect("auth")
        .is_none());
}

#[tokio::test]
async fn an_upload_with_a_bad_name_stores_nothing() {
    let f = fixture();
    let err = f
        .control
        .upload_file(
            &project(),
            Upload {
                name: "../escape".into(),
                tags: vec![],
            },
            &b"data"[..],
        )
        .await
        .expect_err("bad name");
    assert!(matches!(err, CatalogError::Invalid(_)), "{err:?}");
    let files = f
        .store
        .list_files(&project(), &[], 100)
        .await
        .expect("list");
    assert!(files.is_empty());
}

/// Two creates of one table racing each other: exactly one makes it
/// (version 1), the other is a conflict, whichever step catches it (the
/// early check, or the commit's own check inside the store's transaction).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_creates_of_one_table_make_it_once() {
    let f = Arc::new(fixture());
    for round in 0..20 {
        let id: gantry_core::TableId = format!("in.c-race.t{round}").parse().expect("table");
        let new = gantry_control::NewTable {
            id: id.clone(),
            columns: vec!["id".into(), "name".into()],
            primary_key: vec!["id".into()],
        };
        let (a, b) = tokio::join!(
            {
                let (f, new) = (f.clone(), new.clone());
                tokio::spawn(async move { f.control.create_table(&project(), new).await })
            },
            {
                let (f, new) = (f.clone(), new.clone());
                tokio::spawn(async move { f.control.create_table(&project(), new).await })
            }
        );
        let results = [a.expect("task"), b.expect("task")];
        let made = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(made, 1, "round {round}: {results:?}");
        assert!(
            results.iter().any(
                |r| matches!(r, Err(CatalogError::Conflict(m)) if m.contains("already exists"))
            ),
            "round {round}: {results:?}"
        );
        let info = f.store.get_table(&project(), &id).await.expect("table");
        assert_eq!(info.version, 1, "round {round}");
    }
}
