//! Copying stored objects by name between object stores (backups and
//! restores). An object never changes once written, so one already present
//! under its key at the destination is the same object and is skipped: a
//! second backup copies only what is new.

use crate::sink::ObjectSink;
use crate::{Result, StorageError};
use futures_util::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::ObjectStore;
use std::sync::Arc;

/// An object store by itself (no metadata), as `--storage-url` names one.
#[derive(Clone)]
pub struct Objects {
    pub(crate) store: Arc<dyn ObjectStore>,
    /// Set when objects are files in a local folder.
    pub(crate) local: Option<Arc<LocalFileSystem>>,
}

/// What a copy did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Copied {
    pub copied: u64,
    pub skipped: u64,
    /// Bytes copied (not counting skipped objects).
    pub bytes: u64,
}

/// Objects copied at once (S3 round trips overlap; local copies are kernel
/// copies, a few at a time keep the disk busy).
const PARALLEL: usize = 4;

impl Objects {
    /// Deletes objects (best effort: one that cannot be deleted is logged and
    /// left to the sweep).
    pub async fn delete_keys(&self, keys: &[String]) {
        for k in keys {
            match self.store.delete(&Path::from(k.as_str())).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => tracing::warn!(key = %k, error = %e, "cannot delete an object"),
            }
        }
    }

    /// Stores the local file `from` under `key`, replacing what is there.
    pub async fn put_file(&self, key: &str, from: &std::path::Path) -> Result<()> {
        let path = Path::from(key);
        let mut sink = match &self.local {
            Some(l) => ObjectSink::local(l.path_to_filesystem(&path)?),
            None => ObjectSink::Remote(object_store::WriteMultipart::new(
                self.store.put_multipart(&path).await?,
            )),
        };
        let file = tokio::fs::File::open(from).await?;
        let mut stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
        while let Some(chunk) = stream.next().await {
            let written = match chunk {
                Ok(c) => sink.write(c).await,
                Err(e) => Err(e.into()),
            };
            if let Err(e) = written {
                sink.abort().await;
                return Err(e);
            }
        }
        sink.finish().await
    }

    /// Writes the object `key` to the new local file `to` (synced).
    pub async fn get_file(&self, key: &str, to: &std::path::Path) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        let got = match self.store.get(&Path::from(key)).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(StorageError::NotFound(key.to_string()))
            }
            Err(e) => return Err(e.into()),
        };
        let mut file = tokio::fs::File::create_new(to).await?;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            file.write_all(&chunk?).await?;
        }
        file.sync_all().await?;
        Ok(())
    }

    /// Copies the objects named `keys` from `self` to `to`, skipping those
    /// already there. A key missing at the source is an error naming it.
    pub async fn copy_to(&self, to: &Objects, keys: &[String]) -> Result<Copied> {
        let results: Vec<Result<Option<u64>>> = futures_util::stream::iter(keys)
            .map(|k| self.copy_one(to, k))
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        let mut done = Copied::default();
        for r in results {
            match r? {
                Some(n) => {
                    done.copied += 1;
                    done.bytes += n;
                }
                None => done.skipped += 1,
            }
        }
        Ok(done)
    }

    /// Copies one object; `None` when it was already at the destination.
    async fn copy_one(&self, to: &Objects, key: &str) -> Result<Option<u64>> {
        let path = Path::from(key);
        if let (Some(src), Some(dst)) = (&self.local, &to.local) {
            let (src, dst) = (
                src.path_to_filesystem(&path)?,
                dst.path_to_filesystem(&path)?,
            );
            let key = key.to_string();
            return tokio::task::spawn_blocking(move || copy_local(&src, &dst, &key))
                .await
                .map_err(std::io::Error::other)?;
        }
        match to.store.head(&path).await {
            Ok(_) => return Ok(None),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let got = match self.store.get(&path).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(StorageError::NotFound(format!("object {key}")))
            }
            Err(e) => return Err(e.into()),
        };
        let mut sink = match &to.local {
            Some(l) => ObjectSink::local(l.path_to_filesystem(&path)?),
            None => ObjectSink::Remote(object_store::WriteMultipart::new(
                to.store.put_multipart(&path).await?,
            )),
        };
        let mut stream = got.into_stream().map_err(StorageError::from);
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    sink.abort().await;
                    return Err(e);
                }
            };
            n += chunk.len() as u64;
            if let Err(e) = sink.write(chunk).await {
                sink.abort().await;
                return Err(e);
            }
        }
        sink.finish().await?;
        Ok(Some(n))
    }
}

/// A kernel copy to a temporary file beside `dst`, synced, then renamed into
/// place (so `dst` exists only whole) and its folder synced.
fn copy_local(src: &std::path::Path, dst: &std::path::Path, key: &str) -> Result<Option<u64>> {
    if dst.exists() {
        return Ok(None);
    }
    if !src.exists() {
        return Err(StorageError::NotFound(format!("object {key}")));
    }
    let dir = dst
        .parent()
        .ok_or_else(|| std::io::Error::other("an object path has no folder"))?;
    std::fs::create_dir_all(dir)?;
    let mut tmp_name = dst.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!("#{}", uuid::Uuid::now_v7().simple()));
    let tmp = dir.join(tmp_name);
    let result = (|| -> std::io::Result<u64> {
        // Copies the source's mode too: objects are read-only (0444).
        let n = std::fs::copy(src, &tmp)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, dst)?;
        std::fs::File::open(dir)?.sync_all()?;
        Ok(n)
    })();
    match result {
        Ok(n) => Ok(Some(n)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            if e.kind() == std::io::ErrorKind::NotFound && !src.exists() {
                return Err(StorageError::NotFound(format!("object {key}")));
            }
            Err(e.into())
        }
    }
}
