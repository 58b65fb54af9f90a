//! Gantry's Storage: versioned tables and tagged files. Contents live in an
//! object store (a local folder by default, through the `object_store`
//! crate); metadata lives in the SQL store, so a job's outputs can become
//! visible in the same transaction as its status.
//!
//! A table version is an immutable list of *segments*: headless CSV objects.
//! A full load makes a version of one new segment; an incremental load makes
//! the previous version's segments plus one new one, so its cost follows the
//! delta, not the table. In a primary-key table a newer segment's row replaces
//! older rows with the same key when read; within one load the last row wins.
//! Only this crate talks to the object store.
#![forbid(unsafe_code)]

mod backup;
mod compact;
pub mod csvscan;
pub mod mapping;
pub mod packages;
mod read;
mod sink;
mod sweep;
mod tables;

pub use backup::{Copied, Objects};
pub use mapping::{Collected, StagedInputs};
pub use read::{ReadFilter, Sink, Staged};
pub use sweep::Swept;
pub use tables::{CsvInput, DeleteWhere, LoadOptions, PreparedLoad};

use gantry_store::{Store, StoreError};
use object_store::ObjectStore;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The data or request is wrong (a user can fix it).
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(StoreError),
    #[error("object store: {0}")]
    Object(#[from] object_store::Error),
    /// An import expands past its project's cap (`import_max_bytes`).
    #[error("{0}")]
    TooLarge(String),
    /// A write found no space left on the disk (ENOSPC).
    #[error("the disk is full ({0})")]
    OutOfSpace(std::io::Error),
    #[error("io: {0}")]
    Io(std::io::Error),
}

impl From<std::io::Error> for StorageError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::StorageFull {
            Self::OutOfSpace(e)
        } else {
            Self::Io(e)
        }
    }
}

impl From<StoreError> for StorageError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::NotFound(what),
            StoreError::Conflict(m) => Self::Conflict(m),
            other => Self::Store(other),
        }
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// What a job may leave in `/data/out` (nothing from a container is trusted).
#[derive(Clone, Copy, Debug)]
pub struct OutputLimits {
    /// Entries (files, slices, manifests, folders) over `out/tables` and
    /// `out/files` together.
    pub max_entries: usize,
    /// Bytes of all output files together.
    pub max_bytes: u64,
}

impl Default for OutputLimits {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_bytes: 100 << 30,
        }
    }
}

/// What one import may expand to unless its project says otherwise: plain
/// CSV bytes after gzip, over all the parts of one load.
pub const DEFAULT_IMPORT_MAX_BYTES: u64 = 1 << 40;

/// Tables and files of all projects.
#[derive(Clone)]
pub struct Storage {
    objects: Arc<dyn ObjectStore>,
    pub(crate) output_limits: OutputLimits,
    /// Set when objects are files in a local folder: reads then go straight
    /// to the files (large chunks, kernel copies) instead of 8 KiB chunks.
    local: Option<Arc<object_store::local::LocalFileSystem>>,
    store: Arc<dyn Store>,
}

impl Storage {
    pub fn new(objects: Arc<dyn ObjectStore>, store: Arc<dyn Store>) -> Self {
        Self {
            objects,
            output_limits: OutputLimits::default(),
            local: None,
            store,
        }
    }

    /// Sets what a job may leave in `/data/out`.
    pub fn with_output_limits(mut self, limits: OutputLimits) -> Self {
        self.output_limits = limits;
        self
    }

