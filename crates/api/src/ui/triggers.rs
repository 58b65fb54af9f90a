//! The dashboard's schedules and pipelines pages. The views are the API's
//! own (`schedule_routes::view` computes the next fire times,
//! `pipeline_routes::run_view` a run's tasks), read scoped to the session's
//! project, so another project's schedule, pipeline or run is a 404.

use super::pages::{job_row, jobs_page, pretty, ser, time, took, Filter};
use super::session::{CheckedForm, Session};
use super::{hide_secrets, render, UiError};
use crate::pipeline_routes::{pipeline_id, run_view, view as pipeline_view};
use crate::schedule_routes::{schedule_id, set_paused, view as schedule_view};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use gantry_store::{PipelineRun, ScheduleRow};
use minijinja::context;
use serde_json::{json, Value};

/// A schedule row for the list and the page: the API's view plus how it fires.
fn schedule_row(row: ScheduleRow) -> Value {
    let mut v = json!(schedule_view(row));
    let doc = v["schedule"].clone();
    v["cron"] = doc["cron"].clone();
    v["every"] = match &doc["every"] {
        Value::Number(n) => json!(format!("{n}s")),
        other => other.clone(),
    };
    v["timezone"] = json!(doc["timezone"].as_str().unwrap_or("UTC"));
    v
}

pub async fn schedules(State(s): State<AppState>, session: Session) -> Result<Response, UiError> {
    let list: Vec<Value> = s
        .store
        .list_schedules(&session.principal.project)
        .await?
        .into_iter()
        .map(schedule_row)
        .collect();
    render(
        "schedules.html",
        StatusCode::OK,
        context! { s => session.ctx(), page => ser("schedules"), schedules => ser(list) },
    )
}

pub async fn schedule(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let project = &session.principal.project;
    let id = schedule_id(&id)?;
    let row = s.store.get_schedule(project, &id).await?;
    let doc = pretty(&row.doc);
    let filter = Filter {
        schedule: Some(id.clone()),
        ..Filter::default()
    };
    let (jobs, _) = jobs_page(s.store.as_ref(), project, None, &filter, None).await?;
    let jobs: Vec<Value> = jobs.iter().map(job_row).collect();
    render(
        "schedule.html",
        StatusCode::OK,
        context! {
            s => session.ctx(),
            page => ser("schedules"),
            sc => ser(schedule_row(row)),
            doc => ser(doc),
            jobs => ser(jobs),
        },
    )
}

pub async fn pause_schedule(
    State(s): State<AppState>,
    Path(id): Path<String>,
    form: CheckedForm,
) -> Result<Response, UiError> {
    let id = schedule_id(&id)?;
    set_paused(&s, &form.session.principal.project, &id, true).await?;
    Ok(Redirect::to(&format!("/ui/schedules/{id}")).into_response())
}

pub async fn resume_schedule(
    State(s): State<AppState>,
    Path(id): Path<String>,
    form: CheckedForm,
) -> Result<Response, UiError> {
    let id = schedule_id(&id)?;
    set_paused(&s, &form.session.principal.project, &id, false).await?;
    Ok(Redirect::to(&format!("/ui/schedules/{id}")).into_response())
}

/// A run for a list: the API's view plus display times.
fn run_row(r: PipelineRun) -> Value {
    let (created, started, finished) = (r.created_at, r.started_at, r.finished_at);
    let mut v = json!(run_view(r));
    v["created"] = json!(time(created));
    v["started"] = json!(started.map(time));
    v["finished"] = json!(finished.map(time));
    v["took"] = json!(took(started, finished));
    v
}

