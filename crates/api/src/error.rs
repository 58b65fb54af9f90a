//! One table from errors to HTTP statuses and stable codes. 5xx bodies are
//! generic; the full error goes to the log.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gantry_control::{ActionError, CatalogError, ConfigError, SubmitError, TokenError};
use gantry_storage::StorageError;
use gantry_store::StoreError;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid token is required: send 'Authorization: Bearer <token>'",
        )
    }
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
    /// Names where in a request a client error is (`jobs[3]: ...`); server
    /// errors stay generic.
    pub fn prefixed(mut self, at: &str) -> Self {
        if self.status.is_client_error() {
            self.message = format!("{at}: {}", self.message);
        }
        self
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{what} not found"),
            ),
            StoreError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            other => Self::internal(other),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Invalid(m) => Self::new(StatusCode::BAD_REQUEST, "invalid_data", m),
            StorageError::NotFound(what) => Self::not_found(what),
            StorageError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            StorageError::Store(s) => s.into(),
            StorageError::TooLarge(m) => Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", m),
            StorageError::OutOfSpace(_) => Self::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "insufficient_storage",
                "the object store's disk is full; nothing was stored (free space and retry)",
            ),
            other => Self::internal(other),
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Invalid(m) => Self::invalid(m),
            SubmitError::Spec(e) => e.into(),
            SubmitError::Store(e) => e.into(),
            SubmitError::InBatch { index, error } => {
                Self::from(*error).prefixed(&format!("jobs[{index}]"))
            }
        }
    }
}

impl From<ConfigError> for ApiError {
    fn from(e: ConfigError) -> Self {
        match e {
            ConfigError::Spec(e) => e.into(),
            ConfigError::Store(e) => e.into(),
        }
    }
}

impl From<ActionError> for ApiError {
    fn from(e: ActionError) -> Self {
        match e {
            ActionError::InvalidName(_) => Self::invalid(e.to_string()),
            ActionError::Config(e) => e.into(),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Forbidden => Self::forbidden(e.to_string()),
            TokenError::Invalid(m) => Self::invalid(m),
            TokenError::Store(e) => e.into(),
        }
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Invalid(m) => Self::invalid(m),
            CatalogError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            CatalogError::Storage(e) => e.into(),
            CatalogError::Store(e) => e.into(),
        }
    }
}

impl From<gantry_core::SpecError> for ApiError {
    fn from(e: gantry_core::SpecError) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_spec", e.to_string())
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        let status = r.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::new(
                status,
                "too_large",
                format!("the request body is larger than {} bytes", crate::MAX_BODY),
            );
        }
        if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            return Self::new(
                status,
                "unsupported_media_type",
                "send JSON with 'Content-Type: application/json'",
            );
        }
        Self::invalid(format!(
            "the body is not valid JSON for this request: {}",
            r.body_text()
        ))
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        Self::invalid(r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}
