//! `gantry doctor`: checks what Gantry needs of this machine (the container
//! engine and its cgroup and seccomp support, the store, the object store,
//! disk space, the clock) and says what to fix.

use crate::home::Home;
use crate::{Global, OutputFormat};
use gantry_runtime::{ContainerRuntime, DockerRuntime};
use gantry_storage::Storage;
use gantry_store::Store;
use gantry_store_sqlite::SqliteStore;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Below this much free space a disk check warns.
const LOW_DISK: u64 = 2 << 30;
/// A clock further apart than this from the engine's warns.
const SKEW: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Ok,
    Warn,
    Fail,
}

struct Check {
    name: &'static str,
    level: Level,
    detail: String,
    fix: Option<String>,
}

fn ok(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        level: Level::Ok,
        detail: detail.into(),
        fix: None,
    }
}

fn bad(
    name: &'static str,
    level: Level,
    detail: impl Into<String>,
    fix: impl Into<String>,
) -> Check {
    Check {
        name,
        level,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

/// Runs every check; the exit code is 1 when any failed (warnings pass).
pub async fn doctor(g: &Global) -> anyhow::Result<u8> {
    let mut checks = Vec::new();
    engine_checks(&mut checks).await;
    let home = Home::new(&g.home);
    checks.push(disk("disk (home)", &g.home));
    store_and_storage(g, &home, &mut checks).await;
    print(g, &checks)?;
    Ok(u8::from(checks.iter().any(|c| c.level == Level::Fail)))
}

async fn engine_checks(checks: &mut Vec<Check>) {
    const START: &str = "start a Docker engine (as root: bash scripts/ensure-docker.sh, or \
                         `dockerd &`), or point DOCKER_HOST at one";
    let rt = match DockerRuntime::connect().await {
        Ok(rt) => rt,
        Err(e) => {
            checks.push(bad("engine", Level::Fail, e.to_string(), START));
            return;
        }
    };
    if let Err(e) = rt.ping().await {
        checks.push(bad(
            "engine",
            Level::Fail,
            format!("does not answer: {e}"),
            START,
        ));
        return;
    }
    let info = match rt.engine_info().await {
        Ok(i) => i,
        Err(e) => {
            checks.push(bad(
                "engine",
                Level::Fail,
                format!("cannot read its info: {e}"),
                START,
            ));
            return;
        }
    };
    checks.push(ok(
        "engine",
        format!(
            "Docker {} (API {}), data root {}",
            info.version, info.api_version, info.root_dir
        ),
    ));
    let missing: Vec<&str> = [
        (info.memory_limit, "memory"),
        (info.pids_limit, "pids"),
        (info.cpu_quota, "cpu quota"),
    ]
    .into_iter()
    .filter(|(has, _)| !has)
    .map(|(_, what)| what)
    .collect();
    checks.push(if missing.is_empty() {
        ok(
            "cgroups",
            format!(
                "cgroup v{} ({} driver): memory, pids and cpu limits enforced",
                info.cgroup_version, info.cgroup_driver
            ),
        )
    } else {
        bad(
            "cgroups",
            Level::Fail,
            format!("the engine cannot enforce {} limits", missing.join(", ")),
            "enable the missing cgroup controllers (cgroup v2: mount cgroup2 with memory, pids \
             and cpu delegated; on older kernels boot with cgroup_enable=memory swapaccount=1)",
        )
    });
    checks.push(if info.seccomp {
        ok("seccomp", "the engine applies its default seccomp profile")
    } else {
        bad(
            "seccomp",
            Level::Fail,
            "the engine reports no seccomp support: containers would run without a syscall filter",
            "use a kernel with CONFIG_SECCOMP and an engine built with seccomp (Debian's docker.io is)",
        )
    });
    checks.push(clock(&info.system_time));
    if !info.root_dir.is_empty() && Path::new(&info.root_dir).exists() {
        checks.push(disk("disk (engine)", Path::new(&info.root_dir)));
    }
}

fn clock(engine_time: &str) -> Check {
    let Ok(theirs) = humantime::parse_rfc3339_weak(engine_time.trim_end_matches('Z')) else {
        return bad(
            "clock",
            Level::Warn,
            format!("cannot read the engine's clock ({engine_time:?})"),
            "check that the engine answers `docker info` with a SystemTime",
        );
    };
    let now = SystemTime::now();
    let skew = now.duration_since(theirs).unwrap_or_else(|e| e.duration());
    if skew <= SKEW {
        ok(
            "clock",
            format!("within {} ms of the engine's", skew.as_millis()),
        )
    } else {
        bad(
            "clock",
            Level::Warn,
            format!("{:.1} s apart from the engine's clock", skew.as_secs_f64()),
            "keep clocks in sync (chrony or systemd-timesyncd); leases are timed by the \
             database's clock, timestamps and schedules by the machines'",
        )
    }
}

fn disk(name: &'static str, path: &Path) -> Check {
    // The nearest existing folder: the home may not exist yet.
    let mut at = path;
    while !at.exists() {
        match at.parent() {
            Some(p) if !p.as_os_str().is_empty() => at = p,
            _ => {
                at = Path::new(".");
                break;
            }
        }
    }
    match rustix::fs::statvfs(at) {
        Ok(st) => {
            let free = st.f_bavail.saturating_mul(st.f_frsize);
            let total = st.f_blocks.saturating_mul(st.f_frsize);
            let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
            let detail = format!(
                "{:.1} GiB free of {:.1} GiB at {}",
                gib(free),
                gib(total),
                at.display()
            );
            if free < LOW_DISK {
                bad(
                    name,
                    Level::Warn,
                    detail,
                    "free some space: outputs and imports that do not fit fail (507 / infrastructure)",
                )
            } else {
                ok(name, detail)
            }
        }
        Err(e) => bad(
            name,
            Level::Warn,
            format!("cannot read free space at {}: {e}", at.display()),
            "check the path exists and is readable",
        ),
    }
}

async fn store_and_storage(g: &Global, home: &Home, checks: &mut Vec<Check>) {
    if let Some(url) = g.database_url.as_deref().filter(|u| !u.is_empty()) {
        let shown = gantry_store_postgres::redact_url(url);
        match crate::serve::open_store(g, home).await {
            Ok(store) => checks.push(match store.check_writable().await {
                Ok(()) => ok(
                    "store",
                    format!("PostgreSQL at {shown} answers, is migrated and takes writes"),
                ),
                Err(e) => bad(
                    "store",
                    Level::Fail,
                    format!("PostgreSQL at {shown} does not take writes: {e}"),
                    "check the role's privileges and the server's free space",
                ),
            }),
            Err(e) => checks.push(bad(
                "store",
                Level::Fail,
                format!("{e:#}"),
                "check the URL, that the server runs and listens there, and the role's password",
            )),
        }
        return;
    }
    // Without a database yet, probe the object store through a throwaway one
    // (doctor creates no home).
    let scratch;
    let db = if home.db().exists() {
        home.db()
    } else {
        scratch = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => {
                checks.push(bad(
                    "store",
                    Level::Fail,
                    e.to_string(),
                    "check TMPDIR is writable",
                ));
                return;
            }
        };
        checks.push(ok(
            "store",
            format!(
                "no database yet at {} (made by the first `gantry up` or `gantry server`)",
                home.db().display()
            ),
        ));
        scratch.path().join("probe.db")
    };
    let store: Arc<dyn Store> = match SqliteStore::open(&db) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            checks.push(bad(
                "store",
                Level::Fail,
                format!("cannot open {}: {e}", db.display()),
                "check the file's permissions and free space, or restore it from a backup",
            ));
            return;
        }
    };
    if home.db().exists() {
        checks.push(match store.check_writable().await {
            Ok(()) => ok(
                "store",
                format!("SQLite at {} opens and takes writes", db.display()),
            ),
            Err(e) => bad(
                "store",
                Level::Fail,
                format!("{} does not take writes: {e}", db.display()),
                "check the file's permissions and free space",
            ),
        });
    }
    if let Ok(meta) = std::fs::metadata(home.key()) {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        checks.push(if mode & 0o077 == 0 {
            ok(
                "secret key",
                format!("{} is {mode:o}", home.key().display()),
            )
        } else {
            bad(
                "secret key",
                Level::Fail,
                format!("{} is readable by others ({mode:o})", home.key().display()),
                format!("chmod 600 {}", home.key().display()),
            )
        });
    }
    let url = g
        .storage_url
        .clone()
        .unwrap_or_else(|| home.objects().display().to_string());
    if !url.contains("://") && !Path::new(&url).exists() {
        // A local folder that does not exist yet: nothing to probe, and
        // doctor creates nothing.
        checks.push(ok("object store", format!("{url} (made on first start)")));
        return;
    }
    let storage = match Storage::open(&url, store) {
        Ok(s) => s,
        Err(e) => {
            checks.push(bad(
                "object store",
                Level::Fail,
                format!("{url}: {e}"),
                "use a folder path, file:///path or s3://bucket/prefix?endpoint=...&region=...",
            ));
            return;
        }
    };
    checks.push(match storage.probe().await {
        Ok(()) => ok(
            "object store",
            format!("{url} takes, returns and deletes an object"),
        ),
        Err(e) => bad(
            "object store",
            Level::Fail,
            format!("{url}: {e}"),
            "check the folder's permissions, or the bucket, endpoint and AWS_* credentials",
        ),
    });
    if !url.contains("://") {
        checks.push(disk("disk (objects)", Path::new(&url)));
    }
}

fn print(g: &Global, checks: &[Check]) -> anyhow::Result<()> {
    let label = |l: Level| match l {
        Level::Ok => "ok",
        Level::Warn => "warning",
        Level::Fail => "FAIL",
    };
    match g.output {
        OutputFormat::Json => {
            let v: Vec<serde_json::Value> = checks
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "check": c.name, "result": label(c.level), "detail": c.detail, "fix": c.fix,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        OutputFormat::Table => {
            crate::output::table(
                &["CHECK", "RESULT", "DETAIL"],
                &checks
                    .iter()
                    .map(|c| {
                        vec![
                            c.name.to_string(),
                            label(c.level).to_string(),
                            c.detail.clone(),
                        ]
                    })
                    .collect::<Vec<_>>(),
            );
            let fixes: Vec<&Check> = checks.iter().filter(|c| c.fix.is_some()).collect();
            if !fixes.is_empty() {
                println!("\nTo fix:");
                for c in fixes {
                    println!("  {}: {}", c.name, c.fix.as_deref().unwrap_or_default());
                }
            }
        }
    }
    Ok(())
}
