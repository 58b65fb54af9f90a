//! Gantry's HTTP API. Only this crate knows HTTP: routes, wire types (views
//! separate from the store's records), bearer-token auth and the error table.
#![forbid(unsafe_code)]

mod admin_routes;
mod auth;
mod error;
mod openapi;
mod routes;
mod storage_routes;
mod ui;
mod views;

pub use error::ApiError;
pub use routes::{app, metrics_app, AppState, Readiness};

/// Largest request body accepted (specs, configurations).
pub const MAX_BODY: usize = 1 << 20;
