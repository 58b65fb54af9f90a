//! The store's domain rules as pure functions. Every backend calls them
//! inside its own transaction, after reading what they need and before
//! writing what they decide; none of them touches a database, so both
//! backends decide alike and the rules are tested here once.

use crate::{Change, Finish, Result, Segment, StoreError, TableVersion, TableWrite, WriteKind};
use gantry_core::job::Outcome;
use gantry_core::{JobId, JobStatus};
use rand::RngCore;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// A queued job gains one priority level per this long waited (up to the
/// highest), so low priority is never starved.
pub const AGING_STEP_MS: i64 = 60_000;

/// How long a notification is retried before it is given up.
pub const NOTIFY_DEADLINE_MS: i64 = 10 * 60 * 1000;

/// The highest priority (aging stops there).
pub const MAX_PRIORITY: i64 = 2;

// ---- attempts and leases

/// What a job's attempt counters say, as read inside the transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempts {
    /// Failed attempts so far (not counting the one ending now).
    pub failures: u32,
    pub max_attempts: u32,
}

/// What an ended attempt does to its job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterAttempt {
    /// Queue it again, due after `backoff`; the attempt counts as a failure.
    Retry { backoff: Duration },
    /// The job ends with `status`.
    End {
        status: JobStatus,
        /// Whether this attempt counts as a failure (every end but success).
        failed: bool,
        /// Whether the run's new state goes into its configuration.
        save_state: bool,
    },
}

/// The job's next step after an attempt reported `outcome` (under its
/// lease): a retryable failure with attempts left goes back to the queue.
pub fn after_attempt(outcome: &Outcome, n: Attempts, backoff: Duration) -> AfterAttempt {
    if outcome.is_retryable() && n.failures + 1 < n.max_attempts {
        return AfterAttempt::Retry { backoff };
    }
    AfterAttempt::End {
        status: outcome.status,
        failed: outcome.status != JobStatus::Succeeded,
        save_state: outcome.status == JobStatus::Succeeded,
    }
}

/// Why an attempt's lease was taken back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseLost {
    /// Its worker stopped renewing the lease (it died, or cannot reach the database).
    Expired,
    /// Its worker restarted (a new run of the same worker id took it back).
    WorkerRestarted,
}

impl LeaseLost {
    /// What the lost attempt (and a job failed by it) says.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Expired => "the worker running this attempt stopped renewing its lease",
            Self::WorkerRestarted => "the worker running this attempt restarted",
        }
    }
}

/// How many attempts of one job may be lost with their workers before it
/// fails (a spec's `retry.lost_attempts` overrides it): a job that keeps
/// killing its worker must not loop forever.
pub const DEFAULT_MAX_LOST: u32 = 3;

/// The job's next status after its running attempt was lost (`lost`
/// attempts lost so far, this one included): cancelled if a cancel was
/// asked for, queued again while fewer than `max_lost` were lost, otherwise
/// failed (as infrastructure, with [`LeaseLost::exhausted`]). A lost
/// attempt is Gantry's fault, not the job's: it does not use up
/// `retry.attempts`.
pub fn after_lost_lease(lost: u32, max_lost: u32, cancel_requested: bool) -> JobStatus {
    if cancel_requested {
        JobStatus::Cancelled
    } else if lost < max_lost {
        JobStatus::Queued
    } else {
        JobStatus::Failed
    }
}

impl LeaseLost {
    /// Why a job failed after its last allowed lost attempt.
    pub fn exhausted(self, max_lost: u32) -> String {
        format!(
            "{}; {max_lost} attempts of this job were lost with their workers (the bound retry.lost_attempts), so it is not run again",
            self.reason()
        )
    }
}

// ---- tables

/// The next version of a table, computed from its current version and a write.
#[derive(Clone, Debug, PartialEq)]
pub struct NextVersion {
    pub version: u64,
    pub columns: Vec<String>,
    pub segments: Vec<Segment>,
    pub rows: u64,
    pub bytes: u64,
    /// The table's metadata after this write (the write's keys over the table's).
    pub metadata: Option<Value>,
}

