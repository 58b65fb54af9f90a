//! Routes. Every handler is scoped to the project of the caller's token:
//! another project's objects answer 404, so their names do not leak.

use crate::auth::Auth;
use crate::views::*;
use crate::{ApiError, MAX_BODY};
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream};
use gantry_core::{ConfigId, JobId, JobStatus, ProjectId, Spec};
use gantry_store::{Change, JobFilter, NewJob, Principal, Store};
use gantry_vault::Vault;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// Whether the container engine answers (for `/readyz`).
#[async_trait::async_trait]
pub trait Readiness: Send + Sync + 'static {
    async fn engine_ready(&self) -> Result<(), String>;
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub storage: gantry_storage::Storage,
    pub vault: Vault,
    /// `None` when no worker runs in this process (a plain `gantry server`).
    pub readiness: Option<Arc<dyn Readiness>>,
    /// Runs Keboola sync actions; `None` without an engine in this process.
    pub actions: Option<Arc<dyn ActionRunner>>,
}

/// A sync action to run: a configuration's spec (secrets sealed) with
/// `action` set, run at once outside the queue.
pub struct ActionRequest {
    pub project: ProjectId,
    pub project_number: i64,
    pub config: ConfigId,
    pub spec: Value,
    pub state: Value,
    pub action: String,
    pub token_id: String,
    pub token_desc: String,
}

/// How a sync action ended, as the API answers it.
pub enum ActionAnswer {
    /// 200 with the container's stdout, parsed as JSON.
    Json(Value),
    /// The component exited 1: 400 with its message.
    UserError(String),
    /// Anything else: 500 without internals (the detail goes to the log).
    Failed(String),
}

/// Runs sync actions (the seam to the container engine, which only a
/// process with a worker has).
#[async_trait::async_trait]
pub trait ActionRunner: Send + Sync {
    async fn run_action(&self, request: ActionRequest) -> ActionAnswer;
}

/// JSON body extractor whose rejections are API errors (413, 400, 415).
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Ok(Self(Json::<T>::from_request(req, state).await?.0))
    }
}

/// Query-string extractor whose rejections are API errors (400, JSON).
pub struct ApiQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S>
    for ApiQuery<T>
{
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        Ok(Self(Query::<T>::from_request_parts(parts, state).await?.0))
    }
}

pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/v1/jobs", post(submit_job).get(list_jobs))
        .route("/v1/jobs/batch", post(submit_batch))
        .route("/v1/jobs/{id}", get(get_job))
        .route("/v1/jobs/{id}/events", get(job_events))
        .route("/v1/jobs/{id}/cancel", post(cancel_job))
        .route("/v1/configs", get(list_configs).post(create_config))
        .route(
            "/v1/configs/{id}",
            get(get_config).put(update_config).delete(delete_config),
        )
        .route("/v1/configs/{id}/state", get(config_state))
        .route("/v1/configs/{id}/actions/{action}", post(config_action))
        .route(
            "/v1/openapi.json",
            get(|| async { Json(crate::openapi::document()) }),
        )
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .merge(crate::storage_routes::routes())
        .merge(crate::admin_routes::routes())
        .merge(crate::schedule_routes::routes())
        .merge(crate::hook_routes::routes())
        .merge(crate::pipeline_routes::routes())
        .merge(crate::iron::routes())
        .merge(crate::worker_routes::routes())
        .merge(crate::image_routes::routes())
        .merge(crate::ui::routes())
        .fallback(|| async { ApiError::not_found("route") })
        .layer(axum::middleware::from_fn(count_request))
        .layer(axum::middleware::from_fn(crate::unread::drain_or_close))
        .with_state(state)
}

/// The metrics endpoint alone, for a `gantry worker` process that serves no
/// API: its own slots and timings plus the store's figures.
pub fn metrics_app(store: Arc<dyn Store>) -> Router {
    Router::new()
        .route("/metrics", get(store_metrics))
        .fallback(|| async { ApiError::not_found("route") })
        .with_state(store)
}

async fn store_metrics(State(store): State<Arc<dyn Store>>) -> Result<Response, ApiError> {
    render_metrics(store.as_ref()).await
}

/// Counts every request by its route template (never the raw path, so ids
/// do not become label values) and times it to the response head.
async fn count_request(req: Request, next: axum::middleware::Next) -> Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let method = req.method().as_str().to_owned();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    gantry_metrics::global().http_request(
        &route,
        &method,
        resp.status().as_u16(),
        started.elapsed(),
    );
    resp
}