    /// The cap on what one load of `project` may expand to.
    pub(crate) async fn import_max_bytes(&self, project: &gantry_core::ProjectId) -> Result<u64> {
        match self.store.get_project(project).await {
            Ok(p) => Ok(p.import_max_bytes.unwrap_or(DEFAULT_IMPORT_MAX_BYTES)),
            Err(StoreError::NotFound(_)) => Ok(DEFAULT_IMPORT_MAX_BYTES),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads a stored object from byte `offset` on as a stream of large chunks.
    pub(crate) async fn object_stream(
        &self,
        key: &str,
        offset: u64,
    ) -> Result<futures_util::stream::BoxStream<'static, Result<bytes::Bytes>>> {
        use futures_util::{StreamExt, TryStreamExt};
        use tokio::io::AsyncSeekExt;
        let path = object_store::path::Path::from(key);
        if let Some(local) = &self.local {
            let mut file = tokio::fs::File::open(local.path_to_filesystem(&path)?).await?;
            file.seek(std::io::SeekFrom::Start(offset)).await?;
            let s = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
            return Ok(s.map_err(StorageError::from).boxed());
        }
        let options = object_store::GetOptions {
            range: (offset > 0).then_some(object_store::GetRange::Offset(offset)),
            ..Default::default()
        };
        Ok(self
            .objects
            .get_opts(&path, options)
            .await?
            .into_stream()
            .map_err(StorageError::from)
            .boxed())
    }

    /// The file behind a stored object, when objects are local files.
    pub(crate) fn local_file(&self, key: &str) -> Option<std::path::PathBuf> {
        let local = self.local.as_ref()?;
        local
            .path_to_filesystem(&object_store::path::Path::from(key))
            .ok()
    }

    /// A writer for a new object under `key` (see `sink`).
    pub(crate) async fn sink(&self, key: &object_store::path::Path) -> Result<sink::ObjectSink> {
        if let Some(local) = &self.local {
            return Ok(sink::ObjectSink::local(local.path_to_filesystem(key)?));
        }
        let upload = self.objects.put_multipart(key).await?;
        Ok(sink::ObjectSink::Remote(object_store::WriteMultipart::new(
            upload,
        )))
    }

    /// Opens the object store named by `url` (see [`Objects::open`]).
    pub fn open(url: &str, store: Arc<dyn Store>) -> Result<Self> {
        let o = Objects::open(url)?;
        let mut storage = Self::new(o.store, store);
        storage.local = o.local;
        Ok(storage)
    }

    /// The object store alone.
    pub fn object_store(&self) -> Objects {
        Objects {
            store: self.objects.clone(),
            local: self.local.clone(),
        }
    }

    /// Deletes objects no version or file refers to any more (best effort).
    pub async fn delete_objects(&self, keys: &[String]) {
        for k in keys {
            if let Err(e) = self
                .objects
                .delete(&object_store::path::Path::from(k.as_str()))
                .await
            {
                tracing::warn!(key = %k, error = %e, "cannot delete an object");
            }
        }
    }

    /// Writes, reads back and deletes a small object under `.probe/`:
    /// whether the object store takes and returns bytes (`gantry doctor`).
    pub async fn probe(&self) -> Result<()> {
        let key = object_store::path::Path::from(format!(".probe/{}", uuid::Uuid::now_v7()));
        let body = bytes::Bytes::from_static(b"gantry doctor probe");
        let fail = |what: &str, e: object_store::Error| {
            StorageError::Io(std::io::Error::other(format!("{what} a probe object: {e}")))
        };
        self.objects
            .put(&key, body.clone().into())
            .await
            .map_err(|e| fail("cannot write", e))?;
        let read = self
            .objects
            .get(&key)
            .await
            .map_err(|e| fail("cannot read", e));
        let read = match read {
            Ok(r) => r.bytes().await.map_err(|e| fail("cannot read", e)),
            Err(e) => Err(e),
        };
        let deleted = self.objects.delete(&key).await;
        if read? != body {
            return Err(StorageError::Io(std::io::Error::other(
                "a probe object read back different bytes",
            )));
        }
        deleted.map_err(|e| fail("cannot delete", e))?;
        Ok(())
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn objects(&self) -> &Arc<dyn ObjectStore> {
        &self.objects
    }
}

/// A fresh object key under a project.
pub(crate) fn new_key(
    project: &gantry_core::ProjectId,
    kind: &str,
    name: &str,
) -> object_store::path::Path {
    object_store::path::Path::from(format!("{project}/{kind}/{name}/{}", uuid::Uuid::now_v7()))
}

impl Objects {
    /// Opens the object store named by `url`:
    /// - a folder path or `file:///path`: a local folder;
    /// - `s3://bucket[/prefix][?endpoint=...&region=...&allow_http=true]`: an
    ///   S3-compatible bucket. Credentials come from the standard `AWS_*`
    ///   environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    ///   `AWS_ENDPOINT`, `AWS_REGION`, ...); query options override them.
    pub fn open(url: &str) -> Result<Self> {
        let bad = |m: String| StorageError::Invalid(format!("storage URL '{url}': {m}"));
        let local = url
            .strip_prefix("file://")
            .or(Some(url).filter(|u| !u.contains("://")));
        let objects: Arc<dyn ObjectStore> = if let Some(path) = local {
            std::fs::create_dir_all(path)?;
            let fs = Arc::new(object_store::local::LocalFileSystem::new_with_prefix(path)?);
            return Ok(Self {
                store: fs.clone(),
                local: Some(fs),
            });
        } else if url.starts_with("s3://") {
            let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
            let bucket = parsed
                .host_str()
                .filter(|b| !b.is_empty())
                .ok_or_else(|| bad("no bucket".into()))?;
            let mut builder =
                object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
            for (k, v) in parsed.query_pairs() {
                let key: object_store::aws::AmazonS3ConfigKey = k
                    .parse()
                    .map_err(|_| bad(format!("unknown option '{k}'")))?;
                builder = builder.with_config(key, v.to_string());
            }
            let s3 = builder.build()?;
            let prefix = parsed.path().trim_matches('/');
            if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
            }
        } else {
            return Err(bad(
                "use a folder path, file:///path or s3://bucket/prefix".into()
            ));
        };
        Ok(Self {
            store: objects,
            local: None,
        })
    }
}
