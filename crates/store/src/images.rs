//! The image catalogue: what Gantry knows about images besides the jobs
//! that ran them. Private-registry credentials per project (the secret is
//! stored sealed by the vault; the store never sees it in clear), stacks
//! (named base images, global), code packages (revisioned archives in
//! Storage) and the images each worker's engine holds for Gantry, with
//! their last use (for garbage collection).

use crate::Result;
use async_trait::async_trait;
use gantry_core::{ProjectId, WorkerId};
use serde::Serialize;

/// A project's login to one registry host, without its secret.
#[derive(Debug, Clone, Serialize)]
pub struct RegistryInfo {
    pub host: String,
    pub username: String,
    /// Milliseconds since the epoch.
    pub created_at: i64,
}

/// A login with its secret, still sealed (only the worker opens it).
#[derive(Debug, Clone)]
pub struct RegistryLogin {
    pub username: String,
    pub sealed_password: String,
}

/// A named base image code packages run on.
#[derive(Debug, Clone, Serialize)]
pub struct StackRow {
    pub name: String,
    pub image: String,
    pub created_at: i64,
}

/// One revision of a code package; its bytes are the object `object_key`.
#[derive(Debug, Clone, Serialize)]
pub struct PackageRev {
    pub name: String,
    pub rev: u32,
    #[serde(skip)]
    pub object_key: String,
    /// sha256 of the archive as uploaded (hex).
    pub sha256: String,
    pub size: u64,
    pub created_at: i64,
}

/// An image a worker's engine holds for Gantry.
#[derive(Debug, Clone, Serialize)]
pub struct EngineImage {
    pub worker_id: WorkerId,
    /// The reference jobs name it by (a tag).
    pub reference: String,
    pub image_id: String,
    /// `pulled`, `package` (stack + code) or `git` (a build from git).
    pub kind: String,
    pub size: u64,
    pub warm: bool,
    pub last_used: i64,
    pub created_at: i64,
}

#[async_trait]
pub trait ImageCatalog: Send + Sync {
    /// Adds or replaces the project's login to `host`.
    async fn put_registry(
        &self,
        project: &ProjectId,
        host: &str,
        username: &str,
        sealed_password: &str,
    ) -> Result<RegistryInfo>;
    async fn list_registries(&self, project: &ProjectId) -> Result<Vec<RegistryInfo>>;
    /// `NotFound` when the project has no login to `host`.
    async fn delete_registry(&self, project: &ProjectId, host: &str) -> Result<()>;
    /// The project's login to `host`, if any (never another project's).
    async fn registry_login(
        &self,
        project: &ProjectId,
        host: &str,
    ) -> Result<Option<RegistryLogin>>;

    async fn put_stack(&self, name: &str, image: &str) -> Result<StackRow>;
    async fn list_stacks(&self) -> Result<Vec<StackRow>>;
    async fn get_stack(&self, name: &str) -> Result<StackRow>;
    async fn delete_stack(&self, name: &str) -> Result<()>;

    /// Records the next revision of a package (1 for a new one).
    async fn add_package_rev(
        &self,
        project: &ProjectId,
        name: &str,
        object_key: &str,
        sha256: &str,
        size: u64,
    ) -> Result<PackageRev>;
    /// A revision, or the latest one when `rev` is `None`.
    async fn get_package(
        &self,
        project: &ProjectId,
        name: &str,
        rev: Option<u32>,
    ) -> Result<PackageRev>;
    /// Every revision of every package of the project, newest first.
    async fn list_packages(&self, project: &ProjectId) -> Result<Vec<PackageRev>>;

    /// Records that `worker_id`'s engine holds `reference` and a job (or a
    /// warm-up, `warm`) used it now.
    async fn touch_image(&self, image: &EngineImage) -> Result<()>;
    /// What every worker holds, or one worker's, least recently used first.
    async fn list_images(&self, worker_id: Option<&WorkerId>) -> Result<Vec<EngineImage>>;
    async fn forget_image(&self, worker_id: &WorkerId, reference: &str) -> Result<()>;

    /// The fleet's warm list: images every worker keeps present.
    async fn keep_image(&self, image: &str) -> Result<()>;
    /// `NotFound` when the image is not on the list.
    async fn unkeep_image(&self, image: &str) -> Result<()>;
    async fn kept_images(&self) -> Result<Vec<String>>;
}
