//! IronWorker's REST API v2 (`/2/...`), as Iron's own clients speak it
//! (`../shared/IRONWORKER.md` in the project's notes; README "IronWorker").
//!
//! A second face of Gantry's objects, not a second engine: a task IS a job
//! (in `/v1/jobs`, the dashboard, metrics), an Iron schedule IS a schedule
//! running a configuration made for it, a code is a named, revisioned record
//! of what to run. Everything here answers Iron-shaped: `{"msg": ...}`
//! errors with Iron's status codes, RFC 3339 times, a `Content-Type` on
//! every response.

mod codes;
mod schedules;
mod tasks;

use crate::state::AppState;
use crate::ApiError;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use gantry_core::ProjectId;
use gantry_store::{IronCodeRev, IronFile, IronTask, Principal, StoreError};
use serde_json::{json, Map, Value};

/// Largest payload or config string (Iron's limit).
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// Largest code upload (the zip and its `data` part).
pub const MAX_UPLOAD: usize = 64 << 20;
/// Default and largest page size of Iron's lists.
const PER_PAGE: u64 = 30;
const MAX_PER_PAGE: u64 = 100;
/// Iron's default and largest task timeout (seconds).
pub const DEFAULT_TIMEOUT: u64 = 3600;
pub const MAX_TIMEOUT: u64 = 24 * 3600;
/// Where a task's writable directory is (the container's scratch).
const TASK_DIR: &str = "/tmp";

pub fn routes() -> Router<AppState> {
    let project = Router::new()
        .merge(codes::routes())
        .merge(tasks::routes())
        .merge(schedules::routes());
    Router::new()
        .nest("/2/projects/{project_id}", project)
        .route("/2/stacks", get(stacks))
        .route("/2", get(not_found))
        .route("/2/{*rest}", axum::routing::any(not_found))
        .layer(axum::middleware::from_fn(iron_shape))
}

async fn not_found() -> IronError {
    IronError::new(StatusCode::NOT_FOUND, "Not found")
}

/// Iron's stacks: the runtimes a legacy zip code may name (Gantry's stacks,
/// which an admin registers with `gantry stacks add NAME IMAGE`).
async fn stacks(
    axum::extract::State(s): axum::extract::State<AppState>,
    _auth: IronAuth,
) -> IronResult {
    let names: Vec<String> = s
        .store
        .list_stacks()
        .await?
        .into_iter()
        .map(|st| st.name)
        .collect();
    Ok(json_ok(json!(names)))
}

/// Every `/2` answer has a `Content-Type` (Iron's Python client indexes the
/// header and crashes without it) and errors are `{"msg": ...}`, also the
/// ones axum makes itself (405 on a wrong verb).
async fn iron_shape(req: Request, next: axum::middleware::Next) -> Response {
    let resp = next.run(req).await;
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED {
        return IronError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
            .into_response();
    }
    let (mut parts, body) = resp.into_parts();
    if !parts.headers.contains_key(header::CONTENT_TYPE) {
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    Response::from_parts(parts, body)
}

/// An Iron-shaped error: `{"msg": ...}`.
#[derive(Debug)]
pub struct IronError {
    status: StatusCode,
    msg: String,
}

impl IronError {
    pub fn new(status: StatusCode, msg: impl Into<String>) -> Self {
        Self {
            status,
            msg: msg.into(),
        }
    }
    pub fn bad(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, msg)
    }
}

impl IntoResponse for IronError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "msg": self.msg }))).into_response()
    }
}

impl From<ApiError> for IronError {
    fn from(e: ApiError) -> Self {
        // The message of a server error is already generic.
        let msg = match e.status {
            StatusCode::UNAUTHORIZED => "Invalid token".to_string(),
            _ => e.message,
        };
        Self::new(e.status, msg)
    }
}

