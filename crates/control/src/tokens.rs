//! Tokens: only an admin token makes, lists or revokes them; a new token's
//! secret is answered once (the store keeps its hash).

use crate::Control;
use gantry_core::ProjectId;
use gantry_store::{NewToken, Principal, StoreError, TokenInfo};

/// Why a token operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The caller is not an admin.
    #[error("managing projects and tokens needs an admin token")]
    Forbidden,
    #[error("{0}")]
    Invalid(String),
    /// The project or token is not there, or the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The longest description a token may have, in bytes.
pub const MAX_DESCRIPTION: usize = 200;

pub fn require_admin(p: &Principal) -> Result<(), TokenError> {
    if p.admin {
        Ok(())
    } else {
        Err(TokenError::Forbidden)
    }
}

impl Control {
    pub async fn create_token(
        &self,
        caller: &Principal,
        project: &ProjectId,
        admin: bool,
        description: &str,
    ) -> Result<NewToken, TokenError> {
        require_admin(caller)?;
        if description.len() > MAX_DESCRIPTION {
            return Err(TokenError::Invalid(format!(
                "description: at most {MAX_DESCRIPTION} bytes"
            )));
        }
        // Names the project in the error when it does not exist.
        self.store.get_project(project).await?;
        Ok(self.store.create_token(project, admin, description).await?)
    }

    pub async fn list_tokens(
        &self,
        caller: &Principal,
        project: Option<&ProjectId>,
    ) -> Result<Vec<TokenInfo>, TokenError> {
        require_admin(caller)?;
        Ok(self.store.list_tokens(project).await?)
    }

    pub async fn revoke_token(
        &self,
        caller: &Principal,
        id: &gantry_core::TokenId,
    ) -> Result<(), TokenError> {
        require_admin(caller)?;
        Ok(self.store.delete_token(id).await?)
    }
}
