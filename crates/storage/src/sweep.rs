//! The orphan sweep: objects no committed row names (uploaded by an attempt
//! that crashed before its commit, or by an import cut short) are found and
//! deleted once they are older than a grace period and older than every
//! attempt still running (a running attempt may yet commit what it
//! uploaded).

use crate::{Objects, Result};
use futures_util::StreamExt;
use std::collections::HashSet;

/// What a sweep found.
#[derive(Clone, Debug, Default)]
pub struct Swept {
    /// Orphans old enough to go: (key, bytes).
    pub orphans: Vec<(String, u64)>,
    /// Unnamed objects kept because they are too young.
    pub young: u64,
    /// Objects named by a version or file.
    pub named: u64,
}

/// Whether `key` has the shape of a table or file object of some project
/// (`<project>/tables/<table>/<uuid>`, `<project>/files/<name>/<uuid>`):
/// nothing else in a shared bucket is ever touched.
fn gantry_object(key: &str) -> bool {
    let parts: Vec<&str> = key.split('/').collect();
    parts.len() == 4 && matches!(parts[1], "tables" | "files")
}

impl Objects {
    /// Lists the objects that `named` (every key a committed row names, read
    /// AFTER this listing starts) does not hold and that were last written
    /// before `cutoff_ms`; deletes them unless `dry_run`.
    pub async fn sweep(
        &self,
        named: impl Fn() -> Result<HashSet<String>>,
        cutoff_ms: i64,
        dry_run: bool,
    ) -> Result<Swept> {
        let mut listed = Vec::new();
        let mut list = self.store.list(None);
        while let Some(meta) = list.next().await {
            let meta = meta?;
            let key = meta.location.to_string();
            if gantry_object(&key) {
                listed.push((key, meta.size, meta.last_modified.timestamp_millis()));
            }
        }
        drop(list);
        // Read after the listing: an object committed meanwhile is named.
        let named = named()?;
        let mut swept = Swept::default();
        for (key, size, modified) in listed {
            if named.contains(&key) {
                swept.named += 1;
            } else if modified >= cutoff_ms {
                swept.young += 1;
            } else {
                swept.orphans.push((key, size));
            }
        }
        if !dry_run {
            for (key, _) in &swept.orphans {
                match self
                    .store
                    .delete(&object_store::path::Path::from(key.as_str()))
                    .await
                {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(swept)
    }
}
