//! Schedules, inbound webhooks, outbound notifications and pipelines on Postgres.
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
impl TriggerStore for PgStore {
    async fn create_schedule(
        &self,
        project: &ProjectId,
        s: NewSchedule,
    ) -> gantry_store::Result<ScheduleRow> {
        Err(todo("create_schedule"))
    }

    async fn list_schedules(&self, project: &ProjectId) -> gantry_store::Result<Vec<ScheduleRow>> {
        Err(todo("list_schedules"))
    }

    async fn get_schedule(
        &self,
        project: &ProjectId,
        id: &ScheduleId,
    ) -> gantry_store::Result<ScheduleRow> {
        Err(todo("get_schedule"))
    }

    async fn set_schedule_paused(
        &self,
        project: &ProjectId,
        id: &ScheduleId,
        paused: bool,
        next_tick: Option<i64>,
    ) -> gantry_store::Result<ScheduleRow> {
        Err(todo("set_schedule_paused"))
    }

    async fn delete_schedule(
        &self,
        project: &ProjectId,
        id: &ScheduleId,
    ) -> gantry_store::Result<()> {
        Err(todo("delete_schedule"))
    }

    async fn due_schedules(&self, now: i64) -> gantry_store::Result<Vec<ScheduleRow>> {
        Err(todo("due_schedules"))
    }

    async fn next_schedule_tick(&self) -> gantry_store::Result<Option<i64>> {
        Err(todo("next_schedule_tick"))
    }

    async fn fire_tick(&self, f: FireTick) -> gantry_store::Result<Fired> {
        Err(todo("fire_tick"))
    }

    async fn create_hook(&self, hook: HookRow) -> gantry_store::Result<HookRow> {
        Err(todo("create_hook"))
    }

    async fn list_hooks(&self, project: &ProjectId) -> gantry_store::Result<Vec<HookRow>> {
        Err(todo("list_hooks"))
    }

    async fn get_hook(
        &self,
        project: Option<&ProjectId>,
        id: &str,
    ) -> gantry_store::Result<HookRow> {
        Err(todo("get_hook"))
    }

    async fn delete_hook(&self, project: &ProjectId, id: &str) -> gantry_store::Result<()> {
        Err(todo("delete_hook"))
    }

    async fn rotate_hook(
        &self,
        project: &ProjectId,
        id: &str,
        secret_sealed: &str,
        grace: Duration,
    ) -> gantry_store::Result<HookRow> {
        Err(todo("rotate_hook"))
    }

    async fn deliver(
        &self,
        hook: &str,
        delivery: &str,
        body: Vec<u8>,
        manifest: Value,
        what: Fire,
    ) -> gantry_store::Result<Delivered> {
        Err(todo("deliver"))
    }

    async fn find_delivery(
        &self,
        hook: &str,
        delivery: &str,
    ) -> gantry_store::Result<Option<String>> {
        Err(todo("find_delivery"))
    }

    async fn due_notifications(
        &self,
        lease: Duration,
        limit: usize,
    ) -> gantry_store::Result<Vec<Notification>> {
        Err(todo("due_notifications"))
    }

    async fn record_notification_attempt(
        &self,
        id: i64,
        status_code: Option<u16>,
        error: Option<&str>,
        delivered: bool,
        retry_in: Duration,
    ) -> gantry_store::Result<()> {
        Err(todo("record_notification_attempt"))
    }

    async fn list_notifications(
        &self,
        project: &ProjectId,
        kind: &str,
        subject: &str,
    ) -> gantry_store::Result<Vec<NotificationView>> {
        Err(todo("list_notifications"))
    }

    async fn put_pipeline(
        &self,
        project: &ProjectId,
        id: &PipelineId,
        doc: &Value,
        configs: &[ConfigId],
        create: bool,
    ) -> gantry_store::Result<PipelineRow> {
        Err(todo("put_pipeline"))
    }

    async fn get_pipeline(
        &self,
        project: &ProjectId,
        id: &PipelineId,
    ) -> gantry_store::Result<PipelineRow> {
        Err(todo("get_pipeline"))
    }

    async fn list_pipelines(&self, project: &ProjectId) -> gantry_store::Result<Vec<PipelineRow>> {
        Err(todo("list_pipelines"))
    }

    async fn delete_pipeline(
        &self,
        project: &ProjectId,
        id: &PipelineId,
    ) -> gantry_store::Result<()> {
        Err(todo("delete_pipeline"))
    }

    async fn start_pipeline_run(
        &self,
        project: &ProjectId,
        id: &PipelineId,
    ) -> gantry_store::Result<PipelineRun> {
        Err(todo("start_pipeline_run"))
    }

    async fn get_pipeline_run(
        &self,
        project: &ProjectId,
        run: &str,
    ) -> gantry_store::Result<PipelineRun> {
        Err(todo("get_pipeline_run"))
    }

    async fn list_pipeline_runs(
        &self,
        project: &ProjectId,
        pipeline: Option<&PipelineId>,
    ) -> gantry_store::Result<Vec<PipelineRun>> {
        Err(todo("list_pipeline_runs"))
    }

    async fn cancel_pipeline_run(
        &self,
        project: &ProjectId,
        run: &str,
    ) -> gantry_store::Result<PipelineRun> {
        Err(todo("cancel_pipeline_run"))
    }

    async fn advance_pipeline_runs(&self) -> gantry_store::Result<u64> {
        Err(todo("advance_pipeline_runs"))
    }
}
