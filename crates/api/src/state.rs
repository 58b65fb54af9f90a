//! The router's state and the seams to what only some processes have (an
//! engine for readiness and sync actions).

pub use gantry_control::actions::ActionRequest;
use gantry_control::Control;
use gantry_store::Store;
use gantry_vault::Vault;
use serde_json::Value;
use std::sync::Arc;

/// Whether the container engine answers (for `/readyz`).
#[async_trait::async_trait]
pub trait Readiness: Send + Sync + 'static {
    async fn engine_ready(&self) -> Result<(), String>;
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub storage: gantry_storage::Storage,
    pub vault: Vault,
    /// `None` when no worker runs in this process (a plain `gantry server`).
    pub readiness: Option<Arc<dyn Readiness>>,
    /// Runs Keboola sync actions; `None` without an engine in this process.
    pub actions: Option<Arc<dyn ActionRunner>>,
}

/// How a sync action ended, as the API answers it.
pub enum ActionAnswer {
    /// 200 with the container's stdout, parsed as JSON.
    Json(Value),
    /// The component exited 1: 400 with its message.
    UserError(String),
    /// Anything else: 500 without internals (the detail goes to the log).
    Failed(String),
}

/// Runs sync actions (the seam to the container engine, which only a
/// process with a worker has).
#[async_trait::async_trait]
pub trait ActionRunner: Send + Sync {
    async fn run_action(&self, request: ActionRequest) -> ActionAnswer;
}

impl AppState {
    /// The control layer over this state's store, object store and vault.
    pub fn control(&self) -> Control {
        Control::new(self.store.clone(), self.storage.clone(), self.vault.clone())
    }
}
