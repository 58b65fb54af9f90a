//! `/v1/configs`: configurations (stored specs) and their state, and
//! Keboola's sync actions on them.

use crate::auth::Auth;
use crate::extract::{config_id, ApiJson};
use crate::state::{ActionAnswer, ActionRequest, AppState};
use crate::views::*;
use crate::ApiError;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/configs", get(list_configs).post(create_config))
        .route(
            "/v1/configs/{id}",
            get(get_config).put(update_config).delete(delete_config),
        )
        .route("/v1/configs/{id}/state", get(config_state))
        .route("/v1/configs/{id}/actions/{action}", post(config_action))
}

async fn list_configs(State(s): State<AppState>, Auth(p): Auth) -> Result<Json<Value>, ApiError> {
    let list: Vec<ConfigView> = s
        .control()
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
    let config = s
        .control()
        .create_config(&p.project, &id, body.spec)
        .await?;
    Ok((StatusCode::CREATED, Json(config.into())))
}

async fn update_config(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateConfig>,
) -> Result<Json<ConfigView>, ApiError> {
    let id = config_id(&id)?;
    let config = s
        .control()
        .update_config(&p.project, &id, body.spec)
        .await?;
    Ok(Json(config.into()))
}

async fn get_config(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<ConfigView>, ApiError> {
    let id = config_id(&id)?;
    Ok(Json(s.control().get_config(&p.project, &id).await?.into()))
}

async fn delete_config(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = config_id(&id)?;
    s.control().delete_config(&p.project, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn config_state(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = config_id(&id)?;
    Ok(Json(s.control().get_config(&p.project, &id).await?.state))
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