pub async fn pipelines(State(s): State<AppState>, session: Session) -> Result<Response, UiError> {
    let project = &session.principal.project;
    let list: Vec<Value> = s
        .store
        .list_pipelines(project)
        .await?
        .into_iter()
        .map(|p| {
            let updated = time(p.updated_at);
            let view = pipeline_view(p)?;
            let phase_count = view.phases.len();
            let mut v = json!(view);
            v["updated"] = json!(updated);
            v["phase_count"] = json!(phase_count);
            Ok(v)
        })
        .collect::<Result<_, crate::ApiError>>()?;
    let runs: Vec<Value> = s
        .store
        .list_pipeline_runs(project, None)
        .await?
        .into_iter()
        .take(25)
        .map(run_row)
        .collect();
    render(
        "pipelines.html",
        StatusCode::OK,
        context! { s => session.ctx(), page => ser("pipelines"), pipelines => ser(list), runs => ser(runs) },
    )
}

pub async fn pipeline(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let project = &session.principal.project;
    let id = pipeline_id(&id)?;
    let p = s.store.get_pipeline(project, &id).await?;
    let phases: Vec<Value> = p.doc["phases"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|ph| {
                    let tasks: Vec<Value> = ph["tasks"]
                        .as_array()
                        .map(|t| {
                            t.iter()
                                .map(|t| {
                                    json!({
                                        "config": t["config"],
                                        "continue_on_failure": t["continue_on_failure"],
                                        "parameters": t.get("parameters")
                                            .filter(|p| p.as_object().is_some_and(|o| !o.is_empty()))
                                            .map(|p| pretty(&hide_secrets(p))),
                                    })
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    json!({"name": ph["name"], "tasks": tasks})
                })
                .collect()
        })
        .unwrap_or_default();
    let runs: Vec<Value> = s
        .store
        .list_pipeline_runs(project, Some(&id))
        .await?
        .into_iter()
        .take(50)
        .map(run_row)
        .collect();
    render(
        "pipeline.html",
        StatusCode::OK,
        context! {
            s => session.ctx(),
            page => ser("pipelines"),
            id => ser(p.id.to_string()),
            version => ser(p.version),
            updated => ser(time(p.updated_at)),
            phases => ser(phases),
            runs => ser(runs),
        },
    )
}

pub async fn run_pipeline(
    State(s): State<AppState>,
    Path(id): Path<String>,
    form: CheckedForm,
) -> Result<Response, UiError> {
    let id = pipeline_id(&id)?;
    let r = s
        .store
        .start_pipeline_run(&form.session.principal.project, &id)
        .await?;
    Ok(Redirect::to(&format!("/ui/pipeline-runs/{}", urlenc(&r.id))).into_response())
}

fn urlenc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub async fn pipeline_run(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let project = &session.principal.project;
    let r = s.store.get_pipeline_run(project, &id).await?;
    // Phase names from the pipeline as stored now (it may have been deleted).
    let names: Vec<Value> = match s.store.get_pipeline(project, &r.pipeline).await {
        Ok(p) => p.doc["phases"]
            .as_array()
            .map(|a| a.iter().map(|ph| ph["name"].clone()).collect())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let (phase_now, phase_count, status) = (r.phase, r.phases, r.status.clone());
    let view = run_row(r);
    let phases: Vec<Value> = (0..phase_count)
        .map(|i| {
            let tasks: Vec<Value> = view["tasks"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .filter(|t| t["phase"].as_u64() == Some(u64::from(i)))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "number": i + 1,
                "name": names.get(i as usize).cloned().unwrap_or(Value::Null),
                "current": i == phase_now && matches!(status.as_str(), "queued" | "running"),
                "tasks": tasks,
            })
        })
        .collect();
    let ended = !matches!(status.as_str(), "queued" | "running");
    render(
        "pipeline_run.html",
        StatusCode::OK,
        context! {
            s => session.ctx(),
            page => ser("pipelines"),
            run => ser(view),
            phases => ser(phases),
            ended => ser(ended),
        },
    )
}

pub async fn cancel_run(
    State(s): State<AppState>,
    Path(id): Path<String>,
    form: CheckedForm,
) -> Result<Response, UiError> {
    let r = s
        .store
        .cancel_pipeline_run(&form.session.principal.project, &id)
        .await?;
    Ok(Redirect::to(&format!("/ui/pipeline-runs/{}", urlenc(&r.id))).into_response())
}
