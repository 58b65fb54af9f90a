//! Extractors and path-parameter parsers whose rejections are API errors.

use crate::ApiError;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::Json;
use gantry_core::{ConfigId, JobId};

/// JSON body extractor whose rejections are API errors (413, 400, 415).
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Ok(Self(Json::<T>::from_request(req, state).await?.0))
    }
}

/// Query-string extractor whose rejections are API errors (400, JSON).
pub struct ApiQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S>
    for ApiQuery<T>
{
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        Ok(Self(Query::<T>::from_request_parts(parts, state).await?.0))
    }
}

pub(crate) fn job_id(s: &str) -> Result<JobId, ApiError> {
    // A malformed id cannot name any job: answer like a missing one.
    s.parse()
        .map_err(|_| ApiError::not_found(format!("job {}", s.chars().take(64).collect::<String>())))
}

pub(crate) fn config_id(s: &str) -> Result<ConfigId, ApiError> {
    s.parse().map_err(ApiError::invalid)
}

/// Path-parameter extractor whose rejections (a number that is not one, a
/// segment that is not UTF-8) are API errors (400, JSON), not plain text.
pub struct ApiPath<T>(pub T);

impl<T: serde::de::DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(Self(v)),
            Err(r) => Err(ApiError::invalid(r.body_text())),
        }
    }
}
