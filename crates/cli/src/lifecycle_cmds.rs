//! `gantry backup` and `gantry restore`: the metadata (a consistent copy of
//! the live database) and every object it names, to and from a folder or an
//! S3 bucket; `gantry sweep` (orphaned objects) and `gantry retention`. They
//! work on `$GANTRY_HOME` directly, while Gantry runs.
//!
//! A backup is `DEST/gantry.db` plus `DEST/objects/<key>`. Objects are
//! copied before the new `gantry.db` replaces the old one, so a backup's
//! metadata never names an object the backup lacks, even if it is
//! interrupted. The secret key (`secret.key`) is not in it: it opens the
//! sealed secrets the backup holds, so it is kept apart.

use crate::home::Home;
use crate::Global;
use anyhow::{bail, Context};
use gantry_storage::Objects;
use std::time::Instant;

const DB: &str = "gantry.db";

/// The URL of `sub` inside the folder or bucket prefix `url`.
fn sub_url(url: &str, sub: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = format!("{}/{sub}", base.trim_end_matches('/'));
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

fn storage_url(g: &Global, home: &Home) -> String {
    g.storage_url
        .clone()
        .unwrap_or_else(|| home.objects().display().to_string())
}

/// A private scratch file beside the home's database.
fn scratch(home: &Home, what: &str) -> std::path::PathBuf {
    home.root
        .join(format!(".{what}-{}", gantry_core::JobId::new()))
}

/// Backup and restore copy the embedded SQLite database; a PostgreSQL one is
/// the database administrator's (its own tools keep it consistent while
/// Gantry runs).
fn refuse_on_postgres(g: &Global, what: &str) -> anyhow::Result<()> {
    if g.database_url.as_deref().is_some_and(|u| !u.is_empty()) {
        bail!(
            "gantry {what} copies the embedded SQLite database; with --database-url, back up \
             PostgreSQL with its own tools (pg_dump, or base backups with WAL archiving) and the \
             bucket with the object store's (deploy/README.md says how)"
        );
    }
    Ok(())
}

pub async fn backup(g: &Global, dest: &str) -> anyhow::Result<u8> {
    refuse_on_postgres(g, "backup")?;
    let started = Instant::now();
    let home = Home::new(&g.home);
    if !home.db().exists() {
        bail!("no Gantry database at {}", home.db().display());
    }
    let from = Objects::open(&storage_url(g, &home)).context("cannot open the object store")?;
    if !dest.contains("://") && !std::path::Path::new(dest).exists() {
        // Job specs and logs are in it: private to its owner, like the home.
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dest).with_context(|| format!("cannot create {dest}"))?;
        std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o700))?;
    }
    let root = Objects::open(dest).with_context(|| format!("cannot open {dest}"))?;
    let objects = Objects::open(&sub_url(dest, "objects"))?;
    // A table deleted between the snapshot and the copy takes its objects
    // with it: take a new snapshot then (it no longer names them).
    let mut tries = 0;
    loop {
        tries += 1;
        let snap = scratch(&home, "backup");
        let result = async {
            let (db, s) = (home.db(), snap.clone());
            tokio::task::spawn_blocking(move || gantry_store_sqlite::backup::snapshot(&db, &s))
                .await??;
            let s = snap.clone();
            let keys =
                tokio::task::spawn_blocking(move || gantry_store_sqlite::backup::object_keys(&s))
                    .await??;
            let copied = from.copy_to(&objects, &keys).await?;
            root.put_file(DB, &snap).await?;
            anyhow::Ok((keys.len(), copied))
        }
        .await;
        let _ = std::fs::remove_file(&snap);
        match result {
            Ok((named, copied)) => {
                eprintln!(
                    "backed up the metadata and {named} objects to {dest} in {:.2} s \
                     ({} copied, {} bytes; {} already there)",
                    started.elapsed().as_secs_f64(),
                    copied.copied,
                    copied.bytes,
                    copied.skipped
                );
                eprintln!(
                    "the secret key is not in the backup: keep a copy of {} apart from it",
                    home.key().display()
                );
                return Ok(0);
            }
            Err(e)
                if tries < 3
                    && matches!(
                        e.downcast_ref::<gantry_storage::StorageError>(),
                        Some(gantry_storage::StorageError::NotFound(_))
                    ) =>
            {
                tracing::warn!(error = %e, "an object went away during the backup; again");
            }
            Err(e) => return Err(e.context("the backup failed")),
        }
    }
}

