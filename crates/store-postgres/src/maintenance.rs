//! What `gantry sweep` needs of the database: the object keys it names and
//! when the oldest running attempt started (the same answers as the SQLite
//! backend's `backup` module gives from its file).

use crate::error::Error;
use crate::PgStore;
use gantry_store::{Segment, StoreError};
use std::collections::BTreeSet;

impl PgStore {
    /// Every object key a table version, a file or a code package names,
    /// read in one snapshot.
    pub async fn live_object_keys(&self) -> gantry_store::Result<Vec<String>> {
        Ok(crate::snapshot!(self, |tx| {
            let mut keys = BTreeSet::new();
            for r in tx.query("SELECT segments FROM table_versions", &[]).await? {
                let segments: Vec<Segment> = serde_json::from_str(r.try_get::<_, &str>(0)?)
                    .map_err(|e| {
                        Error::from(StoreError::Corrupt(format!("segments of a version: {e}")))
                    })?;
                keys.extend(segments.into_iter().map(|s| s.key));
            }
            for r in tx
                .query(
                    "SELECT object_key FROM files UNION ALL SELECT object_key FROM code_packages",
                    &[],
                )
                .await?
            {
                keys.insert(r.try_get::<_, String>(0)?);
            }
            keys.into_iter().collect::<Vec<_>>()
        })?)
    }

    /// When the oldest attempt still running started (ms since the epoch):
    /// an attempt may commit objects uploaded since then.
    pub async fn oldest_running_attempt(&self) -> gantry_store::Result<Option<i64>> {
        let c = self.client().await?;
        let row = c
            .query_one(
                "SELECT MIN(started_at) FROM attempts WHERE status = 'running'",
                &[],
            )
            .await
            .map_err(Error::from)?;
        Ok(row.try_get::<_, Option<i64>>(0).map_err(Error::from)?)
    }
}