/// Merges a write into a table's current version (`None`: a new table).
/// Append keeps the current segments and adds the write's (new columns
/// appended); replace takes the write's; rewrite is a replace that fails
/// with a conflict if the table moved on from the version it was computed from.
/// A write made by `create` makes a new table only: it is a conflict when
/// the table exists (checked here, inside the commit's transaction, so two
/// racing creates of one table cannot both succeed).
pub fn next_version(current: Option<&TableVersion>, w: &TableWrite) -> Result<NextVersion> {
    if w.made_by == crate::MadeBy::Create && current.is_some() {
        return Err(StoreError::Conflict(format!(
            "table {} already exists",
            w.table
        )));
    }
    let (columns, segments, rows, bytes) = match (&w.kind, current) {
        (WriteKind::Append, Some(cur)) => {
            let mut columns = cur.columns.clone();
            for c in &w.columns {
                if !columns.contains(c) {
                    columns.push(c.clone());
                }
            }
            let mut segments = cur.segments.clone();
            segments.extend(w.segments.iter().cloned());
            (
                columns,
                segments,
                cur.rows + w.loaded_rows,
                cur.bytes + w.loaded_bytes,
            )
        }
        (WriteKind::Rewrite { base_version }, cur) => {
            if cur.map(|c| c.version) != Some(*base_version) {
                return Err(StoreError::Conflict(format!(
                    "table {} changed while this load was prepared; try again",
                    w.table
                )));
            }
            let rows = w.segments.iter().map(|s| s.rows).sum();
            let bytes = w.segments.iter().map(|s| s.bytes).sum();
            (w.columns.clone(), w.segments.clone(), rows, bytes)
        }
        _ => (
            w.columns.clone(),
            w.segments.clone(),
            w.loaded_rows,
            w.loaded_bytes,
        ),
    };
    Ok(NextVersion {
        version: current.map_or(1, |c| c.version + 1),
        columns,
        segments,
        rows,
        bytes,
        // Metadata belongs to the table: a load updates its keys, keeps the rest.
        metadata: gantry_core::metadata::merge(
            current.and_then(|c| c.metadata.as_ref()),
            w.metadata.as_ref(),
        ),
    })
}

// ---- tokens

/// A token just minted: its secret (shown once) and what is stored.
#[derive(Clone, Debug)]
pub struct MintedToken {
    pub secret: String,
    /// SHA-256 of the secret, hex: the only form stored.
    pub hash: String,
}

/// A fresh id for an IronWorker object (a code, a revision, a schedule):
/// 12 random bytes in hex, shaped like Iron's own ids.
pub fn iron_id() -> String {
    let mut raw = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    hex::encode(raw)
}

/// Mints a token: `gty_` and 24 random bytes in hex.
pub fn mint_token() -> MintedToken {
    let mut raw = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let secret = format!("gty_{}", hex::encode(raw));
    let hash = hash_token(&secret);
    MintedToken { secret, hash }
}

/// What is stored of a token's secret (and looked up to authenticate).
pub fn hash_token(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A token's public id: the start of its hash (which `hash_token` made, so
/// always long enough and hex).
pub fn token_public_id(hash: &str) -> crate::Result<gantry_core::TokenId> {
    gantry_core::TokenId::of_hash(hash)
        .ok_or_else(|| crate::StoreError::Corrupt("a token hash is not hex".into()))
}

// ---- notifications

/// One notification a job or run asks for, to queue now that it has ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifyTarget {
    pub url: String,
    /// The `#secret` (sealed) it is signed with, if any.
    pub secret_sealed: Option<String>,
}

/// The notifications a `notify` list asks for once its job or run ended
/// with `status`: those `on: always`, and every one when it did not succeed.
pub fn notifications_due(status: &str, notify: Option<&Value>) -> Vec<NotifyTarget> {
    let Some(list) = notify.and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter(|n| n.get("on").and_then(Value::as_str) == Some("always") || status != "succeeded")
        .filter_map(|n| {
            Some(NotifyTarget {
                url: n.get("url").and_then(Value::as_str)?.to_string(),
                secret_sealed: n.get("#secret").and_then(Value::as_str).map(str::to_string),
            })
        })
        .collect()
}

// ---- announcements

/// What a finished attempt's commit announces.
pub fn announce_finish(id: JobId, finish: &Finish) -> Vec<Change> {
    match finish {
        Finish::Done(s) => vec![Change::Status(id, *s)],
        Finish::Retrying { .. } => vec![Change::Status(id, JobStatus::Queued), Change::Enqueued],
        Finish::Stale => Vec::new(),
    }
}

