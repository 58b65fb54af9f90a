//! Loading tables: CSV in, validated while it streams, written as segments,
//! then planned into a new version (full, incremental, primary key,
//! delete-where, new columns) and committed.

use crate::csvscan::{Dialect, Encoder, Record, Scanner};
use crate::sink::ObjectSink;
use crate::{new_key, Result, Storage, StorageError};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use gantry_core::spec::WhereOperator;
use gantry_core::{ProjectId, TableId};
use gantry_store::{Segment, TableVersion, TableWrite, WriteKind};
use object_store::path::Path;
use object_store::ObjectStore;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::io::Write;

/// How to read one CSV input.
#[derive(Clone, Debug, Default)]
pub struct CsvInput {
    pub dialect: Dialect,
    /// Set for headless input (sliced parts, or a manifest with `columns`).
    pub columns: Option<Vec<String>>,
    pub gzip: bool,
    /// Named in error messages (a file name, "the request body").
    pub name: String,
}

#[derive(Clone, Debug)]
pub struct DeleteWhere {
    pub column: String,
    pub values: Vec<String>,
    pub operator: WhereOperator,
}

#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    pub incremental: bool,
    pub primary_key: Option<Vec<String>>,
    pub delete_where: Option<DeleteWhere>,
    /// What makes the version (an import unless said otherwise).
    pub made_by: gantry_store::MadeBy,
}

/// Segments written for one load, not yet part of any version.
#[derive(Clone, Debug)]
pub struct PreparedLoad {
    pub table: TableId,
    pub columns: Vec<String>,
    pub segments: Vec<Segment>,
}

impl PreparedLoad {
    pub fn rows(&self) -> u64 {
        self.segments.iter().map(|s| s.rows).sum()
    }
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }
}

use gantry_core::time::now_ms;

fn invalid(name: &str, msg: impl std::fmt::Display) -> StorageError {
    StorageError::Invalid(format!("{name}: {msg}"))
}

/// Checks column names: present, unique, plain text.
pub(crate) fn check_columns(name: &str, columns: &[String]) -> Result<()> {
    if columns.is_empty() {
        return Err(invalid(name, "has no columns"));
    }
    let mut seen = HashSet::new();
    for (i, c) in columns.iter().enumerate() {
        if c.trim().is_empty() {
            return Err(invalid(name, format!("column {} has an empty name", i + 1)));
        }
        if c.len() > 256 || c.contains(['\0', '\n', '\r']) {
            return Err(invalid(
                name,
                format!(
                    "column '{}' has an invalid name",
                    c.chars().take(64).collect::<String>()
                ),
            ));
        }
        if !seen.insert(c.as_str()) {
            return Err(invalid(name, format!("column '{c}' appears twice")));
        }
    }
    Ok(())
}

pub(crate) fn key_hash(rec: &Record<'_>, idx: &[usize]) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    for &i in idx {
        rec.get(i).unwrap_or_default().hash(&mut h);
        0x1fu8.hash(&mut h);
    }
    h.finish()
}

pub(crate) fn key_bytes(rec: &Record<'_>, idx: &[usize]) -> Vec<u8> {
    let mut k = Vec::new();
    for &i in idx {
        k.extend_from_slice(rec.get(i).unwrap_or_default());
        k.push(0x1f);
    }
    k
}

/// Tracks primary-key hashes of one load to find duplicate keys: appended
/// while the load streams, in batches, to a thread that spreads them over 256
/// buckets by their top byte (so the scattered writes leave the parsing
/// task), each bucket sorted at the end (cheaper in time and memory than a
/// hash set of millions of keys; small buckets sort in cache, and the cores
/// share them).
struct DupCheck {
    batch: Vec<u64>,
    /// The bucketing thread, started by the first full batch.
    spreader: Option<Spreader>,
    buckets: Vec<Vec<u64>>,
    repeated: HashSet<u64>,
}

struct Spreader {
    tx: std::sync::mpsc::SyncSender<Vec<u64>>,
    thread: std::thread::JoinHandle<Vec<Vec<u64>>>,
}

/// Hashes handed to the bucketing thread at a time.
const DUP_BATCH: usize = 1 << 16;

