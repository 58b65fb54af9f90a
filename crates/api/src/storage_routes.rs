//! Tables and files: import/export stream (no body limit), versions, restore.

use crate::auth::Auth;
use crate::doc::{ErrorBody, NameParam, TableParam};
use crate::extract::ApiPath;
use crate::state::AppState;
use crate::ApiError;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use futures_util::StreamExt;
use gantry_control::{NewTable, Upload};
use gantry_core::FileId;
use gantry_storage::csvscan::Dialect;
use gantry_storage::{CsvInput, LoadOptions, Sink};
use gantry_store::{FileInfo, TableInfo, TableVersion};
use gantry_wire::{FileList, FileView, TableList, TableView, VersionList, VersionView};
use serde_json::Value;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tables, create_table))
        .routes(routes!(get_table, delete_table))
        .routes(routes!(import_table).layer(DefaultBodyLimit::disable()))
        .routes(routes!(export_table))
        .routes(routes!(table_versions))
        .routes(routes!(restore_table))
        .routes(routes!(compact_table))
        .routes(routes!(pin_version))
        .routes(routes!(list_files, upload_file).layer(DefaultBodyLimit::disable()))
        .routes(routes!(get_file))
        .routes(routes!(file_content))
        .routes(routes!(commit_run).layer(DefaultBodyLimit::disable()))
}

/// Most entries and bytes a committed run may send (as a job's `out/`).
const MAX_RUN_ENTRIES: usize = 10_000;
const MAX_RUN_BYTES: u64 = 100 << 30;