pub(crate) fn job_id(s: &str) -> Result<JobId, ApiError> {
    // A malformed id cannot name any job: answer like a missing one.
    s.parse()
        .map_err(|_| ApiError::not_found(format!("job {}", s.chars().take(64).collect::<String>())))
}

pub(crate) fn config_id(s: &str) -> Result<ConfigId, ApiError> {
    s.parse().map_err(ApiError::invalid)
}

/// Validates a spec, checks its loosenings against the project's policy and
/// seals its secrets; returns what is stored.
pub(crate) async fn seal_spec(
    s: &AppState,
    project: &ProjectId,
    value: Value,
) -> Result<(Value, Spec), ApiError> {
    let vault = &s.vault;
    let (doc, spec) = Spec::from_value(value)?;
    // Only a spec that loosens a default costs a lookup.
    if !spec.loosenings().is_empty() {
        let allowed = s.store.get_project(project).await?.allow;
        spec.check_allowed(project.as_str(), &allowed)?;
    }
    let mut stored = serde_json::to_value(&doc).map_err(ApiError::internal)?;
    let _ = gantry_core::spec::visit_secret_maps::<(), _>(&mut stored, |m| {
        vault.seal_params(m);
        Ok(())
    });
    seal_notify(vault, &mut stored);
    Ok((stored, spec))
}

/// The longest a submission may be delayed.
const MAX_DELAY: Duration = Duration::from_secs(366 * 24 * 3600);

/// Applies a submission's `priority`, `delay` and `run_after`.
fn apply_timing(job: &mut NewJob, body: &SubmitJob) -> Result<(), ApiError> {
    if let Some(p) = body.priority {
        job.priority = gantry_core::spec::check_priority(p, "priority")?;
    }
    if body.delay.is_some() && body.run_after.is_some() {
        return Err(ApiError::invalid(
            "delay, run_after: send at most one of them",
        ));
    }
    if let Some(d) = &body.delay {
        let text = match d {
            Value::Number(n) => format!("{n}s"),
            Value::String(s) => s.clone(),
            _ => {
                return Err(ApiError::invalid(
                    "delay: must be a duration like 30s or a number of seconds",
                ))
            }
        };
        let d = gantry_core::units::parse_duration(&text)
            .map_err(|e| ApiError::invalid(format!("delay: {e}")))?;
        if d > MAX_DELAY {
            return Err(ApiError::invalid("delay: must be at most 366 days"));
        }
        job.delay = d;
    }
    if let Some(t) = &body.run_after {
        let at = humantime::parse_rfc3339_weak(t).map_err(|e| {
            ApiError::invalid(format!(
                "run_after: must be an RFC 3339 time like 2026-01-31T12:00:00Z ({e})"
            ))
        })?;
        let ms = at
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| ApiError::invalid("run_after: must be after 1970"))?
            .as_millis() as i64;
        let limit = std::time::SystemTime::now() + MAX_DELAY;
        if at > limit {
            return Err(ApiError::invalid(
                "run_after: must be at most 366 days ahead",
            ));
        }
        job.run_at = Some(ms);
    }
    Ok(())
}

/// Seals the `#secret` of each notification target in a spec or pipeline.
pub fn seal_notify(vault: &Vault, doc: &mut Value) {
    for n in doc
        .get_mut("notify")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(Value::String(s)) = n.get_mut("#secret") {
            if !s.starts_with(gantry_vault::PREFIX) {
                *s = vault.seal(s);
            }
        }
    }
}

/// What one submission becomes: its spec (inline or a configuration's)
/// validated, checked against the project's policy and sealed, with its
/// timing (priority, delay) and the token that sent it.
async fn prepare_job(s: &AppState, p: &Principal, body: SubmitJob) -> Result<NewJob, ApiError> {
    let (spec_value, config_id) = match (&body.spec, &body.config) {
        (Some(spec), None) => (spec.clone(), None),
        (None, Some(cfg)) => {
            let cfg = config_id(cfg)?;
            let stored = s.store.get_config(&p.project, &cfg).await?;
            (stored.spec, Some(cfg))
        }
        _ => {
            return Err(ApiError::invalid(
                "send exactly one of 'spec' (an inline spec) or 'config' (a configuration id)",
            ))
        }
    };
    let mut spec_value = spec_value;
    if let (Some(mode), Some(obj)) = (&body.mode, spec_value.as_object_mut()) {
        obj.insert("mode".into(), json!(mode));
    }
    let (stored, spec) = seal_spec(s, &p.project, spec_value).await?;
    let mut job = NewJob::from_spec(p.project.clone(), config_id, stored, &spec);
    job.token_id = Some(p.token_id.clone());
    job.token_desc = Some(p.token_desc.clone());
    apply_timing(&mut job, &body)?;
    Ok(job)
}

