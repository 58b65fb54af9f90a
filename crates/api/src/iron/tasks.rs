//! `tasks`: queue (many at once, or one by webhook), list, show, log,
//! cancel, retry, progress. A task is a Gantry job; its Iron fields are
//! kept beside it.

use super::*;
use axum::extract::{Path, RawQuery, State};
use axum::routing::{get, post};
use gantry_core::{JobId, JobStatus};
use gantry_store::{IronCode, IronTaskFilter, Job, NewJob};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/tasks", get(list).post(queue))
        .route("/tasks/webhook", post(webhook))
        .route("/tasks/{id}", get(show))
        .route("/tasks/{id}/log", get(log))
        .route("/tasks/{id}/outlog", get(outlog))
        .route("/tasks/{id}/cancel", post(cancel))
        .route("/tasks/{id}/progress", post(progress))
        .route("/tasks/{id}/retry", post(retry))
}

/// Most tasks one request may queue.
const MAX_TASKS: usize = 1000;
/// The longest `delay` (seconds).
const MAX_DELAY: u64 = 7 * 24 * 3600;

pub fn iron_status(s: JobStatus) -> &'static str {
    match s {
        JobStatus::Queued => "queued",
        JobStatus::Running => "running",
        JobStatus::Succeeded => "complete",
        JobStatus::Failed => "error",
        JobStatus::Cancelled => "cancelled",
        JobStatus::TimedOut => "timeout",
    }
}

/// Iron's status filters (`queued=1&error=1`, OR-ed).
fn status_filters(q: &Map<String, Value>) -> Vec<JobStatus> {
    let on = |k: &str| matches!(q.get(k).and_then(Value::as_str), Some("1" | "true"));
    let mut out = Vec::new();
    for (key, statuses) in [
        ("queued", &[JobStatus::Queued][..]),
        ("running", &[JobStatus::Running]),
        ("complete", &[JobStatus::Succeeded]),
        ("error", &[JobStatus::Failed]),
        ("cancelled", &[JobStatus::Cancelled]),
        ("killed", &[JobStatus::Cancelled]),
        ("timeout", &[JobStatus::TimedOut]),
    ] {
        if on(key) {
            out.extend_from_slice(statuses);
        }
    }
    out.sort_by_key(|s| s.to_string());
    out.dedup();
    out
}

/// A task as Iron's clients read it. It never has the keys of a schedule
/// (`start_at`, `run_every`, ...): Python's client would take it for one.
fn task_view(job: &Job, t: &IronTask, log_size: Option<u64>) -> Value {
    let msg = match &job.error {
        Some(e) if job.status.is_terminal() => format!("{}: {}", e.kind.as_str(), e.message),
        _ => String::new(),
    };
    let updated = job.finished_at.or(job.started_at).unwrap_or(job.queued_at);
    let duration = match (job.started_at, job.finished_at) {
        (Some(s), Some(f)) => Some(f - s),
        _ => None,
    };
    let mut v = json!({
        "id": job.id.to_string(),
        "project_id": job.project.as_str(),
        "code_id": t.code_id,
        "code_history_id": t.code_history_id,
        "code_name": t.code_name,
        "code_rev": t.code_rev.to_string(),
        "status": iron_status(job.status),
        "msg": msg,
        "created_at": rfc3339(job.queued_at),
        "updated_at": rfc3339(updated),
        "start_time": job.started_at.map(rfc3339),
        "end_time": job.finished_at.map(rfc3339),
        "duration": duration,
        "timeout": t.timeout,
        "priority": t.priority,
        "delay": t.delay,
        "payload": t.payload,
        "label": t.label,
        "cluster": t.cluster,
        "percent": t.percent,
        "retry_count": job.attempt.saturating_sub(1),
    });
    if let Some(p) = &t.progress_msg {
        v["progress_msg"] = json!(p);
    }
    if let Some(n) = log_size {
        v["log_size"] = json!(n);
    }
    if let Some(s) = &t.schedule_id {
        v["schedule_id"] = json!(s);
    }
    v
}

fn task_id(s: &str) -> IronResult<JobId> {
    s.parse()
        .map_err(|_| IronError::new(StatusCode::NOT_FOUND, "Task not found"))
}

