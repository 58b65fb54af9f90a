//! The workers page (admins only: workers serve every project): each
//! worker's host, version, tags, slots, running jobs, last heartbeat and
//! state, and a drain button.

use super::pages::{ser, time};
use super::render;
use super::session::{CheckedForm, Session};
use super::UiError;
use crate::state::AppState;
use crate::ApiError;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde_json::json;

fn admin_only(session: &Session) -> Result<(), UiError> {
    if session.principal.admin {
        Ok(())
    } else {
        Err(UiError(ApiError::not_found("page")))
    }
}

pub async fn workers(State(s): State<AppState>, session: Session) -> Result<Response, UiError> {
    admin_only(&session)?;
    let list: Vec<_> = s
        .store
        .list_workers()
        .await?
        .into_iter()
        .map(|w| {
            json!({"id": w.id, "host": w.host, "version": w.version, "tags": w.tags.join(", "),
                   "slots": w.slots, "running": w.running, "state": w.state.as_str(),
                   "started": time(w.started_at), "seen": time(w.last_seen)})
        })
        .collect();
    render(
        "workers.html",
        StatusCode::OK,
        context! { s => session.ctx(), page => ser("workers"), workers => ser(list) },
    )
}

pub async fn drain(
    State(s): State<AppState>,
    Path(id): Path<String>,
    form: CheckedForm,
) -> Result<Response, UiError> {
    admin_only(&form.session)?;
    let id: gantry_core::WorkerId = id
        .parse()
        .map_err(|_| ApiError::not_found("no such worker"))?;
    s.store.drain_worker(&id).await?;
    Ok(Redirect::to("/ui/workers").into_response())
}
