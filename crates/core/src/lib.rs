//! Gantry's domain: what a job spec means, what statuses and error kinds
//! exist, and the rules for turning container output into events.
//!
//! This crate does no IO: no files, no network, and no clock but
//! [`time::now_ms`] (everything else takes the time callers pass in).
//! Everything here is unit-testable in memory.
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

pub use ids::{
    ConfigId, FileId, JobId, PipelineId, ProjectId, ScheduleId, TableId, TokenId, WorkerId,
};
pub use job::{ErrorKind, JobError, JobStatus};
pub use spec::{Limits, Network, PullPolicy, Spec, SpecError};

/// The names of the simple enums (derived with `strum`) are the serde names
/// and the strings stored and shown; parse errors keep their messages.
#[cfg(test)]
mod enum_names {
    use crate::events::Stream;
    use crate::schedule::Overlap;
    use crate::spec::{DataTypeSupport, Loosening};
    use crate::{ErrorKind, JobStatus, Network};
    use std::str::FromStr;

    fn serde_name<T: serde::Serialize>(v: T) -> String {
        serde_json::to_value(v)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    fn check<T>(all: &[T], names: &[&str], as_str: fn(T) -> &'static str)
    where
        T: Copy + serde::Serialize + FromStr + PartialEq + std::fmt::Debug,
    {
        for (v, name) in all.iter().zip(names) {
            assert_eq!(as_str(*v), *name);
            assert_eq!(serde_name(*v), *name);
        }
        assert_eq!(all.len(), names.len());
    }

    fn round_trip<T>(all: &[T], as_str: fn(T) -> &'static str)
    where
        T: Copy + FromStr + PartialEq + std::fmt::Debug,
    {
        for v in all {
            assert_eq!(T::from_str(as_str(*v)).ok(), Some(*v));
        }
    }

    #[test]
    fn names_are_the_stored_strings() {
        check(
            &JobStatus::ALL,
            &[
                "queued",
                "running",
                "succeeded",
                "failed",
                "cancelled",
                "timed_out",
            ],
            JobStatus::as_str,
        );
        round_trip(&JobStatus::ALL, JobStatus::as_str);
        assert_eq!(JobStatus::TimedOut.to_string(), "timed_out");
        let kinds = [
            ErrorKind::UserError,
            ErrorKind::ApplicationError,
            ErrorKind::Oom,
            ErrorKind::ImageNotFound,
            ErrorKind::InvalidOutput,
            ErrorKind::Infrastructure,
            ErrorKind::BuildError,
        ];
        check(
            &kinds,
            &[
                "user_error",
                "application_error",
                "oom",
                "image_not_found",
                "invalid_output",
                "infrastructure",
                "build_error",
            ],
            ErrorKind::as_str,
        );
        round_trip(&kinds, ErrorKind::as_str);
        let streams = [Stream::Stdout, Stream::Stderr, Stream::System];
        check(&streams, &["stdout", "stderr", "system"], Stream::as_str);
        round_trip(&streams, Stream::as_str);
        let overlaps = [Overlap::Skip, Overlap::Queue, Overlap::Allow];
        check(&overlaps, &["skip", "queue", "allow"], Overlap::as_str);
        round_trip(&overlaps, Overlap::as_str);
        for (v, name) in [(Network::None, "none"), (Network::Bridge, "bridge")] {
            assert_eq!((v.as_str(), serde_name(v).as_str()), (name, name));
        }
        for (v, name) in [
            (Loosening::RootUser, "root-user"),
            (Loosening::BridgeNetwork, "bridge-network"),
            (Loosening::WritableRoot, "writable-root"),
        ] {
            assert_eq!((v.as_str(), serde_name(v).as_str()), (name, name));
            assert_eq!(v.to_string(), name);
        }
        for (v, name) in [
            (DataTypeSupport::None, "none"),
            (DataTypeSupport::Hints, "hints"),
            (DataTypeSupport::Authoritative, "authoritative"),
        ] {
            assert_eq!((v.as_str(), serde_name(v).as_str()), (name, name));
        }
    }

    #[test]
    fn parse_errors_keep_their_messages() {
        assert_eq!(
            JobStatus::from_str("done").err().as_deref(),
            Some("unknown status 'done': expected one of queued, running, succeeded, failed, cancelled, timed_out")
        );
        assert_eq!(
            ErrorKind::from_str("x").err().as_deref(),
            Some("unknown error kind 'x'")
        );
        assert_eq!(
            Stream::from_str("x").err().as_deref(),
            Some("unknown stream 'x'")
        );
        assert_eq!(
            Overlap::from_str("x").err().as_deref(),
            Some("unknown overlap policy 'x'")
        );
        // Exact: no case folding.
        assert!(JobStatus::from_str("Queued").is_err());
    }
}
