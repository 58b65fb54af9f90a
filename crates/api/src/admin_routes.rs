//! Projects and tokens: what an admin token manages. Other tokens may read
//! their own project and nothing else here.

use crate::auth::Auth;
use crate::doc::{ErrorBody, ProjectParam, TokenIdParam};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::ApiError;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use gantry_core::spec::Loosening;
use gantry_core::{ProjectId, TokenId};
use gantry_store::{Principal, Project, Retention, TokenInfo};
use gantry_wire::{ProjectList, ProjectView, TokenList, TokenView};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_projects, create_project))
        .routes(routes!(get_project, update_project))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

fn require_admin(p: &Principal) -> Result<(), ApiError> {
    if p.admin {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "managing projects and tokens needs an admin token",
        ))
    }
}

pub(crate) fn project_id(s: &str) -> Result<ProjectId, ApiError> {
    s.parse().map_err(ApiError::invalid)
}

fn project_view(p: Project) -> ProjectView {
    gantry_wire::project_view(p, gantry_storage::DEFAULT_IMPORT_MAX_BYTES)
}

fn token_view(t: TokenInfo) -> TokenView {
    t.into()
}

#[utoipa::path(get, path = "/v1/projects", tag = "admin", security(("bearer" = [])), responses((status = 200, description = "all projects", body = ProjectList), (status = 401, description = "no valid token", body = ErrorBody), (status = 403, description = "needs an admin token", body = ErrorBody)))]
async fn list_projects(
    State(s): State<AppState>,
    Auth(p): Auth,
) -> Result<Json<ProjectList>, ApiError> {
    require_admin(&p)?;
    let projects = s
        .store
        .list_projects()
        .await?
        .into_iter()
        .map(project_view)
        .collect();
    Ok(Json(ProjectList { projects }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewProject {
    #[schema(value_type = ProjectParam)]
    id: String,
    #[serde(default)]
    #[schema(value_type = Vec<crate::doc::LooseningName>)]
    allow: Vec<Loosening>,
}

#[utoipa::path(post, path = "/v1/projects", tag = "admin", security(("bearer" = [])), request_body = NewProject, responses((status = 201, description = "made", body = ProjectView), (status = 400, description = "invalid id or allow list", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 403, description = "needs an admin token", body = ErrorBody), (status = 409, description = "conflict", body = ErrorBody), (status = 413, description = "body too large", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody)))]
async fn create_project(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<NewProject>,
) -> Result<(StatusCode, Json<ProjectView>), ApiError> {
    require_admin(&p)?;
    let id = project_id(&body.id)?;
    let project = s.store.create_project(&id, &body.allow).await?;
    Ok((StatusCode::CREATED, Json(project_view(project))))
}

/// A token sees its own project; only an admin sees others (404 otherwise,
/// so project names do not leak).
#[utoipa::path(get, path = "/v1/projects/{id}", tag = "admin", security(("bearer" = [])), params(("id" = ProjectParam, Path, description = "the project's id")), responses((status = 200, description = "the project", body = ProjectView), (status = 400, description = "invalid id", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 403, description = "needs an admin token", body = ErrorBody), (status = 404, description = "no such project in this project", body = ErrorBody)))]
async fn get_project(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ProjectView>, ApiError> {
    let id = project_id(&id)?;
    if !p.admin && id != p.project {
        return Err(ApiError::not_found(format!("project '{id}'")));
    }
    Ok(Json(project_view(s.store.get_project(&id).await?)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ProjectUpdate {
    #[schema(value_type = Option<Vec<crate::doc::LooseningName>>)]
    allow: Option<Vec<Loosening>>,
    /// The cap on what one import may expand to (bytes of CSV after gzip).
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    import_max_bytes: Option<u64>,
    /// Replaces the retention policy (keys left out: the defaults; 0: no limit).
    #[schema(value_type = Option<Object>)]
    retention: Option<Retention>,
    /// Most jobs running at once; 0 removes the cap.
    max_running: Option<u32>,
}

#[utoipa::path(patch, path = "/v1/projects/{id}", tag = "admin", security(("bearer" = [])), params(("id" = ProjectParam, Path, description = "the project's id")), request_body = ProjectUpdate, responses((status = 200, description = "updated", body = ProjectView), (status = 400, description = "invalid id or value", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 403, description = "needs an admin token", body = ErrorBody), (status = 404, description = "no such project in this project", body = ErrorBody), (status = 413, description = "body too large", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody)))]
async fn update_project(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ProjectUpdate>,
) -> Result<Json<ProjectView>, ApiError> {
    require_admin(&p)?;
    let id = project_id(&id)?;
    if body.allow.is_none()
        && body.import_max_bytes.is_none()
        && body.retention.is_none()
        && body.max_running.is_none()
    {
        return Err(ApiError::invalid(
            "name what to change: allow, import_max_bytes, retention, max_running (0 for no cap)",
        ));
    }
    if body.import_max_bytes == Some(0) {
        return Err(ApiError::invalid("import_max_bytes must be positive"));
    }
    // Stored as a signed 64-bit number: a larger one would come back changed.
    if body.import_max_bytes.is_some_and(|m| m > i64::MAX as u64) {
        return Err(ApiError::invalid(format!(
            "import_max_bytes must be at most {}",
            i64::MAX
        )));
    }
    if let Some(m) = body.max_running {
        if m > 100_000 {
            return Err(ApiError::invalid("max_running: must be at most 100000"));
        }
    }
    // Everything checked before anything is written.
    let mut project = s.store.get_project(&id).await?;
    if let Some(allow) = &body.allow {
        project = s.store.set_project_allow(&id, allow).await?;
    }
    if let Some(max) = body.import_max_bytes {
        project = s.store.set_project_import_max(&id, Some(max)).await?;
    }
    if let Some(policy) = &body.retention {
        project = s.store.set_project_retention(&id, policy).await?;
    }
    if let Some(m) = body.max_running {
        project = s
            .store
            .set_project_max_running(&id, (m > 0).then_some(m))
            .await?;
    }
    tracing::info!(project = %id, allow = ?project.allow, max_running = ?project.max_running, import_max_bytes = ?project.import_max_bytes, "project policy changed");
    Ok(Json(project_view(project)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct TokenQuery {
    /// Only this project's tokens.
    #[param(value_type = Option<ProjectParam>)]
    project: Option<String>,
}

#[utoipa::path(get, path = "/v1/tokens", tag = "admin", security(("bearer" = [])), params(TokenQuery), responses((status = 200, description = "tokens (never their secrets)", body = TokenList), (status = 400, description = "invalid project", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 403, description = "needs an admin token", body = ErrorBody)))]
async fn list_tokens(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<TokenQuery>,
) -> Result<Json<TokenList>, ApiError> {
    let project = q.project.as_deref().map(project_id).transpose()?;
    let tokens = s
        .control()
        .list_tokens(&p, project.as_ref())
        .await?
        .into_iter()
        .map(token_view)
        .collect();
    Ok(Json(TokenList { tokens }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewToken {
    #[schema(value_type = ProjectParam)]
    project: String,
    /// At most 200 bytes.
    #[serde(default)]
    #[schema(max_length = 200)]
    description: String,
    #[serde(default)]
    admin: bool,
}

/// The secret is in this response only; the store keeps its hash.
#[utoipa::path(post, path = "/v1/tokens", tag = "admin", security(("bearer" = [])), request_body = NewToken, responses((status = 201, description = "made; `token` is the secret, shown this once", body = TokenView), (status = 400, description = "invalid project or description", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 403, description = "needs an admin token", body = ErrorBody), (status = 404, description = "no such project", body = ErrorBody), (status = 413, description = "body too large", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody)))]
async fn create_token(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<NewToken>,
) -> Result<(StatusCode, Json<TokenView>), ApiError> {
    let project = project_id(&body.project)?;
    let token = s
        .control()
        .create_token(&p, &project, body.admin, &body.description)
        .await?;
    let mut view = token_view(token.info);
    view.token = Some(token.secret);
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "admin", security(("bearer" = [])), params(("id" = TokenIdParam, Path, description = "the token's public id")), responses((status = 204, description = "revoked"), (status = 401, description = "no valid token", body = ErrorBody), (status = 403, description = "needs an admin token", body = ErrorBody), (status = 404, description = "no such token", body = ErrorBody)))]
async fn revoke_token(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    // An id that cannot name a token names none (as the store would say).
    let id: TokenId = id
        .parse()
        .map_err(|_| ApiError::not_found(format!("token '{id}'")))?;
    s.control().revoke_token(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
