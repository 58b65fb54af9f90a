//! Images: registry logins of the caller's project (`/v1/registries`; the
//! password is sealed by the vault and never returned), stacks (named base
//! images; an admin adds and removes them), code packages of the caller's
//! project (`/v1/packages/{name}`: the body is a zip or tar.gz, checked and
//! kept as the next revision), what every worker holds (`/v1/images`,
//! admin) and the fleet's warm list (`/v1/images/keep`: images every worker
//! keeps present; changed by an admin).

use crate::auth::Auth;
use crate::doc::ErrorBody;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::ApiError;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::Json;
use gantry_core::image_source::valid_name;
use gantry_store::Principal;
use gantry_wire::{
    ImageList, KeptImage, KeptList, PackageList, PackageView, RegistryList, RegistryView,
    StackList, StackView,
};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_registries, add_registry))
        .routes(routes!(remove_registry))
        .routes(routes!(list_stacks, add_stack))
        .routes(routes!(remove_stack))
        .routes(routes!(list_packages))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(upload_package))
                .layer(DefaultBodyLimit::max(gantry_storage::packages::MAX_ARCHIVE)),
        )
        .routes(routes!(list_images))
        .routes(routes!(list_kept, keep_image, unkeep_image))
}

fn require_admin(p: &Principal, what: &str) -> Result<(), ApiError> {
    if p.admin {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!("{what} needs an admin token")))
    }
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewRegistry {
    /// `host[:port]` of the registry.
    #[schema(pattern = r"^[A-Za-z0-9.:\[\]-]{1,255}$")]
    host: String,
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]+$"
    )]
    username: String,
    /// Sealed at rest, never returned.
    #[schema(min_length = 1, max_length = 2048)]
    password: String,
}

#[utoipa::path(post, path = "/v1/registries", tag = "images", security(("bearer" = [])), request_body = NewRegistry, responses((status = 201, description = "the project's login to that host (without its password)", body = RegistryView), (status = 400, description = "invalid host, username or password", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 413, description = "body too large", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody)))]
async fn add_registry(
    State(st): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<NewRegistry>,
) -> Result<(StatusCode, Json<RegistryView>), ApiError> {
    check_host(&body.host)?;
    if body.username.is_empty()
        || body.username.chars().count() > 256
        || body.username.contains(char::is_control)
    {
        return Err(ApiError::invalid("username: must be 1 to 256 characters"));
    }
    if body.password.is_empty() || body.password.chars().count() > 2048 {
        return Err(ApiError::invalid("password: must be 1 to 2048 characters"));
    }
    let sealed = st.vault.seal(&body.password);
    let info = st
        .store
        .put_registry(&p.project, &body.host, &body.username, &sealed)
        .await?;
    Ok((StatusCode::CREATED, Json(info.into())))
}

