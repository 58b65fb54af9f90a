//! What only the Postgres backend has.

use crate::open_pg;
use gantry_store::prelude::*;
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
