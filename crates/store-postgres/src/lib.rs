//! Gantry's store on PostgreSQL (`gantry_store::Store`), for a fleet: any
//! number of servers and workers on many machines share one database.
//! SQL and row mapping only: the domain decisions are `gantry_store::rules`,
//! called inside each transaction, as the SQLite backend calls them.
//!
//! - **Driver**: `tokio-postgres` with a `deadpool-postgres` pool. Every
//!   call is bounded: the pool waits at most [`POOL_WAIT`] for a
//!   connection, a connection opens within [`CONNECT_TIMEOUT`], and each
//!   statement runs at most [`STATEMENT_TIMEOUT`] (set per session).
//! - **Transactions**: every write runs in a `SERIALIZABLE` transaction
//!   ([`serializable!`]), run again from the start when Postgres aborts it to
//!   keep it serializable. That gives each write the single-writer view the
//!   SQLite backend has, so the same read-decide-write code is correct
//!   across processes and machines; the queue's hot paths also lock the rows
//!   they take (`FOR UPDATE SKIP LOCKED`) so that claimers pass each other.
//! - **Clock**: leases, due times and every stored time come from the
//!   database's clock (`gantry_now_ms()`), never a machine's.
//! - **Changes**: a commit's [`Change`]s go to this process's subscribers at
//!   once and to every other process by `NOTIFY` on one channel; a listener
//!   connection (`LISTEN`) hands those of other processes to this one's
//!   subscribers. A lost listener reconnects with backoff and announces
//!   `Enqueued` (it may have missed some): pollers stay the fallback.
//! - **Migrations**: `migrations/*.sql`, each in its own transaction under
//!   an advisory lock, so servers starting together migrate once; a schema
//!   newer than this binary is refused, naming both versions.
#![forbid(unsafe_code)]

mod accounts;
mod catalog;
mod changes;
mod configs;
mod error;
mod events;
mod health;
mod images;
mod iron;
mod jobs;
mod maintenance;
mod queue;
mod retention;
#[cfg(feature = "testing")]
pub mod testing;
mod triggers;
mod workers;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use error::Result;
use gantry_store::migrate::{self, Migration};
use gantry_store::{Change, ChangeFeed, StoreError};
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// The database's clock, in milliseconds since the epoch, as of the start
/// of the statement (a function the first migration creates).
pub(crate) const NOW: &str = "gantry_now_ms()";

/// The schema, one `.sql` file per step; the table `gantry_schema` records
/// the last applied.
pub const MIGRATIONS: &[Migration] = gantry_store::migrations!(
    "../migrations",
    1 "0001_initial.sql",
);

/// Longest wait for a free connection of the pool.
pub const POOL_WAIT: Duration = Duration::from_secs(10);
/// Longest wait for a new connection to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a statement may run (`statement_timeout` of every session).
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Most connections one process holds.
pub const POOL_SIZE: usize = 16;
/// Most times a write is run again after a serialization failure.
const MAX_TRIES: u32 = 40;
/// The advisory lock key under which migrations run ("gantry" in ASCII).
const MIGRATION_LOCK: i64 = 0x67_61_6e_74_72_79;

