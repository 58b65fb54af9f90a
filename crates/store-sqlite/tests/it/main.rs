//! The SQLite backend, for real, in a temporary folder: the whole
//! conformance suite, then what only SQLite has (the file on disk, group
//! commit, the migration of databases made by earlier versions).

mod sqlite_only;

use async_trait::async_trait;
use gantry_core::JobId;
use gantry_store::testing::Backend;
use gantry_store::Store;
use gantry_store_sqlite::SqliteStore;
use std::sync::Arc;
use std::time::Duration;

pub(crate) struct Sqlite {
    pub dir: tempfile::TempDir,
    pub store: Arc<SqliteStore>,
}

pub(crate) fn open_sqlite() -> Sqlite {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Arc::new(SqliteStore::open(&dir.path().join("gantry.db")).expect("open"));
    Sqlite { dir, store }
}

#[async_trait]
impl Backend for Sqlite {
    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    async fn peer(&self) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(&self.dir.path().join("gantry.db")).expect("peer"))
    }

    async fn backdate(&self, job: JobId, by: Duration) {
        let conn = rusqlite::Connection::open(self.dir.path().join("gantry.db")).expect("db");
        conn.execute(
            "UPDATE jobs SET run_after = run_after - ?2 WHERE id = ?1",
            rusqlite::params![job.to_string(), by.as_millis() as i64],
        )
        .expect("backdate");
    }
}

async fn open() -> Box<dyn Backend> {
    Box::new(open_sqlite())
}

gantry_store::conformance_suite!(open);
