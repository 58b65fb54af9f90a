//! Readiness and figures for metrics on Postgres.
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
impl HealthStore for PgStore {
    async fn check_writable(&self) -> gantry_store::Result<()> {
        Err(todo("check_writable"))
    }

    async fn count_by_status(&self) -> gantry_store::Result<Vec<(JobStatus, u64)>> {
        Err(todo("count_by_status"))
    }

    async fn figures(&self) -> gantry_store::Result<StoreFigures> {
        Err(todo("figures"))
    }
}
