//! Tables and files: import/export stream (no body limit), versions, restore.

use crate::auth::Auth;
use crate::routes::AppState;
use crate::views::rfc3339;
use crate::ApiError;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use futures_util::StreamExt;
use gantry_storage::csvscan::Dialect;
use gantry_storage::{CsvInput, LoadOptions, ReadFilter, Sink, StorageError};
use gantry_store::{FileInfo, TableInfo, TableVersion};
use serde_json::{json, Value};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/tables", get(list_tables).post(create_table))
        .route("/v1/tables/{id}", get(get_table).delete(delete_table))
        .route(
            "/v1/tables/{id}/import",
            post(import_table).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/tables/{id}/export", get(export_table))
        .route("/v1/tables/{id}/versions", get(table_versions))
        .route("/v1/tables/{id}/restore", post(restore_table))
        .route(
            "/v1/files",
            get(list_files)
                .post(upload_file)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/files/{id}", get(get_file))
        .route("/v1/files/{id}/content", get(file_content))
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Invalid(m) => Self::new(StatusCode::BAD_REQUEST, "invalid_data", m),
            StorageError::NotFound(what) => Self::not_found(what),
            StorageError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            StorageError::Store(s) => s.into(),
            StorageError::OutOfSpace(_) => Self::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "insufficient_storage",
                "the object store's disk is full; nothing was stored (free space and retry)",
            ),
            other => Self::internal(other),
        }
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

fn table_view(t: TableInfo) -> Value {
    json!({
        "id": t.id, "project": t.project, "columns": t.columns, "primary_key": t.primary_key,
        "version": t.version, "rows": t.rows, "bytes": t.bytes,
        "created_at": rfc3339(t.created_at), "updated_at": rfc3339(t.updated_at),
    })
}

fn version_view(v: TableVersion) -> Value {
    json!({
        "version": v.version, "columns": v.columns, "primary_key": v.primary_key,
        "rows": v.rows, "bytes": v.bytes, "loaded_rows": v.loaded_rows, "loaded_bytes": v.loaded_bytes,
        "made_by": v.made_by, "job": v.job_id.map(|j| j.to_string()), "note": v.note,
        "segments": v.segments.len(), "created_at": rfc3339(v.created_at),
    })
}

fn file_view(f: FileInfo) -> Value {
    json!({
        "id": f.id, "project": f.project, "name": f.name, "tags": f.tags, "size": f.size,
        "job": f.job_id.map(|j| j.to_string()), "created_at": rfc3339(f.created_at),
    })
}

async fn list_tables(State(s): State<AppState>, Auth(p): Auth) -> Result<Json<Value>, ApiError> {
    let tables: Vec<Value> = s
        .store
        .list_tables(&p.project)
        .await?
        .into_iter()
        .map(table_view)
        .collect();
    Ok(Json(json!({ "tables": tables })))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTable {
    id: String,
    columns: Vec<String>,
    #[serde(default)]
    primary_key: Vec<String>,
}

/// Creates an empty table (version 1 with no rows) with its columns and key.
async fn create_table(
    State(s): State<AppState>,
    Auth(p): Auth,
    crate::routes::ApiJson(body): crate::routes::ApiJson<CreateTable>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let table = table_id(&body.id)?;
    if s.store.get_table(&p.project, &table).await.is_ok() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("table {table} already exists"),
        ));
    }
    let mut header = Vec::new();
    gantry_storage::csvscan::Encoder::default()
        .record(body.columns.iter().map(|c| c.as_bytes()), &mut header);
    let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(header))]);
    let how = CsvInput {
        name: "columns".into(),
        ..Default::default()
    };
    let opts = LoadOptions {
        incremental: false,
        primary_key: Some(body.primary_key),
        delete_where: None,
        made_by: "create".into(),
    };
    s.storage
        .import(&p.project, &table, stream, how, opts)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(table_view(s.store.get_table(&p.project, &table).await?)),
    ))
}

async fn get_table(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(table_view(
        s.store.get_table(&p.project, &table_id(&id)?).await?,
    )))
}

async fn delete_table(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let keys = s.store.delete_table(&p.project, &table_id(&id)?).await?;
    s.storage.delete_objects(&keys).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn table_versions(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let versions: Vec<Value> = s
        .store
        .table_versions(&p.project, &table_id(&id)?)
        .await?
        .into_iter()
        .map(version_view)
        .collect();
    Ok(Json(json!({ "versions": versions })))
}

async fn restore_table(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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

fn one_byte(q: &[(String, String)], key: &str, default: u8) -> Result<u8, ApiError> {
    match one(q, key) {
        None => Ok(default),
        Some(v) if v.len() == 1 => Ok(v.as_bytes()[0]),
        Some(v) => Err(ApiError::invalid(format!(
            "{key} must be one character, not '{v}'"
        ))),
    }
}

async fn import_table(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
        made_by: "import".into(),
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

async fn export_table(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
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
    let filter = ReadFilter {
        columns: list(one(&q, "columns")),
        ..Default::default()
    };
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

async fn list_files(
    State(s): State<AppState>,
    Auth(p): Auth,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let q = pairs(&q);
    let limit = match one(&q, "limit") {
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=10_000).contains(l))
            .ok_or_else(|| ApiError::invalid("limit must be 1..10000"))?,
        None => 100,
    };
    let files: Vec<Value> = s
        .store
        .list_files(&p.project, &all(&q, "tag"), limit)
        .await?
        .into_iter()
        .map(file_view)
        .collect();
    Ok(Json(json!({ "files": files })))
}

async fn upload_file(
    State(s): State<AppState>,
    Auth(p): Auth,
    RawQuery(q): RawQuery,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let q = pairs(&q);
    let name = one(&q, "name")
        .ok_or_else(|| ApiError::invalid("name the file: ?name=report.pdf"))?
        .to_string();
    gantry_core::spec::check_file_name(&name).map_err(ApiError::invalid)?;
    let tags = all(&q, "tag");
    if tags.iter().any(|t| t.is_empty() || t.len() > 128) {
        return Err(ApiError::invalid("tags must be 1-128 characters"));
    }
    let stream = body
        .into_data_stream()
        .map(|r| r.map_err(std::io::Error::other));
    let reader = tokio_util_reader(stream);
    let (key, size) = s.storage.upload(&p.project, &name, reader).await?;
    let f = s
        .store
        .create_file(
            &p.project,
            gantry_store::NewFile {
                name,
                tags,
                size,
                object_key: key,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(file_view(f))))
}

fn tokio_util_reader<S>(stream: S) -> impl tokio::io::AsyncRead + Unpin
where
    S: futures_util::Stream<Item = std::io::Result<Bytes>> + Unpin,
{
    tokio_util::io::StreamReader::new(stream)
}

pub(crate) fn file_id(s: &str) -> Result<i64, ApiError> {
    s.parse().map_err(|_| {
        ApiError::not_found(format!("file {}", s.chars().take(32).collect::<String>()))
    })
}

async fn get_file(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(file_view(
        s.store.get_file(&p.project, file_id(&id)?).await?,
    )))
}

async fn file_content(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let f = s.store.get_file(&p.project, file_id(&id)?).await?;
    let stream = s
        .storage
        .download(&f.object_key)
        .await?
        .map(|r| r.map_err(std::io::Error::other));
    let disposition = format!("attachment; filename=\"{}\"", f.name.replace('"', "_"));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
