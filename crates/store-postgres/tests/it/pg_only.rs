//! What only the Postgres backend has.

use crate::open_pg;
use gantry_store::prelude::*;
use gantry_store::testing::wid;
use gantry_store_postgres::PgStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_starting_together_migrate_once() {
    let url = gantry_store_postgres::testing::fresh_database().await;
    let starts = (0..4).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { PgStore::connect(&url).await })
    });
    for s in starts {
        s.await.expect("join").expect("connect");
    }
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let version: i64 = client
        .query_one("SELECT version FROM gantry_schema", &[])
        .await
        .expect("version")
        .get(0);
    assert_eq!(version, gantry_store_postgres::MIGRATIONS.len() as i64);
    let rows = client
        .query("SELECT * FROM gantry_schema", &[])
        .await
        .expect("rows");
    assert_eq!(rows.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused_naming_both_versions() {
    let pg = open_pg().await;
    let (client, conn) = tokio_postgres::connect(&pg.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
        .execute("UPDATE gantry_schema SET version = 999", &[])
        .await
        .expect("bump");
    let err = PgStore::connect(&pg.url)
        .await
        .err()
        .expect("refused")
        .to_string();
    let known = gantry_store_postgres::MIGRATIONS.len().to_string();
    assert!(err.contains("999") && err.contains(&known), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_url_or_an_unreachable_database_is_a_clear_error() {
    let err = PgStore::connect("postgres://nobody@/x?port=notaport")
        .await
        .err()
        .expect("bad url")
        .to_string();
    assert!(err.contains("not valid"), "{err}");
    let err = PgStore::connect("postgres://gantry:hunter2@127.0.0.1:1/gantry")
        .await
        .err()
        .expect("unreachable")
        .to_string();
    assert!(err.contains("cannot reach"), "{err}");
    assert!(!err.contains("hunter2"), "the password is not shown: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_other_processes_by_notify() {
    let pg = open_pg().await;
    // A second store on the same database stands for another process.
    let other = PgStore::connect(&pg.url).await.expect("connect");
    let mut feed = other.subscribe();
    // `connect` returns once its listener listens.
    let job = pg
        .store
        .enqueue(gantry_store::testing::new_job(1))
        .await
        .expect("enqueue");
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            if let Ok(gantry_store::Change::Enqueued) = feed.recv().await {
                return;
            }
        }
    })
    .await;
    assert!(got.is_ok(), "the other store heard of job {}", job.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_claiming_one_queue_take_each_job_once() {
    let pg = open_pg().await;
    // A second store on the same database stands for another process.
    let other: std::sync::Arc<dyn gantry_store::Store> =
        std::sync::Arc::new(PgStore::connect(&pg.url).await.expect("connect"));
    let jobs: Vec<_> = (0..200)
        .map(|_| gantry_store::testing::new_job(1))
        .collect();
    pg.store.enqueue_batch(jobs).await.expect("enqueue");
    let stores = [
        pg.store.clone() as std::sync::Arc<dyn gantry_store::Store>,
        other,
    ];
    let mut claimers = Vec::new();
    for (i, store) in stores.iter().enumerate() {
        for w in 0..4 {
            let store = store.clone();
            claimers.push(tokio::spawn(async move {
                let worker = wid(&format!("p{i}-w{w}"));
                let mut mine = Vec::new();
                loop {
                    let claim = store
                        .claim(&worker, 5, std::time::Duration::from_secs(30))
                        .await
                        .expect("claim");
                    if claim.jobs.is_empty() {
                        return mine;
                    }
                    for c in claim.jobs {
                        let end = store
                            .finish_attempt(
                                c.job.id,
                                c.job.attempt,
                                &worker,
                                &gantry_core::job::Outcome::succeeded(0),
                                None,
                                &Default::default(),
                            )
                            .await
                            .expect("finish");
                        assert!(matches!(end, gantry_store::Finish::Done(_)), "{end:?}");
                        mine.push(c.job.id);
                    }
                }
            }));
        }
    }
    let mut all = Vec::new();
    for c in claimers {
        all.extend(c.await.expect("join"));
    }
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "a job was claimed twice");
    assert_eq!(n, 200, "every job was claimed");
}