/// The PostgreSQL store. Cheap to clone (a pool and two channels).
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    changes: broadcast::Sender<Change>,
    /// Changes of this process, for the notifier to send to others.
    outbox: mpsc::UnboundedSender<Change>,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:pass@host:port/db`
    /// or key=value form), checks that it answers, migrates it, and starts
    /// listening for other processes' changes. A bad URL, an unreachable
    /// database or a schema newer than this binary is an error here.
    pub async fn connect(url: &str) -> gantry_store::Result<Self> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| {
            StoreError::Internal(format!(
                "the database URL is not valid ({}): {e}",
                redact_url(url)
            ))
        })?;
        config
            .connect_timeout(CONNECT_TIMEOUT)
            .application_name("gantry")
            .options(format!(
                "-c statement_timeout={} -c lock_timeout={} -c idle_in_transaction_session_timeout={}",
                STATEMENT_TIMEOUT.as_millis(),
                STATEMENT_TIMEOUT.as_millis(),
                STATEMENT_TIMEOUT.as_millis() * 2
            ));
        let manager = Manager::from_config(
            config.clone(),
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Internal(format!("cannot make the connection pool: {e}")))?;
        let store = {
            let (changes, _) = broadcast::channel(4096);
            let (outbox, inbox) = mpsc::unbounded_channel();
            let instance = changes::instance_id();
            let listening = changes::start(config, instance, inbox, changes.clone());
            (
                Self {
                    pool,
                    changes,
                    outbox,
                },
                listening,
            )
        };
        let (store, listening) = store;
        store
            .migrate()
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::Unavailable(m) => StoreError::Unavailable(format!(
                    "cannot reach the database at {}: {m}",
                    redact_url(url)
                )),
                other => other,
            })?;
        // From here on, other processes' changes reach this one's
        // subscribers (a listener that cannot connect keeps trying).
        let _ = tokio::time::timeout(CONNECT_TIMEOUT, listening).await;
        Ok(store)
    }

    /// A connection of the pool.
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object> {
        Ok(self.pool.get().await?)
    }

    /// Brings the schema to [`MIGRATIONS`]' newest version, each step in
    /// its own transaction holding an advisory lock (servers starting
    /// together migrate once: the others wait, then find the version moved
    /// on). Refuses a schema newer than this binary knows.
    async fn migrate(&self) -> Result<()> {
        let mut client = self.client().await?;
        loop {
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS gantry_schema (version BIGINT NOT NULL); \
                 INSERT INTO gantry_schema (version) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM gantry_schema)",
            )
            .await?;
            let version: i64 = tx
                .query_one("SELECT version FROM gantry_schema", &[])
                .await?
                .get(0);
            let Some(next) = migrate::pending(version, MIGRATIONS)?.first() else {
                tx.commit().await?;
                return Ok(());
            };
            tracing::info!(
                version = next.version,
                name = next.name,
                "migrating the database"
            );
            tx.batch_execute(next.sql).await?;
            tx.execute("UPDATE gantry_schema SET version = $1", &[&next.version])
                .await?;
            tx.commit().await?;
        }
    }

    /// Announces committed changes: to this process's subscribers now, to
    /// other processes by `NOTIFY`.
    pub(crate) fn announce(&self, change: Change) {
        let _ = self.changes.send(change.clone());
        let _ = self.outbox.send(change);
    }

    pub(crate) fn announce_all(&self, changes: impl IntoIterator<Item = Change>) {
        for c in changes {
            self.announce(c);
        }
    }
}

impl ChangeFeed for PgStore {
    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }
}

/// The URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url
            .split_whitespace()
            .map(|kv| {
                if kv.starts_with("password=") {
                    "password=***"
                } else {
                    kv
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// Runs `$body` (a block that may `.await` and use `?`) in a `SERIALIZABLE`
/// transaction bound to `$tx` on a connection of `$store`'s pool, commits,
/// and evaluates to the body's value as a [`error::Result`]. When Postgres
/// aborts the transaction to keep it serializable (or breaks a deadlock),
/// the whole body runs again from the start, on a fresh transaction, after
/// a short random pause (at most [`MAX_TRIES`] times): a body must
/// therefore have no effect outside the database (announce after it).
#[macro_export]
#[doc(hidden)]
macro_rules! serializable {
    ($store:expr, |$tx:ident| $body:block) => {
        $crate::transaction!($store, Serializable, |$tx| $body)
    };
}

/// [`serializable!`] at `READ COMMITTED`, for the queue's hot paths (claims,
/// attempt ends, heartbeats, events), which take the locks they need
/// themselves (`FOR UPDATE [SKIP LOCKED]`, advisory locks) so that
/// concurrent workers pass each other instead of aborting each other.
#[macro_export]
#[doc(hidden)]
macro_rules! locked {
    ($store:expr, |$tx:ident| $body:block) => {
        $crate::transaction!($store, ReadCommitted, |$tx| $body)
    };
}

#[macro_export]
#[doc(hidden)]
macro_rules! transaction {
    ($store:expr, $level:ident, |$tx:ident| $body:block) => {{
        let mut tries = 0u32;
        loop {
            let result: $crate::error::Result<_> = async {
                let mut client = $store.client().await?;
                let $tx = client
                    .build_transaction()
                    .isolation_level(tokio_postgres::IsolationLevel::$level)
                    .start()
                    .await?;
                let out = $body;
                $tx.commit().await?;
                Ok(out)
            }
            .await;
            match result {
                Err(e) if e.is_transient() && tries < $crate::max_tries() => {
                    tries += 1;
                    $crate::contention_pause(tries).await;
                }
                other => break other,
            }
        }
    }};
}

#[doc(hidden)]
pub fn max_tries() -> u32 {
    MAX_TRIES
}

/// A short random pause before a write runs again, longer after each try.
#[doc(hidden)]
pub async fn contention_pause(tries: u32) {
    use rand::Rng;
    let cap = 2u64.saturating_pow(tries.min(6)).max(2);
    let ms = rand::thread_rng().gen_range(0..cap);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Runs `$body` in a `REPEATABLE READ READ ONLY` transaction bound to
/// `$tx`: one snapshot for reads that take several statements.
#[macro_export]
#[doc(hidden)]
macro_rules! snapshot {
    ($store:expr, |$tx:ident| $body:block) => {{
        let result: $crate::error::Result<_> = async {
            let mut client = $store.client().await?;
            let $tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let out = $body;
            $tx.commit().await?;
            Ok(out)
        }
        .await;
        result
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_shown_without_its_password() {
        assert_eq!(
            redact_url("postgres://gantry:s3cret@db:5432/gantry"),
            "postgres://gantry:***@db:5432/gantry"
        );
        assert_eq!(
            redact_url("host=/tmp user=g password=s3cret dbname=x"),
            "host=/tmp user=g password=*** dbname=x"
        );
        assert_eq!(redact_url("postgres://db/gantry"), "postgres://db/gantry");
    }

    #[test]
    fn migrations_are_numbered() {
        assert!(migrate::pending(0, MIGRATIONS).is_ok());
    }
}
