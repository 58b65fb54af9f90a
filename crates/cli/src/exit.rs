//! Exit codes that follow a job's end, shared by `run`, `jobs wait` and friends.

use gantry_core::{ErrorKind, JobStatus};

pub fn for_job(status: JobStatus, kind: Option<ErrorKind>, exit_code: Option<i64>) -> u8 {
    match status {
        JobStatus::Succeeded => 0,
        JobStatus::TimedOut => 124,
        JobStatus::Cancelled => 130,
        JobStatus::Queued | JobStatus::Running => 3,
        JobStatus::Failed => match kind {
            Some(ErrorKind::UserError) => 1,
            Some(ErrorKind::Oom) => 137,
            Some(ErrorKind::ImageNotFound) | Some(ErrorKind::BuildError) => 125,
            Some(ErrorKind::ApplicationError) => match exit_code {
                Some(c) if (2..=255).contains(&c) => c as u8,
                _ => 2,
            },
            Some(ErrorKind::InvalidOutput) | Some(ErrorKind::Infrastructure) | None => 2,
        },
    }
}
