//! The control layer: what Gantry does when asked, below any protocol. The
//! HTTP API, the dashboard, the scheduler and webhooks all call it, so a job
//! is submitted one way whoever asks (the project's policy checked, its
//! secrets sealed, its timing applied), and a configuration, table, file or
//! token is made one way. Each area answers its own error type; the API maps
//! them to statuses in its one error table.
//!
//! No HTTP here (no status codes, no headers), no SQL (that is the store's).
#![forbid(unsafe_code)]

pub mod actions;
pub mod catalog;
pub mod configs;
pub mod jobs;
pub mod tokens;

pub use actions::{ActionError, ActionRequest};
pub use catalog::{CatalogError, NewTable, Upload};
pub use configs::ConfigError;
pub use jobs::{Source, Submission, SubmitError, Timing};
pub use tokens::TokenError;

use gantry_store::Store;
use gantry_vault::Vault;
use std::sync::Arc;

/// The handle every caller holds: the store, the object store and the vault.
#[derive(Clone)]
pub struct Control {
    store: Arc<dyn Store>,
    storage: gantry_storage::Storage,
    vault: Vault,
}

impl Control {
    pub fn new(store: Arc<dyn Store>, storage: gantry_storage::Storage, vault: Vault) -> Self {
        Self {
            store,
            storage,
            vault,
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn vault(&self) -> &Vault {
        &self.vault
    }
}