/// Iron names a missing task "Task not found".
fn not_found_as_task(e: StoreError) -> IronError {
    match e {
        StoreError::NotFound(_) => IronError::new(StatusCode::NOT_FOUND, "Task not found"),
        other => other.into(),
    }
}

async fn list(
    State(s): State<AppState>,
    IronAuth(p): IronAuth,
    RawQuery(q): RawQuery,
) -> IronResult {
    let q = query_map(q.as_deref());
    let (offset, limit) = paging(&q)?;
    let secs = |k: &str| -> IronResult<Option<i64>> {
        Ok(opt_int(q.get(k), k)?.map(|s| s.saturating_mul(1000)))
    };
    let filter = IronTaskFilter {
        code_name: opt_str(q.get("code_name"), "code_name")?.filter(|c| !c.is_empty()),
        statuses: status_filters(&q),
        from: secs("from_time")?,
        to: secs("to_time")?,
        offset,
        limit,
    };
    let tasks = s.store.list_iron_tasks(&p.project, &filter).await?;
    Ok(json_ok(json!({
        "tasks": tasks.iter().map(|(j, t)| task_view(j, t, None)).collect::<Vec<_>>()
    })))
}

async fn show(
    State(s): State<AppState>,
    IronAuth(p): IronAuth,
    Path((_, id)): Path<(String, String)>,
) -> IronResult {
    let id = task_id(&id)?;
    let (job, t) = s
        .store
        .get_iron_task(&p.project, id)
        .await
        .map_err(not_found_as_task)?;
    let size = log_text(&s, &job, None).await?.len() as u64;
    Ok(json_ok(task_view(&job, &t, Some(size))))
}

/// One task to queue, as Iron's clients send it.
pub struct Queue {
    pub code_name: String,
    pub payload: String,
    pub priority: Option<i64>,
    pub timeout: Option<i64>,
    pub delay: Option<i64>,
    pub label: Option<String>,
    pub cluster: Option<String>,
}

impl Queue {
    fn from_json(v: &Value) -> IronResult<Self> {
        let o = v
            .as_object()
            .ok_or_else(|| IronError::bad("each task must be a JSON object"))?;
        let code_name = opt_str(o.get("code_name"), "code_name")?
            .filter(|c| !c.is_empty())
            .ok_or_else(|| IronError::new(StatusCode::NOT_ACCEPTABLE, "code_name is required"))?;
        let payload = match o.get("payload") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            // Some clients send the payload as JSON: keep its text.
            Some(other) => other.to_string(),
        };
        Ok(Self {
            code_name,
            payload,
            priority: opt_int(o.get("priority"), "priority")?,
            timeout: opt_int(o.get("timeout"), "timeout")?,
            delay: opt_int(o.get("delay"), "delay")?,
            label: opt_str(o.get("label"), "label")?,
            cluster: opt_str(o.get("cluster"), "cluster")?.filter(|c| !c.is_empty()),
        })
    }
}

/// The job and Iron fields of a task to queue on a code's latest revision.
async fn prepare(
    s: &AppState,
    p: &Principal,
    code: &IronCode,
    q: Queue,
    network: &str,
) -> IronResult<(JobId, NewJob, IronTask)> {
    if q.payload.len() > MAX_PAYLOAD {
        return Err(IronError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("payload is too big (at most {MAX_PAYLOAD} bytes)"),
        ));
    }
    check_stack(s, &code.latest).await?;
    let delay = q.delay.unwrap_or(0) as u64;
    if delay > MAX_DELAY {
        return Err(IronError::bad(format!(
            "delay must be at most {MAX_DELAY} seconds"
        )));
    }
    let payload_file = Some(store_text(s, &p.project, PAYLOAD_NAME, &q.payload).await?);
    let task = IronTask {
        code_id: code.id.clone(),
        code_name: code.name.clone(),
        code_rev: code.latest.rev,
        code_history_id: code.latest.id.clone(),
        payload: q.payload,
        payload_file,
        label: q.label,
        cluster: q.cluster.unwrap_or_else(|| "default".into()),
        priority: check_priority(q.priority, code.latest.doc.default_priority)?,
        timeout: check_timeout(q.timeout)?,
        delay,
        schedule_id: None,
        percent: None,
        progress_msg: None,
    };
    let id = JobId::new();
    let spec = task_spec(&code.latest, &task, Some(&id.to_string()), network)?;
    // The one submit path: the project's policy, sealing and timing.
    let mut sub = gantry_control::Submission::new(gantry_control::Source::Spec(spec)).by(p);
    sub.timing.delay = Some(format!("{delay}s"));
    let job = s
        .control()
        .prepare(&p.project, sub)
        .await
        .map_err(ApiError::from)?;
    Ok((id, job, task))
}