/// Removes a run's scratch folder however the request ends.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `POST /v1/runs?config=ID&row=ROW`: what `gantry run --commit` produced,
/// stored as a job would store it. The body is a sequence of entries of
/// `out/` — a 4-byte big-endian path length, the path (`state.json`,
/// `tables/...` or `files/...`), an 8-byte big-endian size, the bytes — and,
/// for a run of no configuration, first a `mapping.json` entry with the
/// spec's output mapping. Nothing in it is trusted: paths are checked, the
/// folder is surveyed and read like a container's `out/`.
#[utoipa::path(post, path = "/v1/runs", tag = "tables", security(("bearer" = [])), params(("config" = Option<NameParam>, Query, description = "the configuration the run was of"), ("row" = Option<String>, Query, description = "its row")), request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "entries of out/: 4-byte length, path, 8-byte size, bytes"), responses((status = 201, description = "stored as a job would", body = gantry_wire::RunCommitted), (status = 400, description = "invalid entries or outputs", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "no such configuration in this project", body = ErrorBody), (status = 413, description = "too large", body = ErrorBody), (status = 507, description = "the object store is full", body = ErrorBody)))]
async fn commit_run(
    State(s): State<AppState>,
    Auth(p): Auth,
    RawQuery(q): RawQuery,
    body: Body,
) -> Result<(StatusCode, Json<gantry_wire::RunCommitted>), ApiError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let q = pairs(&q);
    let config = one(&q, "config")
        .map(crate::extract::config_id)
        .transpose()?;
    let row = one(&q, "row").map(str::to_string);
    let spec = match &config {
        Some(c) => {
            let stored = s.store.get_config(&p.project, c).await?;
            let (_, spec) = gantry_core::Spec::from_value(stored.spec)?;
            Some(spec)
        }
        None => None,
    };
    let scratch =
        Scratch(std::env::temp_dir().join(format!("gantry-run-{}", gantry_core::JobId::new())));
    let out = scratch.0.join("out");
    for d in ["tables", "files"] {
        tokio::fs::create_dir_all(out.join(d))
            .await
            .map_err(ApiError::internal)?;
    }
    let stream = body
        .into_data_stream()
        .map(|r| r.map_err(std::io::Error::other));
    let mut reader = tokio_util_reader(stream);
    let bad = |m: String| ApiError::invalid(format!("run outputs: {m}"));
    let (mut entries, mut total, mut sent_mapping) = (0usize, 0u64, None);
    loop {
        let mut len = [0u8; 4];
        match reader.read_exact(&mut len).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(bad(e.to_string())),
        }
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 || len > 1024 {
            return Err(bad("a path must be 1-1024 bytes".into()));
        }
        let mut path = vec![0u8; len];
        reader
            .read_exact(&mut path)
            .await
            .map_err(|e| bad(e.to_string()))?;
        let path = String::from_utf8(path).map_err(|_| bad("a path is not UTF-8".into()))?;
        let mut size = [0u8; 8];
        reader
            .read_exact(&mut size)
            .await
            .map_err(|e| bad(e.to_string()))?;
        let size = u64::from_be_bytes(size);
        entries += 1;
        total = total.saturating_add(size);
        if entries > MAX_RUN_ENTRIES || total > MAX_RUN_BYTES {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "a run may send at most {MAX_RUN_ENTRIES} entries and {MAX_RUN_BYTES} bytes"
                ),
            ));
        }
        let mut part = (&mut reader).take(size);
        if path == "mapping.json" && entries == 1 {
            let mut text = Vec::new();
            part.read_to_end(&mut text)
                .await
                .map_err(|e| bad(e.to_string()))?;
            let mapping: gantry_core::spec::OutputMapping =
                serde_json::from_slice(&text).map_err(|e| bad(format!("mapping.json: {e}")))?;
            sent_mapping = Some(mapping);
            continue;
        }
        let allowed = path == "state.json"
            || path.starts_with("tables/") && path.len() > 7
            || path.starts_with("files/") && path.len() > 6;
        gantry_core::spec::check_relative_path(&path).map_err(bad)?;
        if !allowed
            || path
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
            || path.split('/').count() > 3
        {
            return Err(bad(format!("'{path}' is not a place in out/")));
        }
        let target = out.join(&path);
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| bad(format!("{path}: {e}")))?;
        }
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
            .await
            .map_err(|e| bad(format!("{path}: {e}")))?;
        let copied = tokio::io::copy(&mut part, &mut file)
            .await
            .map_err(|e| bad(e.to_string()))?;
        if copied != size {
            return Err(bad(format!("{path}: the body ended early")));
        }
        file.flush().await.map_err(ApiError::internal)?;
    }
    let (mapping, bucket) = match (&spec, &row) {
        (Some(spec), Some(r)) => {
            let Some(found) = spec.rows.iter().find(|x| x.id == *r) else {
                return Err(ApiError::invalid(format!(
                    "no row '{r}' in this configuration"
                )));
            };
            (
                spec.for_row(found).storage.output,
                config.as_ref().map(|c| c.to_string()),
            )
        }
        (Some(spec), None) => (
            spec.storage.output.clone(),
            config.as_ref().map(|c| c.to_string()),
        ),
        (None, _) => (sent_mapping.unwrap_or_default(), None),
    };
    let bucket = bucket.unwrap_or_else(|| "adhoc".into());
    let mut collected = s
        .storage
        .collect_outputs(&p.project, &mapping, &scratch.0, &bucket, true)
        .await?;
    let who = format!("gantry run, token {} ({})", p.token_id, p.token_desc);
    for w in &mut collected.outputs.tables {
        w.made_by = gantry_store::MadeBy::Run;
        w.note = Some(match &w.note {
            Some(n) => format!("{n} by {who}"),
            None => format!("by {who}"),
        });
    }
    let state = match gantry_worker_state(&scratch.0) {
        Ok(s) => s,
        Err(m) => {
            s.storage.discard(&collected).await;
            return Err(bad(m));
        }
    };
    let committed = s
        .store
        .commit_run(
            &p.project,
            config.as_ref(),
            row.as_deref(),
            if config.is_some() {
                state.as_ref()
            } else {
                None
            },
            &collected.outputs,
        )
        .await;
    if let Err(e) = committed {
        s.storage.discard(&collected).await;
        return Err(e.into());
    }
    let tables: Vec<String> = collected
        .outputs
        .tables
        .iter()
        .map(|w| w.table.to_string())
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(gantry_wire::RunCommitted {
            tables,
            files: collected.outputs.files.len(),
            state: config.is_some() && state.is_some(),
            made_by: gantry_store::MadeBy::Run.as_str().to_string(),
        }),
    ))
}

