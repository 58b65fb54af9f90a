//! The image catalogue on Postgres: registry logins, stacks, code packages, engine images.
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
impl ImageCatalog for PgStore {
    async fn put_registry(
        &self,
        project: &ProjectId,
        host: &str,
        username: &str,
        sealed_password: &str,
    ) -> gantry_store::Result<RegistryInfo> {
        Err(todo("put_registry"))
    }

    async fn list_registries(
        &self,
        project: &ProjectId,
    ) -> gantry_store::Result<Vec<RegistryInfo>> {
        Err(todo("list_registries"))
    }

    async fn delete_registry(&self, project: &ProjectId, host: &str) -> gantry_store::Result<()> {
        Err(todo("delete_registry"))
    }

    async fn registry_login(
        &self,
        project: &ProjectId,
        host: &str,
    ) -> gantry_store::Result<Option<RegistryLogin>> {
        Err(todo("registry_login"))
    }

    async fn put_stack(&self, name: &str, image: &str) -> gantry_store::Result<StackRow> {
        Err(todo("put_stack"))
    }

    async fn list_stacks(&self) -> gantry_store::Result<Vec<StackRow>> {
        Err(todo("list_stacks"))
    }

    async fn get_stack(&self, name: &str) -> gantry_store::Result<StackRow> {
        Err(todo("get_stack"))
    }

    async fn delete_stack(&self, name: &str) -> gantry_store::Result<()> {
        Err(todo("delete_stack"))
    }

    async fn add_package_rev(
        &self,
        project: &ProjectId,
        name: &str,
        object_key: &str,
        sha256: &str,
        size: u64,
    ) -> gantry_store::Result<PackageRev> {
        Err(todo("add_package_rev"))
    }

    async fn get_package(
        &self,
        project: &ProjectId,
        name: &str,
        rev: Option<u32>,
    ) -> gantry_store::Result<PackageRev> {
        Err(todo("get_package"))
    }

    async fn list_packages(&self, project: &ProjectId) -> gantry_store::Result<Vec<PackageRev>> {
        Err(todo("list_packages"))
    }

    async fn touch_image(&self, image: &EngineImage) -> gantry_store::Result<()> {
        Err(todo("touch_image"))
    }

    async fn list_images(&self, worker_id: Option<&str>) -> gantry_store::Result<Vec<EngineImage>> {
        Err(todo("list_images"))
    }

    async fn forget_image(&self, worker_id: &str, reference: &str) -> gantry_store::Result<()> {
        Err(todo("forget_image"))
    }

    async fn keep_image(&self, image: &str) -> gantry_store::Result<()> {
        Err(todo("keep_image"))
    }

    async fn unkeep_image(&self, image: &str) -> gantry_store::Result<()> {
        Err(todo("unkeep_image"))
    }

    async fn kept_images(&self) -> gantry_store::Result<Vec<String>> {
        Err(todo("kept_images"))
    }
}
