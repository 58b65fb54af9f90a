//! Reading tables: a version's segments as one CSV with a header, with
//! column selection, row filters, `changed_since` and a limit. An unfiltered
//! read of a plain table copies the stored bytes as they are.

use crate::csvscan::{Dialect, Encoder, Record, Scanner};
use crate::tables::{key_bytes, key_hash};
use crate::{Result, Storage, StorageError};
use bytes::Bytes;
use futures_util::StreamExt;
use gantry_core::spec::WhereOperator;
use gantry_core::{ProjectId, TableId};
use gantry_store::TableVersion;
use std::collections::{HashMap, HashSet};

/// Which rows and columns to read.
#[derive(Clone, Debug, Default)]
pub struct ReadFilter {
    pub columns: Vec<String>,
    pub where_column: Option<String>,
    pub where_values: Vec<String>,
    pub where_operator: WhereOperator,
    /// Only rows changed at or after this time (ms since the epoch).
    pub changed_since: Option<i64>,
    pub limit: Option<u64>,
}

impl ReadFilter {
    fn is_empty(&self) -> bool {
        self.columns.is_empty()
            && self.where_column.is_none()
            && self.changed_since.is_none()
            && self.limit.is_none()
    }
}

/// Where read bytes go: a file, an HTTP body.
#[async_trait::async_trait]
pub trait Sink: Send {
    async fn write(&mut self, data: Bytes) -> std::io::Result<()>;
}

#[async_trait::async_trait]
impl<W: tokio::io::AsyncWrite + Unpin + Send> Sink for W {
    async fn write(&mut self, data: Bytes) -> std::io::Result<()> {
        tokio::io::AsyncWriteExt::write_all(self, &data).await
    }
}

/// What a read produced.
#[derive(Clone, Debug, Default)]
pub struct ReadStats {
    pub rows: u64,
    pub bytes: u64,
}

impl Storage {
    /// Writes `version` of a table (the current one when `None`) as CSV with a header.
    pub async fn read_table(
        &self,
        project: &ProjectId,
        table: &TableId,
        version: Option<u64>,
        filter: &ReadFilter,
        sink: &mut dyn Sink,
    ) -> Result<(TableVersion, ReadStats)> {
        let v = self.store.table_version(project, table, version).await?;
        let stats = self.read_version(&v, table, filter, sink).await?;
        Ok((v, stats))
    }

    pub(crate) async fn read_version(
        &self,
        v: &TableVersion,
        table: &TableId,
        f: &ReadFilter,
        sink: &mut dyn Sink,
    ) -> Result<ReadStats> {
        let name = table.as_str();
        let bad = |m: String| StorageError::Invalid(format!("{name}: {m}"));
        let out_cols: Vec<usize> = if f.columns.is_empty() {
            (0..v.columns.len()).collect()
        } else {
            f.columns
                .iter()
                .map(|c| {
                    v.columns
                        .iter()
                        .position(|x| x == c)
                        .ok_or_else(|| bad(format!("no column '{c}'")))
                })
                .collect::<Result<_>>()?
        };
        let where_col = match &f.where_column {
            Some(c) => Some(
                v.columns
                    .iter()
                    .position(|x| x == c)
                    .ok_or_else(|| bad(format!("no column '{c}' (where_column)")))?,
            ),
            None => None,
        };
        let mut enc = Encoder::default();
        let mut header = Vec::new();
        enc.record(
            out_cols.iter().map(|&i| v.columns[i].as_bytes()),
            &mut header,
        );
        let mut stats = ReadStats {
            rows: 0,
            bytes: header.len() as u64,
        };
        sink.write(Bytes::from(header)).await?;

        let replaces = replaces_rows(v);
        if byte_copyable(v, f) {
            // Fast path: the stored bytes are already the answer.
            for seg in &v.segments {
                let mut stream = self.object_stream(&seg.key, seg.header).await?;
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk?;
                    stats.bytes += chunk.len() as u64;
                    sink.write(chunk).await?;
                }
                stats.rows += seg.rows;
            }
            return Ok(stats);
        }

        // Which segment holds the newest row of each key (beyond the first segment).
        let mut newest: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut newer_hashes: HashSet<u64> = HashSet::new();
        if replaces {
            for (si, seg) in v.segments.iter().enumerate().skip(1) {
                let idx = seg_positions(&seg.columns, &v.primary_key);
                self.scan_segment(seg, &mut |rec| {
                    newer_hashes.insert(key_hash(&rec, &idx));
                    newest.insert(key_bytes(&rec, &idx), si);
                    Ok(true)
                })
                .await?;
            }
        }
        let values: HashSet<&[u8]> = f.where_values.iter().map(|x| x.as_bytes()).collect();
        let mut remaining = f.limit.unwrap_or(u64::MAX);
        for (si, seg) in v.segments.iter().enumerate() {
            if remaining == 0 {
                break;
            }
            if f.changed_since.is_some_and(|t| seg.created_at < t) {
                continue;
            }
            // Table column i comes from segment column map[i] (None: the
            // column was added later, so the value is empty).
            let map: Vec<Option<usize>> = v
                .columns
                .iter()
                .map(|c| seg.columns.iter().position(|x| x == c))
                .collect();
            let pk_idx = seg_positions(&seg.columns, &v.primary_key);
            let mut buf = Vec::with_capacity(64 * 1024);
            let mut stream = self.object_stream(&seg.key, seg.header).await?;
            let mut scanner = Scanner::new(Dialect::default());
            let row = RowPass {
                replaces,
                newer_hashes: &newer_hashes,
                newest: &newest,
                si,
                pk_idx: &pk_idx,
                map: &map,
                where_col,
                values: &values,
                keep_hits: f.where_operator == WhereOperator::Eq,
                out_cols: &out_cols,
            };
            loop {
                let chunk = stream.next().await.transpose()?;
                let mut on = |rec: Record<'_>, _| -> Result<()> {
                    if remaining > 0 && row.keep(&rec) {
                        row.encode(&rec, &mut enc, &mut buf);
                        stats.rows += 1;
                        remaining -= 1;
                    }
                    Ok(())
                };
                match &chunk {
                    Some(c) => scanner.push(c, &mut on)?,
                    None => scanner.finish(&mut on)?,
                }
                if buf.len() >= 64 * 1024 || (chunk.is_none() && !buf.is_empty()) {
                    stats.bytes += buf.len() as u64;
                    sink.write(Bytes::from(std::mem::take(&mut buf))).await?;
                }
                if chunk.is_none() {
                    break;
                }
            }
        }
        Ok(stats)
    }
}

