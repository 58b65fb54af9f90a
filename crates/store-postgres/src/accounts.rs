//! Tokens and projects (tenancy) on Postgres.
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
impl AccountStore for PgStore {
    async fn token_count(&self) -> gantry_store::Result<u64> {
        Err(todo("token_count"))
    }

    async fn create_token(
        &self,
        project: &ProjectId,
        admin: bool,
        description: &str,
    ) -> gantry_store::Result<NewToken> {
        Err(todo("create_token"))
    }

    async fn bootstrap_admin_token(
        &self,
        description: &str,
    ) -> gantry_store::Result<Option<NewToken>> {
        Err(todo("bootstrap_admin_token"))
    }

    async fn authenticate(&self, secret: &str) -> gantry_store::Result<Option<Principal>> {
        Err(todo("authenticate"))
    }

    async fn list_tokens(
        &self,
        project: Option<&ProjectId>,
    ) -> gantry_store::Result<Vec<TokenInfo>> {
        Err(todo("list_tokens"))
    }

    async fn delete_token(&self, id: &str) -> gantry_store::Result<()> {
        Err(todo("delete_token"))
    }

    async fn create_project(
        &self,
        id: &ProjectId,
        allow: &[Loosening],
    ) -> gantry_store::Result<Project> {
        Err(todo("create_project"))
    }

    async fn get_project(&self, id: &ProjectId) -> gantry_store::Result<Project> {
        Err(todo("get_project"))
    }

    async fn list_projects(&self) -> gantry_store::Result<Vec<Project>> {
        Err(todo("list_projects"))
    }

    async fn set_project_allow(
        &self,
        id: &ProjectId,
        allow: &[Loosening],
    ) -> gantry_store::Result<Project> {
        Err(todo("set_project_allow"))
    }

    async fn set_project_import_max(
        &self,
        id: &ProjectId,
        max: Option<u64>,
    ) -> gantry_store::Result<Project> {
        Err(todo("set_project_import_max"))
    }

    async fn set_project_retention(
        &self,
        id: &ProjectId,
        policy: &Retention,
    ) -> gantry_store::Result<Project> {
        Err(todo("set_project_retention"))
    }

    async fn set_project_max_running(
        &self,
        id: &ProjectId,
        max: Option<u32>,
    ) -> gantry_store::Result<Project> {
        Err(todo("set_project_max_running"))
    }
}
