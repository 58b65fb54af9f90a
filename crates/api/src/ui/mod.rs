//! The web dashboard: server-rendered pages (minijinja templates compiled
//! into the binary, every value HTML-escaped) and one small vendored script
//! (htmx) plus our own few lines for the live log. No JavaScript build step.
//!
//! Sign-in: the user pastes an API token; it is kept in an `HttpOnly`,
//! `SameSite=Strict` cookie and checked against the store on every request,
//! exactly like a bearer token, so every page is scoped to the token's
//! project (another project's objects are 404). Every state change is a plain
//! HTML form POST carrying a CSRF token derived from the session (and a
//! cross-origin `Origin` is refused), so it works without JavaScript.
//!
//! Handlers are thin: they call the store and storage like the API does and
//! hand records to a template.

mod fleet;
mod pages;
mod session;
mod triggers;

use crate::state::AppState;
use crate::ApiError;
use axum::extract::{Path, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::Environment;
use serde_json::Value;
use std::sync::LazyLock;

/// The dashboard's routes: `/` redirects to the jobs page; pages live under `/ui`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/jobs") }))
        .route("/ui", get(|| async { Redirect::to("/ui/jobs") }))
        .route("/ui/", get(|| async { Redirect::to("/ui/jobs") }))
        .route("/ui/login", get(session::login_page).post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/static/{name}", get(static_file))
        .route("/ui/jobs", get(pages::jobs))
        .route("/ui/jobs/{id}", get(pages::job))
        .route("/ui/jobs/{id}/events", get(pages::job_events))
        .route("/ui/jobs/{id}/cancel", post(pages::cancel))
        .route("/ui/jobs/{id}/rerun", post(pages::rerun))
        .route("/ui/configs", get(pages::configs))
        .route("/ui/configs/{id}", get(pages::config))
        .route("/ui/configs/{id}/run", post(pages::run_config))
        .route("/ui/schedules", get(triggers::schedules))
        .route("/ui/schedules/{id}", get(triggers::schedule))
        .route("/ui/schedules/{id}/pause", post(triggers::pause_schedule))
        .route("/ui/schedules/{id}/resume", post(triggers::resume_schedule))
        .route("/ui/pipelines", get(triggers::pipelines))
        .route("/ui/pipelines/{id}", get(triggers::pipeline))
        .route("/ui/pipelines/{id}/run", post(triggers::run_pipeline))
        .route("/ui/pipeline-runs/{id}", get(triggers::pipeline_run))
        .route("/ui/pipeline-runs/{id}/cancel", post(triggers::cancel_run))
        .route("/ui/tables", get(pages::tables))
        .route("/ui/tables/{id}", get(pages::table))
        .route("/ui/tables/{id}/versions/{version}", get(pages::preview))
        .route("/ui/tables/{id}/restore", post(pages::restore))
        .route("/ui/files", get(pages::files))
        .route("/ui/files/{id}/download", get(pages::download))
        .route(
            "/ui/projects",
            get(pages::projects).post(pages::create_project),
        )
        .route("/ui/tokens", get(pages::tokens).post(pages::create_token))
        .route("/ui/tokens/{id}/revoke", post(pages::revoke_token))
        .route("/ui/workers", get(fleet::workers))
        .route("/ui/workers/{id}/drain", post(fleet::drain))
        .layer(axum::middleware::from_fn(security_headers))
}

/// Headers on every dashboard response: only our own scripts and styles run
/// (no inline script, so injected markup cannot execute), no framing, no
/// referrer to other sites (URLs carry ids; `same-origin`, not `no-referrer`,
/// because with that browsers send `Origin: null` on our own forms), no
/// caching of pages that show a project's data.
async fn security_headers(req: Request, next: axum::middleware::Next) -> Response {
    let is_static = req.uri().path().starts_with("/ui/static/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !is_static {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

const STATIC: &[(&str, &str, &str)] = &[
    (
        "htmx.min.js",
        "text/javascript; charset=utf-8",
        include_str!("static/htmx.min.js"),
    ),
    (
        "gantry.js",
        "text/javascript; charset=utf-8",
        include_str!("static/gantry.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("static/style.css"),
    ),
    (
        "htmx.LICENSE",
        "text/plain; charset=utf-8",
        include_str!("static/htmx.LICENSE"),
    ),
];

async fn static_file(Path(name): Path<String>) -> Response {
    match STATIC.iter().find(|(n, _, _)| *n == name) {
        Some((_, ty, body)) => (
            [
                (header::CONTENT_TYPE, *ty),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            *body,
        )
            .into_response(),
        None => UiError(ApiError::not_found("file")).into_response(),
    }
}

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // Names end in .html: minijinja escapes every `{{ }}` value for HTML.
    for (name, text) in [
        ("base.html", include_str!("templates/base.html")),
        ("error.html", include_str!("templates/error.html")),
        ("login.html", include_str!("templates/login.html")),
        ("jobs.html", include_str!("templates/jobs.html")),
        ("job.html", include_str!("templates/job.html")),
        ("configs.html", include_str!("templates/configs.html")),
        ("config.html", include_str!("templates/config.html")),
        ("schedules.html", include_str!("templates/schedules.html")),
        ("schedule.html", include_str!("templates/schedule.html")),
        ("pipelines.html", include_str!("templates/pipelines.html")),
        ("pipeline.html", include_str!("templates/pipeline.html")),
        (
            "pipeline_run.html",
            include_str!("templates/pipeline_run.html"),
        ),
        ("runs.html", include_str!("templates/runs.html")),
        ("tables.html", include_str!("templates/tables.html")),
        ("table.html", include_str!("templates/table.html")),
        ("preview.html", include_str!("templates/preview.html")),
        ("files.html", include_str!("templates/files.html")),
        ("projects.html", include_str!("templates/projects.html")),
        ("tokens.html", include_str!("templates/tokens.html")),
        ("workers.html", include_str!("templates/workers.html")),
    ] {
        if let Err(e) = env.add_template(name, text) {
            // Templates are compiled into the binary; a unit test renders each.
            tracing::error!(template = name, error = %e, "dashboard template does not parse");
        }
    }
    env
});

/// Renders a template with its context (plus the session for the layout).
pub(crate) fn render(
    name: &str,
    status: StatusCode,
    ctx: minijinja::Value,
) -> Result<Response, UiError> {
    let tmpl = TEMPLATES
        .get_template(name)
        .map_err(|e| UiError(ApiError::internal(e)))?;
    let body = tmpl
        .render(ctx)
        .map_err(|e| UiError(ApiError::internal(e)))?;
    Ok((status, Html(body)).into_response())
}

/// An error shown as a page (the API's status and message; 5xx generic).
#[derive(Debug)]
pub struct UiError(pub ApiError);

impl<E: Into<ApiError>> From<E> for UiError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let ctx = minijinja::context! {
            status => self.0.status.as_u16(),
            reason => self.0.status.canonical_reason().unwrap_or(""),
            message => self.0.message,
        };
        let status = self.0.status;
        TEMPLATES
            .get_template("error.html")
            .and_then(|t| t.render(ctx))
            .map(|b| (status, Html(b)).into_response())
            .unwrap_or_else(|_| (status, "error").into_response())
    }
}

/// The spec as shown: every value under a `#` key, and every sealed string,
/// becomes `[hidden]` (sealed values are ciphertext; nothing of them is shown).
pub(crate) fn hide_secrets(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let shown = if k.starts_with('#') {
                        Value::String("[hidden]".into())
                    } else {
                        hide_secrets(v)
                    };
                    (k.clone(), shown)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(hide_secrets).collect()),
        Value::String(s) if s.starts_with(gantry_vault::PREFIX) => Value::String("[hidden]".into()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_template_parses() {
        for name in [
            "base.html",
            "error.html",
            "login.html",
            "jobs.html",
            "job.html",
            "configs.html",
            "config.html",
            "schedules.html",
            "schedule.html",
            "pipelines.html",
            "pipeline.html",
            "pipeline_run.html",
            "runs.html",
            "tables.html",
            "table.html",
            "preview.html",
            "files.html",
            "projects.html",
            "tokens.html",
            "workers.html",
        ] {
            assert!(TEMPLATES.get_template(name).is_ok(), "{name}");
        }
    }

    #[tokio::test]
    async fn values_are_html_escaped() {
        let r = render(
            "error.html",
            StatusCode::NOT_FOUND,
            minijinja::context! { status => 404, reason => "x", message => "<script>alert(1)</script>\"'" },
        )
        .expect("render");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .expect("body");
        let body = String::from_utf8_lossy(&body);
        assert!(!body.contains("<script>alert"), "{body}");
        assert!(
            body.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{body}"
        );
    }

    #[test]
    fn secrets_are_hidden_at_any_depth() {
        let spec = json!({
            "image": "x",
            "parameters": {"#password": "gantry:enc:v1:abc", "user": "bob",
                            "nested": {"#key": {"a": 1}, "list": ["gantry:enc:v1:zz", "ok"]}},
        });
        let shown = hide_secrets(&spec);
        assert_eq!(shown["parameters"]["#password"], "[hidden]");
        assert_eq!(shown["parameters"]["nested"]["#key"], "[hidden]");
        assert_eq!(shown["parameters"]["nested"]["list"][0], "[hidden]");
        assert_eq!(shown["parameters"]["nested"]["list"][1], "ok");
        assert_eq!(shown["parameters"]["user"], "bob");
        assert!(!shown.to_string().contains("enc:v1"));
    }
}
