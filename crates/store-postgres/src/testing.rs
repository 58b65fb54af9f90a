//! A throwaway PostgreSQL for tests: `GANTRY_TEST_DATABASE_URL` when given
//! (a role that may create databases), otherwise a cluster of this
//! process's own, made with Debian's `initdb` in a temporary folder and
//! listening on a unix socket there only. The cluster stops and its folder
//! goes when this process ends, however it ends (a watchdog shell waits for
//! this process's end of a pipe to close). Each [`fresh_database`] is a
//! new, empty database on it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A cluster this process started.
pub struct Cluster {
    /// key=value connection string of its superuser, without a database.
    pub conninfo: String,
    /// The folder of its data and socket.
    pub dir: PathBuf,
    /// The Postgres server's binaries.
    pub bin: PathBuf,
    _watchdog: Mutex<(Child, ChildStdin)>,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

/// Where Debian (or `PATH`) keeps the server's binaries.
pub fn bin_dir() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(p) = found.pop() {
        return Some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|p| p.join("initdb").exists() && p.join("postgres").exists())
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `cmd` as the `postgres` user when this process is root (the server
/// refuses to run as root).
fn as_server_user(cmd: &Path, root: bool) -> Command {
    if root {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ])
        .arg(cmd);
        c
    } else {
        Command::new(cmd)
    }
}

impl Cluster {
    /// Starts a cluster of its own (stopped when this process ends); most
    /// tests share [`cluster`] instead.
    pub fn start() -> Result<Cluster, String> {
        start()
    }

    /// The admin connection string of this cluster.
    pub fn admin_url(&self) -> String {
        format!("{} dbname=postgres", self.conninfo)
    }

    /// Stops the server at once (as a crash would), keeping its data;
    /// [`Cluster::restart`] brings it back. For tests of outages.
    pub fn stop_server(&self) {
        let out = as_server_user(&self.bin.join("pg_ctl"), is_root())
            .args(["stop", "-m", "immediate", "-D"])
            .arg(self.dir.join("data"))
            .output();
        if let Ok(o) = out {
            let _ = std::io::stderr().write_all(&o.stderr);
        }
    }

    /// Starts the server again after [`Cluster::stop_server`] (on the same
    /// socket), and waits until it accepts connections.
    pub fn restart(&self) {
        let out = as_server_user(&self.bin.join("pg_ctl"), is_root())
            .args(["start", "-w", "-t", "60", "-l"])
            .arg(self.dir.join("server2.log"))
            .arg("-o")
            .arg(format!(
                "-k '{}' -c listen_addresses= -c max_connections=300",
                self.dir.display()
            ))
            .arg("-D")
            .arg(self.dir.join("data"))
            .output();
        if let Ok(o) = out {
            let _ = std::io::stderr().write_all(&o.stderr);
        }
    }
}

fn start() -> Result<Cluster, String> {
    let bin = bin_dir().ok_or(
        "no PostgreSQL server found (install Debian's postgresql package, or set GANTRY_TEST_DATABASE_URL)",
    )?;
    let root = is_root();
    let dir = tempfile::Builder::new()
        .prefix("gantry-pg-")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    let data = dir.join("data");
    if root {
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .map_err(|e| e.to_string())?
            .success();
        if !ok {
            return Err("cannot hand the cluster's folder to the postgres user".into());
        }
    }
    let out = as_server_user(&bin.join("initdb"), root)
        .args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
            "-D",
        ])
        .arg(&data)
        .output()
        .map_err(|e| format!("cannot run initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // The watchdog: runs the server, and stops it and removes the folder
    // once its stdin (this process's end of the pipe) closes.
    let server = as_server_user(&bin.join("postgres"), root);
    let program = format!(
        "{} -D '{}' -k '{}' -c listen_addresses= -c max_connections=300 -c shared_buffers=64MB",
        std::iter::once(server.get_program())
            .chain(server.get_args())
            .map(|a| format!("'{}'", a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" "),
        data.display(),
        dir.display()
    );
    let ctl = as_server_user(&bin.join("pg_ctl"), root);
    let stop = format!(
        "{} stop -m fast -D '{}'",
        std::iter::once(ctl.get_program())
            .chain(ctl.get_args())
            .map(|a| format!("'{}'", a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" "),
        data.display()
    );
    // `pg_ctl stop` also stops a server restarted by `restart`.
    let script = format!(
        "{program} >'{log}' 2>&1 & pid=$!; read _; {stop} >/dev/null 2>&1; kill -INT $pid 2>/dev/null; wait $pid; rm -rf '{dir}'",
        log = dir.join("server.log").display(),
        dir = dir.display()
    );
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start postgres: {e}"))?;
    let stdin = child.stdin.take().ok_or("no pipe to the watchdog")?;
    let socket = dir.join(".s.PGSQL.5432");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !socket.exists() {
        if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            return Err(format!("postgres did not start: {log}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Cluster {
        conninfo: format!("host={} port=5432 user=postgres", dir.display()),
        dir,
        bin,
        _watchdog: Mutex::new((child, stdin)),
    })
}

/// This process's cluster, started on first use. Panics (it is for tests)
/// when none can be started.
pub fn cluster() -> &'static Cluster {
    match CLUSTER.get_or_init(start) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

/// The admin connection string: `GANTRY_TEST_DATABASE_URL`, or this
/// process's own cluster.
pub fn admin_url() -> String {
    match std::env::var("GANTRY_TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => format!("{} dbname=postgres", cluster().conninfo),
    }
}

/// The connection string of `admin` on another database.
fn with_database(admin: &str, db: &str) -> String {
    if admin.contains("://") {
        // postgres://user@host:port/dbname?params
        let (base, query) = match admin.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (admin, None),
        };
        let scheme_end = base.find("://").map_or(0, |i| i + 3);
        let base = match base[scheme_end..].find('/') {
            Some(slash) => &base[..scheme_end + slash],
            None => base,
        };
        match query {
            Some(q) => format!("{base}/{db}?{q}"),
            None => format!("{base}/{db}"),
        }
    } else {
        let kept: Vec<&str> = admin
            .split_whitespace()
            .filter(|kv| !kv.starts_with("dbname="))
            .collect();
        format!("{} dbname={db}", kept.join(" "))
    }
}

/// A new, empty database; returns its connection string.
pub async fn fresh_database() -> String {
    fresh_database_on(&admin_url()).await
}

/// A new, empty database on the server `admin` connects to.
pub async fn fresh_database_on(admin: &str) -> String {
    let admin = admin.to_string();
    let name = format!("gantry_t{}", crate::changes::instance_id());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match tokio_postgres::connect(&admin, tokio_postgres::NoTls).await {
            Ok((client, conn)) => {
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                client
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap_or_else(|e| panic!("cannot create a test database: {e:?}"));
                return with_database(&admin, &name);
            }
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot reach the test PostgreSQL at {admin}: {e:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_database_of_the_same_server() {
        assert_eq!(
            with_database("postgres://u:p@h:5/postgres?sslmode=disable", "x"),
            "postgres://u:p@h:5/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
        assert_eq!(
            with_database("host=/tmp/a port=5432 user=postgres dbname=postgres", "x"),
            "host=/tmp/a port=5432 user=postgres dbname=x"
        );
    }
}