/// `out/state.json` as a job's is read: a bounded JSON object, or nothing.
fn gantry_worker_state(dir: &std::path::Path) -> Result<Option<Value>, String> {
    let path = dir.join("out/state.json");
    let Ok(meta) = path.symlink_metadata() else {
        return Ok(None);
    };
    if !meta.is_file() || meta.len() > 16 << 20 {
        return Err("state.json must be a file of at most 16 MiB".into());
    }
    let text = std::fs::read(&path).map_err(|e| e.to_string())?;
    match serde_json::from_slice::<Value>(&text) {
        Ok(v @ Value::Object(_)) => Ok(Some(v)),
        _ => Err("state.json must be a JSON object".into()),
    }
}

/// Query pairs; keys may repeat (`?tag=a&tag=b`).
fn pairs(q: &Option<String>) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn one<'a>(p: &'a [(String, String)], key: &str) -> Option<&'a str> {
    p.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn all(p: &[(String, String)], key: &str) -> Vec<String> {
    p.iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .collect()
}

fn flag(p: &[(String, String)], key: &str) -> Result<bool, ApiError> {
    match one(p, key) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(v) => Err(ApiError::invalid(format!(
            "{key} must be true or false, not '{v}'"
        ))),
    }
}

fn list(v: Option<&str>) -> Vec<String> {
    v.map(|s| {
        s.split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

pub(crate) fn table_id(s: &str) -> Result<gantry_core::TableId, ApiError> {
    s.parse().map_err(ApiError::invalid)
}

fn table_view(t: TableInfo) -> TableView {
    t.into()
}

fn version_view(v: TableVersion) -> VersionView {
    v.into()
}

fn file_view(f: FileInfo) -> FileView {
    f.into()
}

#[utoipa::path(get, path = "/v1/tables", tag = "tables", security(("bearer" = [])), responses((status = 200, description = "the tables", body = TableList), (status = 401, description = "no valid token", body = ErrorBody)))]
async fn list_tables(
    State(s): State<AppState>,
    Auth(p): Auth,
) -> Result<Json<TableList>, ApiError> {
    let tables = s
        .store
        .list_tables(&p.project)
        .await?
        .into_iter()
        .map(table_view)
        .collect();
    Ok(Json(TableList { tables }))
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateTable {
    #[schema(value_type = TableParam)]
    id: String,
    columns: Vec<String>,
    #[serde(default)]
    primary_key: Vec<String>,
}

/// Creates an empty table (version 1 with no rows) with its columns and key.
#[utoipa::path(post, path = "/v1/tables", tag = "tables", security(("bearer" = [])), request_body = CreateTable, responses((status = 201, description = "made (version 1, no rows)", body = TableView), (status = 400, description = "invalid id or columns", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 409, description = "conflict", body = ErrorBody), (status = 413, description = "the header row is over the project's import cap (import_max_bytes)", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody)))]
async fn create_table(
    State(s): State<AppState>,
    Auth(p): Auth,
    crate::extract::ApiJson(body): crate::extract::ApiJson<CreateTable>,
) -> Result<(StatusCode, Json<TableView>), ApiError> {
    let table = table_id(&body.id)?;
    let made = s
        .control()
        .create_table(
            &p.project,
            NewTable {
                id: table,
                columns: body.columns,
                primary_key: body.primary_key,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(table_view(made))))
}

#[utoipa::path(get, path = "/v1/tables/{id}", tag = "tables", security(("bearer" = [])), params(("id" = TableParam, Path, description = "the table's id")), responses((status = 200, description = "the table", body = TableView), (status = 400, description = "invalid id", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "no such table in this project", body = ErrorBody)))]
async fn get_table(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TableView>, ApiError> {
    Ok(Json(table_view(
        s.store.get_table(&p.project, &table_id(&id)?).await?,
    )))
}

#[utoipa::path(delete, path = "/v1/tables/{id}", tag = "tables", security(("bearer" = [])), params(("id" = TableParam, Path, description = "the table's id")), responses((status = 204, description = "deleted with its versions"), (status = 400, description = "invalid id", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "no such table in this project", body = ErrorBody)))]
async fn delete_table(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    s.control()
        .delete_table(&p.project, &table_id(&id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/tables/{id}/versions", tag = "tables", security(("bearer" = [])), params(("id" = TableParam, Path, description = "the table's id")), responses((status = 200, description = "its versions, newest first", body = VersionList), (status = 400, description = "invalid id", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "no such table in this project", body = ErrorBody)))]
async fn table_versions(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<VersionList>, ApiError> {
    let versions = s
        .store
        .table_versions(&p.project, &table_id(&id)?)
        .await?
        .into_iter()
        .map(version_view)
        .collect();
    Ok(Json(VersionList { versions }))
}

#[utoipa::path(post, path = "/v1/tables/{id}/restore", tag = "tables", security(("bearer" = [])), params(("id" = TableParam, Path, description = "the table's id"), ("version" = u64, Query, description = "the version to make current again")), responses((status = 201, description = "a new version equal to it", body = VersionView), (status = 400, description = "invalid id or version", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "no such table or version in this project", body = ErrorBody)))]
async fn restore_table(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
    RawQuery(q): RawQuery,
) -> Result<(StatusCode, Json<VersionView>), ApiError> {
    let q = pairs(&q);
    let version: u64 = one(&q, "version")
        .ok_or_else(|| ApiError::invalid("name the version to restore: ?version=N"))?
        .parse()
        .map_err(|_| ApiError::invalid("version must be a number"))?;
    let v = s
        .storage
        .restore(&p.project, &table_id(&id)?, version)
        .await?;
    Ok((StatusCode::CREATED, Json(version_view(v))))
}

/// POST pins a version (retention never removes it); DELETE unpins it.
#[utoipa::path(method(post, delete), path = "/v1/tables/{id}/versions/{version}/pin", tag = "tables", security(("bearer" = [])), params(("id" = TableParam, Path, description = "the table's id"), ("version" = u64, Path, description = "the version")), responses((status = 200, description = "pinned (POST) or unpinned (DELETE)", body = VersionView), (status = 400, description = "invalid id", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "no such table or version in this project", body = ErrorBody)))]
async fn pin_version(
    State(s): State<AppState>,
    Auth(p): Auth,
    method: axum::http::Method,
    ApiPath((id, version)): ApiPath<(String, u64)>,
) -> Result<Json<VersionView>, ApiError> {
    let pinned = method == axum::http::Method::POST;
    let v = s
        .store
        .pin_version(&p.project, &table_id(&id)?, version, pinned)
        .await?;
    Ok(Json(version_view(v)))
}

/// Rewrites the current version into one segment (a new version, same
/// rows); 200 with the current version when it is one segment already.
#[utoipa::path(post, path = "/v1/tables/{id}/compact", tag = "tables", security(("bearer" = [])), params(("id" = TableParam, Path, description = "the table's id")), responses((status = 201, description = "a compacted version", body = VersionView), (status = 200, description = "nothing to compact: the current version", body = VersionView), (status = 400, description = "invalid id", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "no such table in this project", body = ErrorBody)))]
async fn compact_table(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<VersionView>), ApiError> {
    let table = table_id(&id)?;
    match s.storage.compact(&p.project, &table).await? {
        Some(v) => {
            let mut view = version_view(v);
            view.compacted = Some(true);
            Ok((StatusCode::CREATED, Json(view)))
        }
        None => {
            let mut view = version_view(s.store.table_version(&p.project, &table, None).await?);
            view.compacted = Some(false);
            Ok((StatusCode::OK, Json(view)))
        }
    }
}

fn one_byte(q: &[(String, String)], key: &str, default: u8) -> Result<u8, ApiError> {
    match one(q, key) {
        None => Ok(default),
        Some(v) if v.len() == 1 => Ok(v.as_bytes()[0]),
        Some(v) => Err(ApiError::invalid(format!(
            "{key} must be one character, not '{v}'"
        ))),
    }
}

#[utoipa::path(post, path = "/v1/tables/{id}/import", tag = "tables", security(("bearer" = [])), params(("id" = TableParam, Path, description = "the table's id"), ("incremental" = Option<bool>, Query, description = "append (and merge by primary key)"), ("primary_key" = Option<String>, Query, description = "comma-separated"), ("gzip" = Option<bool>, Query, description = "the body is gzip"), ("delimiter" = Option<String>, Query, description = "one character"), ("enclosure" = Option<String>, Query, description = "one character")), request_body(content = String, content_type = "text/csv", description = "CSV with a header row"), responses((status = 201, description = "the new version", body = VersionView), (status = 400, description = "invalid CSV or options", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 413, description = "too large", body = ErrorBody), (status = 507, description = "the object store is full", body = ErrorBody)))]
async fn import_table(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<VersionView>), ApiError> {
    let table = table_id(&id)?;
    let q = pairs(&q);
    let gzip = flag(&q, "gzip")?
        || headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            == Some("gzip");
    let pk = one(&q, "primary_key").map(|v| list(Some(v)));
    let how = CsvInput {
        dialect: Dialect {
            delimiter: one_byte(&q, "delimiter", b',')?,
            quote: one_byte(&q, "enclosure", b'"')?,
        },
        columns: None,
        gzip,
        name: "the request body".into(),
    };
    let opts = LoadOptions {
        incremental: flag(&q, "incremental")?,
        primary_key: pk,
        delete_where: None,
        made_by: gantry_store::MadeBy::Import,
    };
    let stream = body.into_data_stream();
    let v = s
        .storage
        .import(&p.project, &table, stream, how, opts)
        .await?;
    Ok((StatusCode::CREATED, Json(version_view(v))))
}

/// A sink that feeds an HTTP response body.
struct ChannelSink(tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>);

#[async_trait::async_trait]
impl Sink for ChannelSink {
    async fn write(&mut self, data: Bytes) -> std::io::Result<()> {
        self.0
            .send(Ok(data))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

#[utoipa::path(get, path = "/v1/tables/{id}/export", tag = "tables", security(("bearer" = [])), params(("id" = TableParam, Path, description = "the table's id"), ("version" = Option<u64>, Query, description = "a version (default the current)"), ("columns" = Option<String>, Query, description = "comma-separated"), ("where_column" = Option<String>, Query, description = "filter column"), ("where_values" = Option<String>, Query, description = "comma-separated"), ("where_operator" = Option<String>, Query, pattern = "^(eq|ne)$", description = "eq or ne"), ("changed_since" = Option<String>, Query, description = "rows changed since: an RFC 3339 time or a relative one like `-7 days`"), ("limit" = Option<u64>, Query, description = "rows")), responses((status = 200, description = "CSV", body = String, content_type = "text/csv"), (status = 400, description = "invalid filter", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "no such table or version in this project", body = ErrorBody)))]
async fn export_table(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let table = table_id(&id)?;
    let q = pairs(&q);
    let version = match one(&q, "version") {
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| ApiError::invalid("version must be a number"))?,
        ),
        None => None,
    };
    // Fail before streaming when the table or version does not exist.
    s.store.table_version(&p.project, &table, version).await?;
    // The filters of an input mapping, so `gantry run --stage` reads what a
    // job would be given.
    let mapping = gantry_core::spec::InputTable {
        source: table.to_string(),
        columns: list(one(&q, "columns")),
        where_column: one(&q, "where_column").map(str::to_string),
        where_values: list(one(&q, "where_values")),
        where_operator: match one(&q, "where_operator") {
            None | Some("eq") => None,
            Some("ne") => Some(gantry_core::spec::WhereOperator::Ne),
            Some(_) => return Err(ApiError::invalid("where_operator must be eq or ne")),
        },
        changed_since: one(&q, "changed_since").map(str::to_string),
        limit: match one(&q, "limit") {
            Some(l) => Some(
                l.parse::<u64>()
                    .map_err(|_| ApiError::invalid("limit must be a number"))?,
            ),
            None => None,
        },
        ..Default::default()
    };
    let filter = gantry_storage::mapping::read_filter(&mapping, "query")
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        let mut sink = ChannelSink(tx.clone());
        if let Err(e) = s
            .storage
            .read_table(&p.project, &table, version, &filter, &mut sink)
            .await
        {
            tracing::error!(table = %table, error = %e, "export failed");
            let _ = tx.send(Err(std::io::Error::other("export failed"))).await;
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response())
}

#[utoipa::path(get, path = "/v1/files", tag = "files", security(("bearer" = [])), params(("tag" = Option<String>, Query, description = "files with every tag given (repeat the key)"), ("limit" = Option<u64>, Query, minimum = 1, maximum = 10000, description = "1-10000 (default 100)")), responses((status = 200, description = "the files, newest first", body = FileList), (status = 400, description = "invalid limit", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody)))]
async fn list_files(
    State(s): State<AppState>,
    Auth(p): Auth,
    RawQuery(q): RawQuery,
) -> Result<Json<FileList>, ApiError> {
    let q = pairs(&q);
    let limit = match one(&q, "limit") {
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=10_000).contains(l))
            .ok_or_else(|| ApiError::invalid("limit must be 1..10000"))?,
        None => 100,
    };
    let files = s
        .store
        .list_files(&p.project, &all(&q, "tag"), limit)
        .await?
        .into_iter()
        .map(file_view)
        .collect();
    Ok(Json(FileList { files }))
}

#[utoipa::path(post, path = "/v1/files", tag = "files", security(("bearer" = [])), params(("name" = String, Query, min_length = 1, max_length = 255, pattern = "^[^/\\\\\\x00]*[^/\\\\\\x00.][^/\\\\\\x00]*$", description = "a single file name: no `/`, `\\` or NUL, not `.` or `..`"), ("tag" = Option<String>, Query, min_length = 1, max_length = 128, description = "a tag, 1-128 characters (repeat the key)")), request_body(content = Option<Vec<u8>>, content_type = "application/octet-stream", description = "the file (may be empty)"), responses((status = 201, description = "stored", body = FileView), (status = 400, description = "invalid name or tag", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 413, description = "too large", body = ErrorBody), (status = 507, description = "the object store is full", body = ErrorBody)))]
async fn upload_file(
    State(s): State<AppState>,
    Auth(p): Auth,
    RawQuery(q): RawQuery,
    body: Body,
) -> Result<(StatusCode, Json<FileView>), ApiError> {
    let q = pairs(&q);
    let name = one(&q, "name")
        .ok_or_else(|| ApiError::invalid("name the file: ?name=report.pdf"))?
        .to_string();
    let tags = all(&q, "tag");
    let stream = body
        .into_data_stream()
        .map(|r| r.map_err(std::io::Error::other));
    let reader = tokio_util_reader(stream);
    let f = s
        .control()
        .upload_file(&p.project, Upload { name, tags }, reader)
        .await?;
    Ok((StatusCode::CREATED, Json(file_view(f))))
}

fn tokio_util_reader<S>(stream: S) -> impl tokio::io::AsyncRead + Unpin
where
    S: futures_util::Stream<Item = std::io::Result<Bytes>> + Unpin,
{
    tokio_util::io::StreamReader::new(stream)
}

pub(crate) fn file_id(s: &str) -> Result<FileId, ApiError> {
    s.parse().map_err(|_| {
        ApiError::not_found(format!("file {}", s.chars().take(32).collect::<String>()))
    })
}

#[utoipa::path(get, path = "/v1/files/{id}", tag = "files", security(("bearer" = [])), params(("id" = i64, Path, description = "the file's id")), responses((status = 200, description = "the file's record", body = FileView), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "no such file in this project", body = ErrorBody)))]
async fn get_file(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<FileView>, ApiError> {
    Ok(Json(file_view(
        s.store.get_file(&p.project, file_id(&id)?).await?,
    )))
}

/// `Content-Disposition` for a stored file's name, whatever it holds: an
/// ASCII fallback (`filename`, other bytes as `_`) and the exact name
/// percent-encoded (`filename*`, RFC 6266/8187). A name with a control
/// character or non-ASCII letters once made the header invalid: a 500.
fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[utoipa::path(get, path = "/v1/files/{id}/content", tag = "files", security(("bearer" = [])), params(("id" = i64, Path, description = "the file's id")), responses((status = 200, description = "its bytes", body = Vec<u8>, content_type = "application/octet-stream"), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "no such file in this project", body = ErrorBody)))]
async fn file_content(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let f = s.store.get_file(&p.project, file_id(&id)?).await?;
    let stream = s
        .storage
        .download(&f.object_key)
        .await?
        .map(|r| r.map_err(std::io::Error::other));
    let disposition = content_disposition(&f.name);
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
