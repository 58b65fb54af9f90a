//! The wire: what the API answers and accepts, as types both ends share.
//! The server builds these views from the store's records (feature
//! `store`), never serializing the records themselves, so internals can
//! change without breaking clients; the CLI reads answers into the same
//! types instead of by string key. Each type carries its OpenAPI schema
//! (`utoipa::ToSchema`), from which the API's document is derived.
#![forbid(unsafe_code)]

mod admin;
mod catalog;
mod configs;
#[cfg(feature = "store")]
mod from_store;
mod ids;
mod images;
mod jobs;
mod triggers;

pub use admin::*;
pub use catalog::*;
pub use configs::*;
#[cfg(feature = "store")]
pub use from_store::{
    hook_view, notification_view, pipeline_run_view, pipeline_view, project_view, schedule_view,
    trigger_view, waiting_text, worker_view,
};
/// A time on the wire: RFC 3339 in UTC with milliseconds.
pub use gantry_core::time::rfc3339;
pub use ids::*;
pub use images::*;
pub use jobs::*;
pub use triggers::*;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Every error answer: a stable code and a message for people.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable: `invalid_request`, `invalid_spec`, `invalid_data`, `not_found`,
    /// `unauthorized`, `forbidden`, `conflict`, `too_large`,
    /// `unsupported_media_type`, `unavailable`, `internal`...
    pub code: String,
    pub message: String,
}
