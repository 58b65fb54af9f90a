//! `/v1/configs`: configurations (stored specs) and their state, and
//! Keboola's sync actions on them.

use crate::auth::Auth;
use crate::doc::{ErrorBody, NameParam};
use crate::extract::{config_id, ApiJson, ApiPath};
use crate::state::{ActionAnswer, AppState};
use crate::views::*;
use crate::ApiError;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_configs, create_config))
        .routes(routes!(get_config, update_config, delete_config))
        .routes(routes!(config_state))
        .routes(routes!(config_action))
}

/// The project's configurations.
#[utoipa::path(get, path = "/v1/configs", tag = "configs", security(("bearer" = [])),
    responses((status = 200, description = "the configurations", body = ConfigList), (status = 401, description = "no valid token", body = ErrorBody)))]
async fn list_configs(
    State(s): State<AppState>,
    Auth(p): Auth,
) -> Result<Json<ConfigList>, ApiError> {
    let list: Vec<ConfigView> = s
        .control()
        .list_configs(&p.project)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(ConfigList { configs: list }))
}

/// Stores a spec under an id (validated, checked against the project's
/// policy, secrets sealed).
#[utoipa::path(post, path = "/v1/configs", tag = "configs", security(("bearer" = [])),
    request_body = CreateConfig,
    responses(
        (status = 201, description = "made", body = ConfigView),
        (status = 400, description = "invalid id or spec", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 409, description = "the id is taken", body = ErrorBody),
        (status = 413, description = "body too large", body = ErrorBody),
        (status = 415, description = "not JSON", body = ErrorBody),
    ))]
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

/// Replaces a configuration's spec (its version goes up).
#[utoipa::path(put, path = "/v1/configs/{id}", tag = "configs", security(("bearer" = [])),
    params(("id" = NameParam, Path, description = "the configuration's id")),
    request_body = UpdateConfig,
    responses(
        (status = 200, description = "updated", body = ConfigView),
        (status = 400, description = "invalid id or spec", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 404, description = "no such configuration in this project", body = ErrorBody),
        (status = 413, description = "body too large", body = ErrorBody),
        (status = 415, description = "not JSON", body = ErrorBody),
    ))]
async fn update_config(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateConfig>,
) -> Result<Json<ConfigView>, ApiError> {
    let id = config_id(&id)?;
    let config = s
        .control()
        .update_config(&p.project, &id, body.spec)
        .await?;
    Ok(Json(config.into()))
}

#[utoipa::path(get, path = "/v1/configs/{id}", tag = "configs", security(("bearer" = [])),
    params(("id" = NameParam, Path, description = "the configuration's id")),
    responses(
        (status = 200, description = "the configuration", body = ConfigView),
        (status = 400, description = "invalid id", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 404, description = "no such configuration in this project", body = ErrorBody),
    ))]
async fn get_config(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ConfigView>, ApiError> {
    let id = config_id(&id)?;
    Ok(Json(s.control().get_config(&p.project, &id).await?.into()))
}

/// Deletes a configuration (not while a pipeline, schedule or webhook uses it).
#[utoipa::path(delete, path = "/v1/configs/{id}", tag = "configs", security(("bearer" = [])),
    params(("id" = NameParam, Path, description = "the configuration's id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 400, description = "invalid id", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 404, description = "no such configuration in this project", body = ErrorBody),
        (status = 409, description = "in use", body = ErrorBody),
    ))]
async fn delete_config(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id = config_id(&id)?;
    s.control().delete_config(&p.project, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The configuration's state (what its last successful job wrote).
#[utoipa::path(get, path = "/v1/configs/{id}/state", tag = "configs", security(("bearer" = [])),
    params(("id" = NameParam, Path, description = "the configuration's id")),
    responses(
        (status = 200, description = "the state", body = Object),
        (status = 400, description = "invalid id", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 404, description = "no such configuration in this project", body = ErrorBody),
    ))]
async fn config_state(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let id = config_id(&id)?;
    Ok(Json(s.control().get_config(&p.project, &id).await?.state))
}

/// Runs a Keboola sync action of the configuration at once (`action` in
/// `config.json`, no Storage mapping, 30 s at most); answers the
/// container's stdout as JSON.
#[utoipa::path(post, path = "/v1/configs/{id}/actions/{action}", tag = "configs", security(("bearer" = [])),
    params(("id" = NameParam, Path, description = "the configuration's id"),
        ("action" = String, Path, pattern = "^[A-Za-z0-9._-]{1,64}$", description = "the action's name (not `run`)")),
    responses(
        (status = 200, description = "the action's JSON answer", body = Object),
        (status = 400, description = "a bad name, or the action failed (exit 1: its message)", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 404, description = "no such configuration in this project", body = ErrorBody),
        (status = 503, description = "no container engine in the server's process", body = ErrorBody),
    ))]
async fn config_action(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath((id, action)): ApiPath<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let id = config_id(&id)?;
    let request = s.control().action_request(&p, id, action).await?;
    let Some(runner) = &s.actions else {
        return Err(ApiError::unavailable(
            "sync actions need a container engine in the server's process (gantry up)",
        ));
    };
    let answer = runner.run_action(request).await;
    match answer {
        ActionAnswer::Json(v) => Ok(Json(v)),
        ActionAnswer::UserError(m) => {
            Err(ApiError::new(StatusCode::BAD_REQUEST, "action_failed", m))
        }
        ActionAnswer::Failed(detail) => Err(ApiError::internal(detail)),
    }
}
