//! The fleet's workers on Postgres.
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
impl WorkerStore for PgStore {
    async fn register_worker(&self, w: NewWorker) -> gantry_store::Result<WorkerInfo> {
        Err(todo("register_worker"))
    }

    async fn worker_beat(&self, id: &str) -> gantry_store::Result<WorkerState> {
        Err(todo("worker_beat"))
    }

    async fn list_workers(&self) -> gantry_store::Result<Vec<WorkerInfo>> {
        Err(todo("list_workers"))
    }

    async fn drain_worker(&self, id: &str) -> gantry_store::Result<WorkerInfo> {
        Err(todo("drain_worker"))
    }

    async fn worker_stopped(&self, id: &str) -> gantry_store::Result<()> {
        Err(todo("worker_stopped"))
    }
}
