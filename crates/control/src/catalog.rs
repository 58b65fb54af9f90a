//! The catalog of tables and files: making an empty table, uploading a file,
//! deleting a table with its objects. Loads, reads and restores are the
//! storage crate's (`gantry_storage::Storage`), called as they are.

use crate::Control;
use bytes::Bytes;
use gantry_core::{ProjectId, TableId};
use gantry_storage::{CsvInput, LoadOptions, StorageError};
use gantry_store::{FileInfo, StoreError, TableInfo};

/// Why a catalog operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The request names something wrong (a file name, a tag).
    #[error("{0}")]
    Invalid(String),
    /// The table exists already.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An empty table to make: its columns and primary key.
#[derive(Clone, Debug)]
pub struct NewTable {
    pub id: TableId,
    pub columns: Vec<String>,
    pub primary_key: Vec<String>,
}

/// A file to upload: its name (a single file name) and tags.
#[derive(Clone, Debug)]
pub struct Upload {
    pub name: String,
    pub tags: Vec<String>,
}

/// The longest tag, in bytes.
pub const MAX_TAG: usize = 128;

impl Control {
    /// Makes an empty table (version 1, no rows) with its columns and key;
    /// a conflict when it exists.
    ///
    /// The early check only saves writing an object; what decides is the
    /// commit: a write made by `create` is refused inside the store's
    /// transaction when the table has a version (`rules::next_version`), so
    /// of two creates racing for one name exactly one succeeds.
    pub async fn create_table(
        &self,
        project: &ProjectId,
        t: NewTable,
    ) -> Result<TableInfo, CatalogError> {
        match self.store.get_table(project, &t.id).await {
            Ok(_) => {
                return Err(CatalogError::Conflict(format!(
                    "table {} already exists",
                    t.id
                )))
            }
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let mut header = Vec::new();
        gantry_storage::csvscan::Encoder::default()
            .record(t.columns.iter().map(|c| c.as_bytes()), &mut header);
        let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(header))]);
        let how = CsvInput {
            name: "columns".into(),
            ..Default::default()
        };
        let opts = LoadOptions {
            incremental: false,
            primary_key: Some(t.primary_key),
            delete_where: None,
            made_by: gantry_store::MadeBy::Create,
        };
        match self.storage.import(project, &t.id, stream, how, opts).await {
            Ok(_) => {}
            Err(StorageError::Conflict(m)) => return Err(CatalogError::Conflict(m)),
            Err(e) => return Err(e.into()),
        }
        Ok(self.store.get_table(project, &t.id).await?)
    }

    /// Deletes a table, its versions, then its objects.
    pub async fn delete_table(
        &self,
        project: &ProjectId,
        id: &TableId,
    ) -> Result<(), CatalogError> {
        let keys = self.store.delete_table(project, id).await?;
        self.storage.delete_objects(&keys).await;
        Ok(())
    }

    /// Stores a file from `reader`, then records it; the object goes again
    /// when the record cannot be made.
    pub async fn upload_file<R: tokio::io::AsyncRead + Unpin>(
        &self,
        project: &ProjectId,
        up: Upload,
        reader: R,
    ) -> Result<FileInfo, CatalogError> {
        gantry_core::spec::check_file_name(&up.name).map_err(CatalogError::Invalid)?;
        if up.tags.iter().any(|t| t.is_empty() || t.len() > MAX_TAG) {
            return Err(CatalogError::Invalid(format!(
                "tags must be 1-{MAX_TAG} characters"
            )));
        }
        let (key, size) = self.storage.upload(project, &up.name, reader).await?;
        let made = self
            .store
            .create_file(
                project,
                gantry_store::NewFile {
                    name: up.name,
                    tags: up.tags,
                    size,
                    object_key: key.clone(),
                },
            )
            .await;
        match made {
            Ok(f) => Ok(f),
            Err(e) => {
                self.storage.delete_objects(&[key]).await;
                Err(e.into())
            }
        }
    }
}