/// What taking back lost attempts announces: each job's new status, and
/// one `Enqueued` if any went back to the queue.
pub fn announce_taken(taken: &[(JobId, JobStatus)]) -> Vec<Change> {
    let mut out: Vec<Change> = taken
        .iter()
        .map(|(id, s)| Change::Status(*id, *s))
        .collect();
    if taken.iter().any(|(_, s)| *s == JobStatus::Queued) {
        out.push(Change::Enqueued);
    }
    out
}

/// What a job handed back (not counted) announces.
pub fn announce_handed_back(id: JobId) -> Vec<Change> {
    vec![Change::Status(id, JobStatus::Queued), Change::Enqueued]
}

/// What a cancel request announces, from the job's status after it.
pub fn announce_cancel(id: JobId, status: JobStatus) -> Vec<Change> {
    match status {
        JobStatus::Cancelled => vec![Change::Status(id, JobStatus::Cancelled)],
        JobStatus::Running => vec![Change::CancelRequested(id)],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MadeBy;
    use gantry_core::ErrorKind;

    fn n(failures: u32, max_attempts: u32) -> Attempts {
        Attempts {
            failures,
            max_attempts,
        }
    }

    #[test]
    fn a_retryable_failure_with_attempts_left_is_retried_after_the_backoff() {
        let fail = Outcome::failed(ErrorKind::ApplicationError, "boom", Some(3));
        let b = Duration::from_secs(5);
        assert_eq!(
            after_attempt(&fail, n(0, 2), b),
            AfterAttempt::Retry { backoff: b }
        );
        assert_eq!(
            after_attempt(&fail, n(1, 2), b),
            AfterAttempt::End {
                status: JobStatus::Failed,
                failed: true,
                save_state: false
            },
            "the last attempt ends the job"
        );
    }

    #[test]
    fn a_user_error_or_a_success_ends_the_job_whatever_is_left() {
        let user = Outcome::failed(ErrorKind::UserError, "bad", Some(1));
        assert!(matches!(
            after_attempt(&user, n(0, 5), Duration::ZERO),
            AfterAttempt::End {
                status: JobStatus::Failed,
                failed: true,
                save_state: false
            }
        ));
        assert_eq!(
            after_attempt(&Outcome::succeeded(0), n(0, 5), Duration::ZERO),
            AfterAttempt::End {
                status: JobStatus::Succeeded,
                failed: false,
                save_state: true
            }
        );
    }

    #[test]
    fn a_lost_lease_requeues_until_the_lost_bound_and_a_cancel_wins() {
        assert_eq!(after_lost_lease(1, 3, false), JobStatus::Queued);
        assert_eq!(after_lost_lease(2, 3, false), JobStatus::Queued);
        assert_eq!(after_lost_lease(3, 3, false), JobStatus::Failed);
        assert_eq!(after_lost_lease(1, 1, false), JobStatus::Failed);
        assert_eq!(after_lost_lease(1, 5, true), JobStatus::Cancelled);
        assert!(LeaseLost::Expired.exhausted(3).contains("3 attempts"));
    }

    fn seg(key: &str, rows: u64) -> Segment {
        Segment {
            key: key.into(),
            columns: vec!["a".into()],
            rows,
            bytes: rows * 10,
            header: 0,
            created_at: 1,
        }
    }

    fn write(kind: WriteKind, columns: &[&str], segs: Vec<Segment>) -> TableWrite {
        TableWrite {
            table: "in.c-x.t".parse().expect("table"),
            kind,
            columns: columns.iter().map(|c| c.to_string()).collect(),
            primary_key: vec![],
            loaded_rows: segs.iter().map(|s| s.rows).sum(),
            loaded_bytes: segs.iter().map(|s| s.bytes).sum(),
            segments: segs,
            made_by: MadeBy::Import,
            note: None,
            metadata: None,
        }
    }

    fn version_of(v: u64, next: NextVersion) -> TableVersion {
        TableVersion {
            version: v,
            columns: next.columns,
            primary_key: vec![],
            segments: next.segments,
            rows: next.rows,
            bytes: next.bytes,
            loaded_rows: 0,
            loaded_bytes: 0,
            made_by: MadeBy::Import,
            job_id: None,
            note: None,
            created_at: 0,
            metadata: next.metadata,
            pinned: false,
        }
    }

    #[test]
    fn versions_merge_appends_replace_and_refuse_a_stale_rewrite() {
        let first = next_version(None, &write(WriteKind::Append, &["a"], vec![seg("1", 2)]))
            .expect("first");
        assert_eq!((first.version, first.rows), (1, 2), "append to nothing");
        let cur = version_of(1, first);
        let appended = next_version(
            Some(&cur),
            &write(WriteKind::Append, &["a", "b"], vec![seg("2", 3)]),
        )
        .expect("append");
        assert_eq!(appended.version, 2);
        assert_eq!(appended.columns, vec!["a", "b"], "new columns appended");
        assert_eq!((appended.segments.len(), appended.rows), (2, 5));
        let replaced = next_version(
            Some(&cur),
            &write(WriteKind::Replace, &["z"], vec![seg("3", 1)]),
        )
        .expect("replace");
        assert_eq!(
            (replaced.columns.clone(), replaced.rows),
            (vec!["z".into()], 1)
        );
        let stale = next_version(
            Some(&cur),
            &write(WriteKind::Rewrite { base_version: 7 }, &["a"], vec![]),
        );
        assert!(matches!(stale, Err(StoreError::Conflict(_))));
        let fresh = next_version(
            Some(&cur),
            &write(
                WriteKind::Rewrite { base_version: 1 },
                &["a"],
                vec![seg("4", 4)],
            ),
        )
        .expect("rewrite");
        assert_eq!((fresh.version, fresh.rows, fresh.bytes), (2, 4, 40));
        assert!(matches!(
            next_version(
                None,
                &write(WriteKind::Rewrite { base_version: 1 }, &[], vec![])
            ),
            Err(StoreError::Conflict(_))
        ));
    }

    #[test]
    fn tokens_are_random_hashed_and_named_by_the_start_of_their_hash() {
        let (a, b) = (mint_token(), mint_token());
        assert_ne!(a.secret, b.secret);
        assert!(a.secret.starts_with("gty_") && a.secret.len() == 52);
        assert_eq!(a.hash, hash_token(&a.secret));
        assert!(!a.hash.contains(&a.secret[4..]));
        let id = token_public_id(&a.hash).expect("id");
        assert_eq!(id.as_str(), &a.hash[..gantry_core::TokenId::LEN]);
    }

    #[test]
    fn notifications_go_out_on_failure_or_always() {
        let notify = serde_json::json!([
            {"url": "https://a", "#secret": "sealed"},
            {"url": "https://b", "on": "always"},
            {"on": "always"}
        ]);
        let urls = |s| {
            notifications_due(s, Some(&notify))
                .into_iter()
                .map(|t| t.url)
                .collect::<Vec<_>>()
        };
        assert_eq!(urls("succeeded"), vec!["https://b"]);
        assert_eq!(urls("failed"), vec!["https://a", "https://b"]);
        assert_eq!(
            notifications_due("failed", Some(&notify))[0]
                .secret_sealed
                .as_deref(),
            Some("sealed")
        );
        assert!(notifications_due("failed", None).is_empty());
    }

    #[test]
    fn commits_announce_what_changed() {
        let id: JobId = "0190b7a4-0000-7000-8000-000000000001".parse().expect("id");
        assert_eq!(
            announce_finish(id, &Finish::Done(JobStatus::Failed)),
            vec![Change::Status(id, JobStatus::Failed)]
        );
        assert_eq!(
            announce_finish(
                id,
                &Finish::Retrying {
                    after: Duration::ZERO
                }
            ),
            vec![Change::Status(id, JobStatus::Queued), Change::Enqueued]
        );
        assert!(announce_finish(id, &Finish::Stale).is_empty());
        assert_eq!(
            announce_taken(&[(id, JobStatus::Failed)]),
            vec![Change::Status(id, JobStatus::Failed)]
        );
        assert_eq!(
            announce_taken(&[(id, JobStatus::Queued)]).last(),
            Some(&Change::Enqueued)
        );
        assert_eq!(
            announce_cancel(id, JobStatus::Running),
            vec![Change::CancelRequested(id)]
        );
        assert!(announce_cancel(id, JobStatus::Succeeded).is_empty());
    }
}
