//! `/v1/workers`: the fleet's workers (admin only: workers serve every
//! project), and draining one.

use crate::auth::Auth;
use crate::state::AppState;
use crate::views::rfc3339;
use crate::ApiError;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use gantry_store::{Principal, WorkerInfo};
use serde_json::{json, Value};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/workers", get(list))
        .route("/v1/workers/{id}/drain", post(drain))
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

pub fn worker_view(w: &WorkerInfo) -> Value {
    json!({
        "id": w.id,
        "host": w.host,
        "version": w.version,
        "tags": w.tags,
        "slots": w.slots,
        "running": w.running,
        "state": w.state.as_str(),
        "started_at": rfc3339(w.started_at),
        "last_heartbeat": rfc3339(w.last_seen),
    })
}

async fn list(State(s): State<AppState>, Auth(p): Auth) -> Result<Json<Value>, ApiError> {
    require_admin(&p)?;
    let workers = s.store.list_workers().await?;
    Ok(Json(
        json!({ "workers": workers.iter().map(worker_view).collect::<Vec<_>>() }),
    ))
}

async fn drain(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&p)?;
    Ok(Json(worker_view(&s.store.drain_worker(&id).await?)))
}