impl Default for DupCheck {
    fn default() -> Self {
        Self {
            batch: Vec::new(),
            spreader: None,
            buckets: vec![Vec::new(); 256],
            repeated: HashSet::new(),
        }
    }
}

fn spread(buckets: &mut [Vec<u64>], hashes: &[u64]) {
    for &h in hashes {
        buckets[(h >> 56) as usize].push(h);
    }
}

impl DupCheck {
    fn push(&mut self, hash: u64) {
        self.batch.push(hash);
        if self.batch.len() >= DUP_BATCH {
            let full = std::mem::replace(&mut self.batch, Vec::with_capacity(DUP_BATCH));
            let spreader = self.spreader.get_or_insert_with(|| {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u64>>(4);
                let mut buckets = std::mem::take(&mut self.buckets);
                let thread = std::thread::spawn(move || {
                    for hashes in rx {
                        spread(&mut buckets, &hashes);
                    }
                    buckets
                });
                Spreader { tx, thread }
            });
            // The thread only ends when this sender is dropped.
            let _ = spreader.tx.send(full);
        }
    }

    /// Finds the hashes seen more than once (blocking: call off the runtime).
    fn finish(&mut self) {
        if let Some(Spreader { tx, thread }) = self.spreader.take() {
            drop(tx);
            self.buckets = thread
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
        }
        let batch = std::mem::take(&mut self.batch);
        spread(&mut self.buckets, &batch);
        let mut buckets = std::mem::take(&mut self.buckets);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per = buckets.len().div_ceil(threads);
        let found: Vec<Vec<u64>> = std::thread::scope(|s| {
            let handles: Vec<_> = buckets
                .chunks_mut(per)
                .map(|part| {
                    s.spawn(move || {
                        let mut repeated = Vec::new();
                        for b in part {
                            b.sort_unstable();
                            repeated.extend(b.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]));
                            *b = Vec::new();
                        }
                        repeated
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        self.repeated = found.into_iter().flatten().collect();
    }
}

/// Writes one segment from pushed CSV bytes.
struct SegmentWriter {
    name: String,
    /// Taken out while it calls back into `on_record` (never `None` otherwise).
    scanner: Option<Scanner>,
    dialect: Dialect,
    columns: Option<Vec<String>>,
    header_end: Option<u64>,
    pk: Vec<String>,
    pk_idx: Vec<usize>,
    encoder: Encoder,
    upload: ObjectSink,
    rows: u64,
    bytes: u64,
    last_byte: Option<u8>,
    /// Bytes of the header line, once written.
    header: Option<u64>,
    reencoded: Vec<u8>,
    /// The header ended at a `\r`: its `\n` must not start the body.
    strip_lf: bool,
}

impl SegmentWriter {
    fn on_record(&mut self, rec: Record<'_>, end: u64, dups: &mut DupCheck) -> Result<()> {
        let Some(columns) = &self.columns else {
            let cols: Vec<String> = rec
                .iter()
                .map(|f| {
                    String::from_utf8(f.to_vec())
                        .map_err(|_| invalid(&self.name, "the header is not UTF-8"))
                })
                .collect::<Result<_>>()?;
            check_columns(&self.name, &cols)?;
            self.pk_idx = pk_positions(&self.name, &cols, &self.pk)?;
            self.columns = Some(cols);
            self.header_end = Some(end);
            self.strip_lf = true;
            return Ok(());
        };
        if rec.is_blank() && columns.len() > 1 {
            return Err(invalid(
                &self.name,
                format!("row {} is empty", self.rows + 1),
            ));
        }
        if rec.len() != columns.len() {
            return Err(invalid(
                &self.name,
                format!(
                    "row {} has {} fields but there are {} columns",
                    self.rows + 1,
                    rec.len(),
                    columns.len()
                ),
            ));
        }
        self.rows += 1;
        if !self.pk_idx.is_empty() {
            dups.push(key_hash(&rec, &self.pk_idx));
        }
        if !self.dialect.is_default() {
            self.encoder.record(rec.iter(), &mut self.reencoded);
        }
        Ok(())
    }

    /// Feeds decompressed CSV bytes.
    async fn push(&mut self, chunk: Bytes, dups: &mut DupCheck) -> Result<()> {
        let mut scanner = self
            .scanner
            .take()
            .unwrap_or_else(|| Scanner::new(self.dialect));
        let start = scanner.consumed;
        let r = scanner.push(&chunk, &mut |rec, end| self.on_record(rec, end, dups));
        self.scanner = Some(scanner);
        r?;
        if self.dialect.is_default() {
            // The stored bytes are the input's bytes after the header.
            if let Some(h) = self.header_end {
                let mut skip = h.saturating_sub(start).min(chunk.len() as u64) as usize;
                if self.strip_lf && skip < chunk.len() {
                    if chunk[skip] == b'\n' {
                        skip += 1;
                    }
                    self.strip_lf = false;
                }
                self.emit(chunk.slice(skip..)).await?;
            }
        } else {
            let buf = std::mem::take(&mut self.reencoded);
            self.emit(Bytes::from(buf)).await?;
        }
        Ok(())
    }

    async fn emit(&mut self, data: Bytes) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.write_header().await?;
        self.bytes += data.len() as u64;
        self.last_byte = data.last().copied();
        self.upload.write(data).await
    }

    /// Starts the object with the columns as a header line, once they are
    /// known (in Gantry's own quoting, whatever the input's).
    async fn write_header(&mut self) -> Result<()> {
        let (None, Some(columns)) = (self.header, &self.columns) else {
            return Ok(());
        };
        let mut line = Vec::new();
        self.encoder
            .record(columns.iter().map(|c| c.as_bytes()), &mut line);
        self.header = Some(line.len() as u64);
        self.upload.write(Bytes::from(line)).await
    }

    async fn finish(mut self, dups: &mut DupCheck, key: Path) -> Result<(Segment, Vec<String>)> {
        let mut scanner = self
            .scanner
            .take()
            .unwrap_or_else(|| Scanner::new(self.dialect));
        let r = scanner.finish(&mut |rec, end| self.on_record(rec, end, dups));
        r?;
        if !self.dialect.is_default() {
            let buf = std::mem::take(&mut self.reencoded);
            self.emit(Bytes::from(buf)).await?;
        }
        let Some(columns) = self.columns.clone() else {
            self.upload.abort().await;
            return Err(invalid(&self.name, "is empty: a CSV needs a header row"));
        };
        // Segments are concatenated when read: each ends with a line break.
        if self.bytes > 0 && self.last_byte != Some(b'\n') {
            self.emit(Bytes::from_static(b"\n")).await?;
        }
        self.write_header().await?;
        self.upload.finish().await?;
        let segment = Segment {
            key: key.to_string(),
            columns: columns.clone(),
            rows: self.rows,
            bytes: self.bytes,
            header: self.header.unwrap_or_default(),
            created_at: now_ms(),
        };
        Ok((segment, columns))
    }
}

fn pk_positions(name: &str, columns: &[String], pk: &[String]) -> Result<Vec<usize>> {
    pk.iter()
        .map(|k| {
            columns
                .iter()
                .position(|c| c == k)
                .ok_or_else(|| invalid(name, format!("the primary-key column '{k}' is missing")))
        })
        .collect()
}

/// Decompresses gzip (possibly multi-member) as bytes arrive.
struct Gunzip(flate2::write::MultiGzDecoder<Vec<u8>>);

/// Compressed bytes fed to the decoder at a time. Deflate expands at most
/// about 1,032 times, so one step yields at most about 1 MiB, whatever the
/// chunk the input arrived in (a whole 2 MB body of zeros expands to 2 GB).
const GZIP_STEP: usize = 1024;

impl Gunzip {
    fn push(&mut self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        self.0.write_all(data)?;
        self.0.flush()?;
        Ok(std::mem::take(self.0.get_mut()))
    }
    fn finish(&mut self) -> std::io::Result<Vec<u8>> {
        self.0.try_finish()?;
        Ok(std::mem::take(self.0.get_mut()))
    }
}

/// What one load tracks over all its parts.
struct LoadChecks {
    dups: DupCheck,
    budget: ImportBudget,
}

/// What one load may still expand to (plain CSV bytes, after gzip).
pub(crate) struct ImportBudget {
    pub(crate) left: u64,
    pub(crate) max: u64,
}

impl ImportBudget {
    pub(crate) fn new(max: u64) -> Self {
        Self { left: max, max }
    }
    fn take(&mut self, name: &str, n: usize) -> Result<()> {
        match self.left.checked_sub(n as u64) {
            Some(left) => {
                self.left = left;
                Ok(())
            }
            None => Err(StorageError::TooLarge(format!(
                "{name}: expands to more than {} of CSV, this project's cap on an import",
                gantry_core::units::format_size(self.max)
            ))),
        }
    }
}

impl Storage {
    /// Streams one CSV into a new segment object (not yet in any version).
    async fn write_segment<S, E>(
        &self,
        project: &ProjectId,
        table: &TableId,
        mut input: S,
        how: &CsvInput,
        pk: &[String],
        checks: &mut LoadChecks,
    ) -> Result<(Segment, Vec<String>)>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let LoadChecks { dups, budget } = checks;
        let key = new_key(project, "tables", table.as_str());
        let upload = self.sink(&key).await?;
        let mut w = SegmentWriter {
            name: how.name.clone(),
            scanner: Some(Scanner::new(how.dialect)),
            dialect: how.dialect,
            columns: how.columns.clone(),
            header_end: how.columns.as_ref().map(|_| 0),
            pk: pk.to_vec(),
            pk_idx: Vec::new(),
            encoder: Encoder::default(),
            upload,
            rows: 0,
            bytes: 0,
            last_byte: None,
            header: None,
            reencoded: Vec::new(),
            strip_lf: false,
        };
        if let Some(cols) = &how.columns {
            check_columns(&how.name, cols)?;
            w.pk_idx = pk_positions(&how.name, cols, pk)?;
        }
        let mut gz = how
            .gzip
            .then(|| Gunzip(flate2::write::MultiGzDecoder::new(Vec::new())));
        let result: Result<()> = async {
            while let Some(chunk) = input.next().await {
                let chunk =
                    chunk.map_err(|e| invalid(&how.name, format!("cannot be read: {e}")))?;
                match &mut gz {
                    Some(g) => {
                        for step in chunk.chunks(GZIP_STEP) {
                            let plain = g.push(step).map_err(|e| {
                                invalid(&how.name, format!("is not valid gzip: {e}"))
                            })?;
                            if !plain.is_empty() {
                                budget.take(&how.name, plain.len())?;
                                w.push(Bytes::from(plain), dups).await?;
                            }
                        }
                    }
                    None => {
                        budget.take(&how.name, chunk.len())?;
                        w.push(chunk, dups).await?;
                    }
                }
            }
            if let Some(g) = &mut gz {
                let plain = g
                    .finish()
                    .map_err(|e| invalid(&how.name, format!("is not valid gzip: {e}")))?;
                budget.take(&how.name, plain.len())?;
                w.push(Bytes::from(plain), dups).await?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            w.upload.abort().await;
            return Err(e);
        }
        w.finish(dups, key).await
    }

    /// Writes the segments of one load: one CSV, or the parts of a sliced
    /// table (headless, sharing `how.columns`). Duplicate primary keys within
    /// the load are resolved here (the last row wins).
    pub async fn prepare_load<S, E>(
        &self,
        project: &ProjectId,
        table: &TableId,
        parts: Vec<(S, CsvInput)>,
        primary_key: &[String],
    ) -> Result<PreparedLoad>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let mut checks = LoadChecks {
            dups: DupCheck::default(),
            budget: ImportBudget::new(self.import_max_bytes(project).await?),
        };
        let mut segments = Vec::new();
        let mut columns: Option<Vec<String>> = None;
        for (stream, how) in parts {
            let written = self
                .write_segment(project, table, stream, &how, primary_key, &mut checks)
                .await;
            let (seg, cols) = match written {
                Ok(x) => x,
                Err(e) => {
                    self.delete_segments(&segments).await;
                    return Err(e);
                }
            };
            if let Some(c) = &columns {
                if *c != cols {
                    self.delete_segments(&segments).await;
                    return Err(invalid(
                        &how.name,
                        "has other columns than the other parts of the table",
                    ));
                }
            }
            columns = Some(cols);
            segments.push(seg);
        }
        let columns =
            columns.ok_or_else(|| StorageError::Invalid(format!("{table}: no data to load")))?;
        let mut dups = checks.dups;
        let dups = tokio::task::spawn_blocking(move || {
            dups.finish();
            dups
        })
        .await
        .map_err(std::io::Error::other)?;
        if !dups.repeated.is_empty() {
            let merged = self
                .dedupe(
                    project,
                    table,
                    &segments,
                    &columns,
                    primary_key,
                    &dups.repeated,
                )
                .await?;
            self.delete_segments(&segments).await;
            segments = vec![merged];
        }
        // An empty part adds nothing but an object.
        if segments.len() > 1 {
            let (empty, full): (Vec<_>, Vec<_>) = segments.into_iter().partition(|s| s.rows == 0);
            self.delete_segments(&empty).await;
            segments = full;
        }
        Ok(PreparedLoad {
            table: table.clone(),
            columns,
            segments,
        })
    }

    pub(crate) async fn delete_segments(&self, segments: &[Segment]) {
        let keys: Vec<String> = segments.iter().map(|s| s.key.clone()).collect();
        self.delete_objects(&keys).await;
    }

    /// Writes the rows of `segments` (all of `columns`) that `keep(segment
    /// index, row index, record)` accepts to a new segment under `key`,
    /// streaming: the rows of each chunk read go to the upload before the
    /// next is read, so memory stays bounded whatever the segments' size.
    async fn write_rows(
        &self,
        key: &Path,
        columns: &[String],
        created_at: i64,
        segments: &[&Segment],
        keep: &mut (dyn FnMut(usize, u64, &Record<'_>) -> bool + Send),
    ) -> Result<Segment> {
        let mut upload = self.sink(key).await?;
        let mut enc = Encoder::default();
        let mut header = Vec::new();
        enc.record(columns.iter().map(|c| c.as_bytes()), &mut header);
        let header_len = header.len() as u64;
        let (mut rows, mut bytes) = (0u64, 0u64);
        let mut buf = Vec::with_capacity(1 << 20);
        let result: Result<()> = async {
            upload.write(Bytes::from(header)).await?;
            for (si, seg) in segments.iter().enumerate() {
                let mut stream = self.object_stream(&seg.key, seg.header).await?;
                let mut scanner = Scanner::new(Dialect::default());
                let mut row = 0u64;
                loop {
                    let chunk = stream.next().await.transpose()?;
                    let mut on = |rec: Record<'_>, _| -> Result<()> {
                        if keep(si, row, &rec) {
                            enc.record(rec.iter(), &mut buf);
                            rows += 1;
                        }
                        row += 1;
                        Ok(())
                    };
                    match &chunk {
                        Some(c) => scanner.push(c, &mut on)?,
                        None => scanner.finish(&mut on)?,
                    }
                    if !buf.is_empty() {
                        bytes += buf.len() as u64;
                        let full = std::mem::replace(&mut buf, Vec::with_capacity(1 << 20));
                        upload.write(Bytes::from(full)).await?;
                    }
                    if chunk.is_none() {
                        break;
                    }
                }
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                upload.finish().await?;
                Ok(Segment {
                    key: key.to_string(),
                    columns: columns.to_vec(),
                    rows,
                    bytes,
                    header: header_len,
                    created_at,
                })
            }
            Err(e) => {
                upload.abort().await;
                Err(e)
            }
        }
    }

    /// Rewrites a load's segments keeping only the last row of each key.
    async fn dedupe(
        &self,
        project: &ProjectId,
        table: &TableId,
        segments: &[Segment],
        columns: &[String],
        pk: &[String],
        suspects: &HashSet<u64>,
    ) -> Result<Segment> {
        let idx = pk_positions(table.as_str(), columns, pk)?;
        // Pass 1: the last position of each suspect key.
        let mut last: HashMap<Vec<u8>, (usize, u64)> = HashMap::new();
        for (si, seg) in segments.iter().enumerate() {
            let mut row = 0u64;
            self.scan_segment(seg, &mut |rec| {
                if suspects.contains(&key_hash(&rec, &idx)) {
                    last.insert(key_bytes(&rec, &idx), (si, row));
                }
                row += 1;
                Ok(true)
            })
            .await?;
        }
        // Pass 2: write every row that is not overtaken by a later one.
        let key = new_key(project, "tables", table.as_str());
        let all: Vec<&Segment> = segments.iter().collect();
        self.write_rows(&key, columns, now_ms(), &all, &mut |si, row, rec| {
            !suspects.contains(&key_hash(rec, &idx))
                || last.get(&key_bytes(rec, &idx)) == Some(&(si, row))
        })
        .await
    }

    /// Calls `f` with every record of a segment; `f` returns false to stop.
    pub(crate) async fn scan_segment(
        &self,
        seg: &Segment,
        f: &mut (dyn FnMut(Record<'_>) -> Result<bool> + Send),
    ) -> Result<()> {
        let mut stream = self.object_stream(&seg.key, seg.header).await?;
        let mut scanner = Scanner::new(Dialect::default());
        let mut stop = false;
        let mut on = |rec: Record<'_>, _end: u64| -> Result<()> {
            if !stop && !f(rec)? {
                stop = true;
            }
            Ok(())
        };
        while let Some(chunk) = stream.next().await {
            scanner.push(&chunk?, &mut on)?;
        }
        scanner.finish(&mut on)
    }

    /// Turns prepared segments into the next version's write, applying the
    /// load semantics against the table as it is now.
    pub async fn plan_load(
        &self,
        project: &ProjectId,
        load: PreparedLoad,
        opts: &LoadOptions,
    ) -> Result<(TableWrite, Vec<Segment>)> {
        let current = match self.store.table_version(project, &load.table, None).await {
            Ok(v) => Some(v),
            Err(gantry_store::StoreError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let name = load.table.to_string();
        let pk = match (&opts.primary_key, &current) {
            (Some(pk), _) => pk.clone(),
            (None, Some(cur)) => cur.primary_key.clone(),
            (None, None) => Vec::new(),
        };
        pk_positions(&name, &load.columns, &pk)?;
        let (loaded_rows, loaded_bytes) = (load.rows(), load.bytes());
        let mut write = TableWrite {
            table: load.table.clone(),
            kind: WriteKind::Replace,
            columns: load.columns.clone(),
            primary_key: pk.clone(),
            segments: load.segments.clone(),
            loaded_rows,
            loaded_bytes,
            made_by: opts.made_by,
            note: None,
            metadata: None,
        };
        // A full load, or the first load of a table (nothing to delete from).
        let Some(cur) = current.filter(|_| opts.incremental) else {
            return Ok((write, Vec::new()));
        };
        if !cur.primary_key.is_empty() && !pk.is_empty() && cur.primary_key != pk {
            return Err(invalid(
                &name,
                format!(
                    "the load's primary key {:?} differs from the table's {:?}",
                    pk, cur.primary_key
                ),
            ));
        }
        let mut columns = cur.columns.clone();
        for c in &load.columns {
            if !columns.contains(c) {
                columns.push(c.clone());
            }
        }
        write.columns = columns;
        let mut fresh = Vec::new();
        match &opts.delete_where {
            None => write.kind = WriteKind::Append,
            Some(dw) => {
                let kept = self.delete_rows(project, &load.table, &cur, dw).await?;
                fresh = kept
                    .iter()
                    .filter(|s| !cur.segments.iter().any(|c| c.key == s.key))
                    .cloned()
                    .collect();
                let mut segments = kept;
                segments.extend(load.segments.iter().cloned());
                write.segments = segments;
                write.kind = WriteKind::Rewrite {
                    base_version: cur.version,
                };
            }
        }
        Ok((write, fresh))
    }

    /// Copies of `version`'s segments without the rows `dw` matches
    /// (segments with no match are kept as they are).
    async fn delete_rows(
        &self,
        project: &ProjectId,
        table: &TableId,
        version: &TableVersion,
        dw: &DeleteWhere,
    ) -> Result<Vec<Segment>> {
        let values: HashSet<&[u8]> = dw.values.iter().map(|v| v.as_bytes()).collect();
        let matches = |v: &[u8]| match dw.operator {
            WhereOperator::Eq => values.contains(v),
            WhereOperator::Ne => !values.contains(v),
        };
        if !version.columns.contains(&dw.column) {
            return Err(invalid(
                table.as_str(),
                format!(
                    "delete_where_column '{}' is not a column of the table",
                    dw.column
                ),
            ));
        }
        let mut out = Vec::new();
        for seg in &version.segments {
            let Some(ci) = seg.columns.iter().position(|c| *c == dw.column) else {
                // The column did not exist then: its value is empty.
                if matches(b"") {
                    continue;
                }
                out.push(seg.clone());
                continue;
            };
            let mut hit = false;
            self.scan_segment(seg, &mut |rec| {
                hit = matches(rec.get(ci).unwrap_or_default());
                Ok(!hit)
            })
            .await?;
            if !hit {
                out.push(seg.clone());
                continue;
            }
            // Only segments with a matching row are rewritten (the scan above
            // stops at the first one).
            let key = new_key(project, "tables", table.as_str());
            let kept = self
                .write_rows(
                    &key,
                    &seg.columns,
                    seg.created_at,
                    &[seg],
                    &mut |_, _, rec| !matches(rec.get(ci).unwrap_or_default()),
                )
                .await?;
            if kept.rows > 0 {
                out.push(kept);
            } else {
                let _ = self.objects.delete(&key).await;
            }
        }
        Ok(out)
    }

    /// Loads one CSV stream into a table as a new version (an import).
    pub async fn import<S, E>(
        &self,
        project: &ProjectId,
        table: &TableId,
        input: S,
        how: CsvInput,
        opts: LoadOptions,
    ) -> Result<TableVersion>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let pk = match &opts.primary_key {
            Some(pk) => pk.clone(),
            None => match self.store.table_version(project, table, None).await {
                Ok(v) => v.primary_key,
                Err(_) => Vec::new(),
            },
        };
        let load = self
            .prepare_load(project, table, vec![(input, how)], &pk)
            .await?;
        let mut fresh = load.segments.clone();
        let committed = async {
            let (write, rewritten) = self.plan_load(project, load, &opts).await?;
            fresh.extend(rewritten);
            Ok::<_, StorageError>(self.store.commit_table(project, write).await?)
        }
        .await;
        if committed.is_err() {
            self.delete_segments(&fresh).await;
        }
        committed
    }

    /// Makes an old version the newest one again (a new version sharing its segments).
    pub async fn restore(
        &self,
        project: &ProjectId,
        table: &TableId,
        version: u64,
    ) -> Result<TableVersion> {
        let old = self
            .store
            .table_version(project, table, Some(version))
            .await?;
        let write = TableWrite {
            table: table.clone(),
            kind: WriteKind::Replace,
            columns: old.columns,
            primary_key: old.primary_key,
            loaded_rows: old.rows,
            loaded_bytes: old.bytes,
            segments: old.segments,
            made_by: gantry_store::MadeBy::Restore,
            note: Some(format!("restored from version {version}")),
            metadata: old.metadata,
        };
        Ok(self.store.commit_table(project, write).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gzip bomb (50 MiB of zeros in ~50 KB) expands at most about 1 MiB
    /// per step, whatever size the compressed chunk arrived in.
    #[test]
    fn gzip_expands_a_bounded_amount_per_step() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..50 {
            enc.write_all(&zeros).expect("write");
        }
        let gz = enc.finish().expect("finish");
        assert!(gz.len() < 100_000, "{}", gz.len());
        let mut g = Gunzip(flate2::write::MultiGzDecoder::new(Vec::new()));
        let (mut total, mut most) = (0usize, 0usize);
        for step in gz.chunks(GZIP_STEP) {
            let out = g.push(step).expect("push");
            total += out.len();
            most = most.max(out.len());
        }
        total += g.finish().expect("finish").len();
        assert_eq!(total, 50 << 20);
        assert!(
            most <= 1100 * GZIP_STEP,
            "one step expanded to {most} bytes"
        );
    }

    #[test]
    fn the_import_budget_refuses_past_the_cap() {
        let mut b = ImportBudget::new(10);
        b.take("x", 6).expect("under");
        b.take("x", 4).expect("at");
        let e = b.take("x", 1).expect_err("past");
        assert!(matches!(e, StorageError::TooLarge(_)), "{e}");
    }
}
