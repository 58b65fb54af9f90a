//! `gantry run --stage`: a spec's input mapping staged from a server's
//! Storage into a local data folder through the API (a read-only token is
//! enough), with the manifests a job's container gets.

use crate::client::Client;
use crate::commands::enc;
use anyhow::{anyhow, Context};
use futures_util::StreamExt;
use gantry_core::spec::{check_file_name, InputMapping, WhereOperator};
use gantry_core::TableId;
use serde_json::json;
use std::io::Write;
use std::path::Path;

/// Stages every mapped table and file; says what it staged.
pub async fn stage_inputs(c: &Client, input: &InputMapping, data: &Path) -> anyhow::Result<String> {
    let (mut tables, mut files) = (0, 0);
    for (i, m) in input.tables.iter().enumerate() {
        let at = format!("storage.input.tables[{i}]");
        let table: TableId = m.source.parse().map_err(|e| anyhow!("{at}.source: {e}"))?;
        let dest = m
            .destination
            .clone()
            .unwrap_or_else(|| format!("{}.csv", m.source));
        check_file_name(&dest).map_err(|e| anyhow!("{at}.destination: {e}"))?;
        let mut q: Vec<(&str, String)> = Vec::new();
        if !m.columns.is_empty() {
            q.push(("columns", m.columns.join(",")));
        }
        if let Some(w) = &m.where_column {
            q.push(("where_column", w.clone()));
            q.push(("where_values", m.where_values.join(",")));
        }
        if m.where_operator == Some(WhereOperator::Ne) {
            q.push(("where_operator", "ne".into()));
        }
        if let Some(cs) = &m.changed_since {
            q.push(("changed_since", cs.clone()));
        }
        if let Some(l) = m.limit {
            q.push(("limit", l.to_string()));
        }
        let query = q
            .iter()
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        let id = enc(table.as_str());
        let info = c.get(&format!("/v1/tables/{id}")).await?;
        let versions = c.get(&format!("/v1/tables/{id}/versions")).await?;
        let current = versions["versions"]
            .get(0)
            .cloned()
            .ok_or_else(|| anyhow!("{at}: table {table} has no version"))?;
        let resp = c
            .get_stream(&format!("/v1/tables/{id}/export?{query}"))
            .await?;
        let path = data.join("in/tables").join(&dest);
        download(resp, &path).await?;
        let columns: Vec<String> = if m.columns.is_empty() {
            serde_json::from_value(current["columns"].clone()).unwrap_or_default()
        } else {
            m.columns.clone()
        };
        let (table_meta, column_meta) = gantry_core::metadata::for_input(
            current.get("metadata").filter(|m| !m.is_null()),
            &columns,
        );
        let manifest = json!({
            "id": table.as_str(),
            "name": table.name(),
            "primary_key": current["primary_key"],
            "columns": columns,
            "created": info["created_at"],
            "last_import_date": current["created_at"],
            "last_change_date": current["created_at"],
            "rows_count": current["rows"],
            "data_size_bytes": current["bytes"],
            "is_alias": false,
            "attributes": [],
            "metadata": table_meta,
            "column_metadata": column_meta,
        });
        write_new(
            &data.join("in/tables").join(format!("{dest}.manifest")),
            manifest.to_string().as_bytes(),
        )?;
        tables += 1;
    }
    for (i, m) in input.files.iter().enumerate() {
        if m.tags.is_empty() {
            anyhow::bail!("storage.input.files[{i}]: name at least one tag");
        }
        let mut query: Vec<String> = m.tags.iter().map(|t| format!("tag={}", enc(t))).collect();
        query.push(format!("limit={}", m.limit.unwrap_or(100).min(10_000)));
        let list = c.get(&format!("/v1/files?{}", query.join("&"))).await?;
        for f in list["files"].as_array().into_iter().flatten() {
            let (fid, name) = (
                f["id"].as_i64().unwrap_or_default(),
                f["name"].as_str().unwrap_or_default(),
            );
            let local = format!("{fid}_{name}");
            // The server's names are checked like any other input.
            check_file_name(&local).map_err(|e| anyhow!("file {fid}: {e}"))?;
            let resp = c.get_stream(&format!("/v1/files/{fid}/content")).await?;
            download(resp, &data.join("in/files").join(&local)).await?;
            let manifest = json!({
                "id": fid, "name": name, "tags": f["tags"], "size_bytes": f["size"],
                "created": f["created_at"], "is_public": false, "is_encrypted": false,
            });
            write_new(
                &data.join("in/files").join(format!("{local}.manifest")),
                manifest.to_string().as_bytes(),
            )?;
            files += 1;
        }
    }
    Ok(format!("{tables} tables and {files} files"))
}