/// Queues tasks, each on its code's latest revision, all or none.
pub async fn queue_many(s: &AppState, p: &Principal, items: Vec<Queue>) -> IronResult<Vec<JobId>> {
    let network = network_for(s, &p.project).await?;
    let mut codes: std::collections::HashMap<String, IronCode> = Default::default();
    let mut batch = Vec::with_capacity(items.len());
    for (i, q) in items.into_iter().enumerate() {
        let code = match codes.get(&q.code_name) {
            Some(c) => c.clone(),
            None => {
                let c = match s.store.find_iron_code(&p.project, &q.code_name).await {
                    Ok(c) => c,
                    Err(StoreError::NotFound(_)) => {
                        return Err(IronError::new(
                            StatusCode::NOT_FOUND,
                            format!("tasks[{i}]: code '{}' not found", q.code_name),
                        ))
                    }
                    Err(e) => return Err(e.into()),
                };
                codes.insert(q.code_name.clone(), c.clone());
                c
            }
        };
        let t = prepare(s, p, &code, q, network)
            .await
            .map_err(|e| IronError {
                msg: format!("tasks[{i}]: {}", e.msg),
                ..e
            })?;
        batch.push(t);
    }
    let ids = batch.iter().map(|(id, _, _)| *id).collect();
    s.store.queue_iron_tasks(batch).await?;
    Ok(ids)
}

async fn queue(State(s): State<AppState>, IronAuth(p): IronAuth, body: Body) -> IronResult {
    let body = json_body(body, crate::MAX_BODY * 8).await?;
    let items = body
        .get("tasks")
        .and_then(Value::as_array)
        .ok_or_else(|| IronError::new(StatusCode::NOT_ACCEPTABLE, "tasks must be an array"))?;
    if items.is_empty() || items.len() > MAX_TASKS {
        return Err(IronError::bad(format!(
            "send between 1 and {MAX_TASKS} tasks"
        )));
    }
    let items = items
        .iter()
        .enumerate()
        .map(|(i, t)| {
            Queue::from_json(t).map_err(|e| IronError {
                msg: format!("tasks[{i}]: {}", e.msg),
                ..e
            })
        })
        .collect::<IronResult<Vec<_>>>()?;
    let ids = queue_many(&s, &p, items).await?;
    Ok(json_ok(json!({
        "msg": "Queued up",
        "tasks": ids.iter().map(|id| json!({"id": id.to_string()})).collect::<Vec<_>>(),
    })))
}

/// `POST tasks/webhook?code_name=...`: the raw body is the payload.
async fn webhook(
    State(s): State<AppState>,
    IronAuth(p): IronAuth,
    RawQuery(q): RawQuery,
    body: Body,
) -> IronResult {
    let q = query_map(q.as_deref());
    let bytes = axum::body::to_bytes(body, MAX_PAYLOAD).await.map_err(|_| {
        IronError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("payload is too big (at most {MAX_PAYLOAD} bytes)"),
        )
    })?;
    let payload = String::from_utf8(bytes.to_vec())
        .map_err(|_| IronError::bad("the payload must be UTF-8 text"))?;
    let item = Queue {
        code_name: opt_str(q.get("code_name"), "code_name")?
            .filter(|c| !c.is_empty())
            .ok_or_else(|| IronError::bad("code_name is required in the query"))?,
        payload,
        priority: opt_int(q.get("priority"), "priority")?,
        timeout: opt_int(q.get("timeout"), "timeout")?,
        delay: opt_int(q.get("delay"), "delay")?,
        label: opt_str(q.get("label"), "label")?,
        cluster: opt_str(q.get("cluster"), "cluster")?.filter(|c| !c.is_empty()),
    };
    let ids = queue_many(&s, &p, vec![item]).await?;
    Ok(json_ok(
        json!({"id": ids[0].to_string(), "msg": "Queued up"}),
    ))
}

