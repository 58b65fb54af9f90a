//! Gantry's HTTP API. Only this crate knows HTTP: routes, wire types (views
//! separate from the store's records), bearer-token auth and the error table;
//! and the scheduler loop the server runs beside it ([`scheduler`]).
#![forbid(unsafe_code)]

mod admin_routes;
mod auth;
mod config_routes;
mod doc;
mod error;
mod extract;
mod hook_routes;
mod image_routes;
mod iron;
mod job_routes;
pub mod notifier;
mod pipeline_routes;
mod routes;
mod schedule_routes;
pub mod scheduler;
mod state;
mod storage_routes;
mod system_routes;
mod ui;
mod unread;
mod views;
mod worker_routes;

pub use error::ApiError;
pub use routes::{app, metrics_app, openapi};
pub use state::{ActionAnswer, ActionRequest, ActionRunner, AppState, Readiness};

/// Largest request body accepted (specs, configurations).
pub const MAX_BODY: usize = 1 << 20;