impl From<StoreError> for IronError {
    fn from(e: StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<gantry_core::SpecError> for IronError {
    fn from(e: gantry_core::SpecError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<gantry_storage::StorageError> for IronError {
    fn from(e: gantry_storage::StorageError) -> Self {
        ApiError::from(e).into()
    }
}

pub type IronResult<T = Response> = Result<T, IronError>;

pub fn json_ok(v: Value) -> Response {
    (StatusCode::OK, Json(v)).into_response()
}

pub fn text_ok(text: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

/// The caller, authenticated by Iron's ways of sending a token
/// (`Authorization: OAuth <token>`, `Bearer`, or `?oauth=`), in the
/// project the path names, which must be the token's own: another
/// project's id answers 404 like a missing one.
pub struct IronAuth(pub Principal);

fn token_of(parts: &Parts) -> Option<String> {
    if let Some(h) = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
    {
        let (scheme, rest) = h.split_once(' ')?;
        if scheme.eq_ignore_ascii_case("oauth") || scheme.eq_ignore_ascii_case("bearer") {
            return Some(rest.trim().to_string());
        }
        return None;
    }
    let q = parts.uri.query()?;
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == "oauth")
        .map(|(_, v)| v.into_owned())
}

impl FromRequestParts<AppState> for IronAuth {
    type Rejection = IronError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, IronError> {
        let unauthorized = || IronError::new(StatusCode::UNAUTHORIZED, "Invalid token");
        let token = token_of(parts)
            .filter(|t| !t.is_empty() && t.len() <= 256)
            .ok_or_else(unauthorized)?;
        let p = s
            .store
            .authenticate(&token)
            .await?
            .ok_or_else(unauthorized)?;
        // The project named in the path, when the route has one.
        let path = parts.uri.path();
        if let Some(rest) = path.strip_prefix("/2/projects/") {
            let named = rest.split('/').next().unwrap_or_default();
            if named != p.project.as_str() {
                return Err(IronError::new(StatusCode::NOT_FOUND, "Project not found"));
            }
        }
        Ok(IronAuth(p))
    }
}

/// Iron's offset paging: `page` from 0, `per_page` default 30, at most 100.
pub fn paging(q: &Map<String, Value>) -> IronResult<(u64, u64)> {
    let num = |k: &str, default: u64| -> IronResult<u64> {
        match q.get(k).and_then(Value::as_str) {
            None | Some("") => Ok(default),
            Some(v) => v
                .parse::<u64>()
                .map_err(|_| IronError::bad(format!("{k} must be a whole number"))),
        }
    };
    let per_page = num("per_page", PER_PAGE)?;
    if per_page == 0 || per_page > MAX_PER_PAGE {
        return Err(IronError::bad(format!(
            "per_page must be between 1 and {MAX_PER_PAGE}"
        )));
    }
    let page = num("page", 0)?;
    Ok((page.saturating_mul(per_page), per_page))
}

/// The query string as a map of strings (last value wins).
pub fn query_map(parts_query: Option<&str>) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(q) = parts_query {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            m.insert(k.into_owned(), Value::String(v.into_owned()));
        }
    }
    m
}

/// A JSON request body, parsed leniently about its content type (Iron's
/// clients do not always send one) but strictly about its shape.
pub async fn json_body(body: Body, limit: usize) -> IronResult<Value> {
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        IronError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request body too large (at most {limit} bytes)"),
        )
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_slice(&bytes).map_err(|e| IronError::bad(format!("Invalid JSON: {e}")))
}

/// An integer field that Iron's clients may send as a number, a numeric
/// string or a negative "unset" sentinel (`None` for those and null).
pub fn opt_int(v: Option<&Value>, key: &str) -> IronResult<Option<i64>> {
    let n = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Some(Value::String(s)) if s.is_empty() => return Ok(None),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(_) => None,
    };
    match n {
        Some(n) if n < 0 => Ok(None),
        Some(n) => Ok(Some(n)),
        None => Err(IronError::bad(format!("{key} must be a whole number"))),
    }
}

/// A string field (numbers are taken as their text; null as absent).
pub fn opt_str(v: Option<&Value>, key: &str) -> IronResult<Option<String>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(IronError::bad(format!("{key} must be a string"))),
    }
}

pub fn check_priority(p: Option<i64>, default: u8) -> IronResult<u8> {
    match p {
        None => Ok(default),
        Some(p @ 0..=2) => Ok(p as u8),
        Some(_) => Err(IronError::bad("priority must be 0, 1 or 2")),
    }
}

pub fn check_timeout(t: Option<i64>) -> IronResult<u64> {
    match t {
        None | Some(0) => Ok(DEFAULT_TIMEOUT),
        Some(t) if (t as u64) <= MAX_TIMEOUT => Ok(t as u64),
        Some(_) => Err(IronError::bad(format!(
            "timeout must be at most {MAX_TIMEOUT} seconds"
        ))),
    }
}

pub use gantry_core::time::rfc3339;

/// Whether the project lets its jobs have a network (Iron tasks expect one;
/// Gantry gives it only where the project's policy allows `bridge-network`).
pub async fn network_for(s: &AppState, project: &ProjectId) -> IronResult<&'static str> {
    let allowed = s.store.get_project(project).await?.allow;
    Ok(
        if allowed.contains(&gantry_core::spec::Loosening::BridgeNetwork) {
            "bridge"
        } else {
            "none"
        },
    )
}

/// Where a staged Storage file is in the container.
fn staged(file: gantry_core::FileId, name: &str) -> String {
    format!("/data/in/files/{file}_{name}")
}

pub const PAYLOAD_NAME: &str = "payload";
pub const CONFIG_NAME: &str = "config";

