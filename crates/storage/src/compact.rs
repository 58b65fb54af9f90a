//! Compaction: a table of many segments (a primary-key table after many
//! incremental loads holds newer segments' keys in memory on every read) is
//! rewritten into one segment holding exactly what a read of it returns, as a
//! new version. It streams (the read's chunks go to the new object as they
//! come), so its memory is that of one read of the old version, and reads of
//! the new version are plain byte copies.

use crate::read::Sink;
use crate::sink::ObjectSink;
use crate::{new_key, ReadFilter, Result, Storage, StorageError};
use bytes::Bytes;
use gantry_core::{ProjectId, TableId};
use gantry_store::{Segment, TableVersion, TableWrite, WriteKind};

/// Feeds a read into a new object, keeping the length of its first write
/// (the header line).
struct ToObject {
    sink: Option<ObjectSink>,
    header: Option<u64>,
}

#[async_trait::async_trait]
impl Sink for ToObject {
    async fn write(&mut self, data: Bytes) -> std::io::Result<()> {
        if self.header.is_none() {
            self.header = Some(data.len() as u64);
        }
        match &mut self.sink {
            Some(s) => s.write(data).await.map_err(std::io::Error::other),
            None => Err(std::io::Error::other("the object writer stopped")),
        }
    }
}

impl Storage {
    /// Rewrites the current version of `table` into one segment, as a new
    /// version made by `compact`. `None` when there is nothing to gain (one
    /// segment already). Fails with a conflict, leaving nothing behind, when
    /// the table got a new version meanwhile.
    pub async fn compact(
        &self,
        project: &ProjectId,
        table: &TableId,
    ) -> Result<Option<TableVersion>> {
        let v = self.store.table_version(project, table, None).await?;
        if v.segments.len() <= 1 {
            return Ok(None);
        }
        let key = new_key(project, "tables", table.as_str());
        let mut to = ToObject {
            sink: Some(self.sink(&key).await?),
            header: None,
        };
        let read = self
            .read_version(&v, table, &ReadFilter::default(), &mut to)
            .await;
        let sink = to.sink.take();
        let stats = match (read, sink) {
            (Ok(stats), Some(sink)) => {
                sink.finish().await?;
                stats
            }
            (Err(e), sink) => {
                if let Some(s) = sink {
                    s.abort().await;
                }
                return Err(e);
            }
            (Ok(_), None) => {
                return Err(StorageError::Io(std::io::Error::other(
                    "the object writer stopped",
                )))
            }
        };
        let header = to.header.unwrap_or(0);
        let segment = Segment {
            key: key.to_string(),
            columns: v.columns.clone(),
            rows: stats.rows,
            bytes: stats.bytes - header,
            header,
            // `changed_since` then sees every row as changed at the last
            // load: never fewer rows than changed, as it promises.
            created_at: v.segments.iter().map(|s| s.created_at).max().unwrap_or(0),
        };
        let write = TableWrite {
            table: table.clone(),
            kind: WriteKind::Rewrite {
                base_version: v.version,
            },
            columns: v.columns.clone(),
            primary_key: v.primary_key.clone(),
            loaded_rows: 0,
            loaded_bytes: 0,
            segments: vec![segment.clone()],
            made_by: gantry_store::MadeBy::Compact,
            note: Some(format!(
                "compacted version {} ({} segments) into one",
                v.version,
                v.segments.len()
            )),
            // The same rows: the table's metadata carries over as it is.
            metadata: None,
        };
        match self.store.commit_table(project, write).await {
            Ok(new) => Ok(Some(new)),
            Err(e) => {
                self.delete_segments(&[segment]).await;
                Err(e.into())
            }
        }
    }
}
