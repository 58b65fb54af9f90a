//! The PostgreSQL backend, for real: a cluster of this test process's own
//! (or `GANTRY_TEST_DATABASE_URL`), a fresh database per case, and the
//! whole conformance suite, then what only Postgres has (migrating once
//! under concurrent starts, changes across processes, outages).

mod pg_only;

use async_trait::async_trait;
use gantry_core::JobId;
use gantry_store::testing::Backend;
use gantry_store::Store;
use gantry_store_postgres::PgStore;
use std::sync::Arc;
use std::time::Duration;

pub(crate) struct Pg {
    pub url: String,
    pub store: Arc<PgStore>,
}

pub(crate) async fn open_pg() -> Pg {
    let url = gantry_store_postgres::testing::fresh_database().await;
    let store = Arc::new(PgStore::connect(&url).await.expect("connect"));
    Pg { url, store }
}

#[async_trait]
impl Backend for Pg {
    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    async fn peer(&self) -> Arc<dyn Store> {
        Arc::new(PgStore::connect(&self.url).await.expect("peer"))
    }

    async fn backdate(&self, job: JobId, by: Duration) {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        client
            .execute(
                "UPDATE jobs SET run_after = run_after - $2 WHERE id = $1",
                &[&job.to_string(), &(by.as_millis() as i64)],
            )
            .await
            .expect("backdate");
    }
}

async fn open() -> Box<dyn Backend> {
    Box::new(open_pg().await)
}

gantry_store::conformance_suite!(open);
