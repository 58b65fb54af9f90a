//! Health, readiness, metrics and the OpenAPI document.

use crate::auth::Auth;
use crate::doc::ErrorBody;
use crate::state::AppState;
use crate::ApiError;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use gantry_core::JobStatus;
use gantry_store::Store;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(openapi_json))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// The document served, made once by `routes::app` from the router itself.
#[derive(Clone)]
pub(crate) struct Document(pub Arc<String>);

/// This document: every route of the API, derived from the handlers.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "system",
    responses((status = 200, description = "OpenAPI 3.1", body = Object, content_type = "application/json")))]
async fn openapi_json(Extension(doc): Extension<Document>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.0.as_str().to_owned(),
    )
        .into_response()
}

/// The process answers.
#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200, description = "alive", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

#[derive(Serialize, ToSchema)]
struct Health {
    status: String,
}

/// Ready: the store takes writes and, where this process runs a worker,
/// the container engine answers.
#[derive(Serialize, ToSchema)]
struct Ready {
    /// Always `ready` (not ready answers 503 with an error body).
    status: &'static str,
    /// `ok`.
    store: &'static str,
    /// `ok`, or `null` where this process runs no worker.
    engine: Option<&'static str>,
}

pub(crate) async fn store_metrics(
    State(store): State<Arc<dyn Store>>,
) -> Result<Response, ApiError> {
    render_metrics(store.as_ref()).await
}

/// The store is writable and (in `gantry up`) the container engine answers.
#[utoipa::path(get, path = "/readyz", tag = "system",
    responses(
        (status = 200, description = "ready", body = Ready),
        (status = 503, description = "not ready, and why", body = ErrorBody),
    ))]
async fn readyz(State(s): State<AppState>) -> Result<Json<Ready>, ApiError> {
    let store = tokio::time::timeout(Duration::from_secs(5), s.store.check_writable()).await;
    let store_ok = matches!(store, Ok(Ok(())));
    let engine = match &s.readiness {
        Some(r) => Some(
            tokio::time::timeout(Duration::from_secs(5), r.engine_ready())
                .await
                .unwrap_or_else(|_| Err("timed out".into())),
        ),
        None => None,
    };
    let engine_ok = engine.as_ref().is_none_or(|e| e.is_ok());
    if store_ok && engine_ok {
        return Ok(Json(Ready {
            status: "ready",
            store: "ok",
            engine: engine.map(|_| "ok"),
        }));
    }
    let mut why = Vec::new();
    if !store_ok {
        why.push("the store is not writable".to_string());
    }
    if let Some(Err(e)) = engine {
        why.push(format!("the container engine does not answer: {e}"));
    }
    Err(ApiError::unavailable(why.join("; ")))
}

/// Prometheus metrics: what this process recorded (its worker, its HTTP
/// requests) plus the store's figures, read now (every process sharing the
/// store answers the same for those).
/// Admin only: the figures name every project, and no other token may learn
/// another project's name.
#[utoipa::path(get, path = "/metrics", tag = "system", security(("bearer" = [])),
    responses(
        (status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not an admin token", body = ErrorBody),
    ))]
async fn metrics(State(s): State<AppState>, Auth(p): Auth) -> Result<Response, ApiError> {
    if !p.admin {
        return Err(ApiError::forbidden(
            "metrics name every project; scraping them needs an admin token",
        ));
    }
    render_metrics(s.store.as_ref()).await
}

async fn render_metrics(store: &dyn Store) -> Result<Response, ApiError> {
    let f = store.figures().await?;
    let m = gantry_metrics::global();
    let by_status: Vec<(&str, i64)> = JobStatus::ALL
        .iter()
        .map(|st| {
            let n = f
                .by_status
                .iter()
                .find(|(s, _)| s == st)
                .map_or(0, |(_, n)| *n);
            (st.as_str(), n as i64)
        })
        .collect();
    m.set_jobs(&by_status);
    m.set_queue(
        &f.queues
            .iter()
            .map(|q| gantry_metrics::QueueFigures {
                project: q.project.to_string(),
                queued: q.queued as i64,
                running: q.running as i64,
                oldest_due_age: Duration::from_millis(q.oldest_due_ms),
            })
            .collect::<Vec<_>>(),
    );
    m.set_storage(
        &f.storage
            .iter()
            .map(|st| gantry_metrics::StorageFigures {
                project: st.project.to_string(),
                table_bytes: st.table_bytes as i64,
                file_bytes: st.file_bytes as i64,
                table_versions: st.table_versions as i64,
                files: st.files as i64,
            })
            .collect::<Vec<_>>(),
    );
    Ok((
        [(header::CONTENT_TYPE, gantry_metrics::CONTENT_TYPE)],
        m.render(),
    )
        .into_response())
}
