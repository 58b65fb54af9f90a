//! The catalog of tables (versions) and files on Postgres.

use crate::error::{Error, Result};
use crate::jobs::{json, parse, parse_str};
use crate::{serializable, snapshot, PgStore, NOW};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use gantry_core::{ConfigId, FileId, JobId, ProjectId, TableId};
use gantry_store::*;
use serde_json::Value;
use tokio_postgres::Row;

fn strings_json(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn strings(s: &str) -> Result<Vec<String>> {
    serde_json::from_str(s).map_err(|e| Error::Corrupt(e.to_string()))
}

const VERSION_COLS: &str = "version, columns, primary_key, segments, rows, bytes, loaded_rows, loaded_bytes, made_by, job_id, note, created_at, metadata, pinned";

fn version_from_row(r: &Row) -> Result<TableVersion> {
    Ok(TableVersion {
        version: r.try_get::<_, i64>(0)? as u64,
        columns: strings(r.try_get::<_, &str>(1)?)?,
        primary_key: strings(r.try_get::<_, &str>(2)?)?,
        segments: serde_json::from_str(r.try_get::<_, &str>(3)?)
            .map_err(|e| Error::Corrupt(e.to_string()))?,
        rows: r.try_get::<_, i64>(4)? as u64,
        bytes: r.try_get::<_, i64>(5)? as u64,
        loaded_rows: r.try_get::<_, i64>(6)? as u64,
        loaded_bytes: r.try_get::<_, i64>(7)? as u64,
        made_by: parse_str(r.try_get::<_, &str>(8)?)?,
        job_id: r.try_get::<_, Option<String>>(9)?.map(parse).transpose()?,
        note: r.try_get(10)?,
        created_at: r.try_get(11)?,
        metadata: r.try_get::<_, Option<&str>>(12)?.map(json).transpose()?,
        pinned: r.try_get(13)?,
    })
}

async fn load_version(
    c: &impl GenericClient,
    project: &ProjectId,
    id: &TableId,
    version: Option<u64>,
) -> Result<TableVersion> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {VERSION_COLS} FROM table_versions WHERE project_id = $1 AND table_id = $2 AND version = \
             COALESCE($3, (SELECT version FROM storage_tables WHERE project_id = $1 AND id = $2))"
        ))
        .await?;
    let found = c
        .query_opt(
            &stmt,
            &[&project.as_str(), &id.as_str(), &version.map(|v| v as i64)],
        )
        .await?;
    match found {
        Some(r) => version_from_row(&r),
        None => Err(Error::NotFound(match version {
            Some(v) => format!("version {v} of table {id}"),
            None => format!("table {id}"),
        })),
    }
}

async fn table_info(
    c: &impl GenericClient,
    project: &ProjectId,
    id: &TableId,
) -> Result<TableInfo> {
    let row = c
        .query_opt(
            "SELECT created_at, updated_at FROM storage_tables WHERE project_id = $1 AND id = $2",
            &[&project.as_str(), &id.as_str()],
        )
        .await?
        .ok_or_else(|| Error::NotFound(format!("table {id}")))?;
    let (created_at, updated_at): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    let v = load_version(c, project, id, None).await?;
    Ok(TableInfo {
        project: project.clone(),
        id: id.clone(),
        version: v.version,
        columns: v.columns,
        primary_key: v.primary_key,
        rows: v.rows,
        bytes: v.bytes,
        created_at,
        updated_at,
    })
}

/// Adds a version to a table (creating the table), inside the caller's
/// transaction; used by attempt ends and runs.
pub(crate) async fn apply_table_write(
    tx: &impl GenericClient,
    project: &ProjectId,
    w: &TableWrite,
    job: Option<JobId>,
) -> Result<TableVersion> {
    // Writers of one table take turns (whatever their isolation): the next
    // version is computed from the one before.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&format!(
            "table\u{1f}{}\u{1f}{}",
            project.as_str(),
            w.table.as_str()
        )],
    )
    .await?;
    let current = match load_version(tx, project, &w.table, None).await {
        Ok(v) => Some(v),
        Err(Error::NotFound(_)) => None,
        Err(e) => return Err(e),
    };
    let rules::NextVersion {
        version,
        columns,
        segments,
        rows,
        bytes,
        metadata,
    } = rules::next_version(current.as_ref(), w)?;
    let insert = tx
        .prepare_cached(&format!(
            "INSERT INTO table_versions (project_id, table_id, version, columns, primary_key, segments, rows, bytes, \
             loaded_rows, loaded_bytes, made_by, job_id, note, created_at, metadata) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, {NOW}, $14)"
        ))
        .await?;
    tx.execute(
        &insert,
        &[
            &project.as_str(),
            &w.table.as_str(),
            &(version as i64),
            &strings_json(&columns),
            &strings_json(&w.primary_key),
            &serde_json::to_string(&segments).map_err(|e| Error::Corrupt(e.to_string()))?,
            &(rows as i64),
            &(bytes as i64),
            &(w.loaded_rows as i64),
            &(w.loaded_bytes as i64),
            &w.made_by.as_str(),
            &job.map(|j| j.to_string()),
            &w.note,
            &metadata.map(|m| m.to_string()),
        ],
    )
    .await?;
    let current = tx
        .prepare_cached(&format!(
            "INSERT INTO storage_tables (project_id, id, version, created_at, updated_at) VALUES ($1, $2, $3, {NOW}, {NOW}) \
             ON CONFLICT (project_id, id) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at"
        ))
        .await?;
    tx.execute(
        &current,
        &[&project.as_str(), &w.table.as_str(), &(version as i64)],
    )
    .await?;
    load_version(tx, project, &w.table, Some(version)).await
}

