//! `schedules`: create (many at once), list, show, cancel. An Iron schedule
//! is a Gantry schedule (`every: run_every`, `start_at`, `end_at`,
//! `max_runs: run_times`) running a configuration made for it, whose spec
//! is its code's latest revision with the schedule's payload.

use super::*;
use axum::extract::{Path, RawQuery, State};
use axum::routing::{get, post};
use gantry_core::schedule::ScheduleDoc;
use gantry_core::{ConfigId, ScheduleId};
use gantry_store::{IronCode, IronSchedule, IronScheduleDoc, NewIronSchedule, ScheduleRow};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/schedules", get(list).post(create))
        .route("/schedules/{id}", get(show))
        .route("/schedules/{id}/cancel", post(cancel))
}

/// Iron's shortest `run_every` (seconds).
const MIN_RUN_EVERY: i64 = 60;
/// A schedule without `run_every` runs once: `every` is then this (never
/// reached, as `max_runs` is 1).
const ONCE_EVERY: u64 = 366 * 24 * 3600;
/// Most schedules one request may create.
const MAX_SCHEDULES: usize = 100;

use gantry_core::time::now_ms;

/// A time Iron's clients send: RFC 3339 (Python sends `isoformat()`), or
/// seconds since the epoch.
fn time_arg(v: Option<&Value>, key: &str) -> IronResult<Option<String>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| {
                Some(
                    t.with_timezone(&chrono::Utc)
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                )
            })
            .map_err(|e| IronError::bad(format!("{key} must be an RFC 3339 time ({e})"))),
        Some(Value::Number(n)) => {
            let secs = n
                .as_i64()
                .ok_or_else(|| IronError::bad(format!("{key} must be a time")))?;
            Ok(Some(rfc3339(secs.saturating_mul(1000))))
        }
        Some(_) => Err(IronError::bad(format!("{key} must be a time"))),
    }
}

/// The Gantry ids a schedule stands on.
fn gantry_ids(id: &str) -> IronResult<(ScheduleId, ConfigId)> {
    let name = format!("iron-{id}");
    Ok((
        name.parse().map_err(IronError::bad)?,
        name.parse().map_err(IronError::bad)?,
    ))
}

/// The spec of a schedule's configuration: its code's latest revision with
/// the schedule's payload (the task id is exported from the job's id).
pub fn schedule_spec(
    code: &IronCode,
    id: &str,
    d: &IronScheduleDoc,
    network: &str,
) -> IronResult<Value> {
    let task = IronTask {
        code_id: code.id.clone(),
        code_name: code.name.clone(),
        code_rev: code.latest.rev,
        code_history_id: code.latest.id.clone(),
        payload: d.payload.clone(),
        payload_file: d.payload_file.clone(),
        label: d.label.clone(),
        cluster: d.cluster.clone(),
        priority: d.priority,
        timeout: d.timeout,
        delay: d.delay,
        schedule_id: Some(id.to_string()),
        percent: None,
        progress_msg: None,
    };
    task_spec(&code.latest, &task, None, network)
}

fn schedule_view(s: &IronSchedule, row: Option<&ScheduleRow>) -> Value {
    let ended = row.is_none_or(|r| r.next_tick.is_none());
    let status = if s.cancelled {
        "cancelled"
    } else if ended {
        "complete"
    } else {
        "scheduled"
    };
    let d = &s.doc;
    json!({
        "id": s.id,
        "project_id": s.project.as_str(),
        "code_name": d.code_name,
        "payload": d.payload,
        "status": status,
        "msg": "",
        "start_at": d.start_at.clone().unwrap_or_else(|| rfc3339(s.created_at)),
        "end_at": d.end_at,
        "next_start": row.and_then(|r| r.next_tick).filter(|_| !s.cancelled).map(rfc3339),
        "last_run_time": row.and_then(|r| r.last_tick).map(rfc3339),
        "run_every": d.run_every,
        "run_times": d.run_times,
        "run_count": row.map_or(0, |r| r.runs),
        "priority": d.priority,
        "timeout": d.timeout,
        "delay": d.delay,
        "cluster": d.cluster,
        "label": d.label,
        "created_at": rfc3339(s.created_at),
        "updated_at": rfc3339(row.map_or(s.updated_at, |r| r.updated_at.max(s.updated_at))),
    })
}

