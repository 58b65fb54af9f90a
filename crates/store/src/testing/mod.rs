//! The conformance suite: what every backend of [`Store`] must do, run by
//! each backend's own tests (like River's `riverdrivertest`). A backend
//! gives a function that opens a fresh, empty store ([`Backend`]) and calls
//! [`conformance_suite!`](crate::conformance_suite), which makes one test
//! per case:
//!
//! ```text
//! async fn open() -> Box<dyn gantry_store::testing::Backend> { ... }
//! gantry_store::conformance_suite!(open);
//! ```
//!
//! Cases take the store only through the contract, so a case that passes
//! on one backend and fails on another names a backend bug.

mod contract;
mod images;
mod iron;
mod ordering;
mod queue;
mod schedules;
mod servers;
mod workers;

pub use contract::*;
pub use images::*;
pub use iron::*;
pub use ordering::*;
pub use queue::*;
pub use schedules::*;
pub use servers::*;
pub use workers::*;

use crate::{NewJob, Store};
use async_trait::async_trait;
use gantry_core::{JobId, ProjectId};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// A fresh, empty store of one backend, kept alive (its folder, its
/// database) as long as this value lives.
#[async_trait]
pub trait Backend: Send + Sync {
    fn store(&self) -> Arc<dyn Store>;
    /// A second store on the same database, opened as another server (or
    /// worker host) would open it: its own connections, its own writer.
    async fn peer(&self) -> Arc<dyn Store>;
    /// Test hook: moves a queued job's due time `by` into the past, as if
    /// it had waited that long (aging is measured by the database's clock).
    async fn backdate(&self, job: JobId, by: Duration);
}

/// A worker id for tests: `wid("w1")`.
pub fn wid(s: &str) -> gantry_core::WorkerId {
    s.parse().expect("a worker id")
}

pub fn project() -> ProjectId {
    ProjectId::default_project()
}

pub fn new_job(attempts: u32) -> NewJob {
    NewJob::new(
        project(),
        None,
        json!({"image": "x"}),
        attempts,
        Duration::from_millis(0),
    )
}

pub const LEASE: Duration = Duration::from_secs(30);

/// Makes one `#[tokio::test]` per conformance case, each on a fresh store
/// from `$open` (an `async fn() -> Box<dyn Backend>`). The caller needs
/// `tokio` (with `macros`, `rt-multi-thread`) among its dev-dependencies.
#[macro_export]
macro_rules! conformance_suite {
    ($open:path) => {
        $crate::__conformance_cases!(
            $open;
            // queue
            concurrent_claims_never_hand_out_a_job_twice,
            retries_count_failures_and_success_saves_state,
            expired_leases_are_taken_back_and_late_results_are_fenced_off,
            hand_back_does_not_use_up_an_attempt_and_recover_worker_takes_all,
            events_are_numbered_and_changes_announced,
            outputs_commit_with_the_end_and_a_stale_end_commits_none,
            health_figures_count_the_queue,
            // ordering
            priority_orders_claims_before_age_and_aging_lifts_waiting_jobs,
            delayed_jobs_wait_and_say_until_when,
            the_configuration_lock_holds_across_workers_and_never_blocks_others,
            a_concurrency_key_limits_running_jobs_across_workers,
            a_project_cap_holds_its_jobs_back,
            // schedules
            racing_schedulers_fire_each_tick_once,
            // two servers on one database
            two_servers_claim_every_job_once_and_one_configuration_at_a_time,
            two_servers_advancing_runs_make_each_tasks_job_once,
            // the contract's corners
            tenancy_answers_not_found,
            a_finish_racing_lease_recovery_has_one_winner,
            version_conflicts_are_conflicts,
            files_are_listed_by_every_tag_asked,
            tokens_are_revoked_by_public_id,
            a_token_authenticates_by_its_secret_only,
            a_webhook_delivery_makes_its_job_once,
            notifications_are_queued_as_a_job_asks,
            // IronWorker's objects
            iron_codes_tasks_and_schedules,
            // the fleet
            workers_register_claim_by_tags_drain_and_stop,
            the_admin_token_is_bootstrapped_once,
            // the image catalogue
            logins_are_per_project_revisions_count_up_and_images_list_oldest_use_first,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($open:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let backend = $open().await;
                $crate::testing::$case(backend.as_ref()).await;
            }
        )*
    };
}
