//! The router's root: every resource's routes, the body limit, request
//! counting and the fallback. Route files hang off this one; none imports
//! back from it.

use crate::doc::ApiDoc;
use crate::state::AppState;
use crate::{ApiError, MAX_BODY};
use axum::extract::{DefaultBodyLimit, Request};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use gantry_store::Store;
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

/// Every route of the API with its OpenAPI description: both come from the
/// same `routes!` calls, so the document cannot miss or invent a route.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(crate::job_routes::routes())
        .merge(crate::config_routes::routes())
        .merge(crate::system_routes::routes())
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .merge(crate::storage_routes::routes())
        .merge(crate::admin_routes::routes())
        .merge(crate::schedule_routes::routes())
        .merge(crate::hook_routes::routes())
        .merge(crate::pipeline_routes::routes())
        .merge(crate::worker_routes::routes())
        .merge(crate::image_routes::routes())
}

/// The OpenAPI document of [`app`], as served at `/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().into_openapi()
}

pub fn app(state: AppState) -> Router {
    let (api, doc) = api().split_for_parts();
    let doc = doc.to_json().unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot render the OpenAPI document");
        "{}".into()
    });
    api
        // IronWorker's API has its own reference (docs/ironworker.md).
        .merge(crate::iron::routes())
        // The dashboard's HTML pages are not part of the API document.
        .merge(crate::ui::routes())
        .fallback(|| async { ApiError::not_found("route") })
        .layer(Extension(crate::system_routes::Document(Arc::new(doc))))
        .layer(axum::middleware::from_fn(count_request))
        .layer(axum::middleware::from_fn(crate::unread::drain_or_close))
        .with_state(state)
}

/// The metrics endpoint alone, for a `gantry worker` process that serves no
/// API: its own slots and timings plus the store's figures.
pub fn metrics_app(store: Arc<dyn Store>) -> Router {
    Router::new()
        .route("/metrics", get(crate::system_routes::store_metrics))
        .fallback(|| async { ApiError::not_found("route") })
        .with_state(store)
}

/// Counts every request by its route template (never the raw path, so ids
/// do not become label values) and times it to the response head.
async fn count_request(req: Request, next: axum::middleware::Next) -> Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let method = req.method().as_str().to_owned();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    gantry_metrics::global().http_request(
        &route,
        &method,
        resp.status().as_u16(),
        started.elapsed(),
    );
    resp
}
