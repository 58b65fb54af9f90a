//! The container runtime seam ([`ContainerRuntime`]) and its implementation
//! over the Docker Engine API ([`DockerRuntime`], via bollard).
//!
//! Only this crate talks to Docker. Every call has a timeout, so a hung
//! engine turns into an error instead of a stuck worker.
#![forbid(unsafe_code)]

mod docker;
mod warm;

pub use docker::{DockerRuntime, EngineInfo};
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
    /// Warm starts, when this engine can do them (see `warm.rs`).
    fn warm(&self) -> Option<&dyn WarmRuntime> {
        None
    }
}
