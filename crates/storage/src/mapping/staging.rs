//! Staging: what a job reads from Storage into `/data/in`, each input with
//! its manifest.

use super::*;

impl Storage {
    /// Writes every mapped input into `data/in`, each with its manifest.
    /// A missing table or a bad filter is the user's error (`Invalid`/`NotFound`).
    ///
    /// An unfiltered table may be a hard link to its stored object: `data`
    /// must be a folder private to Gantry whose `in` containers see read-only.
    pub async fn stage_inputs(
        &self,
        project: &ProjectId,
        input: &InputMapping,
        data: &Path,
    ) -> Result<StagedInputs> {
        let mut staged = StagedInputs::default();
        for (i, m) in input.tables.iter().enumerate() {
            let at = format!("storage.input.tables[{i}]");
            let table: TableId = m
                .source
                .parse()
                .map_err(|e| StorageError::Invalid(format!("{at}.source: {e}")))?;
            let dest = m
                .destination
                .clone()
                .unwrap_or_else(|| format!("{}.csv", m.source));
            check_file_name(&dest)
                .map_err(|e| StorageError::Invalid(format!("{at}.destination: {e}")))?;
            let filter = read_filter(m, &at)?;
            let path = data.join("in/tables").join(&dest);
            let v = self
                .store
                .table_version(project, &table, None)
                .await
                .map_err(|e| match e {
                    gantry_store::StoreError::NotFound(_) => {
                        StorageError::Invalid(format!("{at}: input table {table} not found"))
                    }
                    other => other.into(),
                })?;
            // A plain table on local disk is a link or a kernel copy;
            // anything else streams.
            let how = match self.copy_plain(&v, &filter, &path).await? {
                Some(how) => how,
                None => {
                    let mut out =
                        tokio::io::BufWriter::with_capacity(1 << 20, new_file(&path).await?);
                    self.read_version(&v, &table, &filter, &mut out).await?;
                    tokio::io::AsyncWriteExt::flush(&mut out).await?;
                    Staged::Streamed
                }
            };
            staged.tables.push(how);
            let info = self.store.get_table(project, &table).await?;
            let columns = if m.columns.is_empty() {
                v.columns.clone()
            } else {
                m.columns.clone()
            };
            let (table_meta, column_meta) =
                gantry_core::metadata::for_input(v.metadata.as_ref(), &columns);
            let manifest = json!({
                "id": table.as_str(),
                "uri": format!("gantry://{project}/tables/{table}"),
                "name": table.name(),
                "primary_key": v.primary_key,
                "columns": columns,
                "created": rfc3339(info.created_at),
                "last_import_date": rfc3339(v.created_at),
                "last_change_date": rfc3339(v.created_at),
                "rows_count": v.rows,
                "data_size_bytes": v.bytes,
                "is_alias": false,
                "attributes": [],
                "metadata": table_meta,
                "column_metadata": column_meta,
            });
            write_manifest(
                &data.join("in/tables").join(format!("{dest}.manifest")),
                &manifest,
            )
            .await?;
        }
        for (i, m) in input.files.iter().enumerate() {
            if m.tags.is_empty() {
                return Err(StorageError::Invalid(format!(
                    "storage.input.files[{i}]: name at least one tag"
                )));
            }
            let files = self
                .store
                .list_files(
                    project,
                    &m.tags,
                    m.limit.unwrap_or(100).min(10_000) as usize,
                )
                .await?;
            for f in files {
                let name = format!("{}_{}", f.id, f.name);
                let path = data.join("in/files").join(&name);
                let mut out = new_file(&path).await?;
                let mut stream = self.object_stream(&f.object_key, 0).await?;
                while let Some(chunk) = stream.next().await {
                    tokio::io::AsyncWriteExt::write_all(&mut out, &chunk?).await?;
                }
                let manifest = json!({
                    "id": f.id, "name": f.name, "tags": f.tags, "size_bytes": f.size,
                    "created": rfc3339(f.created_at), "is_public": false, "is_encrypted": false,
                });
                write_manifest(
                    &data.join("in/files").join(format!("{name}.manifest")),
                    &manifest,
                )
                .await?;
                staged.files += 1;
            }
        }
        Ok(staged)
    }
}

/// What `stage_inputs` wrote: how each table got there, and how many files.
#[derive(Clone, Debug, Default)]
pub struct StagedInputs {
    pub tables: Vec<Staged>,
    pub files: usize,
}

impl std::fmt::Display for StagedInputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = |how| self.tables.iter().filter(|t| **t == how).count();
        write!(
            f,
            "tables: {} linked to stored objects, {} copied, {} streamed; files: {}",
            count(Staged::Linked),
            count(Staged::Copied),
            count(Staged::Streamed),
            self.files
        )
    }
}

/// `read::fresh_file` off the runtime.
async fn new_file(path: &Path) -> Result<tokio::fs::File> {
    let path = path.to_path_buf();
    let file = tokio::task::spawn_blocking(move || read::fresh_file(&path))
        .await
        .map_err(std::io::Error::other)??;
    Ok(tokio::fs::File::from_std(file))
}

async fn write_manifest(path: &Path, v: &Value) -> Result<()> {
    let mut file = new_file(path).await?;
    let text = serde_json::to_vec_pretty(v).unwrap_or_default();
    tokio::io::AsyncWriteExt::write_all(&mut file, &text).await?;
    Ok(())
}