/// Records one file (inside the caller's transaction).
pub(crate) async fn insert_file(
    tx: &impl GenericClient,
    project: &ProjectId,
    f: &NewFile,
    job: Option<JobId>,
) -> Result<FileInfo> {
    let insert = tx
        .prepare_cached(&format!(
            "INSERT INTO files (project_id, name, tags, size, object_key, job_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, {NOW}) RETURNING id"
        ))
        .await?;
    let id: i64 = tx
        .query_one(
            &insert,
            &[
                &project.as_str(),
                &f.name,
                &strings_json(&f.tags),
                &(f.size as i64),
                &f.object_key,
                &job.map(|j| j.to_string()),
            ],
        )
        .await?
        .try_get(0)?;
    let tag = tx
        .prepare_cached(
            "INSERT INTO file_tags (file_id, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .await?;
    for t in &f.tags {
        tx.execute(&tag, &[&id, t]).await?;
    }
    load_file(tx, project, id).await
}

const FILE_COLS: &str = "id, project_id, name, tags, size, object_key, job_id, created_at";

fn file_from_row(r: &Row) -> Result<FileInfo> {
    Ok(FileInfo {
        id: FileId(r.try_get(0)?),
        project: parse(r.try_get(1)?)?,
        name: r.try_get(2)?,
        tags: strings(r.try_get::<_, &str>(3)?)?,
        size: r.try_get::<_, i64>(4)? as u64,
        object_key: r.try_get(5)?,
        job_id: r.try_get::<_, Option<String>>(6)?.map(parse).transpose()?,
        created_at: r.try_get(7)?,
    })
}

async fn load_file(c: &impl GenericClient, project: &ProjectId, id: i64) -> Result<FileInfo> {
    match c
        .query_opt(
            &format!("SELECT {FILE_COLS} FROM files WHERE id = $1 AND project_id = $2"),
            &[&id, &project.as_str()],
        )
        .await?
    {
        Some(r) => file_from_row(&r),
        None => Err(Error::NotFound(format!("file {id}"))),
    }
}

#[async_trait]
impl CatalogStore for PgStore {
    async fn commit_table(
        &self,
        project: &ProjectId,
        write: TableWrite,
    ) -> gantry_store::Result<TableVersion> {
        Ok(serializable!(self, |tx| {
            apply_table_write(&tx, project, &write, None).await?
        })?)
    }

    async fn commit_run(
        &self,
        project: &ProjectId,
        config: Option<&ConfigId>,
        row: Option<&str>,
        new_state: Option<&Value>,
        outputs: &Outputs,
    ) -> gantry_store::Result<()> {
        Ok(serializable!(self, |tx| {
            if let Some(cfg) = config {
                let current = tx
                    .query_opt(
                        "SELECT state FROM configs WHERE project_id = $1 AND id = $2",
                        &[&project.as_str(), &cfg.as_str()],
                    )
                    .await?;
                let Some(current) = current else {
                    return Err(Error::NotFound(format!("configuration {cfg}")));
                };
                let current: String = current.try_get(0)?;
                if let Some(state) = new_state {
                    let state = match row {
                        None => state.clone(),
                        Some(r) => {
                            let mut whole = json(&current)?;
                            if !whole.is_object() {
                                whole = Value::Object(Default::default());
                            }
                            if !whole["rows"].is_object() {
                                whole["rows"] = Value::Object(Default::default());
                            }
                            whole["rows"][r] = state.clone();
                            whole
                        }
                    };
                    tx.execute(
                        "UPDATE configs SET state = $3 WHERE project_id = $1 AND id = $2",
                        &[&project.as_str(), &cfg.as_str(), &state.to_string()],
                    )
                    .await?;
                }
            }
            for w in &outputs.tables {
                apply_table_write(&tx, project, w, None).await?;
            }
            for f in &outputs.files {
                insert_file(&tx, project, f, None).await?;
            }
        })?)
    }

    async fn get_table(
        &self,
        project: &ProjectId,
        id: &TableId,
    ) -> gantry_store::Result<TableInfo> {
        Ok(snapshot!(self, |tx| {
            table_info(&tx, project, id).await?
        })?)
    }

    async fn list_tables(&self, project: &ProjectId) -> gantry_store::Result<Vec<TableInfo>> {
        Ok(snapshot!(self, |tx| {
            let ids = crate::configs::strings(
                &tx,
                "SELECT id FROM storage_tables WHERE project_id = $1 ORDER BY id",
                &[&project.as_str()],
            )
            .await?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.push(table_info(&tx, project, &parse(id)?).await?);
            }
            out
        })?)
    }

    async fn table_versions(
        &self,
        project: &ProjectId,
        id: &TableId,
    ) -> gantry_store::Result<Vec<TableVersion>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {VERSION_COLS} FROM table_versions WHERE project_id = $1 AND table_id = $2 ORDER BY version DESC"
                ),
                &[&project.as_str(), &id.as_str()],
            )
            .await
            .map_err(Error::from)?;
        let out = rows
            .iter()
            .map(version_from_row)
            .collect::<Result<Vec<_>>>()?;
        if out.is_empty() {
            return Err(Error::NotFound(format!("table {id}")).into());
        }
        Ok(out)
    }

    async fn table_version(
        &self,
        project: &ProjectId,
        id: &TableId,
        version: Option<u64>,
    ) -> gantry_store::Result<TableVersion> {
        let c = self.client().await?;
        Ok(load_version(&c, project, id, version).await?)
    }

    async fn pin_version(
        &self,
        project: &ProjectId,
        table: &TableId,
        version: u64,
        pinned: bool,
    ) -> gantry_store::Result<TableVersion> {
        Ok(serializable!(self, |tx| {
            let n = tx
                .execute(
                    "UPDATE table_versions SET pinned = $4 WHERE project_id = $1 AND table_id = $2 AND version = $3",
                    &[&project.as_str(), &table.as_str(), &(version as i64), &pinned],
                )
                .await?;
            if n == 0 {
                return Err(Error::NotFound(format!(
                    "version {version} of table {table}"
                )));
            }
            load_version(&tx, project, table, Some(version)).await?
        })?)
    }

    async fn delete_table(
        &self,
        project: &ProjectId,
        id: &TableId,
    ) -> gantry_store::Result<Vec<String>> {
        Ok(serializable!(self, |tx| {
            let segments = crate::configs::strings(
                &tx,
                "SELECT segments FROM table_versions WHERE project_id = $1 AND table_id = $2",
                &[&project.as_str(), &id.as_str()],
            )
            .await?;
            let n = tx
                .execute(
                    "DELETE FROM storage_tables WHERE project_id = $1 AND id = $2",
                    &[&project.as_str(), &id.as_str()],
                )
                .await?;
            if n == 0 {
                return Err(Error::NotFound(format!("table {id}")));
            }
            tx.execute(
                "DELETE FROM table_versions WHERE project_id = $1 AND table_id = $2",
                &[&project.as_str(), &id.as_str()],
            )
            .await?;
            let mut keys = std::collections::BTreeSet::new();
            for s in segments {
                let segs: Vec<Segment> =
                    serde_json::from_str(&s).map_err(|e| Error::Corrupt(e.to_string()))?;
                keys.extend(segs.into_iter().map(|s| s.key));
            }
            keys.into_iter().collect::<Vec<_>>()
        })?)
    }

    async fn create_file(
        &self,
        project: &ProjectId,
        file: NewFile,
    ) -> gantry_store::Result<FileInfo> {
        Ok(serializable!(self, |tx| {
            insert_file(&tx, project, &file, None).await?
        })?)
    }

    async fn get_file(&self, project: &ProjectId, id: FileId) -> gantry_store::Result<FileInfo> {
        let c = self.client().await?;
        Ok(load_file(&c, project, id.get()).await?)
    }

    async fn list_files(
        &self,
        project: &ProjectId,
        tags: &[String],
        limit: usize,
    ) -> gantry_store::Result<Vec<FileInfo>> {
        let c = self.client().await?;
        let rows = if tags.is_empty() {
            c.query(
                &format!(
                    "SELECT {FILE_COLS} FROM files WHERE project_id = $1 ORDER BY id DESC LIMIT $2"
                ),
                &[&project.as_str(), &(limit as i64)],
            )
            .await
        } else {
            // Files having every tag: count matching tags per file.
            let mut uniq = tags.to_vec();
            uniq.sort();
            uniq.dedup();
            c.query(
                &format!(
                    "SELECT {FILE_COLS} FROM files WHERE project_id = $1 AND id IN \
                     (SELECT file_id FROM file_tags WHERE tag = ANY($3) \
                      GROUP BY file_id HAVING COUNT(*) = $4) ORDER BY id DESC LIMIT $2"
                ),
                &[
                    &project.as_str(),
                    &(limit as i64),
                    &uniq,
                    &(uniq.len() as i64),
                ],
            )
            .await
        }
        .map_err(Error::from)?;
        Ok(rows.iter().map(file_from_row).collect::<Result<Vec<_>>>()?)
    }
}
