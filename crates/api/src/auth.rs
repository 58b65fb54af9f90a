//! Bearer-token authentication: the token's hash is looked up in the store.

use crate::state::AppState;
use crate::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use gantry_store::Principal;

pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .ok_or_else(ApiError::unauthorized)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 256)
            .ok_or_else(ApiError::unauthorized)?;
        match state.store.authenticate(token).await? {
            Some(p) => Ok(Auth(p)),
            None => Err(ApiError::unauthorized()),
        }
    }
}