/// The job spec of a task: the code revision's image and command, Iron's
/// environment (`PAYLOAD_FILE`, `TASK_ID`, `TASK_DIR`, `CONFIG_FILE`, the
/// code's `env_vars`), its timeout, retries, priority and concurrency.
/// `task_id` is `None` for a schedule's configuration (its jobs' ids are
/// not known yet: the command exports `TASK_ID` from `GANTRY_JOB_ID`).
pub fn task_spec(
    rev: &IronCodeRev,
    task: &IronTask,
    task_id: Option<&str>,
    network: &str,
) -> IronResult<Value> {
    let code = &rev.doc;
    let mut env: Map<String, Value> = code
        .env_vars
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    env.insert("TASK_DIR".into(), json!(TASK_DIR));
    let mut files = Vec::new();
    if let Some(f) = &task.payload_file {
        env.insert("PAYLOAD_FILE".into(), json!(staged(f.id, PAYLOAD_NAME)));
        files.push(json!({"tags": [f.tag], "limit": 1}));
    }
    if let Some(f) = &code.config_file {
        env.insert("CONFIG_FILE".into(), json!(staged(f.id, CONFIG_NAME)));
        files.push(json!({"tags": [f.tag], "limit": 1}));
    }
    if let Some(id) = task_id {
        env.insert("TASK_ID".into(), json!(id));
    }
    let mut spec = json!({
        "env": env,
        "limits": {"timeout": format!("{}s", task.timeout), "network": network},
        "retry": {"attempts": code.retries + 1, "backoff": format!("{}s", code.retries_delay)},
        "priority": task.priority,
    });
    if !files.is_empty() {
        spec["storage"] = json!({"input": {"files": files}});
    }
    // An image code runs its command; a legacy runtime zip runs its file
    // with the runtime's interpreter and Iron's arguments, on the stack
    // named like the runtime.
    let legacy;
    let command = match (&code.image, &code.package) {
        (Some(image), _) => {
            spec["image"] = json!(image);
            code.command
                .as_deref()
                .map(str::trim)
                .filter(|c| !c.is_empty())
        }
        (None, Some(package)) => {
            let runtime = code.runtime.clone().unwrap_or_else(|| "python".into());
            spec["code"] = json!({"package": package, "stack": runtime});
            let file = code.file_name.clone().unwrap_or_default();
            let run = match runtime.as_str() {
                "sh" | "bash" | "shell" => format!("sh '{file}'"),
                "python" | "python3" => format!("python3 '{file}'"),
                "binary" => format!("'./{file}'"),
                other => format!("{other} '{file}'"),
            };
            let config = if code.config_file.is_some() {
                " -config \"$CONFIG_FILE\""
            } else {
                ""
            };
            legacy = format!(
                "exec {run} -payload \"$PAYLOAD_FILE\"{config} -id \"$TASK_ID\" -d \"$TASK_DIR\""
            );
            Some(legacy.as_str())
        }
        (None, None) => {
            return Err(IronError::bad(format!(
                "code '{}' has neither an image nor a zip to run",
                rev.name
            )))
        }
    };
    match (command, task_id) {
        (Some(cmd), Some(_)) => spec["command"] = json!(["/bin/sh", "-c", cmd]),
        (Some(cmd), None) => {
            spec["command"] = json!([
                "/bin/sh",
                "-c",
                format!("TASK_ID=\"$GANTRY_JOB_ID\"; export TASK_ID; {cmd}")
            ])
        }
        (None, _) => {}
    }
    // Iron's clusters are Gantry's worker tags: a task of cluster `gpu` runs
    // only on a worker started with `--tags gpu`.
    if task.cluster != "default" {
        gantry_core::spec::check_worker_tags(std::slice::from_ref(&task.cluster), "cluster")
            .map_err(|e| IronError::bad(e.to_string()))?;
        spec["worker_tags"] = json!([task.cluster]);
    }
    if let Some(n) = code.max_concurrency.filter(|n| *n > 0) {
        spec["concurrency"] = json!({"key": format!("iron-code-{}", rev.code_id), "limit": n});
    }
    Ok(spec)
}

/// A legacy runtime zip runs on the stack named like its runtime: refuses
/// a task when an admin has registered no such stack.
pub async fn check_stack(s: &AppState, rev: &IronCodeRev) -> IronResult<()> {
    if rev.doc.image.is_some() || rev.doc.package.is_none() {
        return Ok(());
    }
    let runtime = rev.doc.runtime.clone().unwrap_or_else(|| "python".into());
    match s.store.get_stack(&runtime).await {
        Ok(_) => Ok(()),
        Err(StoreError::NotFound(_)) => Err(IronError::bad(format!(
            "code '{}' is a {runtime} runtime zip and there is no stack named '{runtime}' to run it on: an admin registers one with `gantry stacks add {runtime} IMAGE`",
            rev.name
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Stores a string (a payload, a code's config) as a Storage file of the
/// project, with a tag of its own so that exactly it is staged for a task.
pub async fn store_text(
    s: &AppState,
    project: &ProjectId,
    kind: &str,
    text: &str,
) -> IronResult<IronFile> {
    let tag = format!("iron-{kind}-{}", hex::encode(rand::random::<[u8; 12]>()));
    let (key, size) = s
        .storage
        .upload(
            project,
            kind,
            std::io::Cursor::new(text.as_bytes().to_vec()),
        )
        .await?;
    let f = s
        .store
        .create_file(
            project,
            gantry_store::NewFile {
                name: kind.to_string(),
                tags: vec!["iron".into(), tag.clone()],
                size,
                object_key: key,
            },
        )
        .await?;
    Ok(IronFile { id: f.id, tag })
}