async fn view_of(s: &AppState, sched: &IronSchedule) -> IronResult<Value> {
    let row = match s
        .store
        .get_schedule(&sched.project, &sched.schedule_id)
        .await
    {
        Ok(r) => Some(r),
        Err(StoreError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    Ok(schedule_view(sched, row.as_ref()))
}

fn not_found_as_schedule(e: StoreError) -> IronError {
    match e {
        StoreError::NotFound(_) => IronError::new(StatusCode::NOT_FOUND, "Schedule not found"),
        other => other.into(),
    }
}

async fn list(
    State(s): State<AppState>,
    IronAuth(p): IronAuth,
    RawQuery(q): RawQuery,
) -> IronResult {
    let (offset, limit) = paging(&query_map(q.as_deref()))?;
    let mut out = Vec::new();
    for sched in s
        .store
        .list_iron_schedules(&p.project, offset, limit)
        .await?
    {
        out.push(view_of(&s, &sched).await?);
    }
    Ok(json_ok(json!({ "schedules": out })))
}

async fn show(
    State(s): State<AppState>,
    IronAuth(p): IronAuth,
    Path((_, id)): Path<(String, String)>,
) -> IronResult {
    let sched = s
        .store
        .get_iron_schedule(&p.project, &id)
        .await
        .map_err(not_found_as_schedule)?;
    Ok(json_ok(view_of(&s, &sched).await?))
}

async fn cancel(
    State(s): State<AppState>,
    IronAuth(p): IronAuth,
    Path((_, id)): Path<(String, String)>,
) -> IronResult {
    s.store
        .cancel_iron_schedule(&p.project, &id)
        .await
        .map_err(not_found_as_schedule)?;
    Ok(json_ok(json!({"msg": "Cancelled"})))
}

/// One schedule of a request, checked, with the Gantry schedule it becomes.
async fn prepare(
    s: &AppState,
    p: &Principal,
    v: &Value,
    network: &str,
) -> IronResult<NewIronSchedule> {
    let o = v
        .as_object()
        .ok_or_else(|| IronError::bad("each schedule must be a JSON object"))?;
    let code_name = opt_str(o.get("code_name"), "code_name")?
        .filter(|c| !c.is_empty())
        .ok_or_else(|| IronError::new(StatusCode::NOT_ACCEPTABLE, "code_name is required"))?;
    let code = match s.store.find_iron_code(&p.project, &code_name).await {
        Ok(c) => c,
        Err(StoreError::NotFound(_)) => {
            return Err(IronError::new(
                StatusCode::NOT_FOUND,
                format!("code '{code_name}' not found"),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    check_stack(s, &code.latest).await?;
    let payload = match o.get("payload") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    if payload.len() > MAX_PAYLOAD {
        return Err(IronError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("payload is too big (at most {MAX_PAYLOAD} bytes)"),
        ));
    }
    let run_every = opt_int(o.get("run_every"), "run_every")?;
    if run_every.is_some_and(|e| e < MIN_RUN_EVERY) {
        return Err(IronError::bad(format!(
            "run_every must be at least {MIN_RUN_EVERY} seconds"
        )));
    }
    let run_times = opt_int(o.get("run_times"), "run_times")?.filter(|n| *n > 0);
    let start_at = time_arg(o.get("start_at"), "start_at")?;
    let end_at = time_arg(o.get("end_at"), "end_at")?;
    let delay = opt_int(o.get("delay"), "delay")?.unwrap_or(0) as u64;
    let doc = IronScheduleDoc {
        code_name: code.name.clone(),
        payload_file: Some(store_text(s, &p.project, PAYLOAD_NAME, &payload).await?),
        payload,
        run_every: run_every.map(|e| e as u64),
        run_times: run_times.map(|n| n as u64),
        start_at: start_at.clone(),
        end_at: end_at.clone(),
        priority: check_priority(
            opt_int(o.get("priority"), "priority")?,
            code.latest.doc.default_priority,
        )?,
        timeout: check_timeout(opt_int(o.get("timeout"), "timeout")?)?,
        delay,
        label: opt_str(o.get("label"), "label")?,
        cluster: opt_str(o.get("cluster"), "cluster")?
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "default".into()),
    };
    let id = hex::encode(rand::random::<[u8; 12]>());
    let (schedule_id, config_id) = gantry_ids(&id)?;
    let spec = schedule_spec(&code, &id, &doc, network)?;
    let (stored, _) = s
        .control()
        .seal_spec(&p.project, spec)
        .await
        .map_err(ApiError::from)?;
    // Without `start_at`, the first run is now (a second from now, so that
    // the tick is ahead of the scheduler's clock).
    let start = start_at.unwrap_or_else(|| rfc3339(now_ms() + 1000));
    let (every, max_runs) = match run_every {
        Some(e) => (e as u64, run_times),
        None => (ONCE_EVERY, Some(1)),
    };
    let mut gdoc = json!({
        "config": config_id.as_str(),
        "every": every,
        "start_at": start,
        "overlap": "allow",
    });
    if let Some(e) = &end_at {
        gdoc["end_at"] = json!(e);
    }
    if let Some(n) = max_runs {
        gdoc["max_runs"] = json!(n);
    }
    let (gdoc, schedule) = ScheduleDoc::from_value(gdoc)?;
    Ok(NewIronSchedule {
        id,
        code_id: code.id.clone(),
        doc,
        config_id: config_id.clone(),
        spec: stored,
        schedule: gantry_store::NewSchedule {
            id: schedule_id,
            config_id: Some(config_id),
            pipeline_id: None,
            doc: serde_json::to_value(&gdoc).map_err(|e| IronError::from(ApiError::internal(e)))?,
            next_tick: schedule.first_tick(now_ms()),
            max_runs: schedule.max_runs,
            overlap: schedule.overlap,
        },
    })
}

async fn create(State(s): State<AppState>, IronAuth(p): IronAuth, body: Body) -> IronResult {
    let body = json_body(body, crate::MAX_BODY * 8).await?;
    let items = body
        .get("schedules")
        .and_then(Value::as_array)
        .ok_or_else(|| IronError::new(StatusCode::NOT_ACCEPTABLE, "schedules must be an array"))?;
    if items.is_empty() || items.len() > MAX_SCHEDULES {
        return Err(IronError::bad(format!(
            "send between 1 and {MAX_SCHEDULES} schedules"
        )));
    }
    let network = network_for(&s, &p.project).await?;
    let mut new = Vec::with_capacity(items.len());
    for (i, v) in items.iter().enumerate() {
        new.push(prepare(&s, &p, v, network).await.map_err(|e| IronError {
            msg: format!("schedules[{i}]: {}", e.msg),
            ..e
        })?);
    }
    let mut ids = Vec::with_capacity(new.len());
    for n in new {
        let made = s.store.create_iron_schedule(&p.project, n).await?;
        ids.push(json!({"id": made.id}));
    }
    Ok(json_ok(json!({"msg": "Scheduled", "schedules": ids})))
}
