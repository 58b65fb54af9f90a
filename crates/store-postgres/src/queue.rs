//! The durable job queue on Postgres: enqueue, claim (`FOR UPDATE SKIP LOCKED`), leases by the database's clock, fenced attempt ends, recovery.
#![allow(unused_variables, unused_imports)] // stubs being filled in

use crate::error::{Error, Result};
use crate::jobs::*;
use crate::{todo, PgStore, NOW};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use gantry_core::events::LogLine;
use gantry_core::job::Outcome;
use gantry_core::spec::Loosening;
use gantry_core::{ConfigId, JobId, JobStatus, PipelineId, ProjectId, ScheduleId, TableId};
use gantry_store::*;
use serde_json::Value;
use std::time::Duration;

#[async_trait]
impl QueueStore for PgStore {
    async fn enqueue(&self, job: NewJob) -> gantry_store::Result<Job> {
        Err(todo("enqueue"))
    }

    async fn enqueue_batch(&self, jobs: Vec<NewJob>) -> gantry_store::Result<Vec<JobId>> {
        Err(todo("enqueue_batch"))
    }

    async fn get_job(&self, project: &ProjectId, id: JobId) -> gantry_store::Result<Job> {
        Err(todo("get_job"))
    }

    async fn list_jobs(
        &self,
        project: &ProjectId,
        filter: &JobFilter,
    ) -> gantry_store::Result<Vec<Job>> {
        Err(todo("list_jobs"))
    }

    async fn request_cancel(&self, project: &ProjectId, id: JobId) -> gantry_store::Result<Job> {
        Err(todo("request_cancel"))
    }

    async fn claim(
        &self,
        worker: &str,
        max: usize,
        lease: Duration,
    ) -> gantry_store::Result<Claim> {
        Err(todo("claim"))
    }

    async fn age_queue(&self) -> gantry_store::Result<u64> {
        Err(todo("age_queue"))
    }

    async fn heartbeat(&self, worker: &str, lease: Duration) -> gantry_store::Result<Vec<JobId>> {
        Err(todo("heartbeat"))
    }

    async fn record_attempt(
        &self,
        id: JobId,
        attempt: u32,
        info: &AttemptInfo,
    ) -> gantry_store::Result<()> {
        Err(todo("record_attempt"))
    }

    async fn finish_attempt(
        &self,
        id: JobId,
        attempt: u32,
        worker: &str,
        outcome: &Outcome,
        new_state: Option<&Value>,
        outputs: &Outputs,
    ) -> gantry_store::Result<Finish> {
        Err(todo("finish_attempt"))
    }

    async fn hand_back(&self, id: JobId, attempt: u32, worker: &str) -> gantry_store::Result<()> {
        Err(todo("hand_back"))
    }

    async fn recover_expired(&self) -> gantry_store::Result<Vec<JobId>> {
        Err(todo("recover_expired"))
    }

    async fn recover_worker(&self, worker: &str) -> gantry_store::Result<Vec<JobId>> {
        Err(todo("recover_worker"))
    }
}
