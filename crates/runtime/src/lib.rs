//! The container runtime seam ([`ContainerRuntime`]) and its implementation
//! over the Docker Engine API ([`DockerRuntime`], via bollard).
//!
//! Only this crate talks to Docker. Every call has a timeout, so a hung
//! engine turns into an error instead of a stuck worker.
#![forbid(unsafe_code)]

mod docker;
mod registry;
mod warm;

pub use docker::{DockerRuntime, EngineInfo};
pub use registry::{registry_host, BuildRequest, HeldImage, RegistryAuth};
pub use warm::{ImageConfig, Limits, WarmRuntime, GATE_PATH};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("image {0} not found")]
    ImageNotFound(String),
    #[error("the image {image} cannot be pulled: {message}")]
    PullFailed { image: String, message: String },
    #[error("the container engine refused the container: {0}")]
    Rejected(String),
    #[error("the container engine did not answer within {0:?}")]
    Timeout(Duration),
    #[error("container engine error: {0}")]
    Engine(String),
    /// The registry refused the credentials (or asked for some).
    #[error("authentication to the registry failed for {image}: {message}")]
    AuthFailed { image: String, message: String },
    /// The registry did not answer (down, unresolvable, timing out).
    #[error("the registry of {image} does not answer: {message}")]
    Unreachable { image: String, message: String },
    /// A build's own step failed; `message` ends with its output's tail.
    #[error("the build failed: {0}")]
    BuildFailed(String),
    #[error("this container runtime cannot {0}")]
    Unsupported(&'static str),
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// Everything needed to create one job container.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub command: Option<Vec<String>>,
    pub env: Vec<String>,
    pub user: String,
    pub labels: BTreeMap<String, String>,
    /// Host directory mounted at `/data`: read-write, except its `in`
    /// folder, mounted read-only at `/data/in`.
    pub data_dir: PathBuf,
    pub memory: u64,
    pub cpus: f64,
    pub pids: i64,
    /// `none` or `bridge`.
    pub network: String,
    pub read_only_root: bool,
    /// Size of the tmpfs mounted at `/tmp`.
    pub tmp_size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// A piece of a container's output, as the engine sends it (not line-aligned).
pub type OutputChunk = (OutputStream, Bytes);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExitState {
    pub exit_code: i64,
    pub oom_killed: bool,
}

#[derive(Debug, Clone)]
pub struct ContainerInfo {
    pub id: String,
    pub labels: BTreeMap<String, String>,
}

#[async_trait]
pub trait ContainerRuntime: Send + Sync + 'static {
    /// Whether the engine answers.
    async fn ping(&self) -> Result<()>;
    /// The image's id (sha256 digest), or `None` when it is not present locally.
    async fn image_id(&self, image: &str) -> Result<Option<String>>;
    /// Pulls an image, reporting progress lines.
    async fn pull(&self, image: &str, progress: &(dyn Fn(String) + Send + Sync)) -> Result<()>;
    /// Creates a container; returns its id.
    async fn create(&self, spec: &ContainerSpec) -> Result<String>;
    /// Attaches to stdout and stderr; call before `start` so nothing is missed.
    async fn attach(&self, id: &str) -> Result<BoxStream<'static, Result<OutputChunk>>>;
    async fn start(&self, id: &str) -> Result<()>;
    /// Waits until the container stops (no timeout: callers bound it).
    async fn wait(&self, id: &str) -> Result<()>;
    async fn exit_state(&self, id: &str) -> Result<ExitState>;
    /// SIGTERM, then SIGKILL after `grace`.
    async fn stop(&self, id: &str, grace: Duration) -> Result<()>;
    /// Force-removes a container (and its anonymous volumes); missing is fine.
    async fn remove(&self, id: &str) -> Result<()>;
    /// Containers (running or not) carrying `label=value`.
    async fn list_labelled(&self, label: &str, value: Option<&str>) -> Result<Vec<ContainerInfo>>;

    // ---- images beyond a plain pull (private registries, builds, bundles, GC).
    // Defaults keep small runtimes (test fakes) compiling; `DockerRuntime`
    // implements them all (`registry.rs`).

    /// Pulls with a registry login for the image's host.
    async fn pull_with(
        &self,
        image: &str,
        auth: Option<&RegistryAuth>,
        progress: &(dyn Fn(String) + Send + Sync),
    ) -> Result<()> {
        match auth {
            None => self.pull(image, progress).await,
            Some(_) => Err(RuntimeError::Unsupported("pull with credentials")),
        }
    }
    /// The digest the registry gives the image's tag now (no pull).
    async fn registry_digest(&self, _image: &str, _auth: Option<&RegistryAuth>) -> Result<String> {
        Err(RuntimeError::Unsupported("ask a registry for a digest"))
    }
    /// The local image: id, repository digests, size; `None` when absent.
    async fn held_image(&self, image: &str) -> Result<Option<HeldImage>> {
        Ok(self.image_id(image).await?.map(|id| HeldImage {
            id,
            repo_digests: Vec::new(),
            size: 0,
        }))
    }
    /// Gives the image `source` the extra name `target`.
    async fn tag(&self, _source: &str, _target: &str) -> Result<()> {
        Err(RuntimeError::Unsupported("tag images"))
    }
    /// Builds `context` (a tar) into `req.tag`, streaming output lines;
    /// returns the image id.
    async fn build(
        &self,
        _req: &BuildRequest,
        _context: Bytes,
        _progress: &(dyn Fn(String) + Send + Sync),
    ) -> Result<String> {
        Err(RuntimeError::Unsupported("build images"))
    }
    /// Removes one name of an image (the image goes with its last name).
    async fn remove_image(&self, _reference: &str) -> Result<()> {
        Err(RuntimeError::Unsupported("remove images"))
    }
    /// Ids of the images any container (running or not) was made from.
    async fn images_in_use(&self) -> Result<Vec<String>> {
        Err(RuntimeError::Unsupported("list containers by image"))
    }
    /// Writes the images as one bundle (`docker save` format) to `dest`.
    async fn export_images(&self, _images: &[String], _dest: &std::path::Path) -> Result<u64> {
        Err(RuntimeError::Unsupported("export images"))
    }
    /// Loads a bundle written by `export_images`; returns the engine's report lines.
    async fn import_images(&self, _src: &std::path::Path) -> Result<Vec<String>> {
        Err(RuntimeError::Unsupported("import images"))
    }
    /// Warm starts, when this engine can do them (see `warm.rs`).
    fn warm(&self) -> Option<&dyn WarmRuntime> {
        None
    }
}
