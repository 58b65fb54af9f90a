//! Collecting: what a job left in `/data/out` (read only after it stopped,
//! never following links) into table writes and files ready to commit.

use super::*;

impl Storage {
    /// Reads what the container left in `data/out` into table writes and
    /// files (objects uploaded; nothing committed). Only `write_always`
    /// tables are taken when the job failed. A broken contract is `Invalid`,
    /// with a message naming the file.
    pub async fn collect_outputs(
        &self,
        project: &ProjectId,
        mapping: &OutputMapping,
        data: &Path,
        default_bucket: &str,
        succeeded: bool,
    ) -> Result<Collected> {
        let mut c = Collected::default();
        let result = self
            .collect_inner(project, mapping, data, default_bucket, succeeded, &mut c)
            .await;
        match result {
            Ok(()) => Ok(c),
            Err(e) => {
                self.discard(&c).await;
                Err(e)
            }
        }
    }

    /// Deletes the objects of outputs that will not be committed (the
    /// attempt lost its lease, or the commit failed). Only objects written
    /// for these outputs are deleted, never segments older versions share.
    pub async fn discard(&self, c: &Collected) {
        self.delete_segments(&c.fresh_segments).await;
        self.delete_objects(&c.fresh_files).await;
    }

    async fn collect_inner(
        &self,
        project: &ProjectId,
        mapping: &OutputMapping,
        data: &Path,
        default_bucket: &str,
        succeeded: bool,
        c: &mut Collected,
    ) -> Result<()> {
        survey_outputs(data, self.output_limits)?;
        let tables_dir = data.join("out/tables");
        let entries = list_entries(&tables_dir, "out/tables")?;
        require_mapped(
            &entries,
            mapping.tables.iter().map(|m| m.source.as_str()),
            "tables",
        )?;
        for (name, kind) in &entries {
            if name.ends_with(".manifest") {
                continue;
            }
            let shown = format!("out/tables/{name}");
            let manifest = read_manifest(&tables_dir.join(format!("{name}.manifest")), &shown)?;
            let mapped = mapping.tables.iter().find(|m| m.source == *name);
            let spec = TableOutput::resolve(name, &shown, mapped, &manifest, default_bucket)?;
            if !succeeded && !spec.write_always {
                continue;
            }
            let parts = match kind {
                EntryKind::File => vec![tables_dir.join(name)],
                EntryKind::Dir => {
                    if spec.columns.is_none() {
                        return Err(StorageError::Invalid(format!(
                            "{shown} is a sliced table (a folder) and needs 'columns' in {shown}.manifest"
                        )));
                    }
                    list_entries(&tables_dir.join(name), &shown)?
                        .into_iter()
                        .map(|(part, k)| match k {
                            EntryKind::File => Ok(tables_dir.join(name).join(part)),
                            EntryKind::Dir => Err(StorageError::Invalid(format!(
                                "{shown}/{part}: slices must be files, not folders"
                            ))),
                        })
                        .collect::<Result<Vec<PathBuf>>>()?
                }
            };
            let mut inputs = Vec::new();
            for p in &parts {
                let file = open_regular(p).await?;
                let part_name = p
                    .strip_prefix(data)
                    .map_or_else(|_| shown.clone(), |r| r.display().to_string());
                let how = CsvInput {
                    dialect: spec.dialect,
                    columns: spec.columns.clone(),
                    gzip: part_name.ends_with(".gz"),
                    name: part_name,
                };
                inputs.push((
                    tokio_util::io::ReaderStream::with_capacity(file, 1 << 20),
                    how,
                ));
            }
            if inputs.is_empty() {
                return Err(StorageError::Invalid(format!("{shown} is an empty folder")));
            }
            let load = self
                .prepare_load(
                    project,
                    &spec.destination,
                    inputs,
                    spec.primary_key.as_deref().unwrap_or(&[]),
                )
                .await?;
            c.fresh_segments.extend(load.segments.iter().cloned());
            let opts = LoadOptions {
                incremental: spec.incremental,
                primary_key: spec.primary_key.clone(),
                delete_where: spec.delete_where.clone(),
                made_by: gantry_store::MadeBy::Job,
            };
            let (mut write, rewritten) =
                self.plan_load(project, load, &opts)
                    .await
                    .map_err(|e| match e {
                        StorageError::Invalid(m) => StorageError::Invalid(format!("{shown}: {m}")),
                        other => other,
                    })?;
            c.fresh_segments.extend(rewritten);
            write.note = Some(format!("from {shown}"));
            write.metadata = spec.metadata.clone();
            c.outputs.tables.push(write);
        }
        if succeeded {
            c.outputs.files = self
                .collect_files(project, mapping, data, &mut c.fresh_files)
                .await?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum EntryKind {
    File,
    Dir,
}

/// Checks what the job left against the output limits before any of it is
/// read: entry count (the folders are read no further than the limit), total
/// bytes, and depth (`out/tables/<table>/<slice>` at most; the contract has
/// no deeper place, so a deeper folder is refused by the collection itself).
fn survey_outputs(data: &Path, limits: OutputLimits) -> Result<()> {
    let (mut entries, mut bytes) = (0usize, 0u64);
    let mut folders: Vec<(PathBuf, String, usize)> = ["out/tables", "out/files"]
        .into_iter()
        .map(|top| (data.join(top), top.to_string(), 0))
        .collect();
    while let Some((dir, shown, depth)) = folders.pop() {
        for entry in read_dir_if_any(&dir)? {
            let entry = entry?;
            entries += 1;
            if entries > limits.max_entries {
                return Err(StorageError::Invalid(format!(
                    "/data/out holds more than {} files and folders (the output limit)",
                    limits.max_entries
                )));
            }
            let name = format!("{shown}/{}", entry.file_name().to_string_lossy());
            // Does not follow symlinks.
            let meta = entry.metadata()?;
            if meta.is_dir() && depth == 0 {
                folders.push((entry.path(), name, depth + 1));
            } else if meta.is_file() {
                bytes += meta.len();
                if bytes > limits.max_bytes {
                    return Err(StorageError::Invalid(format!(
                        "the files in /data/out are larger than {} bytes together (the output \
                         limit), reached at {name}",
                        limits.max_bytes
                    )));
                }
            }
        }
    }
    Ok(())
}

/// A folder's entries; none when it does not exist.
fn read_dir_if_any(dir: &Path) -> Result<impl Iterator<Item = std::io::Result<std::fs::DirEntry>>> {
    match std::fs::read_dir(dir) {
        Ok(rd) => Ok(Some(rd).into_iter().flatten()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None.into_iter().flatten()),
        Err(e) => Err(e.into()),
    }
}

/// Lists a folder without following symlinks; anything but regular files and
/// folders is refused, as are names that are not plain UTF-8.
pub(super) fn list_entries(dir: &Path, shown: &str) -> Result<Vec<(String, EntryKind)>> {
    let mut out = Vec::new();
    for entry in read_dir_if_any(dir)? {
        let entry = entry?;
        let name = entry.file_name().into_string().map_err(|n| {
            StorageError::Invalid(format!(
                "{shown}/{}: the name is not UTF-8",
                n.to_string_lossy()
            ))
        })?;
        if name.chars().any(char::is_control) {
            return Err(StorageError::Invalid(format!(
                "{shown}/{}: the name has control characters",
                name.escape_debug()
            )));
        }
        let ft = entry.file_type()?;
        let kind = if ft.is_symlink() {
            return Err(StorageError::Invalid(format!(
                "{shown}/{name} is a symlink; outputs must be regular files"
            )));
        } else if ft.is_file() {
            EntryKind::File
        } else if ft.is_dir() {
            EntryKind::Dir
        } else {
            return Err(StorageError::Invalid(format!(
                "{shown}/{name} is not a regular file (FIFOs, sockets and devices are refused)"
            )));
        };
        out.push((name, kind));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// A mapped output that the job did not write breaks the contract.
pub(super) fn require_mapped<'a>(
    entries: &[(String, EntryKind)],
    sources: impl Iterator<Item = &'a str>,
    kind: &str,
) -> Result<()> {
    for (i, source) in sources.enumerate() {
        if !entries.iter().any(|(name, _)| name == source) {
            return Err(StorageError::Invalid(format!(
                "storage.output.{kind}[{i}]: out/{kind}/{source} does not exist (the job did not write it)"
            )));
        }
    }
    Ok(())
}

/// Opens a regular file without following a symlink swapped in meanwhile.
pub(super) async fn open_regular(path: &Path) -> Result<tokio::fs::File> {
    let mut opts = tokio::fs::OpenOptions::new();
    opts.read(true).custom_flags(0o400000); // O_NOFOLLOW
    let f = opts
        .open(path)
        .await
        .map_err(|e| StorageError::Invalid(format!("{}: cannot be opened: {e}", path.display())))?;
    let meta = f.metadata().await?;
    if !meta.is_file() {
        return Err(StorageError::Invalid(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    if std::os::unix::fs::MetadataExt::nlink(&meta) > 1 {
        return Err(StorageError::Invalid(format!(
            "{} is a hard link; outputs must be plain files",
            path.display()
        )));
    }
    Ok(f)
}

pub(super) fn read_manifest(path: &Path, shown: &str) -> Result<Map<String, Value>> {
    let meta = match path.symlink_metadata() {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(e) => return Err(e.into()),
    };
    if !meta.file_type().is_file() {
        return Err(StorageError::Invalid(format!(
            "{shown}.manifest is not a regular file"
        )));
    }
    if meta.len() > MAX_MANIFEST {
        return Err(StorageError::Invalid(format!(
            "{shown}.manifest is larger than 1 MiB"
        )));
    }
    let text = std::fs::read(path)?;
    match serde_json::from_slice::<Value>(&text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(StorageError::Invalid(format!(
            "{shown}.manifest must be a JSON object"
        ))),
        Err(e) => Err(StorageError::Invalid(format!(
            "{shown}.manifest is not valid JSON: {e}"
        ))),
    }
}

/// One output table's settings: the spec's mapping over the manifest.
struct TableOutput {
    destination: TableId,
    incremental: bool,
    primary_key: Option<Vec<String>>,
    columns: Option<Vec<String>>,
    delete_where: Option<DeleteWhere>,
    write_always: bool,
    dialect: Dialect,
    /// Table and column metadata (types) from the manifest, the mapping's over it.
    metadata: Option<Value>,
}

fn str_list(v: Option<&Value>) -> Option<Vec<String>> {
    match v? {
        Value::Array(a) => Some(
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
        ),
        _ => None,
    }
}

impl TableOutput {
    fn resolve(
        name: &str,
        shown: &str,
        mapped: Option<&OutputTable>,
        mf: &Map<String, Value>,
        default_bucket: &str,
    ) -> Result<Self> {
        let bad = |m: String| StorageError::Invalid(format!("{shown}: {m}"));
        let stem = name.trim_end_matches(".gz").trim_end_matches(".csv");
        // Newer manifests describe columns as a schema: [{name, primary_key}].
        let schema: Option<Vec<(String, bool)>> = match mf.get("schema") {
            Some(Value::Array(a)) => Some(
                a.iter()
                    .filter_map(|c| {
                        Some((
                            c.get("name")?.as_str()?.to_string(),
                            c.get("primary_key")
                                .and_then(Value::as_bool)
                                .unwrap_or(false),
                        ))
                    })
                    .collect(),
            ),
            _ => None,
        };
        let destination = mapped
            .and_then(|m| m.destination.clone())
            .or_else(|| {
                mf.get("destination")
                    .and_then(Value::as_str)
                    .filter(|d| !d.is_empty())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| {
                if stem.matches('.').count() >= 2 {
                    stem.to_string()
                } else {
                    format!("out.c-{default_bucket}.{stem}")
                }
            });
        let destination: TableId = destination
            .parse()
            .map_err(|e: String| bad(format!("invalid destination: {e}")))?;
        let has_header = mf.get("has_header").and_then(Value::as_bool);
        let mut columns = mapped
            .and_then(|m| m.columns.clone())
            .or_else(|| str_list(mf.get("columns")));
        if columns.is_none() && has_header == Some(false) {
            columns = schema
                .as_ref()
                .map(|s| s.iter().map(|(n, _)| n.clone()).collect());
        }
        // The mapping's own schema (Keboola's newer output mapping) names a
        // primary key too.
        let mapped_schema_pk = mapped.and_then(|m| m.schema.as_ref()).map(|cols| {
            cols.iter()
                .filter(|c| c.get("primary_key").and_then(Value::as_bool) == Some(true))
                .filter_map(|c| c.get("name")?.as_str().map(str::to_string))
                .collect::<Vec<_>>()
        });
        let mapped_schema_pk = mapped_schema_pk.filter(|pk| !pk.is_empty());
        let primary_key = mapped
            .and_then(|m| m.primary_key.clone())
            .or(mapped_schema_pk)
            .or_else(|| str_list(mf.get("primary_key")))
            .or_else(|| {
                schema
                    .as_ref()
                    .map(|s| {
                        s.iter()
                            .filter(|(_, pk)| *pk)
                            .map(|(n, _)| n.clone())
                            .collect::<Vec<_>>()
                    })
                    .filter(|v| !v.is_empty())
            });
        let incremental = mapped
            .and_then(|m| m.incremental)
            .or_else(|| mf.get("incremental").and_then(Value::as_bool))
            .unwrap_or(false);
        let write_always = mapped
            .and_then(|m| m.write_always)
            .or_else(|| mf.get("write_always").and_then(Value::as_bool))
            .unwrap_or(false);
        let dw_column = mapped
            .and_then(|m| m.delete_where_column.clone())
            .or_else(|| {
                mf.get("delete_where_column")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            });
        let delete_where = match dw_column {
            Some(column) => {
                let values = mapped
                    .and_then(|m| m.delete_where_values.clone())
                    .or_else(|| str_list(mf.get("delete_where_values")))
                    .unwrap_or_default();
                let operator = match mapped.and_then(|m| m.delete_where_operator) {
                    Some(op) => op,
                    None => match mf.get("delete_where_operator").and_then(Value::as_str) {
                        None | Some("eq") => WhereOperator::Eq,
                        Some("ne") => WhereOperator::Ne,
                        Some(other) => {
                            return Err(bad(format!(
                                "delete_where_operator '{other}' must be 'eq' or 'ne'"
                            )))
                        }
                    },
                };
                Some(DeleteWhere {
                    column,
                    values,
                    operator,
                })
            }
            None => None,
        };
        let one_byte = |key: &str, default: u8| -> Result<u8> {
            match mf.get(key).and_then(Value::as_str) {
                None => Ok(default),
                Some(s) if s.len() == 1 => Ok(s.as_bytes()[0]),
                Some(s) => Err(bad(format!("{key} '{s}' must be one character"))),
            }
        };
        let dialect = Dialect {
            delimiter: one_byte("delimiter", b',')?,
            quote: one_byte("enclosure", b'"')?,
        };
        let from_mapping = mapped.map(|m| {
            let mut o = Map::new();
            if let Some(v) = &m.schema {
                o.insert("schema".into(), Value::Array(v.clone()));
            }
            if let Some(v) = &m.table_metadata {
                o.insert("table_metadata".into(), v.clone());
            }
            if let Some(v) = &m.column_metadata {
                o.insert("column_metadata".into(), v.clone());
            }
            o
        });
        let metadata = gantry_core::metadata::merge(
            gantry_core::metadata::from_manifest(mf).as_ref(),
            from_mapping
                .as_ref()
                .and_then(gantry_core::metadata::from_manifest)
                .as_ref(),
        );
        Ok(Self {
            destination,
            incremental,
            primary_key,
            columns,
            delete_where,
            write_always,
            dialect,
            metadata,
        })
    }
}
