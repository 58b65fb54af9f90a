//! `/v1/workers`: the fleet's workers (admin only: workers serve every
//! project), and draining one.

use crate::auth::Auth;
use crate::doc::ErrorBody;
use crate::doc::WorkerIdParam;
use crate::extract::ApiPath;
use crate::state::AppState;
use crate::views::{WorkerList, WorkerView};
use crate::ApiError;
use axum::extract::State;
use axum::Json;
use gantry_core::WorkerId;
use gantry_store::{Principal, WorkerInfo};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(drain))
}

fn require_admin(p: &Principal) -> Result<(), ApiError> {
    if p.admin {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "workers serve every project: listing and draining them needs an admin token",
        ))
    }
}

pub fn worker_view(w: &WorkerInfo) -> WorkerView {
    crate::views::worker_view(w)
}

#[utoipa::path(get, path = "/v1/workers", tag = "workers", security(("bearer" = [])), responses((status = 200, description = "the fleet's workers, newest first", body = WorkerList), (status = 401, description = "no valid token", body = ErrorBody), (status = 403, description = "needs an admin token", body = ErrorBody)))]
async fn list(State(s): State<AppState>, Auth(p): Auth) -> Result<Json<WorkerList>, ApiError> {
    require_admin(&p)?;
    let workers = s.store.list_workers().await?;
    Ok(Json(WorkerList {
        workers: workers.iter().map(worker_view).collect(),
    }))
}

#[utoipa::path(post, path = "/v1/workers/{id}/drain", tag = "workers", security(("bearer" = [])), params(("id" = WorkerIdParam, Path, description = "the worker's id")), responses((status = 200, description = "draining: it claims nothing more; its running jobs finish", body = WorkerView), (status = 401, description = "no valid token", body = ErrorBody), (status = 403, description = "needs an admin token", body = ErrorBody), (status = 404, description = "no such worker", body = ErrorBody), (status = 409, description = "the worker is gone", body = ErrorBody)))]
async fn drain(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<WorkerView>, ApiError> {
    require_admin(&p)?;
    let id: WorkerId = id.parse().map_err(|_| {
        ApiError::not_found(format!(
            "worker '{}'",
            id.chars().take(64).collect::<String>()
        ))
    })?;
    Ok(Json(worker_view(&s.store.drain_worker(&id).await?)))
}
