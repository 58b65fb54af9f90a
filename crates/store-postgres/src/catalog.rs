//! The catalog of tables (versions) and files on Postgres.
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

/// Commits one table write as the table's next version (inside the
/// caller's transaction); used by attempt ends and runs.
pub(crate) async fn apply_table_write(
    tx: &impl GenericClient,
    project: &ProjectId,
    w: &TableWrite,
    job: Option<JobId>,
) -> Result<TableVersion> {
    let _ = (tx, project, w, job);
    Err(todo("apply_table_write").into())
}

/// Records one file (inside the caller's transaction).
pub(crate) async fn insert_file(
    tx: &impl GenericClient,
    project: &ProjectId,
    f: &NewFile,
    job: Option<JobId>,
) -> Result<FileInfo> {
    let _ = (tx, project, f, job);
    Err(todo("insert_file").into())
}

#[async_trait]
impl CatalogStore for PgStore {
    async fn commit_table(
        &self,
        project: &ProjectId,
        write: TableWrite,
    ) -> gantry_store::Result<TableVersion> {
        Err(todo("commit_table"))
    }

    async fn commit_run(
        &self,
        project: &ProjectId,
        config: Option<&ConfigId>,
        row: Option<&str>,
        new_state: Option<&Value>,
        outputs: &Outputs,
    ) -> gantry_store::Result<()> {
        Err(todo("commit_run"))
    }

    async fn get_table(
        &self,
        project: &ProjectId,
        id: &TableId,
    ) -> gantry_store::Result<TableInfo> {
        Err(todo("get_table"))
    }

    async fn list_tables(&self, project: &ProjectId) -> gantry_store::Result<Vec<TableInfo>> {
        Err(todo("list_tables"))
    }

    async fn table_versions(
        &self,
        project: &ProjectId,
        id: &TableId,
    ) -> gantry_store::Result<Vec<TableVersion>> {
        Err(todo("table_versions"))
    }

    async fn table_version(
        &self,
        project: &ProjectId,
        id: &TableId,
        version: Option<u64>,
    ) -> gantry_store::Result<TableVersion> {
        Err(todo("table_version"))
    }

    async fn pin_version(
        &self,
        project: &ProjectId,
        table: &TableId,
        version: u64,
        pinned: bool,
    ) -> gantry_store::Result<TableVersion> {
        Err(todo("pin_version"))
    }

    async fn delete_table(
        &self,
        project: &ProjectId,
        id: &TableId,
    ) -> gantry_store::Result<Vec<String>> {
        Err(todo("delete_table"))
    }

    async fn create_file(
        &self,
        project: &ProjectId,
        file: NewFile,
    ) -> gantry_store::Result<FileInfo> {
        Err(todo("create_file"))
    }

    async fn get_file(&self, project: &ProjectId, id: i64) -> gantry_store::Result<FileInfo> {
        Err(todo("get_file"))
    }

    async fn list_files(
        &self,
        project: &ProjectId,
        tags: &[String],
        limit: usize,
    ) -> gantry_store::Result<Vec<FileInfo>> {
        Err(todo("list_files"))
    }
}