/// The per-row decisions of one segment's read.
struct RowPass<'a> {
    replaces: bool,
    newer_hashes: &'a HashSet<u64>,
    newest: &'a HashMap<Vec<u8>, usize>,
    si: usize,
    pk_idx: &'a [usize],
    map: &'a [Option<usize>],
    where_col: Option<usize>,
    values: &'a HashSet<&'a [u8]>,
    keep_hits: bool,
    out_cols: &'a [usize],
}

impl RowPass<'_> {
    fn field<'r>(&self, rec: &Record<'r>, i: usize) -> &'r [u8] {
        self.map[i].and_then(|s| rec.get(s)).unwrap_or_default()
    }

    fn keep(&self, rec: &Record<'_>) -> bool {
        // A newer segment holds a row with the same key: this one was replaced.
        if self.replaces && self.newer_hashes.contains(&key_hash(rec, self.pk_idx)) {
            if let Some(&owner) = self.newest.get(&key_bytes(rec, self.pk_idx)) {
                if owner != self.si {
                    return false;
                }
            }
        }
        match self.where_col {
            Some(wc) => self.values.contains(self.field(rec, wc)) == self.keep_hits,
            None => true,
        }
    }

    fn encode(&self, rec: &Record<'_>, enc: &mut Encoder, out: &mut Vec<u8>) {
        enc.record(self.out_cols.iter().map(|&i| self.field(rec, i)), out);
    }
}

/// How a table reached a local file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Staged {
    /// A hard link to the stored object: no byte copied.
    Linked,
    /// Kernel copies of the stored bytes under a header.
    Copied,
    /// Parsed and written row by row (a filter, replaced rows, columns
    /// added later, or a remote object store).
    Streamed,
}

impl Storage {
    /// Writes a plain, unfiltered table to `dest` without parsing it: a hard
    /// link to the stored object when that object is the whole answer (one
    /// segment that starts with its header, on the same filesystem), else kernel copies (the header, then each segment's
    /// rows). `None` when the table or the object store does not allow it;
    /// the caller then streams. Whatever was at `dest` is removed first, so a
    /// link there is never written through.
    pub(crate) async fn copy_plain(
        &self,
        v: &TableVersion,
        f: &ReadFilter,
        dest: &std::path::Path,
    ) -> Result<Option<Staged>> {
        if !byte_copyable(v, f) {
            return Ok(None);
        }
        let Some(files) = v
            .segments
            .iter()
            .map(|s| Some((self.local_file(&s.key)?, s.header)))
            .collect::<Option<Vec<_>>>()
        else {
            return Ok(None);
        };
        let mut header = Vec::new();
        Encoder::default().record(v.columns.iter().map(|c| c.as_bytes()), &mut header);
        let dest = dest.to_path_buf();
        let staged = tokio::task::spawn_blocking(move || -> std::io::Result<Staged> {
            use std::io::{Seek, Write};
            remove_if_any(&dest)?;
            // Objects with a header are written read-only, readable by all
            // (`sink`); older ones are rows alone and never linked.
            if let [(object, header)] = files.as_slice() {
                if *header > 0 && std::fs::hard_link(object, &dest).is_ok() {
                    return Ok(Staged::Linked);
                }
            }
            let mut out = create_new(&dest)?;
            out.write_all(&header)?;
            for (object, skip) in files {
                let mut src = std::fs::File::open(object)?;
                src.seek(std::io::SeekFrom::Start(skip))?;
                // std::io::copy between files uses copy_file_range.
                std::io::copy(&mut src, &mut out)?;
            }
            Ok(Staged::Copied)
        })
        .await
        .map_err(|e| StorageError::Io(std::io::Error::other(e)))??;
        Ok(Some(staged))
    }
}

/// Removes the file at `path`, if there is one.
fn remove_if_any(path: &std::path::Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn create_new(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(path)
}

/// A new, empty file at `path`; whatever was there is removed first, so a
/// staged link to a stored object is never written through.
pub(crate) fn fresh_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    remove_if_any(path)?;
    create_new(path)
}

/// Rows of older segments can be replaced by newer ones (same key).
fn replaces_rows(v: &TableVersion) -> bool {
    !v.primary_key.is_empty() && v.segments.len() > 1
}

/// The answer is the stored bytes under a header: no filter, every segment
/// has the table's columns in order, and no row replaces another.
fn byte_copyable(v: &TableVersion, f: &ReadFilter) -> bool {
    f.is_empty() && !replaces_rows(v) && v.segments.iter().all(|s| s.columns == v.columns)
}

fn seg_positions(columns: &[String], pk: &[String]) -> Vec<usize> {
    pk.iter()
        .filter_map(|k| columns.iter().position(|c| c == k))
        .collect()
}
