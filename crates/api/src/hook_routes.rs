//! Inbound webhooks. `/v1/webhooks` manages them (bearer token of the
//! project); `POST /v1/hooks/{id}` is the trigger URL a sender calls.
//!
//! A hook made with `auth: signature` accepts the Standard Webhooks scheme
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>` ...,
//! HMAC-SHA256 over `id.timestamp.body` keyed by the base64 after `whsec_`,
//! timestamps within ±5 minutes) or GitHub's `X-Hub-Signature-256:
//! sha256=<hex>` (HMAC-SHA256 of the body keyed by the whole secret text, the
//! delivery id from `X-GitHub-Delivery`). One made with `auth: token` takes a
//! bearer token of its project instead. A delivery id seen before returns the
//! job it made and runs nothing.

use crate::auth::Auth;
use crate::doc::{ErrorBody, NameParam};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;
use crate::views::{rfc3339, DeliveryAnswer, HookList, HookView};
use crate::ApiError;
use axum::body::{to_bytes, Body};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use gantry_control::{Source, Submission};
use gantry_core::{ConfigId, PipelineId};
use gantry_store::{Delivered, DeliveredKind, Fire, HookRow, StoreError, Trigger};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

type HmacSha256 = Hmac<Sha256>;

/// Timestamps further than this from the server's clock are refused.
pub const TOLERANCE_SECS: i64 = 300;
pub const DEFAULT_MAX_BODY: u64 = 1 << 20;
pub const MAX_MAX_BODY: u64 = 16 << 20;
pub const DEFAULT_RATE: u32 = 60;
pub const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, delete))
        .routes(routes!(rotate))
        // The body limit is the hook's own, applied while reading.
        .routes(routes!(receive).layer(DefaultBodyLimit::disable()))
}

use gantry_core::time::now_ms;

