//! Job statuses and error kinds, and the rules that map a container's end to
//! them (including whether a failure is worth another attempt).

use serde::{Deserialize, Serialize};

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::Display,
)]
#[serde(rename_all = "snake_case")]
#[strum(
    serialize_all = "snake_case",
    parse_err_ty = String,
    parse_err_fn = unknown_status
)]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
}

impl JobStatus {
    pub const ALL: [JobStatus; 6] = [
        Self::Queued,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
        Self::TimedOut,
    ];

    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Queued | Self::Running)
    }
}

fn unknown_status(s: &str) -> String {
    format!("unknown status '{s}': expected one of queued, running, succeeded, failed, cancelled, timed_out")
}

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(
    serialize_all = "snake_case",
    parse_err_ty = String,
    parse_err_fn = unknown_kind
)]
pub enum ErrorKind {
    UserError,
    ApplicationError,
    Oom,
    ImageNotFound,
    InvalidOutput,
    Infrastructure,
    /// The job's image could not be built (a code package or git build);
    /// not retried: the same source builds the same way.
    BuildError,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether another attempt may help. User errors and bad outputs are the
    /// code's own verdict; a missing image will not appear by retrying.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::ApplicationError | Self::Infrastructure)
    }
}

fn unknown_kind(s: &str) -> String {
    format!("unknown error kind '{s}'")
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    pub kind: ErrorKind,
    pub message: String,
}

impl JobError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// How one attempt ended, as decided by the worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub status: JobStatus,
    pub error: Option<JobError>,
    pub exit_code: Option<i64>,
}

impl Outcome {
    pub fn succeeded(exit_code: i64) -> Self {
        Self {
            status: JobStatus::Succeeded,
            error: None,
            exit_code: Some(exit_code),
        }
    }

    pub fn failed(kind: ErrorKind, message: impl Into<String>, exit_code: Option<i64>) -> Self {
        Self {
            status: JobStatus::Failed,
            error: Some(JobError::new(kind, message)),
            exit_code,
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.status == JobStatus::Failed
            && self.error.as_ref().is_some_and(|e| e.kind.is_retryable())
    }
}

/// What the engine told us about a container that has stopped.
#[derive(Clone, Debug, Default)]
pub struct ContainerEnd {
    pub exit_code: i64,
    /// From the engine's state, not guessed from exit code 137.
    pub oom_killed: bool,
    pub timed_out: bool,
    pub cancelled: bool,
}

/// Maps a stopped container to the job's outcome.
/// `tail` is the last lines of stderr, or of stdout when stderr was empty.
pub fn classify(end: &ContainerEnd, memory_limit: u64, tail: &str) -> Outcome {
    if end.cancelled {
        return Outcome {
            status: JobStatus::Cancelled,
            error: None,
            exit_code: Some(end.exit_code),
        };
    }
    if end.timed_out {
        return Outcome {
            status: JobStatus::TimedOut,
            error: Some(JobError::new(
                ErrorKind::ApplicationError,
                "the job ran past limits.timeout and was stopped",
            )),
            exit_code: Some(end.exit_code),
        };
    }
    // The engine's OOM flag means some process in the container was killed by
    // the kernel for the memory limit, not necessarily the main one. A main
    // process that survives (a shell whose child was killed) and exits 0 has
    // succeeded, as the exit-code contract says. This also keeps the outcome
    // from depending on a race: the engine learns of the OOM kill from an event
    // that travels apart from the exit and may be recorded after it, so the flag
    // seen after an exit 0 varies from run to run.
    if end.oom_killed && end.exit_code != 0 {
        return Outcome::failed(
            ErrorKind::Oom,
            format!(
                "killed for exceeding its memory limit of {} (limits.memory)",
                crate::units::format_size(memory_limit)
            ),
            Some(end.exit_code),
        );
    }
    match end.exit_code {
        0 => Outcome::succeeded(0),
        1 => Outcome::failed(
            ErrorKind::UserError,
            if tail.is_empty() {
                "exited with code 1".to_string()
            } else {
                tail.to_string()
            },
            Some(1),
        ),
        code => Outcome::failed(
            ErrorKind::ApplicationError,
            if tail.is_empty() {
                format!("exited with code {code}")
            } else {
                format!("exited with code {code}: {tail}")
            },
            Some(code),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let end = |exit_code| ContainerEnd {
            exit_code,
            ..Default::default()
        };
        assert_eq!(classify(&end(0), 1, "").status, JobStatus::Succeeded);
        let user = classify(&end(1), 1, "bad input");
        assert_eq!(
            user.error.as_ref().map(|e| e.kind),
            Some(ErrorKind::UserError)
        );
        assert_eq!(user.error.map(|e| e.message), Some("bad input".into()));
        assert!(!classify(&end(1), 1, "").is_retryable());
        assert!(classify(&end(3), 1, "").is_retryable());
        // 137 alone is not an OOM: only the engine's flag says so.
        assert_eq!(
            classify(&end(137), 1, "").error.map(|e| e.kind),
            Some(ErrorKind::ApplicationError)
        );
        let oom = classify(
            &ContainerEnd {
                exit_code: 137,
                oom_killed: true,
                ..Default::default()
            },
            64 << 20,
            "",
        );
        let oom = oom.error.expect("error");
        assert_eq!(oom.kind, ErrorKind::Oom);
        assert!(oom.message.contains("64m"), "{}", oom.message);
        // A child was killed, the main process went on and exited 0: success.
        let survived = ContainerEnd {
            exit_code: 0,
            oom_killed: true,
            ..Default::default()
        };
        let survived = classify(&survived, 64 << 20, "");
        assert_eq!(survived.status, JobStatus::Succeeded);
        assert!(survived.error.is_none());
        // ... and exited non-zero because of it: the OOM is the reason.
        let gave_up = ContainerEnd {
            exit_code: 1,
            oom_killed: true,
            ..Default::default()
        };
        assert_eq!(
            classify(&gave_up, 64 << 20, "Killed").error.map(|e| e.kind),
            Some(ErrorKind::Oom)
        );
        let timed = ContainerEnd {
            exit_code: 143,
            timed_out: true,
            ..Default::default()
        };
        assert_eq!(classify(&timed, 1, "").status, JobStatus::TimedOut);
        let cancelled = ContainerEnd {
            exit_code: 143,
            cancelled: true,
            timed_out: true,
            ..Default::default()
        };
        assert_eq!(classify(&cancelled, 1, "").status, JobStatus::Cancelled);
    }
}
