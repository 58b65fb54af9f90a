//! The backend's own error while inside Postgres code: the contract's kinds
//! plus the driver's and the pool's errors, turned into a driver-neutral
//! [`gantry_store::StoreError`] at the trait's edge. A lost connection, an
//! exhausted pool or a statement timeout becomes the retryable
//! `Unavailable`; a serialization failure or a deadlock is retried by
//! [`serializable!`](crate::serializable) before it ever gets here.

use gantry_store::StoreError;
use tokio_postgres::error::SqlState;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Internal(String),
    #[error("database error: {0}")]
    Pg(#[from] tokio_postgres::Error),
    #[error("no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    Store(StoreError),
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Postgres aborted the transaction to keep it serializable (or broke a
    /// deadlock): running it again from the start is the answer.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            Error::Pg(e) => matches!(
                e.code(),
                Some(&SqlState::T_R_SERIALIZATION_FAILURE) | Some(&SqlState::T_R_DEADLOCK_DETECTED)
            ),
            _ => false,
        }
    }

    /// The SQLSTATE of a statement Postgres refused, if it is one.
    pub(crate) fn code(&self) -> Option<&SqlState> {
        match self {
            Error::Pg(e) => e.code(),
            _ => None,
        }
    }
}

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

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Self::Corrupt(e.to_string())
    }
}

/// Whether a driver error means the database cannot be reached for now.
fn unreachable(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            let class = &code.code()[..2];
            // 08: connection exception; 53: insufficient resources; 57P:
            // operator intervention (shutdown, cancel by statement_timeout).
            matches!(class, "08" | "53")
                || code.code().starts_with("57P")
                || *code == SqlState::QUERY_CANCELED
                || *code == SqlState::LOCK_NOT_AVAILABLE
        }
        // No SQLSTATE: unreachable only for I/O (a connection that broke
        // or never opened, a connect timeout), not for a bug such as a
        // parameter of the wrong type.
        None => {
            use std::error::Error as _;
            e.source()
                .is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some())
                || e.to_string().contains("timed out")
                || e.to_string().contains("connect")
        }
    }
}

/// The driver's error with what the server said (its `Display` alone says
/// only "db error").
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
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
            Error::Pool(e) => Self::Unavailable(e.to_string()),
            Error::Pg(e) => {
                if e.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE)
                    || e.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED)
                {
                    Self::Unavailable(format!("too much contention: {}", describe(&e)))
                } else if unreachable(&e) {
                    Self::Unavailable(describe(&e))
                } else {
                    Self::Database(describe(&e))
                }
            }
        }
    }
}