async fn submit_job(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<SubmitJob>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let job = prepare_job(&s, &p, body).await?;
    let job = s.store.enqueue(job).await?;
    Ok((StatusCode::CREATED, Json(job.into())))
}

/// Most jobs one batch may hold.
const MAX_BATCH: usize = 1000;

/// Many jobs in one request and one commit: all are queued, or, when one is
/// invalid, none (the error names its index).
async fn submit_batch(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<SubmitBatch>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if body.jobs.is_empty() || body.jobs.len() > MAX_BATCH {
        return Err(ApiError::invalid(format!(
            "jobs: send between 1 and {MAX_BATCH} jobs"
        )));
    }
    let mut jobs = Vec::with_capacity(body.jobs.len());
    for (i, job) in body.jobs.into_iter().enumerate() {
        let job = prepare_job(&s, &p, job)
            .await
            .map_err(|e| e.prefixed(&format!("jobs[{i}]")))?;
        jobs.push(job);
    }
    let ids = s.store.enqueue_batch(jobs).await?;
    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    Ok((StatusCode::CREATED, Json(json!({ "ids": ids }))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn list_jobs(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<JobList>, ApiError> {
    let status = q
        .status
        .as_deref()
        .map(str::parse::<JobStatus>)
        .transpose()
        .map_err(ApiError::invalid)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit must be between 1 and 1000"));
    }
    let before = q
        .cursor
        .as_deref()
        .map(str::parse::<JobId>)
        .transpose()
        .map_err(|_| ApiError::invalid("invalid cursor"))?;
    let jobs = s
        .store
        .list_jobs(
            &p.project,
            &JobFilter {
                status,
                limit,
                before,
            },
        )
        .await?;
    let next_cursor = (jobs.len() == limit)
        .then(|| jobs.last().map(|j| j.id.to_string()))
        .flatten();
    Ok(Json(JobList {
        jobs: jobs.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetJobQuery {
    /// Long-poll: answer when the job has ended, or after this long (max 60s).
    wait: Option<String>,
}

async fn get_job(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<GetJobQuery>,
) -> Result<Json<JobView>, ApiError> {
    let id = job_id(&id)?;
    let wait = match q.wait.as_deref() {
        Some(w) => gantry_core::units::parse_duration(w)
            .map_err(ApiError::invalid)?
            .min(Duration::from_secs(60)),
        None => Duration::ZERO,
    };
    let mut changes = s.store.subscribe();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let job = s.store.get_job(&p.project, id).await?;
        if job.status.is_terminal() || tokio::time::Instant::now() >= deadline {
            let mut view: JobView = job.into();
            view.notifications = s
                .store
                .list_notifications(&p.project, "job", &id.to_string())
                .await?
                .into_iter()
                .map(notification_view)
                .collect();
            return Ok(Json(view));
        }
        wait_for_change(&mut changes, id, deadline).await;
    }
}

/// Waits until this job changes (in this process), or a short poll interval
/// passes (a worker in another process cannot wake us), or the deadline.
async fn wait_for_change(
    changes: &mut broadcast::Receiver<Change>,
    id: JobId,
    deadline: tokio::time::Instant,
) {
    let poll = tokio::time::Instant::now() + Duration::from_millis(500);
    let until = poll.min(deadline);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(until) => return,
            c = changes.recv() => match c {
                Ok(Change::Events(j) | Change::Status(j, _)) if j == id => return,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => return,
                Err(broadcast::error::RecvError::Closed) => return tokio::time::sleep_until(until).await,
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

async fn job_events(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Response, ApiError> {
    let id = job_id(&id)?;
    let after = q.after.unwrap_or(0);
    let wants_stream = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    if wants_stream {
        // Check the job exists (and is this project's) before streaming.
        s.store.get_job(&p.project, id).await?;
        return Ok(follow(s.store.clone(), p.project, id, after).into_response());
    }
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let events = s.store.list_events(&p.project, id, after, limit).await?;
    Ok(Json(events.into_iter().map(EventView::from).collect::<Vec<_>>()).into_response())
}

struct Follow {
    store: Arc<dyn Store>,
    project: ProjectId,
    id: JobId,
    after: u64,
    changes: broadcast::Receiver<Change>,
    pending: VecDeque<SseEvent>,
    done: bool,
}

impl Follow {
    /// Ends the stream with an `event: error` instead of closing it silently:
    /// a follower must be able to tell a store failure from a finished job.
    /// The body is generic (like a 5xx); the chain goes to the server's log.
    fn fail(&mut self, e: &gantry_store::StoreError) {
        tracing::error!(job = %self.id, error = %e, "log stream stopped: the store failed");
        let body = serde_json::json!({
            "error": {"code": "internal", "message": "the log stream stopped: the store failed; reconnect to resume"}
        });
        self.pending
            .push_back(SseEvent::default().event("error").data(body.to_string()));
        self.done = true;
    }
}

/// Server-sent events: every stored event (`event: log`), live, then one
/// `event: end` carrying the job once it has ended, or one `event: error`
/// if the store fails while following.
pub(crate) fn follow(
    store: Arc<dyn Store>,
    project: ProjectId,
    id: JobId,
    after: u64,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let changes = store.subscribe();
    let f = Follow {
        store,
        project,
        id,
        after,
        changes,
        pending: VecDeque::new(),
        done: false,
    };
    let stream = stream::unfold(f, |mut f| async move {
        loop {
            if let Some(ev) = f.pending.pop_front() {
                return Some((Ok(ev), f));
            }
            if f.done {
                return None;
            }
            let events = match f.store.list_events(&f.project, f.id, f.after, 1000).await {
                Ok(events) => events,
                Err(e) => {
                    f.fail(&e);
                    continue;
                }
            };
            if !events.is_empty() {
                f.after = events.last().map_or(f.after, |e| e.seq);
                for e in events {
                    let seq = e.seq;
                    let data = serde_json::to_string(&EventView::from(e)).unwrap_or_default();
                    f.pending.push_back(
                        SseEvent::default()
                            .event("log")
                            .id(seq.to_string())
                            .data(data),
                    );
                }
                continue;
            }
            let job = match f.store.get_job(&f.project, f.id).await {
                Ok(job) => job,
                Err(e) => {
                    f.fail(&e);
                    continue;
                }
            };
            if job.status.is_terminal() {
                // Events are committed before the final status, but one batch
                // may have landed between the two reads above.
                let late = match f.store.list_events(&f.project, f.id, f.after, 1).await {
                    Ok(late) => late,
                    Err(e) => {
                        f.fail(&e);
                        continue;
                    }
                };
                if late.is_empty() {
                    let data = serde_json::to_string(&JobView::from(job)).unwrap_or_default();
                    f.pending
                        .push_back(SseEvent::default().event("end").data(data));
                    f.done = true;
                }
                continue;
            }
            let far = tokio::time::Instant::now() + Duration::from_secs(3600);
            wait_for_change(&mut f.changes, f.id, far).await;
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

async fn cancel_job(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let id = job_id(&id)?;
    Ok(Json(s.store.request_cancel(&p.project, id).await?.into()))
}

async fn list_configs(State(s): State<AppState>, Auth(p): Auth) -> Result<Json<Value>, ApiError> {
    let list: Vec<ConfigView> = s
        .store
        .list_configs(&p.project)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(json!({ "configs": list })))
}

async fn create_config(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<CreateConfig>,
) -> Result<(StatusCode, Json<ConfigView>), ApiError> {
    let id = config_id(&body.id)?;
    let (stored, _) = seal_spec(&s, &p.project, body.spec).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            s.store
                .create_config(&p.project, &id, &stored)
                .await?
                .into(),
        ),
    ))
}

async fn update_config(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateConfig>,
) -> Result<Json<ConfigView>, ApiError> {
    let id = config_id(&id)?;
    let (stored, _) = seal_spec(&s, &p.project, body.spec).await?;
    Ok(Json(
        s.store
            .update_config(&p.project, &id, &stored)
            .await?
            .into(),
    ))
}

async fn get_config(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<ConfigView>, ApiError> {
    let id = config_id(&id)?;
    Ok(Json(s.store.get_config(&p.project, &id).await?.into()))
}

async fn delete_config(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = config_id(&id)?;
    s.store.delete_config(&p.project, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn config_state(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = config_id(&id)?;
    Ok(Json(s.store.get_config(&p.project, &id).await?.state))
}

/// `POST /v1/configs/{id}/actions/{action}`: Keboola's sync actions.
async fn config_action(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path((id, action)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let id = config_id(&id)?;
    if !gantry_core::spec::valid_action(&action) {
        return Err(ApiError::invalid(format!(
            "'{action}' is not a sync action name (letters, digits, '-', '_', '.'; \
             'run' is a job: POST /v1/jobs)"
        )));
    }
    let config = s.store.get_config(&p.project, &id).await?;
    let Some(runner) = &s.actions else {
        return Err(ApiError::unavailable(
            "sync actions need a container engine in the server's process (gantry up)",
        ));
    };
    let project_number = s.store.get_project(&p.project).await?.number;
    let answer = runner
        .run_action(ActionRequest {
            project: p.project,
            project_number,
            config: id,
            spec: config.spec,
            state: config.state,
            action,
            token_id: p.token_id,
            token_desc: p.token_desc,
        })
        .await;
    match answer {
        ActionAnswer::Json(v) => Ok(Json(v)),
        ActionAnswer::UserError(m) => {
            Err(ApiError::new(StatusCode::BAD_REQUEST, "action_failed", m))
        }
        ActionAnswer::Failed(detail) => Err(ApiError::internal(detail)),
    }
}

async fn readyz(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let store = tokio::time::timeout(Duration::from_secs(5), s.store.check_writable()).await;
    let store_ok = matches!(store, Ok(Ok(())));
    let engine = match &s.readiness {
        Some(r) => Some(
            tokio::time::timeout(Duration::from_secs(5), r.engine_ready())
                .await
                .unwrap_or_else(|_| Err("timed out".into())),
        ),
        None => None,
    };
    let engine_ok = engine.as_ref().is_none_or(|e| e.is_ok());
    if store_ok && engine_ok {
        return Ok(Json(
            json!({"status": "ready", "store": "ok", "engine": engine.map(|_| "ok")}),
        ));
    }
    let mut why = Vec::new();
    if !store_ok {
        why.push("the store is not writable".to_string());
    }
    if let Some(Err(e)) = engine {
        why.push(format!("the container engine does not answer: {e}"));
    }
    Err(ApiError::unavailable(why.join("; ")))
}

/// Prometheus metrics: what this process recorded (its worker, its HTTP
/// requests) plus the store's figures, read now (every process sharing the
/// store answers the same for those).
/// Admin only: the figures name every project, and no other token may learn
/// another project's name.
async fn metrics(State(s): State<AppState>, Auth(p): Auth) -> Result<Response, ApiError> {
    if !p.admin {
        return Err(ApiError::forbidden(
            "metrics name every project; scraping them needs an admin token",
        ));
    }
    render_metrics(s.store.as_ref()).await
}

async fn render_metrics(store: &dyn Store) -> Result<Response, ApiError> {
    let f = store.figures().await?;
    let m = gantry_metrics::global();
    let by_status: Vec<(&str, i64)> = JobStatus::ALL
        .iter()
        .map(|st| {
            let n = f
                .by_status
                .iter()
                .find(|(s, _)| s == st)
                .map_or(0, |(_, n)| *n);
            (st.as_str(), n as i64)
        })
        .collect();
    m.set_jobs(&by_status);
    m.set_queue(
        &f.queues
            .iter()
            .map(|q| gantry_metrics::QueueFigures {
                project: q.project.to_string(),
                queued: q.queued as i64,
                running: q.running as i64,
                oldest_due_age: Duration::from_millis(q.oldest_due_ms),
            })
            .collect::<Vec<_>>(),
    );
    m.set_storage(
        &f.storage
            .iter()
            .map(|st| gantry_metrics::StorageFigures {
                project: st.project.to_string(),
                table_bytes: st.table_bytes as i64,
                file_bytes: st.file_bytes as i64,
                table_versions: st.table_versions as i64,
                files: st.files as i64,
            })
            .collect::<Vec<_>>(),
    );
    Ok((
        [(header::CONTENT_TYPE, gantry_metrics::CONTENT_TYPE)],
        m.render(),
    )
        .into_response())
}