/// A fresh file at `path` (whatever was there, even a link, is removed
/// first, never written through).
fn create_new(path: &Path) -> anyhow::Result<std::fs::File> {
    if path.symlink_metadata().is_ok() {
        std::fs::remove_file(path).with_context(|| format!("cannot replace {}", path.display()))?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    create_new(path)?.write_all(bytes)?;
    Ok(())
}

async fn download(resp: reqwest::Response, path: &Path) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(create_new(path)?);
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        out.write_all(&chunk.context("the download broke off")?)?;
    }
    out.flush()?;
    Ok(())
}

/// Packs `out/` (its `state.json`, `tables/` and `files/`) for
/// `POST /v1/runs` into an unnamed temporary file: per entry a 4-byte path
/// length, the path, an 8-byte size and the bytes; first the output mapping
/// (`mapping.json`) when given. Links and special files are refused, as a
/// job's outputs are.
pub fn pack_outputs(
    out: &Path,
    mapping: Option<&gantry_core::spec::OutputMapping>,
) -> anyhow::Result<std::fs::File> {
    use std::io::Seek;
    let mut file = tempfile::tempfile().context("cannot make a temporary file")?;
    {
        let mut w = std::io::BufWriter::new(&mut file);
        let entry = |w: &mut std::io::BufWriter<&mut std::fs::File>,
                     name: &str,
                     size: u64,
                     body: &mut dyn std::io::Read|
         -> anyhow::Result<()> {
            w.write_all(&(name.len() as u32).to_be_bytes())?;
            w.write_all(name.as_bytes())?;
            w.write_all(&size.to_be_bytes())?;
            let copied = std::io::copy(&mut std::io::Read::take(body, size), w)?;
            anyhow::ensure!(copied == size, "{name} changed while it was packed");
            Ok(())
        };
        if let Some(m) = mapping {
            let text = serde_json::to_vec(m)?;
            entry(
                &mut w,
                "mapping.json",
                text.len() as u64,
                &mut text.as_slice(),
            )?;
        }
        let mut files = Vec::new();
        let state = out.join("state.json");
        if state.symlink_metadata().is_ok() {
            files.push(("state.json".to_string(), state));
        }
        for top in ["tables", "files"] {
            walk(&out.join(top), top, 0, &mut files)?;
        }
        for (name, path) in files {
            let meta = path.symlink_metadata()?;
            anyhow::ensure!(
                meta.is_file(),
                "out/{name} is not a regular file; nothing was committed"
            );
            let mut f = std::fs::File::open(&path)?;
            entry(&mut w, &name, meta.len(), &mut f)?;
        }
        w.flush()?;
    }
    file.rewind()?;
    Ok(file)
}

fn walk(
    dir: &Path,
    name: &str,
    depth: usize,
    out: &mut Vec<(String, std::path::PathBuf)>,
) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let mut list: Vec<_> = entries.collect::<Result<_, _>>()?;
    list.sort_by_key(|e| e.file_name());
    for e in list {
        let child = format!("{name}/{}", e.file_name().to_string_lossy());
        let t = e.file_type()?;
        if t.is_dir() {
            anyhow::ensure!(depth < 1, "out/{child}: folders deeper than a sliced table");
            walk(&e.path(), &child, depth + 1, out)?;
        } else {
            out.push((child, e.path()));
        }
    }
    Ok(())
}
