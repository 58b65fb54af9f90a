//! `/v1/jobs`: submit (one or a batch), list, read (with long-poll), events
//! (JSON or a live server-sent stream), cancel. Every handler is scoped to
//! the caller's project: another project's jobs answer 404.

use crate::auth::Auth;
use crate::doc::{ErrorBody, JobIdParam};
use crate::extract::{config_id, job_id, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::views::*;
use crate::ApiError;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, Stream};
use gantry_control::{Source, Submission, Timing};
use gantry_core::{JobId, JobStatus, ProjectId};
use gantry_store::{Change, JobFilter, Principal, Store};
use serde::Deserialize;
use serde_json::Value;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(submit_job, list_jobs))
        .routes(routes!(submit_batch))
        .routes(routes!(get_job))
        .routes(routes!(job_events))
        .routes(routes!(cancel_job))
}

/// A submission as sent, in the control layer's terms: exactly one of
/// `spec` and `config`; a delay as a duration or a number of seconds.
fn submission(p: &Principal, body: SubmitJob) -> Result<Submission, ApiError> {
    let source = match (body.spec, body.config) {
        (Some(spec), None) => Source::Spec(spec),
        (None, Some(cfg)) => Source::Config(config_id(&cfg)?),
        _ => {
            return Err(ApiError::invalid(
                "send exactly one of 'spec' (an inline spec) or 'config' (a configuration id)",
            ))
        }
    };
    let delay = match body.delay {
        None => None,
        Some(Value::Number(n)) => Some(format!("{n}s")),
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            return Err(ApiError::invalid(
                "delay: must be a duration like 30s or a number of seconds",
            ))
        }
    };
    let mut sub = Submission::new(source).by(p);
    sub.mode = body.mode;
    sub.timing = Timing {
        priority: body.priority,
        delay,
        run_after: body.run_after,
    };
    Ok(sub)
}

/// Submits a job: an inline spec or a configuration's, validated, checked
/// against the project's policy and sealed.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", security(("bearer" = [])),
    request_body = SubmitJob,
    responses(
        (status = 201, description = "queued", body = JobView),
        (status = 400, description = "invalid request or spec (the key path is named)", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 404, description = "the configuration is not in this project", body = ErrorBody),
        (status = 413, description = "body too large", body = ErrorBody),
        (status = 415, description = "not JSON", body = ErrorBody),
    ))]
async fn submit_job(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<SubmitJob>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let sub = submission(&p, body)?;
    let job = s.control().submit(&p.project, sub).await?;
    Ok((StatusCode::CREATED, Json(job.into())))
}

/// Many jobs in one request and one commit: all are queued, or, when one is
/// invalid, none (the error names its index).
#[utoipa::path(post, path = "/v1/jobs/batch", tag = "jobs", security(("bearer" = [])),
    request_body = SubmitBatch,
    responses(
        (status = 201, description = "all queued", body = BatchIds),
        (status = 400, description = "one job is invalid (`jobs[i]: ...`), or 0 or over 1000 jobs", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 404, description = "a configuration is not in this project", body = ErrorBody),
        (status = 413, description = "body too large", body = ErrorBody),
        (status = 415, description = "not JSON", body = ErrorBody),
    ))]
async fn submit_batch(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<SubmitBatch>,
) -> Result<(StatusCode, Json<BatchIds>), ApiError> {
    let mut subs = Vec::with_capacity(body.jobs.len());
    for (i, job) in body.jobs.into_iter().enumerate() {
        subs.push(submission(&p, job).map_err(|e| e.prefixed(&format!("jobs[{i}]")))?);
    }
    let ids = s.control().submit_batch(&p.project, subs).await?;
    let ids = ids.iter().map(ToString::to_string).collect();
    Ok((StatusCode::CREATED, Json(BatchIds { ids })))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only jobs in this status.
    #[param(value_type = Option<JobStatusName>)]
    status: Option<String>,
    /// Page size, 1-1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// `next_cursor` of the page before: the jobs older than it.
    #[param(value_type = Option<JobIdParam>)]
    cursor: Option<String>,
}

/// The project's jobs, newest first, a page at a time.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "a page of jobs", body = JobList),
        (status = 400, description = "bad status, limit or cursor", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
    ))]
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

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct GetJobQuery {
    /// Long-poll: answer when the job has ended, or after this long (a
    /// duration like `30s`; at most 60 s are waited).
    #[param(pattern = "^[0-9]{1,6}(ms|s|m|h)$", example = "30s")]
    wait: Option<String>,
}

/// A job with its attempts and notifications.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", security(("bearer" = [])),
    params(("id" = JobIdParam, Path, description = "the job's id"), GetJobQuery),
    responses(
        (status = 200, description = "the job", body = JobView),
        (status = 400, description = "bad wait", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 404, description = "no such job in this project", body = ErrorBody),
    ))]
async fn get_job(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
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

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// Only events after this sequence number.
    #[param(minimum = 0)]
    after: Option<u64>,
    /// At most this many (1-10000, default 1000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
}

/// A job's log lines and events. With `Accept: text/event-stream`, a live
/// stream instead: every event (`event: log`), then `event: end` with the
/// job once it has ended (or `event: error` if the store fails).
#[utoipa::path(get, path = "/v1/jobs/{id}/events", tag = "jobs", security(("bearer" = [])),
    params(("id" = JobIdParam, Path, description = "the job's id"), EventsQuery),
    responses(
        (status = 200, description = "the events, oldest first", body = Vec<EventView>),
        (status = 400, description = "bad after or limit", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 404, description = "no such job in this project", body = ErrorBody),
    ))]
async fn job_events(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
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

/// Asks a job to stop: a queued job ends `cancelled` at once, a running
/// one when its worker sees the request.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs", security(("bearer" = [])),
    params(("id" = JobIdParam, Path, description = "the job's id")),
    responses(
        (status = 200, description = "the job", body = JobView),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 404, description = "no such job in this project", body = ErrorBody),
    ))]
async fn cancel_job(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<JobView>, ApiError> {
    let id = job_id(&id)?;
    Ok(Json(s.store.request_cancel(&p.project, id).await?.into()))
}
