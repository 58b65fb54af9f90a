//! The backend's own error while inside SQLite code: the contract's kinds
//! plus the driver's error, turned into a driver-neutral
//! [`gantry_store::StoreError`] at the trait's edge (busy or locked
//! databases become the retryable `Unavailable`).

use gantry_store::StoreError;
use rusqlite::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    #[error("the store's worker thread failed: {0}")]
    Internal(String),
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error(transparent)]
    Store(StoreError),
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => Self::NotFound(m),
            StoreError::Conflict(m) => Self::Conflict(m),
            StoreError::Corrupt(m) => Self::Corrupt(m),
            StoreError::Internal(m) => Self::Internal(m),
            other => Self::Store(other),
        }
    }
}

impl From<Error> for StoreError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound(m) => Self::NotFound(m),
            Error::Conflict(m) => Self::Conflict(m),
            Error::Corrupt(m) => Self::Corrupt(m),
            Error::Internal(m) => Self::Internal(m),
            Error::Store(e) => e,
            Error::Sql(e) => match e.sqlite_error_code() {
                Some(
                    ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::CannotOpen,
                ) => Self::Unavailable(e.to_string()),
                _ => Self::Database(e.to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_database_is_retryable_and_a_broken_statement_is_not() {
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        assert!(StoreError::from(Error::from(busy)).is_retryable());
        let bad = rusqlite::Error::InvalidQuery;
        assert!(matches!(
            StoreError::from(Error::from(bad)),
            StoreError::Database(_)
        ));
    }
}
