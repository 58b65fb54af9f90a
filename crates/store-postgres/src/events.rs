//! A job's log lines and system events on Postgres.
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
impl EventStore for PgStore {
    async fn append_events(
        &self,
        id: JobId,
        attempt: u32,
        lines: &[LogLine],
    ) -> gantry_store::Result<()> {
        Err(todo("append_events"))
    }

    async fn list_events(
        &self,
        project: &ProjectId,
        id: JobId,
        after: u64,
        limit: usize,
    ) -> gantry_store::Result<Vec<Event>> {
        Err(todo("list_events"))
    }
}
