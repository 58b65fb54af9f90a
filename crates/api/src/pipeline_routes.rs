//! `/v1/pipelines` and `/v1/pipeline-runs`: stored pipelines, their runs,
//! cancelling a run. Scoped to the caller's project.

use crate::auth::Auth;
use crate::extract::ApiJson;
use crate::state::AppState;
use crate::views::rfc3339;
use crate::ApiError;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use gantry_core::pipeline::PipelineDoc;
use gantry_core::{ConfigId, PipelineId, ProjectId};
use gantry_store::{PipelineRow, PipelineRun, StoreError};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/pipelines", get(list).post(create))
        .route("/v1/pipelines/{id}", get(show).put(update).delete(delete))
        .route("/v1/pipelines/{id}/run", post(run))
        .route("/v1/pipelines/{id}/runs", get(runs_of))
        .route("/v1/pipeline-runs", get(all_runs))
        .route("/v1/pipeline-runs/{id}", get(show_run))
        .route("/v1/pipeline-runs/{id}/cancel", post(cancel_run))
}

pub(crate) fn pipeline_id(s: &str) -> Result<PipelineId, ApiError> {
    s.parse().map_err(|_| {
        ApiError::not_found(format!(
            "pipeline {}",
            s.chars().take(64).collect::<String>()
        ))
    })
}

pub(crate) fn view(p: PipelineRow) -> Value {
    json!({
        "id": p.id,
        "project": p.project,
        "phases": p.doc["phases"],
        "version": p.version,
        "created_at": rfc3339(p.created_at),
        "updated_at": rfc3339(p.updated_at),
    })
}

pub fn run_view(r: PipelineRun) -> Value {
    let tasks: Vec<Value> = r
        .tasks
        .iter()
        .map(|t| {
            json!({
                "phase": t.phase,
                "task": t.task,
                "config": t.config_id,
                "continue_on_failure": t.continue_on_failure,
                "status": t.status,
                "job": t.job_id.map(|j| j.to_string()),
                "error": t.error,
            })
        })
        .collect();
    json!({
        "id": r.id,
        "project": r.project,
        "pipeline": r.pipeline,
        "status": r.status,
        "phase": r.phase,
        "phases": r.phases,
        "cancel_requested": r.cancel_requested,
        "error": r.error,
        "tasks": tasks,
        "created_at": rfc3339(r.created_at),
        "started_at": r.started_at.map(rfc3339),
        "finished_at": r.finished_at.map(rfc3339),
        "trigger": r.trigger.as_ref().map(crate::views::trigger_view),
    })
}

/// Validates a pipeline, checks its configurations exist in the project
/// (400 naming the task otherwise) and seals `#` values of task parameters.
async fn checked(
    s: &AppState,
    project: &ProjectId,
    body: Value,
) -> Result<(Value, Vec<ConfigId>), ApiError> {
    let (mut doc, configs) = PipelineDoc::from_value(body)?;
    for (i, phase) in configs.iter().enumerate() {
        for (j, cfg) in phase.iter().enumerate() {
            match s.store.get_config(project, cfg).await {
                Ok(_) => {}
                Err(StoreError::NotFound(_)) => {
                    return Err(ApiError::invalid(format!(
                        "phases[{i}].tasks[{j}].config: configuration {cfg} not found in project {project}"
                    )))
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    for phase in &mut doc.phases {
        for task in &mut phase.tasks {
            s.vault.seal_params(&mut task.parameters);
        }
    }
    let mut flat: Vec<ConfigId> = configs.into_iter().flatten().collect();
    flat.sort();
    flat.dedup();
    let mut value = serde_json::to_value(&doc).map_err(ApiError::internal)?;
    gantry_control::jobs::seal_notify(&s.vault, &mut value);
    Ok((value, flat))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPipeline {
    id: String,
    phases: Value,
    #[serde(default)]
    notify: Option<Value>,
}

async fn create(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<NewPipeline>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id: PipelineId = body
        .id
        .parse()
        .map_err(|e| ApiError::invalid(format!("id: {e}")))?;
    let mut doc = json!({"phases": body.phases});
    if let Some(n) = body.notify {
        doc["notify"] = n;
    }
    let (doc, configs) = checked(&s, &p.project, doc).await?;
    let row = s
        .store
        .put_pipeline(&p.project, &id, &doc, &configs, true)
        .await?;
    Ok((StatusCode::CREATED, Json(view(row))))
}

async fn update(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let id = pipeline_id(&id)?;
    let (doc, configs) = checked(&s, &p.project, body).await?;
    Ok(Json(view(
        s.store
            .put_pipeline(&p.project, &id, &doc, &configs, false)
            .await?,
    )))
}

async fn list(State(s): State<AppState>, Auth(p): Auth) -> Result<Json<Value>, ApiError> {
    let rows = s.store.list_pipelines(&p.project).await?;
    Ok(Json(
        json!({"pipelines": rows.into_iter().map(view).collect::<Vec<_>>()}),
    ))
}

async fn show(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = pipeline_id(&id)?;
    Ok(Json(view(s.store.get_pipeline(&p.project, &id).await?)))
}

async fn delete(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = pipeline_id(&id)?;
    s.store.delete_pipeline(&p.project, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn run(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = pipeline_id(&id)?;
    let r = s.store.start_pipeline_run(&p.project, &id).await?;
    Ok((StatusCode::CREATED, Json(run_view(r))))
}

async fn runs_of(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = pipeline_id(&id)?;
    s.store.get_pipeline(&p.project, &id).await?;
    let runs = s.store.list_pipeline_runs(&p.project, Some(&id)).await?;
    Ok(Json(
        json!({"runs": runs.into_iter().map(run_view).collect::<Vec<_>>()}),
    ))
}

async fn all_runs(State(s): State<AppState>, Auth(p): Auth) -> Result<Json<Value>, ApiError> {
    let runs = s.store.list_pipeline_runs(&p.project, None).await?;
    Ok(Json(
        json!({"runs": runs.into_iter().map(run_view).collect::<Vec<_>>()}),
    ))
}

async fn show_run(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut view = run_view(s.store.get_pipeline_run(&p.project, &id).await?);
    let notes = s
        .store
        .list_notifications(&p.project, "pipeline_run", &id)
        .await?;
    view["notifications"] = json!(notes
        .into_iter()
        .map(crate::views::notification_view)
        .collect::<Vec<_>>());
    Ok(Json(view))
}

async fn cancel_run(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(run_view(
        s.store.cancel_pipeline_run(&p.project, &id).await?,
    )))
}
