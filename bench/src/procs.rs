//! Processes the harness starts and watches: `gantry up`/`server` in a
//! temporary home, timed commands, memory readings, the machine's description.

use anyhow::{bail, Context};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Gantry {
    pub bin: PathBuf,
    pub home: tempfile::TempDir,
    pub url: String,
    pub token: String,
    child: Child,
}

impl Gantry {
    /// Starts `gantry <args>` (`up` or `server`) on a free port in a fresh home.
    pub fn start(bin: &Path, args: &[&str]) -> anyhow::Result<Self> {
        Self::start_env(bin, args, &[])
    }

    /// [`Gantry::start`] with more environment (`GANTRY_DATABASE_URL`, ...).
    pub fn start_env(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let home = tempfile::tempdir()?;
        let mut child = Command::new(bin)
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .env("GANTRY_HOME", home.path())
            .env("GANTRY_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let stderr = child.stderr.take().context("stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("Gantry API listening on ") {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .context("gantry did not start")?;
        let token = std::fs::read_to_string(home.path().join("token"))?
            .trim()
            .to_string();
        Ok(Self {
            bin: bin.to_path_buf(),
            home,
            url,
            token,
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// GETs an API path with this instance's token, as JSON.
    pub async fn get_json(
        &self,
        http: &reqwest::Client,
        path: &str,
    ) -> anyhow::Result<serde_json::Value> {
        Ok(http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await?
            .json()
            .await?)
    }

    pub fn cli(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .env("GANTRY_URL", &self.url)
            .env("GANTRY_HOME", self.home.path());
        c
    }

    pub fn write(&self, name: &str, text: &str) -> anyhow::Result<PathBuf> {
        let p = self.home.path().join(name);
        std::fs::write(&p, text)?;
        Ok(p)
    }

    /// Resident and peak resident memory in bytes (VmRSS, VmHWM).
    pub fn memory(&self) -> (u64, u64) {
        memory_of(self.pid())
    }
}

impl Drop for Gantry {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `gantry worker` process in a home of its own; stopped on drop.
pub struct Worker {
    _home: tempfile::TempDir,
    child: Child,
}

impl Worker {
    pub fn start(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let home = tempfile::tempdir()?;
        let child = Command::new(bin)
            .arg("worker")
            .args(args)
            .env("GANTRY_HOME", home.path())
            .env("GANTRY_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        Ok(Self { _home: home, child })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds used so far by the machine (busy, all cores) and by the
/// live processes of each group (by command name), from /proc.
pub fn cpu_seconds() -> (f64, std::collections::BTreeMap<&'static str, f64>) {
    let tick = 100.0; // USER_HZ on Linux
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let busy = stat
        .lines()
        .next()
        .map(|l| {
            let v: Vec<f64> = l
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal
            let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
            (v.iter().take(8).sum::<f64>() - idle) / tick
        })
        .unwrap_or(0.0);
    let mut groups = std::collections::BTreeMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(text) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (text.find('('), text.rfind(')')) else {
            continue;
        };
        let comm = &text[open + 1..close];
        let group = match comm {
            "postgres" => "postgres",
            "dockerd" => "dockerd",
            c if c.starts_with("containerd") => "containerd",
            "gantry" => "gantry",
            _ => continue,
        };
        let f: Vec<&str> = text[close + 2..].split_whitespace().collect();
        // utime, stime, cutime, cstime are fields 14-17 (11-14 after the name).
        let t: f64 = f
            .iter()
            .skip(11)
            .take(4)
            .filter_map(|x| x.parse::<f64>().ok())
            .sum();
        *groups.entry(group).or_insert(0.0) += t / tick;
    }
    (busy, groups)
}

pub fn memory_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Runs a command to completion; fails unless it succeeds. Returns its wall time.
pub fn timed(cmd: &mut Command) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let out = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).output()?;
    let took = t.elapsed();
    if !out.status.success() {
        bail!("{:?} failed: {}", cmd, String::from_utf8_lossy(&out.stderr));
    }
    Ok(took)
}

pub fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let idx = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[idx.min(v.len() - 1)]
}

pub fn today() -> String {
    let out = Command::new("date").arg("+%Y-%m-%d").output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "undated".into())
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

pub fn machine() -> Vec<(String, String)> {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("")
        .trim()
        .to_string();
    let mem_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    vec![
        ("cores".into(), format!("{cpus} ({model})")),
        (
            "memory".into(),
            format!("{:.1} GiB", mem_kb as f64 / 1024.0 / 1024.0),
        ),
        ("kernel".into(), first_line("uname", &["-r"])),
        (
            "docker engine".into(),
            first_line("docker", &["version", "--format", "{{.Server.Version}}"]),
        ),
        ("runc".into(), first_line("runc", &["--version"])),
        ("gantry".into(), env!("CARGO_PKG_VERSION").into()),
    ]
}

pub fn machine_line(m: &[(String, String)]) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join("; ")
}