#[utoipa::path(get, path = "/v1/registries", tag = "images", security(("bearer" = [])), responses((status = 200, description = "the project's registry logins (no passwords)", body = RegistryList), (status = 401, description = "no valid token", body = ErrorBody)))]
async fn list_registries(
    State(st): State<AppState>,
    Auth(p): Auth,
) -> Result<Json<RegistryList>, ApiError> {
    let list = st.store.list_registries(&p.project).await?;
    Ok(Json(RegistryList {
        registries: list.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(delete, path = "/v1/registries/{host}", tag = "images", security(("bearer" = [])), params(("host" = String, Path, description = "the registry host", pattern = r"^[A-Za-z0-9.:\[\]-]{1,255}$")), responses((status = 204, description = "removed"), (status = 400, description = "invalid host", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 404, description = "no login to that host in this project", body = ErrorBody)))]
async fn remove_registry(
    State(st): State<AppState>,
    Auth(p): Auth,
    ApiPath(host): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    check_host(&host)?;
    st.store.delete_registry(&p.project, &host).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewStack {
    #[schema(pattern = r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$")]
    name: String,
    /// An image reference.
    #[schema(pattern = r"^[^\s\x00-\x1f\x7f-\x9f]{1,512}$")]
    image: String,
}

#[utoipa::path(post, path = "/v1/stacks", tag = "images", security(("bearer" = [])), request_body = NewStack, responses((status = 201, description = "the stack", body = StackView), (status = 400, description = "invalid name or image", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 403, description = "needs an admin token", body = ErrorBody), (status = 413, description = "body too large", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody)))]
async fn add_stack(
    State(st): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<NewStack>,
) -> Result<(StatusCode, Json<StackView>), ApiError> {
    require_admin(&p, "registering a stack")?;
    if !valid_name(&body.name) {
        return Err(ApiError::invalid(
            "name: letters, digits, . _ - (up to 100)",
        ));
    }
    check_image(&body.image)?;
    let row = st.store.put_stack(&body.name, &body.image).await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

#[utoipa::path(get, path = "/v1/stacks", tag = "images", security(("bearer" = [])), responses((status = 200, description = "every stack", body = StackList), (status = 401, description = "no valid token", body = ErrorBody)))]
async fn list_stacks(
    State(st): State<AppState>,
    Auth(_): Auth,
) -> Result<Json<StackList>, ApiError> {
    let list = st.store.list_stacks().await?;
    Ok(Json(StackList {
        stacks: list.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(delete, path = "/v1/stacks/{name}", tag = "images", security(("bearer" = [])), params(("name" = String, Path, description = "the stack's name")), responses((status = 204, description = "removed"), (status = 401, description = "no valid token", body = ErrorBody), (status = 403, description = "needs an admin token", body = ErrorBody), (status = 404, description = "no such stack", body = ErrorBody)))]
async fn remove_stack(
    State(st): State<AppState>,
    Auth(p): Auth,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&p, "removing a stack")?;
    st.store.delete_stack(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/packages/{name}", tag = "images", security(("bearer" = [])), params(("name" = String, Path, description = "the package's name", pattern = r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$")), request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "a zip or tar.gz (up to 64 MiB); refused (400) when it is not one, or holds absolute paths, '..', links out, devices, or too many entries or bytes"), responses((status = 201, description = "the new revision", body = PackageView), (status = 400, description = "not a package, or an unsafe one", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 413, description = "larger than 64 MiB", body = ErrorBody)))]
async fn upload_package(
    State(st): State<AppState>,
    Auth(p): Auth,
    ApiPath(name): ApiPath<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<PackageView>), ApiError> {
    if !valid_name(&name) {
        return Err(ApiError::invalid(
            "name: letters, digits, . _ - (up to 100)",
        ));
    }
    let rev = st.storage.put_package(&p.project, &name, body).await?;
    Ok((StatusCode::CREATED, Json(rev.into())))
}

#[utoipa::path(get, path = "/v1/packages", tag = "images", security(("bearer" = [])), responses((status = 200, description = "every revision of the project's packages, newest first", body = PackageList), (status = 401, description = "no valid token", body = ErrorBody)))]
async fn list_packages(
    State(st): State<AppState>,
    Auth(p): Auth,
) -> Result<Json<PackageList>, ApiError> {
    let list = st.store.list_packages(&p.project).await?;
    Ok(Json(PackageList {
        packages: list.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(get, path = "/v1/images", tag = "images", security(("bearer" = [])), responses((status = 200, description = "what every worker holds for Gantry, least recently used first", body = ImageList), (status = 401, description = "no valid token", body = ErrorBody), (status = 403, description = "needs an admin token", body = ErrorBody)))]
async fn list_images(
    State(st): State<AppState>,
    Auth(p): Auth,
) -> Result<Json<ImageList>, ApiError> {
    require_admin(&p, "listing the images workers hold")?;
    let list = st.store.list_images(None).await?;
    Ok(Json(ImageList {
        images: list.into_iter().map(Into::into).collect(),
    }))
}

/// An image reference as the document's pattern states it: 1 to 512
/// characters, none of them white space (`\s`, with U+FEFF) or a control.
fn check_image(image: &str) -> Result<(), ApiError> {
    if image.is_empty()
        || image.chars().count() > 512
        || image.contains(|c: char| c.is_whitespace() || c.is_control() || c == '\u{feff}')
    {
        return Err(ApiError::invalid("image: must be an image reference"));
    }
    Ok(())
}

#[utoipa::path(get, path = "/v1/images/keep", tag = "images", security(("bearer" = [])), responses((status = 200, description = "the images every worker keeps present", body = KeptList), (status = 401, description = "no valid token", body = ErrorBody)))]
async fn list_kept(State(st): State<AppState>, Auth(_): Auth) -> Result<Json<KeptList>, ApiError> {
    Ok(Json(KeptList {
        images: st.store.kept_images().await?,
    }))
}

#[utoipa::path(post, path = "/v1/images/keep", tag = "images", security(("bearer" = [])), request_body = KeptImage, responses((status = 201, description = "kept", body = KeptImage), (status = 400, description = "not an image reference", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 403, description = "needs an admin token", body = ErrorBody), (status = 413, description = "body too large", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody)))]
async fn keep_image(
    State(st): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<KeptImage>,
) -> Result<(StatusCode, Json<KeptImage>), ApiError> {
    require_admin(&p, "keeping an image on every worker")?;
    check_image(&body.image)?;
    st.store.keep_image(&body.image).await?;
    Ok((StatusCode::CREATED, Json(body)))
}

#[utoipa::path(delete, path = "/v1/images/keep", tag = "images", security(("bearer" = [])), params(("image" = String, Query, description = "the image to stop keeping", pattern = r"^[^\s\x00-\x1f\x7f-\x9f]{1,512}$")), responses((status = 204, description = "no longer kept"), (status = 400, description = "no image named", body = ErrorBody), (status = 404, description = "the image is not kept", body = ErrorBody), (status = 401, description = "no valid token", body = ErrorBody), (status = 403, description = "needs an admin token", body = ErrorBody)))]
async fn unkeep_image(
    State(st): State<AppState>,
    Auth(p): Auth,
    ApiQuery(body): ApiQuery<KeptImage>,
) -> Result<StatusCode, ApiError> {
    require_admin(&p, "keeping an image on every worker")?;
    st.store.unkeep_image(&body.image).await?;
    Ok(StatusCode::NO_CONTENT)
}