/// The task's log: its lines' text joined by newlines, in order. With
/// `only`, one stream's.
async fn log_text(s: &AppState, job: &Job, only: Option<&str>) -> IronResult<String> {
    let mut out = String::new();
    let mut after = 0;
    loop {
        let page = s
            .store
            .list_events(&job.project, job.id, after, 1000)
            .await?;
        for e in &page {
            after = e.seq;
            let keep = match only {
                Some(stream) => e.stream == stream,
                None => e.stream != "system",
            };
            if keep {
                out.push_str(&e.message);
                out.push('\n');
            }
        }
        if page.len() < 1000 {
            return Ok(out);
        }
    }
}

async fn log_of(s: AppState, p: Principal, id: String, only: Option<&str>) -> IronResult {
    let id = task_id(&id)?;
    let (job, _) = s
        .store
        .get_iron_task(&p.project, id)
        .await
        .map_err(not_found_as_task)?;
    let text = log_text(&s, &job, only).await?;
    if text.is_empty() && !job.status.is_terminal() {
        // Python's wait helper retries a 404 until the log exists.
        return Err(IronError::new(StatusCode::NOT_FOUND, "Log not found"));
    }
    Ok(text_ok(text))
}

async fn log(
    State(s): State<AppState>,
    IronAuth(p): IronAuth,
    Path((_, id)): Path<(String, String)>,
) -> IronResult {
    log_of(s, p, id, None).await
}

async fn outlog(
    State(s): State<AppState>,
    IronAuth(p): IronAuth,
    Path((_, id)): Path<(String, String)>,
) -> IronResult {
    log_of(s, p, id, Some("stdout")).await
}

async fn cancel(
    State(s): State<AppState>,
    IronAuth(p): IronAuth,
    Path((_, id)): Path<(String, String)>,
) -> IronResult {
    let id = task_id(&id)?;
    s.store
        .get_iron_task(&p.project, id)
        .await
        .map_err(not_found_as_task)?;
    s.store.request_cancel(&p.project, id).await?;
    Ok(json_ok(json!({"msg": "Cancelled"})))
}

async fn progress(
    State(s): State<AppState>,
    IronAuth(p): IronAuth,
    Path((_, id)): Path<(String, String)>,
    body: Body,
) -> IronResult {
    let id = task_id(&id)?;
    let body = json_body(body, 16 * 1024).await?;
    let percent = opt_int(body.get("percent"), "percent")?.unwrap_or(0);
    if percent > 100 {
        return Err(IronError::bad("percent must be between 0 and 100"));
    }
    let msg = opt_str(body.get("msg"), "msg")?;
    if msg.as_ref().is_some_and(|m| m.len() > 4096) {
        return Err(IronError::bad("msg must be at most 4096 bytes"));
    }
    s.store
        .set_iron_progress(&p.project, id, percent as u8, msg)
        .await
        .map_err(not_found_as_task)?;
    Ok(json_ok(json!({"msg": "Progress set"})))
}

/// Queues the task again: a new task on the code's latest revision, with
/// the same payload and settings (`delay` from the body).
async fn retry(
    State(s): State<AppState>,
    IronAuth(p): IronAuth,
    Path((_, id)): Path<(String, String)>,
    body: Body,
) -> IronResult {
    let id = task_id(&id)?;
    let body = json_body(body, 16 * 1024).await?;
    let (_, t) = s
        .store
        .get_iron_task(&p.project, id)
        .await
        .map_err(not_found_as_task)?;
    let item = Queue {
        code_name: t.code_name,
        payload: t.payload,
        priority: Some(i64::from(t.priority)),
        timeout: Some(t.timeout as i64),
        delay: opt_int(body.get("delay"), "delay")?,
        label: t.label,
        cluster: Some(t.cluster),
    };
    let ids = queue_many(&s, &p, vec![item]).await?;
    Ok(json_ok(json!({
        "msg": "Queued up",
        "tasks": [{"id": ids[0].to_string()}],
    })))
}