pub async fn restore(g: &Global, src: &str) -> anyhow::Result<u8> {
    refuse_on_postgres(g, "restore")?;
    let started = Instant::now();
    let home = Home::new(&g.home);
    home.create()
        .with_context(|| format!("cannot create the home folder {}", g.home.display()))?;
    if home.db().exists() {
        bail!(
            "{} exists: restore into an empty home (a new GANTRY_HOME)",
            home.db().display()
        );
    }
    // Objects already there (a restore that was interrupted) are skipped.
    let to = Objects::open(&storage_url(g, &home)).context("cannot open the object store")?;
    let root = Objects::open(src).with_context(|| format!("cannot open {src}"))?;
    let objects = Objects::open(&sub_url(src, "objects"))?;
    let tmp = scratch(&home, "restore");
    let result = async {
        root.get_file(DB, &tmp)
            .await
            .with_context(|| format!("{src} holds no backup ({DB})"))?;
        let t = tmp.clone();
        let keys =
            tokio::task::spawn_blocking(move || gantry_store_sqlite::backup::object_keys(&t))
                .await??;
        let copied = objects.copy_to(&to, &keys).await?;
        std::fs::rename(&tmp, home.db())?;
        // Migrates a backup of an older Gantry forward.
        gantry_store_sqlite::SqliteStore::open(&home.db())?;
        anyhow::Ok((keys.len(), copied))
    }
    .await;
    let _ = std::fs::remove_file(&tmp);
    let (named, copied) = result.context("the restore failed")?;
    eprintln!(
        "restored the metadata and {named} objects ({} bytes) from {src} in {:.2} s",
        copied.bytes,
        started.elapsed().as_secs_f64()
    );
    if !home.key().exists() {
        eprintln!(
            "put the secret key of the backed-up Gantry at {} before starting it \
             (sealed secrets cannot be opened without it)",
            home.key().display()
        );
    }
    Ok(0)
}

/// The PostgreSQL store `--database-url` names, if any.
async fn open_postgres(g: &Global) -> anyhow::Result<Option<gantry_store_postgres::PgStore>> {
    match g.database_url.as_deref().filter(|u| !u.is_empty()) {
        Some(url) => Ok(Some(
            gantry_store_postgres::PgStore::connect(url)
                .await
                .with_context(|| {
                    format!(
                        "cannot open the PostgreSQL database {}",
                        gantry_store_postgres::redact_url(url)
                    )
                })?,
        )),
        None => Ok(None),
    }
}

/// How far object times may lag the database's clock.
const CLOCK_MARGIN_MS: i64 = 2_000;

pub async fn sweep(g: &Global, grace: std::time::Duration, dry_run: bool) -> anyhow::Result<u8> {
    let home = Home::new(&g.home);
    let db = home.db();
    let pg = open_postgres(g).await?;
    if pg.is_none() && !db.exists() {
        bail!("no Gantry database at {}", db.display());
    }
    let objects = Objects::open(&storage_url(g, &home)).context("cannot open the object store")?;
    // Read before listing: an attempt running now may commit what it uploads.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let mut cutoff = now - grace.as_millis() as i64;
    let oldest = match &pg {
        Some(pg) => pg.oldest_running_attempt().await?,
        None => gantry_store_sqlite::backup::oldest_running_attempt(&db)?,
    };
    if let Some(start) = oldest {
        // Object times come from another clock (the filesystem's coarse one,
        // S3's whole seconds): a margin so that an object written just after
        // the start never looks older than it.
        cutoff = cutoff.min(start - CLOCK_MARGIN_MS);
    }
    let swept = objects
        .sweep(
            // Read after the listing (see `Objects::sweep`).
            || match &pg {
                Some(pg) => {
                    let keys = tokio::task::block_in_place(|| {
                        tokio::runtime::Handle::current().block_on(pg.live_object_keys())
                    })?;
                    Ok(keys.into_iter().collect())
                }
                None => Ok(gantry_store_sqlite::backup::live_object_keys(&db)?
                    .into_iter()
                    .collect()),
            },
            cutoff,
            dry_run,
        )
        .await?;
    let bytes: u64 = swept.orphans.iter().map(|(_, n)| n).sum();
    for (key, size) in &swept.orphans {
        println!("{key}\t{size}");
    }
    eprintln!(
        "{} {} orphaned objects ({bytes} bytes); kept {} named and {} too young to tell",
        if dry_run { "would delete" } else { "deleted" },
        swept.orphans.len(),
        swept.named,
        swept.young
    );
    Ok(0)
}

pub async fn retention(g: &Global, dry_run: bool, at: Option<String>) -> anyhow::Result<u8> {
    let home = Home::new(&g.home);
    let db = home.db();
    let pg = open_postgres(g).await?;
    if pg.is_none() && !db.exists() {
        bail!("no Gantry database at {}", db.display());
    }
    let now = match at {
        Some(t) => humantime::parse_rfc3339_weak(&t)
            .with_context(|| format!("--at {t}: use an RFC 3339 time"))?,
        None => std::time::SystemTime::now(),
    };
    let now_ms = now.duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    let objects = Objects::open(&storage_url(g, &home)).context("cannot open the object store")?;
    let removed = match &pg {
        Some(pg) => pg.retention(now_ms, dry_run).await?,
        None => {
            tokio::task::spawn_blocking(move || {
                gantry_store_sqlite::retention::run(&db, now_ms, dry_run)
            })
            .await??
        }
    };
    let verb = if dry_run { "would remove" } else { "removed" };
    for r in &removed {
        for (table, version) in &r.versions {
            println!("{}\tversion\t{table}\t{version}", r.project);
        }
        for (id, name) in &r.files {
            println!("{}\tfile\t{id}\t{name}", r.project);
        }
        if !dry_run {
            objects.delete_keys(&r.objects).await;
        }
        eprintln!(
            "project {}: {verb} {} jobs ({} events), {} versions, {} files, {} objects{}",
            r.project,
            r.jobs,
            r.events,
            r.versions.len(),
            r.files.len(),
            r.objects.len(),
            if r.postponed {
                "; versions and files left for later: a job of the project is running"
            } else {
                ""
            }
        );
    }
    Ok(0)
}
