//! `/v1/pipelines` and `/v1/pipeline-runs`: stored pipelines, their runs,
//! cancelling a run. Scoped to the caller's project.

use crate::auth::Auth;
use crate::doc::{ErrorBody, NameParam};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;
use crate::views::{PipelineList, PipelineRunList, PipelineRunView, PipelineView};
use crate::ApiError;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use gantry_core::pipeline::PipelineDoc;
use gantry_core::{ConfigId, PipelineId, ProjectId};
use gantry_store::{PipelineRow, PipelineRun, StoreError};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, delete))
        .routes(routes!(run))
        .routes(routes!(runs_of))
        .routes(routes!(all_runs))
        .routes(routes!(show_run))
        .routes(routes!(cancel_run))
}

pub(crate) fn pipeline_id(s: &str) -> Result<PipelineId, ApiError> {
    s.parse().map_err(|_| {
        ApiError::not_found(format!(
            "pipeline {}",
            s.chars().take(64).collect::<String>()
        ))
    })
}

pub(crate) fn view(p: PipelineRow) -> Result<PipelineView, ApiError> {
    crate::views::pipeline_view(p).map_err(ApiError::internal)
}

pub fn run_view(r: PipelineRun) -> PipelineRunView {
    crate::views::pipeline_run_view(r)
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewPipeline {
    #[schema(value_type = NameParam)]
    id: String,
    /// A list of phases, each a list of tasks (a configuration and optional
    /// row, parameters, `continue_on_failure`).
    #[schema(value_type = Vec<Object>)]
    phases: Value,
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    notify: Option<Value>,
}

#[utoipa::path(post, path = "/v1/pipelines", tag = "pipelines", security(("bearer" = [])), request_body = NewPipeline, responses((status = 201, description = "made", body = PipelineView), (status = 400, description = "invalid pipeline", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "a configuration is not in this project", body = ErrorBody), (status = 409, description = "conflict", body = ErrorBody), (status = 413, description = "body too large", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody)))]
async fn create(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<NewPipeline>,
) -> Result<(StatusCode, Json<PipelineView>), ApiError> {
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
    Ok((StatusCode::CREATED, Json(view(row)?)))
}

#[utoipa::path(put, path = "/v1/pipelines/{id}", tag = "pipelines", security(("bearer" = [])), params(("id" = NameParam, Path, description = "the pipeline's id")), request_body(content = Object, description = "phases and notify, as on create"), responses((status = 200, description = "updated", body = PipelineView), (status = 400, description = "invalid pipeline", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "no such pipeline in this project", body = ErrorBody), (status = 413, description = "body too large", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody)))]
async fn update(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<PipelineView>, ApiError> {
    let id = pipeline_id(&id)?;
    let (doc, configs) = checked(&s, &p.project, body).await?;
    Ok(Json(view(
        s.store
            .put_pipeline(&p.project, &id, &doc, &configs, false)
            .await?,
    )?))
}

#[utoipa::path(get, path = "/v1/pipelines", tag = "pipelines", security(("bearer" = [])), responses((status = 200, description = "the pipelines", body = PipelineList), (status = 401, description = "no valid token", body = ErrorBody)))]
async fn list(State(s): State<AppState>, Auth(p): Auth) -> Result<Json<PipelineList>, ApiError> {
    let rows = s.store.list_pipelines(&p.project).await?;
    Ok(Json(PipelineList {
        pipelines: rows.into_iter().map(view).collect::<Result<_, _>>()?,
    }))
}

#[utoipa::path(get, path = "/v1/pipelines/{id}", tag = "pipelines", security(("bearer" = [])), params(("id" = NameParam, Path, description = "the pipeline's id")), responses((status = 200, description = "the pipeline", body = PipelineView), (status = 400, description = "invalid id", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "no such pipeline in this project", body = ErrorBody)))]
async fn show(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<PipelineView>, ApiError> {
    let id = pipeline_id(&id)?;
    Ok(Json(view(s.store.get_pipeline(&p.project, &id).await?)?))
}

#[utoipa::path(delete, path = "/v1/pipelines/{id}", tag = "pipelines", security(("bearer" = [])), params(("id" = NameParam, Path, description = "the pipeline's id")), responses((status = 204, description = "deleted"), (status = 400, description = "invalid id", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "no such pipeline in this project", body = ErrorBody), (status = 409, description = "conflict", body = ErrorBody)))]
async fn delete(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id = pipeline_id(&id)?;
    s.store.delete_pipeline(&p.project, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/pipelines/{id}/run", tag = "pipelines", security(("bearer" = [])), params(("id" = NameParam, Path, description = "the pipeline's id")), responses((status = 201, description = "the run, started", body = PipelineRunView), (status = 400, description = "invalid id", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "no such pipeline in this project", body = ErrorBody)))]
async fn run(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<PipelineRunView>), ApiError> {
    let id = pipeline_id(&id)?;
    let r = s.store.start_pipeline_run(&p.project, &id).await?;
    Ok((StatusCode::CREATED, Json(run_view(r))))
}

#[utoipa::path(get, path = "/v1/pipelines/{id}/runs", tag = "pipelines", security(("bearer" = [])), params(("id" = NameParam, Path, description = "the pipeline's id")), responses((status = 200, description = "its runs", body = PipelineRunList), (status = 400, description = "invalid id", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "no such pipeline in this project", body = ErrorBody)))]
async fn runs_of(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<PipelineRunList>, ApiError> {
    let id = pipeline_id(&id)?;
    s.store.get_pipeline(&p.project, &id).await?;
    let runs = s.store.list_pipeline_runs(&p.project, Some(&id)).await?;
    Ok(Json(PipelineRunList {
        runs: runs.into_iter().map(run_view).collect(),
    }))
}

#[utoipa::path(get, path = "/v1/pipeline-runs", tag = "pipelines", security(("bearer" = [])), responses((status = 200, description = "every run of the project", body = PipelineRunList), (status = 401, description = "no valid token", body = ErrorBody)))]
async fn all_runs(
    State(s): State<AppState>,
    Auth(p): Auth,
) -> Result<Json<PipelineRunList>, ApiError> {
    let runs = s.store.list_pipeline_runs(&p.project, None).await?;
    Ok(Json(PipelineRunList {
        runs: runs.into_iter().map(run_view).collect(),
    }))
}

#[utoipa::path(get, path = "/v1/pipeline-runs/{id}", tag = "pipelines", security(("bearer" = [])), params(("id" = i64, Path, description = "the run's number")), responses((status = 200, description = "the run with its tasks and notifications", body = PipelineRunView), (status = 400, description = "invalid id", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "no such pipeline run in this project", body = ErrorBody)))]
async fn show_run(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<PipelineRunView>, ApiError> {
    let mut view = run_view(s.store.get_pipeline_run(&p.project, &id).await?);
    let notes = s
        .store
        .list_notifications(&p.project, "pipeline_run", &id)
        .await?;
    view.notifications = Some(
        notes
            .into_iter()
            .map(crate::views::notification_view)
            .collect(),
    );
    Ok(Json(view))
}

#[utoipa::path(post, path = "/v1/pipeline-runs/{id}/cancel", tag = "pipelines", security(("bearer" = [])), params(("id" = i64, Path, description = "the run's number")), responses((status = 200, description = "the run", body = PipelineRunView), (status = 400, description = "invalid id", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "no such pipeline run in this project", body = ErrorBody)))]
async fn cancel_run(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<PipelineRunView>, ApiError> {
    Ok(Json(run_view(
        s.store.cancel_pipeline_run(&p.project, &id).await?,
    )))
}