fn new_secret() -> String {
    let mut raw = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn view(h: &HookRow) -> HookView {
    crate::views::hook_view(h, now_ms())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewHook {
    /// The configuration it runs (send this or `pipeline`).
    #[schema(value_type = Option<NameParam>)]
    config: Option<String>,
    /// The pipeline it runs (send this or `config`).
    #[schema(value_type = Option<NameParam>)]
    pipeline: Option<String>,
    /// `signature` (default) or `token`.
    #[schema(pattern = "^(signature|token)$")]
    auth: Option<String>,
    max_body: Option<u64>,
    /// Deliveries per minute.
    rate_limit: Option<u32>,
}

#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", security(("bearer" = [])), request_body = NewHook, responses((status = 201, description = "made; `secret` shown this once", body = HookView), (status = 400, description = "invalid webhook", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "its configuration or pipeline is not in this project", body = ErrorBody), (status = 413, description = "body too large", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody)))]
async fn create(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<NewHook>,
) -> Result<(StatusCode, Json<HookView>), ApiError> {
    let (config, pipeline) = match (&body.config, &body.pipeline) {
        (Some(c), None) => {
            let c: ConfigId = c
                .parse()
                .map_err(|e| ApiError::invalid(format!("config: {e}")))?;
            match s.store.get_config(&p.project, &c).await {
                Ok(_) => {}
                Err(StoreError::NotFound(_)) => {
                    return Err(ApiError::invalid(format!(
                        "config: configuration {c} not found in project {}",
                        p.project
                    )))
                }
                Err(e) => return Err(e.into()),
            }
            (Some(c), None)
        }
        (None, Some(pl)) => {
            let pl: PipelineId = pl
                .parse()
                .map_err(|e| ApiError::invalid(format!("pipeline: {e}")))?;
            match s.store.get_pipeline(&p.project, &pl).await {
                Ok(_) => {}
                Err(StoreError::NotFound(_)) => {
                    return Err(ApiError::invalid(format!(
                        "pipeline: pipeline {pl} not found in project {}",
                        p.project
                    )))
                }
                Err(e) => return Err(e.into()),
            }
            (None, Some(pl))
        }
        _ => {
            return Err(ApiError::invalid(
                "config: give exactly one of 'config' (a configuration id) or 'pipeline' (a pipeline id)",
            ))
        }
    };
    let auth = body.auth.unwrap_or_else(|| "signature".into());
    if auth != "signature" && auth != "token" {
        return Err(ApiError::invalid("auth: must be 'signature' or 'token'"));
    }
    let max_body = body.max_body.unwrap_or(DEFAULT_MAX_BODY);
    if !(1..=MAX_MAX_BODY).contains(&max_body) {
        return Err(ApiError::invalid(
            "max_body: must be between 1 and 16777216 bytes",
        ));
    }
    let rate = body.rate_limit.unwrap_or(DEFAULT_RATE);
    if !(1..=100_000).contains(&rate) {
        return Err(ApiError::invalid(
            "rate_limit: must be between 1 and 100000 per minute",
        ));
    }
    let mut raw = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let secret = new_secret();
    let hook = s
        .store
        .create_hook(HookRow {
            project: p.project,
            id: format!("hk_{}", hex::encode(raw)),
            config_id: config,
            pipeline_id: pipeline,
            auth: auth.clone(),
            secret_sealed: s.vault.seal(&secret),
            old_secret_sealed: None,
            old_until: None,
            max_body,
            rate_per_min: rate,
            created_at: 0,
        })
        .await?;
    let mut v = view(&hook);
    if auth == "signature" {
        // Shown here only; stored sealed.
        v.secret = Some(secret);
    }
    Ok((StatusCode::CREATED, Json(v)))
}

#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", security(("bearer" = [])), responses((status = 200, description = "the webhooks (no secrets)", body = HookList), (status = 401, description = "no valid token", body = ErrorBody)))]
async fn list(State(s): State<AppState>, Auth(p): Auth) -> Result<Json<HookList>, ApiError> {
    let hooks = s.store.list_hooks(&p.project).await?;
    Ok(Json(HookList {
        webhooks: hooks.iter().map(view).collect(),
    }))
}

#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])), params(("id" = NameParam, Path, description = "the webhook's id")), responses((status = 200, description = "the webhook", body = HookView), (status = 400, description = "invalid id", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "no such webhook in this project", body = ErrorBody)))]
async fn show(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<HookView>, ApiError> {
    Ok(Json(view(&s.store.get_hook(Some(&p.project), &id).await?)))
}

#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])), params(("id" = NameParam, Path, description = "the webhook's id")), responses((status = 204, description = "deleted"), (status = 400, description = "invalid id", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "no such webhook in this project", body = ErrorBody)))]
async fn delete(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    s.store.delete_hook(&p.project, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Rotate {
    /// How long the old secret stays valid (default 24h; `0s` ends it now).
    /// At most 30 days.
    #[schema(
        pattern = "^([0-9]{1,6}s|[0-9]{1,4}m|([0-9]{1,2}|[0-6][0-9]{2}|7[01][0-9]|720)h)$",
        example = "24h"
    )]
    grace: Option<String>,
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate", tag = "webhooks", security(("bearer" = [])), params(("id" = NameParam, Path, description = "the webhook's id")), request_body = Rotate, responses((status = 200, description = "a new secret, shown this once", body = HookView), (status = 400, description = "invalid id or grace", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "no such webhook in this project", body = ErrorBody), (status = 413, description = "body too large", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody)))]
async fn rotate(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<Rotate>,
) -> Result<Json<HookView>, ApiError> {
    let grace = match body.grace.as_deref() {
        Some(g) => gantry_core::units::parse_duration(g)
            .map_err(|e| ApiError::invalid(format!("grace: {e}")))?,
        None => DEFAULT_GRACE,
    };
    if grace > Duration::from_secs(30 * 24 * 3600) {
        return Err(ApiError::invalid("grace: must be at most 30 days"));
    }
    let secret = new_secret();
    let hook = s
        .store
        .rotate_hook(&p.project, &id, &s.vault.seal(&secret), grace)
        .await?;
    let mut v = view(&hook);
    v.secret = Some(secret);
    Ok(Json(v))
}

/// Deliveries accepted per hook in the current minute (per server process).
fn rate_ok(hook: &str, per_min: u32) -> Result<(), u64> {
    static WINDOWS: OnceLock<Mutex<HashMap<String, (Instant, u32)>>> = OnceLock::new();
    let map = WINDOWS.get_or_init(Default::default);
    let Ok(mut map) = map.lock() else {
        return Ok(());
    };
    let now = Instant::now();
    let entry = map.entry(hook.to_string()).or_insert((now, 0));
    if now.duration_since(entry.0) >= Duration::from_secs(60) {
        *entry = (now, 0);
    }
    if entry.1 >= per_min {
        let wait = 60 - now.duration_since(entry.0).as_secs();
        return Err(wait.max(1));
    }
    entry.1 += 1;
    Ok(())
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn unauthorized(why: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", why)
}

/// The keys a signature may be made with: the current secret and, during
/// its grace period, the one before it.
fn secrets(s: &AppState, hook: &HookRow) -> Result<Vec<String>, ApiError> {
    let mut out = vec![s
        .vault
        .open(&hook.secret_sealed)
        .map_err(ApiError::internal)?];
    if let (Some(old), Some(until)) = (&hook.old_secret_sealed, hook.old_until) {
        if until > now_ms() {
            out.push(s.vault.open(old).map_err(ApiError::internal)?);
        }
    }
    Ok(out)
}

/// Verifies the Standard Webhooks headers; returns the delivery id.
fn verify_standard(h: &HeaderMap, body: &[u8], keys: &[String]) -> Result<String, ApiError> {
    let id = header(h, "webhook-id")
        .filter(|i| !i.is_empty() && i.len() <= 200)
        .ok_or_else(|| unauthorized("webhook-id header missing"))?;
    let ts_text = header(h, "webhook-timestamp")
        .ok_or_else(|| unauthorized("webhook-timestamp header missing"))?;
    let ts: i64 = ts_text
        .parse()
        .map_err(|_| unauthorized("webhook-timestamp must be Unix seconds"))?;
    if (now_ms() / 1000 - ts).abs() > TOLERANCE_SECS {
        return Err(unauthorized(
            "webhook-timestamp is more than 5 minutes from the server's clock",
        ));
    }
    let sigs = header(h, "webhook-signature").unwrap_or_default();
    let b64 = base64::engine::general_purpose::STANDARD;
    for key in keys {
        let raw = key.strip_prefix("whsec_").unwrap_or(key);
        let Ok(key_bytes) = b64.decode(raw) else {
            continue;
        };
        for sig in sigs.split(' ') {
            let Some(given) = sig.strip_prefix("v1,") else {
                continue;
            };
            let Ok(given) = b64.decode(given) else {
                continue;
            };
            let Ok(mut mac) = HmacSha256::new_from_slice(&key_bytes) else {
                continue;
            };
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(ts_text.as_bytes());
            mac.update(b".");
            mac.update(body);
            // Constant-time comparison.
            if mac.verify_slice(&given).is_ok() {
                return Ok(id.to_string());
            }
        }
    }
    Err(unauthorized("no webhook-signature matches"))
}

/// Verifies GitHub's `X-Hub-Signature-256`; returns the delivery id.
fn verify_github(h: &HeaderMap, body: &[u8], keys: &[String]) -> Result<String, ApiError> {
    let given = header(h, "x-hub-signature-256")
        .and_then(|s| s.strip_prefix("sha256="))
        .and_then(|s| hex::decode(s).ok())
        .ok_or_else(|| unauthorized("X-Hub-Signature-256 must be sha256=<hex>"))?;
    let delivery = header(h, "x-github-delivery")
        .filter(|i| !i.is_empty() && i.len() <= 200)
        .ok_or_else(|| unauthorized("X-GitHub-Delivery header missing"))?;
    for key in keys {
        let Ok(mut mac) = HmacSha256::new_from_slice(key.as_bytes()) else {
            continue;
        };
        mac.update(body);
        if mac.verify_slice(&given).is_ok() {
            return Ok(delivery.to_string());
        }
    }
    Err(unauthorized("X-Hub-Signature-256 does not match"))
}

/// Request headers worth passing to the job (never credentials).
fn kept_headers(h: &HeaderMap) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in h {
        let name = k.as_str();
        if matches!(name, "authorization" | "cookie" | "proxy-authorization") {
            continue;
        }
        if let Ok(v) = v.to_str() {
            out.insert(name.to_string(), json!(v));
        }
    }
    out
}

#[utoipa::path(post, path = "/v1/hooks/{id}", tag = "webhooks", params(("id" = NameParam, Path, description = "the webhook's id")), request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "any payload, kept as the delivery's body"), responses((status = 202, description = "a job or pipeline run was made", body = DeliveryAnswer), (status = 200, description = "a replay: what the delivery made before", body = DeliveryAnswer), (status = 400, description = "invalid id", body = ErrorBody), (status = 401, description = "unsigned, badly signed or an old timestamp", body = ErrorBody), (status = 404, description = "no such webhook", body = ErrorBody), (status = 413, description = "too large", body = ErrorBody), (status = 429, description = "over its rate limit", body = ErrorBody)))]
async fn receive(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if id.len() > 64 {
        return Err(ApiError::not_found("webhook"));
    }
    let hook = s.store.get_hook(None, &id).await?;
    if let Err(wait) = rate_ok(&hook.id, hook.rate_per_min) {
        let mut r = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "this webhook takes {} deliveries a minute",
                hook.rate_per_min
            ),
        )
        .into_response();
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            r.headers_mut().insert("retry-after", v);
        }
        return Ok(r);
    }
    let body = to_bytes(body, hook.max_body as usize).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("this webhook takes bodies up to {} bytes", hook.max_body),
        )
    })?;
    let delivery = if hook.auth == "token" {
        let token = header(&headers, "authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(ApiError::unauthorized)?;
        match s.store.authenticate(token.trim()).await? {
            Some(p) if p.project == hook.project => {}
            _ => return Err(ApiError::unauthorized()),
        }
        header(&headers, "webhook-id")
            .or_else(|| header(&headers, "idempotency-key"))
            .filter(|i| !i.is_empty() && i.len() <= 200)
            .map(str::to_string)
            .unwrap_or_else(|| gantry_core::JobId::new().to_string())
    } else {
        let keys = secrets(&s, &hook)?;
        if headers.contains_key("webhook-signature") {
            verify_standard(&headers, &body, &keys)?
        } else if headers.contains_key("x-hub-signature-256") {
            verify_github(&headers, &body, &keys)?
        } else {
            return Err(unauthorized(
                "sign the delivery: webhook-id, webhook-timestamp and webhook-signature \
                 (Standard Webhooks) or X-Hub-Signature-256",
            ));
        }
    };
    // A replay answers with what it made before, without reading the target.
    if let Some(made) = s.store.find_delivery(&hook.id, &delivery).await? {
        return Ok(replayed(&hook, made));
    }
    let what = match (&hook.config_id, &hook.pipeline_id) {
        (_, Some(pl)) => Fire::Pipeline(pl.clone()),
        (Some(cfg), None) => {
            let mut sub = Submission::new(Source::Config(cfg.clone()));
            sub.trigger = Some(Trigger::Webhook {
                id: hook.id.clone(),
                delivery: delivery.clone(),
            });
            Fire::Job(s.control().prepare(&hook.project, sub).await?)
        }
        (None, None) => return Err(ApiError::internal("webhook without a target")),
    };
    let manifest = json!({
        "hook": hook.id,
        "delivery": delivery,
        "headers": kept_headers(&headers),
        "received_at": rfc3339(now_ms()),
        "size": body.len(),
    });
    match s
        .store
        .deliver(&hook.id, &delivery, body.to_vec(), manifest, what)
        .await?
    {
        Delivered::New(id, kind) => {
            let mut answer = made(kind, id);
            answer.delivery = Some(delivery);
            Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
        }
        Delivered::Replay(made) => Ok(replayed(&hook, made)),
    }
}

/// What a delivery made, without its delivery id.
fn made(kind: DeliveredKind, id: String) -> DeliveryAnswer {
    let (job, pipeline_run) = match kind {
        DeliveredKind::Job => (Some(id), None),
        DeliveredKind::Run => (None, Some(id)),
    };
    DeliveryAnswer {
        job,
        pipeline_run,
        delivery: None,
        replay: false,
    }
}

fn replayed(hook: &HookRow, before: String) -> Response {
    let kind = if hook.pipeline_id.is_some() {
        DeliveredKind::Run
    } else {
        DeliveredKind::Job
    };
    let mut answer = made(kind, before);
    answer.replay = true;
    (StatusCode::OK, Json(answer)).into_response()
}
