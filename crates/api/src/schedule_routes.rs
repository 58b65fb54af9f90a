//! `/v1/schedules`: create, list, show (with the next fire times and the
//! latest ticks), pause, resume, delete. Scoped to the caller's project.

use crate::auth::Auth;
use crate::doc::{ErrorBody, NameParam};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;
use crate::views::{ScheduleList, ScheduleView};
use crate::ApiError;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use gantry_core::schedule::{ScheduleDoc, Target};
use gantry_core::{ProjectId, ScheduleId};
use gantry_store::{NewSchedule, ScheduleRow, StoreError};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, delete))
        .routes(routes!(pause))
        .routes(routes!(resume))
}

use gantry_core::time::now_ms;

pub(crate) fn schedule_id(s: &str) -> Result<ScheduleId, ApiError> {
    s.parse().map_err(|_| {
        ApiError::not_found(format!(
            "schedule {}",
            s.chars().take(64).collect::<String>()
        ))
    })
}

pub(crate) fn view(row: ScheduleRow) -> ScheduleView {
    crate::views::schedule_view(row)
}

#[utoipa::path(post, path = "/v1/schedules", tag = "schedules", security(("bearer" = [])), request_body(content = Object, description = "a schedule document: id, cron, timezone, config or pipeline, missed, paused"), responses((status = 201, description = "made, with its next fire times", body = ScheduleView), (status = 400, description = "invalid schedule", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "its configuration or pipeline is not in this project", body = ErrorBody), (status = 409, description = "conflict", body = ErrorBody), (status = 413, description = "body too large", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody)))]
async fn create(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(mut body): ApiJson<Value>,
) -> Result<(StatusCode, Json<ScheduleView>), ApiError> {
    let Some(obj) = body.as_object_mut() else {
        return Err(ApiError::invalid("send a JSON object"));
    };
    let id = match obj.remove("id") {
        Some(Value::String(id)) => id
            .parse::<ScheduleId>()
            .map_err(|e| ApiError::invalid(format!("id: {e}")))?,
        _ => return Err(ApiError::invalid("id: a schedule id is required")),
    };
    let (doc, schedule) = ScheduleDoc::from_value(body)?;
    let (config_id, pipeline_id) = match &schedule.target {
        Target::Config(c) => match s.store.get_config(&p.project, c).await {
            Ok(_) => (Some(c.clone()), None),
            Err(StoreError::NotFound(_)) => {
                return Err(ApiError::invalid(format!(
                    "config: configuration {c} not found in project {}",
                    p.project
                )))
            }
            Err(e) => return Err(e.into()),
        },
        Target::Pipeline(pl) => match s.store.get_pipeline(&p.project, pl).await {
            Ok(_) => (None, Some(pl.clone())),
            Err(StoreError::NotFound(_)) => {
                return Err(ApiError::invalid(format!(
                    "pipeline: pipeline {pl} not found in project {}",
                    p.project
                )))
            }
            Err(e) => return Err(e.into()),
        },
    };
    let row = s
        .store
        .create_schedule(
            &p.project,
            NewSchedule {
                id,
                config_id,
                pipeline_id,
                doc: serde_json::to_value(&doc).map_err(ApiError::internal)?,
                next_tick: schedule.first_tick(now_ms()),
                max_runs: schedule.max_runs,
                overlap: schedule.overlap,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(view(row))))
}

#[utoipa::path(get, path = "/v1/schedules", tag = "schedules", security(("bearer" = [])), responses((status = 200, description = "the schedules", body = ScheduleList), (status = 401, description = "no valid token", body = ErrorBody)))]
async fn list(State(s): State<AppState>, Auth(p): Auth) -> Result<Json<ScheduleList>, ApiError> {
    let rows = s.store.list_schedules(&p.project).await?;
    Ok(Json(ScheduleList {
        schedules: rows.into_iter().map(view).collect(),
    }))
}

#[utoipa::path(get, path = "/v1/schedules/{id}", tag = "schedules", security(("bearer" = [])), params(("id" = NameParam, Path, description = "the schedule's id")), responses((status = 200, description = "the schedule", body = ScheduleView), (status = 400, description = "invalid id", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "no such schedule in this project", body = ErrorBody)))]
async fn show(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    let id = schedule_id(&id)?;
    Ok(Json(view(s.store.get_schedule(&p.project, &id).await?)))
}

#[utoipa::path(post, path = "/v1/schedules/{id}/pause", tag = "schedules", security(("bearer" = [])), params(("id" = NameParam, Path, description = "the schedule's id")), responses((status = 200, description = "paused", body = ScheduleView), (status = 400, description = "invalid id", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "no such schedule in this project", body = ErrorBody)))]
async fn pause(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    let id = schedule_id(&id)?;
    Ok(Json(set_paused(&s, &p.project, &id, true).await?))
}

#[utoipa::path(post, path = "/v1/schedules/{id}/resume", tag = "schedules", security(("bearer" = [])), params(("id" = NameParam, Path, description = "the schedule's id")), responses((status = 200, description = "resumed", body = ScheduleView), (status = 400, description = "invalid id", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "no such schedule in this project", body = ErrorBody)))]
async fn resume(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    let id = schedule_id(&id)?;
    Ok(Json(set_paused(&s, &p.project, &id, false).await?))
}

/// Pauses or resumes a schedule of the project (the API and the dashboard);
/// returns its view. A resumed schedule fires from now on: the paused time
/// is not caught up.
pub(crate) async fn set_paused(
    s: &AppState,
    project: &ProjectId,
    id: &ScheduleId,
    paused: bool,
) -> Result<ScheduleView, ApiError> {
    if paused {
        s.store.set_schedule_paused(project, id, true, None).await?;
    } else {
        let row = s.store.get_schedule(project, id).await?;
        let (_, schedule) = ScheduleDoc::from_value(row.doc)?;
        s.store
            .set_schedule_paused(project, id, false, schedule.first_tick(now_ms()))
            .await?;
    }
    Ok(view(s.store.get_schedule(project, id).await?))
}

#[utoipa::path(delete, path = "/v1/schedules/{id}", tag = "schedules", security(("bearer" = [])), params(("id" = NameParam, Path, description = "the schedule's id")), responses((status = 204, description = "deleted"), (status = 400, description = "invalid id", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "no such schedule in this project", body = ErrorBody)))]
async fn delete(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id = schedule_id(&id)?;
    s.store.delete_schedule(&p.project, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
