//! Running jobs: claiming them from the store, laying out the data folder,
//! running each attempt in a fresh container, turning its output into events,
//! and reporting how it ended.
//!
//! [`attempt::run_attempt`] runs one attempt and knows nothing of the store,
//! so `gantry run` (no server) uses the very same path as the worker.
#![forbid(unsafe_code)]

pub mod actions;
pub mod attempt;
pub mod datadir;
pub mod debug;
pub mod fault;
pub mod images;
pub mod logs;
pub mod processors;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod warm;
mod warm_attempt;
mod worker;

#[cfg(test)]
mod loop_tests;

pub use worker::{Worker, WorkerConfig};

/// Label keys put on every job container.
pub mod labels {
    pub const JOB: &str = "io.gantry.job";
    pub const ATTEMPT: &str = "io.gantry.attempt";
    pub const WORKER: &str = "io.gantry.worker";
    pub const PROJECT: &str = "io.gantry.project";
}
