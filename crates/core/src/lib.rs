//! Gantry's domain: what a job spec means, what statuses and error kinds
//! exist, and the rules for turning container output into events.
//!
//! This crate does no IO: no files, no network, and no clock but
//! [`time::now_ms`] (everything else takes the time callers pass in). Everything here is unit-testable in memory.
#![forbid(unsafe_code)]

pub mod applied;
pub mod events;
pub mod ids;
pub mod image_source;
pub mod job;
pub mod metadata;
pub mod pipeline;
pub mod schedule;
pub mod spec;
pub mod time;
pub mod units;

pub use ids::{ConfigId, JobId, PipelineId, ProjectId, ScheduleId, TableId};
pub use job::{ErrorKind, JobError, JobStatus};
pub use spec::{Limits, Network, PullPolicy, Spec, SpecError};
