//! IronWorker's codes, tasks and schedules on Postgres.
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
impl IronStore for PgStore {
    async fn put_iron_code(
        &self,
        project: &ProjectId,
        name: &str,
        doc: &IronCodeDoc,
    ) -> gantry_store::Result<IronCode> {
        Err(todo("put_iron_code"))
    }

    async fn list_iron_codes(
        &self,
        project: &ProjectId,
        offset: u64,
        limit: u64,
    ) -> gantry_store::Result<Vec<IronCode>> {
        Err(todo("list_iron_codes"))
    }

    async fn get_iron_code(&self, project: &ProjectId, id: &str) -> gantry_store::Result<IronCode> {
        Err(todo("get_iron_code"))
    }

    async fn find_iron_code(
        &self,
        project: &ProjectId,
        name: &str,
    ) -> gantry_store::Result<IronCode> {
        Err(todo("find_iron_code"))
    }

    async fn iron_code_revisions(
        &self,
        project: &ProjectId,
        id: &str,
        offset: u64,
        limit: u64,
    ) -> gantry_store::Result<Vec<IronCodeRev>> {
        Err(todo("iron_code_revisions"))
    }

    async fn delete_iron_code(&self, project: &ProjectId, id: &str) -> gantry_store::Result<()> {
        Err(todo("delete_iron_code"))
    }

    async fn queue_iron_tasks(
        &self,
        tasks: Vec<(JobId, NewJob, IronTask)>,
    ) -> gantry_store::Result<()> {
        Err(todo("queue_iron_tasks"))
    }

    async fn get_iron_task(
        &self,
        project: &ProjectId,
        id: JobId,
    ) -> gantry_store::Result<(Job, IronTask)> {
        Err(todo("get_iron_task"))
    }

    async fn list_iron_tasks(
        &self,
        project: &ProjectId,
        filter: &IronTaskFilter,
    ) -> gantry_store::Result<Vec<(Job, IronTask)>> {
        Err(todo("list_iron_tasks"))
    }

    async fn set_iron_progress(
        &self,
        project: &ProjectId,
        id: JobId,
        percent: u8,
        msg: Option<String>,
    ) -> gantry_store::Result<()> {
        Err(todo("set_iron_progress"))
    }

    async fn create_iron_schedule(
        &self,
        project: &ProjectId,
        s: NewIronSchedule,
    ) -> gantry_store::Result<IronSchedule> {
        Err(todo("create_iron_schedule"))
    }

    async fn get_iron_schedule(
        &self,
        project: &ProjectId,
        id: &str,
    ) -> gantry_store::Result<IronSchedule> {
        Err(todo("get_iron_schedule"))
    }

    async fn list_iron_schedules(
        &self,
        project: &ProjectId,
        offset: u64,
        limit: u64,
    ) -> gantry_store::Result<Vec<IronSchedule>> {
        Err(todo("list_iron_schedules"))
    }

    async fn cancel_iron_schedule(
        &self,
        project: &ProjectId,
        id: &str,
    ) -> gantry_store::Result<IronSchedule> {
        Err(todo("cancel_iron_schedule"))
    }

    async fn iron_schedules_of_code(
        &self,
        project: &ProjectId,
        code_id: &str,
    ) -> gantry_store::Result<Vec<IronSchedule>> {
        Err(todo("iron_schedules_of_code"))
    }
}
