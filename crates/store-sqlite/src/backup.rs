//! Backups of the metadata: a consistent copy of a live database made with
//! SQLite's online backup API, and the object keys a copy names.

use crate::error::{Error as StoreError, Result};
use gantry_store::Segment;
use rusqlite::{Connection, OpenFlags};
use std::collections::BTreeSet;
use std::path::Path;

/// Copies the database at `src` (possibly in use by a running Gantry, in
/// this or another process) to a new file `dest`. The copy is made in one
/// backup step, that is one read transaction: it is the database as of one
/// commit, and writers are not blocked (WAL). `dest` must not exist.
pub fn snapshot(src: &Path, dest: &Path) -> gantry_store::Result<()> {
    Ok(snapshot_sql(src, dest)?)
}

fn snapshot_sql(src: &Path, dest: &Path) -> Result<()> {
    if dest.exists() {
        return Err(StoreError::Conflict(format!(
            "{} already exists",
            dest.display()
        )));
    }
    let from = Connection::open_with_flags(
        src,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    from.busy_timeout(std::time::Duration::from_secs(30))?;
    let mut to = Connection::open(dest)?;
    {
        let backup = rusqlite::backup::Backup::new(&from, &mut to)?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            match backup.step(-1)? {
                rusqlite::backup::StepResult::Done => break,
                // Locked or busy: another connection holds a lock for a moment.
                _ if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50))
                }
                _ => {
                    return Err(StoreError::Conflict(
                        "the database stayed locked for a minute; try again".into(),
                    ))
                }
            }
        }
    }
    // One self-contained file: no -wal beside it, and written through.
    to.pragma_update(None, "journal_mode", "DELETE")?;
    let ok: String = to.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if ok != "ok" {
        return Err(StoreError::Corrupt(format!(
            "the copy fails its check: {ok}"
        )));
    }
    drop(to);
    std::fs::File::open(dest)
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError::Internal(format!("cannot sync {}: {e}", dest.display())))
}

/// Every object key the database at `db` names: the segments of every
/// table version and every file, each once, sorted.
pub fn object_keys(db: &Path) -> gantry_store::Result<Vec<String>> {
    Ok(object_keys_sql(db)?)
}

fn object_keys_sql(db: &Path) -> Result<Vec<String>> {
    let c = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    keys_of(&c)
}

fn keys_of(c: &Connection) -> Result<Vec<String>> {
    // One read transaction: versions and files as of one commit.
    c.execute_batch("BEGIN")?;
    let keys = keys_in(c);
    c.execute_batch("COMMIT")?;
    keys
}

fn keys_in(c: &Connection) -> Result<Vec<String>> {
    let mut keys = BTreeSet::new();
    let mut stmt = c.prepare("SELECT segments FROM table_versions")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let segments: Vec<Segment> = serde_json::from_str(&r.get::<_, String>(0)?)
            .map_err(|e| StoreError::Corrupt(format!("segments of a version: {e}")))?;
        keys.extend(segments.into_iter().map(|s| s.key));
    }
    // Code packages' objects too (absent from backups made before them).
    let packages: i64 = c.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'code_packages'",
        [],
        |r| r.get(0),
    )?;
    let mut stmt = c.prepare(if packages > 0 {
        "SELECT object_key FROM files UNION ALL SELECT object_key FROM code_packages"
    } else {
        "SELECT object_key FROM files"
    })?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        keys.insert(r.get::<_, String>(0)?);
    }
    Ok(keys.into_iter().collect())
}

/// When the oldest attempt still running started (ms since the epoch), in
/// the database at `db`: an attempt may commit objects uploaded since then.
pub fn oldest_running_attempt(db: &Path) -> gantry_store::Result<Option<i64>> {
    Ok(oldest_running_attempt_sql(db)?)
}

fn oldest_running_attempt_sql(db: &Path) -> Result<Option<i64>> {
    let c = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(std::time::Duration::from_secs(30))?;
    Ok(c.query_row(
        "SELECT MIN(started_at) FROM attempts WHERE status = 'running'",
        [],
        |r| r.get(0),
    )?)
}

/// [`object_keys`] of the live database at `db`, in one read transaction.
pub fn live_object_keys(db: &Path) -> gantry_store::Result<Vec<String>> {
    Ok(live_object_keys_sql(db)?)
}

fn live_object_keys_sql(db: &Path) -> Result<Vec<String>> {
    let c = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(std::time::Duration::from_secs(30))?;
    keys_of(&c)
}
