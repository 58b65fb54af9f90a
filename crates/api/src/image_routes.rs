//! Images: registry logins of the caller's project (`/v1/registries`; the
//! password is sealed by the vault and never returned), stacks (named base
//! images; an admin adds and removes them), code packages of the caller's
//! project (`/v1/packages/{name}`: the body is a zip or tar.gz, checked and
//! kept as the next revision), what every worker holds (`/v1/images`,
//! admin) and the fleet's warm list (`/v1/images/keep`: images every worker
//! keeps present; changed by an admin).

use crate::auth::Auth;
use crate::extract::ApiJson;
use crate::state::AppState;
use crate::views::rfc3339;
use crate::ApiError;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use gantry_core::image_source::valid_name;
use gantry_store::{EngineImage, PackageRev, Principal, RegistryInfo, StackRow};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/registries", get(list_registries).post(add_registry))
        .route("/v1/registries/{host}", delete(remove_registry))
        .route("/v1/stacks", get(list_stacks).post(add_stack))
        .route("/v1/stacks/{name}", delete(remove_stack))
        .route("/v1/packages", get(list_packages))
        .route(
            "/v1/packages/{name}",
            post(upload_package)
                .layer(DefaultBodyLimit::max(gantry_storage::packages::MAX_ARCHIVE)),
        )
        .route("/v1/images", get(list_images))
        .route(
            "/v1/images/keep",
            get(list_kept).post(keep_image).delete(unkeep_image),
        )
}

fn require_admin(p: &Principal, what: &str) -> Result<(), ApiError> {
    if p.admin {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!("{what} needs an admin token")))
    }
}

fn registry_view(r: RegistryInfo) -> Value {
    json!({"host": r.host, "username": r.username, "created_at": rfc3339(r.created_at)})
}

fn stack_view(s: StackRow) -> Value {
    json!({"name": s.name, "image": s.image, "created_at": rfc3339(s.created_at)})
}

fn package_view(p: PackageRev) -> Value {
    json!({
        "name": p.name, "rev": p.rev, "sha256": p.sha256, "size": p.size,
        "created_at": rfc3339(p.created_at),
    })
}

fn image_view(i: EngineImage) -> Value {
    json!({
        "worker": i.worker_id, "reference": i.reference, "image_id": i.image_id,
        "kind": i.kind, "size": i.size, "warm": i.warm,
        "last_used": rfc3339(i.last_used), "created_at": rfc3339(i.created_at),
    })
}

/// A registry host as the engine names it: `host[:port]`.
fn check_host(host: &str) -> Result<(), ApiError> {
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "host: must be a registry host like registry.example or 127.0.0.1:5000",
        ))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRegistry {
    host: String,
    username: String,
    password: String,
}

async fn add_registry(
    State(st): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<NewRegistry>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    check_host(&body.host)?;
    if body.username.is_empty()
        || body.username.len() > 256
        || body.username.contains(char::is_control)
    {
        return Err(ApiError::invalid("username: must be 1 to 256 characters"));
    }
    if body.password.is_empty() || body.password.len() > 8192 {
        return Err(ApiError::invalid("password: must be 1 to 8192 bytes"));
    }
    let sealed = st.vault.seal(&body.password);
    let info = st
        .store
        .put_registry(&p.project, &body.host, &body.username, &sealed)
        .await?;
    Ok((StatusCode::CREATED, Json(registry_view(info))))
}

async fn list_registries(
    State(st): State<AppState>,
    Auth(p): Auth,
) -> Result<Json<Value>, ApiError> {
    let list = st.store.list_registries(&p.project).await?;
    Ok(Json(
        json!({"registries": list.into_iter().map(registry_view).collect::<Vec<_>>()}),
    ))
}

async fn remove_registry(
    State(st): State<AppState>,
    Auth(p): Auth,
    Path(host): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_host(&host)?;
    st.store.delete_registry(&p.project, &host).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewStack {
    name: String,
    image: String,
}

async fn add_stack(
    State(st): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<NewStack>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require_admin(&p, "registering a stack")?;
    if !valid_name(&body.name) {
        return Err(ApiError::invalid(
            "name: letters, digits, . _ - (up to 100)",
        ));
    }
    let image = body.image.trim();
    if image.is_empty()
        || image.len() > 512
        || image.contains(|c: char| c.is_whitespace() || c.is_control())
    {
        return Err(ApiError::invalid("image: must be an image reference"));
    }
    let row = st.store.put_stack(&body.name, image).await?;
    Ok((StatusCode::CREATED, Json(stack_view(row))))
}

async fn list_stacks(State(st): State<AppState>, Auth(_): Auth) -> Result<Json<Value>, ApiError> {
    let list = st.store.list_stacks().await?;
    Ok(Json(
        json!({"stacks": list.into_iter().map(stack_view).collect::<Vec<_>>()}),
    ))
}

async fn remove_stack(
    State(st): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&p, "removing a stack")?;
    st.store.delete_stack(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn upload_package(
    State(st): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if !valid_name(&name) {
        return Err(ApiError::invalid(
            "name: letters, digits, . _ - (up to 100)",
        ));
    }
    let rev = st.storage.put_package(&p.project, &name, body).await?;
    Ok((StatusCode::CREATED, Json(package_view(rev))))
}

async fn list_packages(State(st): State<AppState>, Auth(p): Auth) -> Result<Json<Value>, ApiError> {
    let list = st.store.list_packages(&p.project).await?;
    Ok(Json(
        json!({"packages": list.into_iter().map(package_view).collect::<Vec<_>>()}),
    ))
}

async fn list_images(State(st): State<AppState>, Auth(p): Auth) -> Result<Json<Value>, ApiError> {
    require_admin(&p, "listing the images workers hold")?;
    let list = st.store.list_images(None).await?;
    Ok(Json(
        json!({"images": list.into_iter().map(image_view).collect::<Vec<_>>()}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeptImage {
    image: String,
}

fn check_image(image: &str) -> Result<(), ApiError> {
    if image.is_empty()
        || image.len() > 512
        || image.contains(|c: char| c.is_whitespace() || c.is_control())
    {
        return Err(ApiError::invalid("image: must be an image reference"));
    }
    Ok(())
}

async fn list_kept(State(st): State<AppState>, Auth(_): Auth) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"images": st.store.kept_images().await?})))
}

async fn keep_image(
    State(st): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<KeptImage>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require_admin(&p, "keeping an image on every worker")?;
    check_image(&body.image)?;
    st.store.keep_image(&body.image).await?;
    Ok((StatusCode::CREATED, Json(json!({"image": body.image}))))
}

async fn unkeep_image(
    State(st): State<AppState>,
    Auth(p): Auth,
    Query(body): Query<KeptImage>,
) -> Result<StatusCode, ApiError> {
    require_admin(&p, "keeping an image on every worker")?;
    st.store.unkeep_image(&body.image).await?;
    Ok(StatusCode::NO_CONTENT)
}
