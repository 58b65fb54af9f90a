//! Test harness: a `gantry up` in a temporary home, the CLI, an API client,
//! and Docker look-ups.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

pub const IMAGE: &str = "gantry-test/busybox:2";

/// Whether every Gantry the harness starts runs on PostgreSQL
/// (`GANTRY_TEST_POSTGRES=1`: a fresh database each) instead of SQLite.
pub fn postgres_mode() -> bool {
    std::env::var("GANTRY_TEST_POSTGRES").is_ok_and(|v| v == "1")
}

/// A fresh database on the tests' PostgreSQL (see
/// `gantry_store_postgres::testing`), from sync code inside async tests.
pub fn fresh_postgres_database() -> String {
    std::thread::spawn(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(gantry_store_postgres::testing::fresh_database())
    })
    .join()
    .expect("a fresh database")
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gantry"))
}

/// With `GANTRY_TEST_WARM=1` every `gantry up`/`worker` of the suite runs
/// with warm starts on, the test images listed warm (the suites in warm mode).
pub fn warm_env() -> Vec<(String, String)> {
    if !matches!(
        std::env::var("GANTRY_TEST_WARM").as_deref(),
        Ok("1" | "true")
    ) {
        return Vec::new();
    }
    warm_flags_env()
}

/// The environment that turns warm starts on with the test images listed.
pub fn warm_flags_env() -> Vec<(String, String)> {
    vec![
        ("GANTRY_WARM".into(), "true".into()),
        ("GANTRY_WARM_GATE".into(), gate().display().to_string()),
        ("GANTRY_WARM_IMAGES".into(), IMAGE.into()),
    ]
}

/// The gate's static binary, built once per test run (`cargo rustc` with
/// `+crt-static` for the gate alone), copied out of cargo's reach.
pub fn gate() -> PathBuf {
    static GATE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    GATE.get_or_init(|| {
        let target = bin()
            .parent()
            .and_then(Path::parent)
            .expect("target dir")
            .to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .current_dir(repo_root())
            .args([
                "rustc",
                "-q",
                "-p",
                "gantry-gate",
                "--bin",
                "gantry-gate",
                "--target-dir",
            ])
            .arg(target.join("gate-build"))
            .args(["--", "-C", "target-feature=+crt-static"])
            .status()
            .expect("cargo rustc");
        assert!(st.success(), "cannot build the gate");
        // A copy renamed into place: the old one may be running in a
        // container of another test run (a running file cannot be written).
        let out = target.join("gantry-gate-static");
        let tmp = target.join(format!("gantry-gate-static.{}", std::process::id()));
        std::fs::copy(target.join("gate-build/debug/gantry-gate"), &tmp).expect("copy gate");
        std::fs::rename(&tmp, &out).expect("rename gate");
        out
    })
    .clone()
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds the local test images once per test run.
pub fn ensure_images() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let st = Command::new("bash")
            .arg(repo_root().join("scripts/images.sh"))
            .status()
            .expect("run images.sh");
        assert!(
            st.success(),
            "scripts/images.sh failed: is Docker running? (scripts/ensure-docker.sh)"
        );
    });
}

/// Runs the Docker CLI and fails the test when it fails: a look-up that
/// errors must not read as "nothing found".
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker cli");
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Containers carrying a label, running or not.
pub fn containers_labelled(label: &str) -> Vec<String> {
    docker(&["ps", "-aq", "--filter", &format!("label={label}")])
        .lines()
        .map(str::to_string)
        .collect()
}

pub struct Gantry {
    pub home: tempfile::TempDir,
    pub url: String,
    pub token: String,
    child: Option<Child>,
    pub log: Arc<Mutex<Vec<String>>>,
    args: Vec<String>,
    /// Extra environment for the next start (e.g. GANTRY_FAULTS).
    pub env: Vec<(String, String)>,
}

impl Gantry {
    /// `gantry up` with extra flags, in a fresh home.
    pub fn up(extra: &[&str]) -> Self {
        Self::fresh("up", extra)
    }

    /// Only the API (no worker), in a fresh home.
    pub fn server_only() -> Self {
        Self::fresh("server", &[])
    }

    /// Only the API (no worker), with extra flags and environment, in a fresh home.
    pub fn server_with_env(extra: &[&str], env: &[(&str, &str)]) -> Self {
        Self::fresh_env("server", extra, env)
    }

    /// `gantry up` with extra flags and environment, in a fresh home.
    pub fn up_with_env(extra: &[&str], env: &[(&str, &str)]) -> Self {
        Self::fresh_env("up", extra, env)
    }

    fn fresh(command: &str, extra: &[&str]) -> Self {
        Self::fresh_env(command, extra, &[])
    }

    fn fresh_env(command: &str, extra: &[&str], env: &[(&str, &str)]) -> Self {
        ensure_images();
        let mut args = vec![command.to_string(), "--listen".into(), "127.0.0.1:0".into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if postgres_mode() && !env.iter().any(|(k, _)| k == "GANTRY_DATABASE_URL") {
            env.push(("GANTRY_DATABASE_URL".into(), fresh_postgres_database()));
        }
        let mut g = Self {
            home: tempfile::tempdir().expect("tempdir"),
            url: String::new(),
            token: String::new(),
            child: None,
            log: Arc::default(),
            args,
            env,
        };
        g.start();
        g
    }

    pub fn home_path(&self) -> &Path {
        self.home.path()
    }

    /// Starts (or restarts) the process with its arguments, on a new port.
    pub fn start(&mut self) {
        let args = self.args.clone();
        self.start_with(&args);
    }

    pub fn start_with(&mut self, args: &[String]) {
        let mut child = Command::new(bin())
            .args(args)
            .env("GANTRY_HOME", self.home.path())
            .env("GANTRY_LOG", "info")
            .envs(warm_env())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gantry");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("Gantry API listening on ") {
                    let _ = tx.send(addr.to_string());
                }
                log.lock().expect("log").push(line);
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| {
                panic!("gantry did not start: {:?}", self.log.lock().expect("log"));
            });
        self.url = url;
        self.token = std::fs::read_to_string(self.home.path().join("token"))
            .expect("token file")
            .trim()
            .to_string();
        self.child = Some(child);
    }

    /// Sends a signal and waits for the process to exit.
    pub fn stop_with(&mut self, signal: &str, within: Duration) -> std::process::ExitStatus {
        let pid = self.child.as_ref().expect("running").id();
        Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .expect("kill");
        self.wait_exit(within)
    }

    /// Waits for the process to exit on its own (e.g. at an injected fault).
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = child.try_wait().expect("wait") {
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "gantry did not exit within {within:?}; log: {:?}",
                    self.log.lock().expect("log")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn worker_id(&self) -> String {
        std::fs::read_to_string(self.home.path().join("worker-id"))
            .expect("worker id")
            .trim()
            .to_string()
    }

    /// The environment every process of this Gantry gets (`GANTRY_DATABASE_URL`, ...).
    pub fn vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.env.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Runs the CLI against this server.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .args(args)
            .envs(self.vars())
            .env("GANTRY_URL", &self.url)
            .env("GANTRY_HOME", self.home.path())
            .output()
            .expect("run gantry cli")
    }

    pub fn client(&self) -> Api {
        Api {
            http: reqwest::Client::new(),
            url: self.url.clone(),
            token: Some(self.token.clone()),
        }
    }

    pub fn write_spec(&self, name: &str, text: &str) -> PathBuf {
        let p = self.home.path().join(name);
        std::fs::write(&p, text).expect("write spec");
        p
    }
}

impl Drop for Gantry {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub struct Api {
    pub http: reqwest::Client,
    pub url: String,
    pub token: Option<String>,
}

impl Api {
    pub fn without_token(mut self) -> Self {
        self.token = None;
        self
    }

    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.url));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self.req(method, path);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// Imports CSV text into a table; returns (status, body).
    pub async fn import(&self, table: &str, query: &str, csv: &str) -> (u16, Value) {
        let resp = self
            .req(
                reqwest::Method::POST,
                &format!("/v1/tables/{table}/import?{query}"),
            )
            .header("content-type", "text/csv")
            .body(csv.to_string())
            .send()
            .await
            .expect("import");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn export(&self, table: &str) -> String {
        let resp = self
            .req(reqwest::Method::GET, &format!("/v1/tables/{table}/export"))
            .send()
            .await
            .expect("export");
        assert_eq!(resp.status(), 200, "export of {table}");
        resp.text().await.expect("csv")
    }

    /// Rows of a table's CSV, header first, the rest sorted.
    pub async fn rows(&self, table: &str) -> Vec<String> {
        let text = self.export(table).await;
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() > 1 {
            lines[1..].sort();
        }
        lines
    }

    pub async fn versions(&self, table: &str) -> Vec<Value> {
        let (status, v) = self.get(&format!("/v1/tables/{table}/versions")).await;
        if status == 404 {
            return Vec::new();
        }
        v["versions"].as_array().cloned().unwrap_or_default()
    }

    /// Submits an inline spec; returns the job id.
    pub async fn submit(&self, spec: Value) -> String {
        let (status, body) = self.post("/v1/jobs", json!({ "spec": spec })).await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("id").to_string()
    }

    /// Long-polls until the job ends.
    pub async fn wait(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (status, job) = self.get(&format!("/v1/jobs/{id}?wait=30s")).await;
            assert_eq!(status, 200, "{job}");
            if !matches!(job["status"].as_str(), Some("queued") | Some("running")) {
                return job;
            }
            assert!(Instant::now() < deadline, "job {id} did not end: {job}");
        }
    }

    pub async fn wait_status(&self, id: &str, want: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, job) = self.get(&format!("/v1/jobs/{id}")).await;
            if job["status"] == want {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} never became {want}: {job}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn run(&self, spec: Value) -> Value {
        let id = self.submit(spec).await;
        self.wait(&id).await
    }

    pub async fn events(&self, id: &str) -> Vec<Value> {
        let (status, ev) = self.get(&format!("/v1/jobs/{id}/events?limit=10000")).await;
        assert_eq!(status, 200, "{ev}");
        ev.as_array().cloned().unwrap_or_default()
    }

    pub async fn messages(&self, id: &str, stream: &str) -> Vec<String> {
        self.events(id)
            .await
            .into_iter()
            .filter(|e| e["stream"] == stream)
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

/// A spec running a shell script in the busybox image.
pub fn sh(script: &str) -> Value {
    json!({ "image": IMAGE, "command": ["sh", "-c", script] })
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Every file below `dir` (none when it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Fails naming the file if any file below `dir` holds `needle` in clear.
/// Fails too when there is nothing to read or a file cannot be read, so it
/// never passes vacuously.
pub fn assert_in_no_file(dir: &Path, needle: &str) {
    let mut read = 0;
    for f in files_under(dir) {
        let bytes = match std::fs::read(&f) {
            Ok(b) => b,
            // Removed between the listing and the read (a temporary file).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("read {}: {e}", f.display()),
        };
        read += 1;
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{} holds {needle:?} in clear",
            f.display()
        );
    }
    assert!(read > 0, "no file below {} could be read", dir.display());
}

/// An S3-compatible server (moto) on a loopback port.
pub struct S3 {
    child: std::process::Child,
    pub port: u16,
}

impl S3 {
    pub fn start() -> Self {
        let bin = std::env::var("GANTRY_TEST_MOTO")
            .unwrap_or_else(|_| "/var/tmp/gantry-moto/bin/moto_server".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let child = std::process::Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("moto_server ({bin}) is installed by scripts/test.sh: {e}"));
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }

    /// Creates a bucket (S3 CreateBucket is a PUT on the bucket).
    pub async fn bucket(&self, name: &str) {
        let resp = reqwest::Client::new()
            .put(format!("http://127.0.0.1:{}/{name}", self.port))
            .send()
            .await
            .expect("create bucket");
        assert!(resp.status().is_success(), "{:?}", resp.text().await);
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Another `gantry` process on the same home (so the same store): a second
/// server or worker. Stopped with SIGTERM on drop.
pub struct Extra {
    child: Child,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Extra {
    pub fn spawn(g: &Gantry, args: &[&str]) -> Self {
        Self::spawn_env(g, args, &[])
    }

    /// With the Gantry's environment and `env` over it.
    pub fn spawn_env(g: &Gantry, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(bin())
            .args(args)
            .env("GANTRY_HOME", g.home_path())
            .env("GANTRY_LOG", "info")
            .envs(g.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gantry");
        let stderr = child.stderr.take().expect("stderr");
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let l = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                l.lock().expect("log").push(line);
            }
        });
        Self { child, log }
    }

    /// The process dies at once (SIGKILL), as in a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits until a line of its log contains `needle`.
    pub fn wait_log(&self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if self
                .log
                .lock()
                .expect("log")
                .iter()
                .any(|l| l.contains(needle))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in {:?}",
                self.log.lock().expect("log")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Extra {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
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

/// A Docker engine of a test's own (a second `dockerd` with its own socket,
/// data and state folders, no networking), so that a test may kill it
/// without touching the machine's engine. Stopped on drop.
pub struct PrivateEngine {
    child: Option<Child>,
    name: String,
}

/// The test engines' own bridge. (`--bridge none` would make dockerd delete
/// the host's `docker0`, breaking the main engine.)
const BRIDGE: &str = "gantry-test0";

fn ensure_bridge() {
    let ip = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ip(&["link", "show", BRIDGE]) {
        // Another test may be adding it at the same time.
        let _ = ip(&["link", "add", BRIDGE, "type", "bridge"]);
        let _ = ip(&["addr", "add", "10.213.213.1/24", "dev", BRIDGE]);
        assert!(ip(&["link", "show", BRIDGE]), "cannot create {BRIDGE}");
    }
    ip(&["link", "set", BRIDGE, "up"]);
}

impl PrivateEngine {
    /// Starts the engine `name` (its socket is `/run/gantry-NAME.sock`)
    /// and loads the test image into it when it lacks it.
    pub fn start(name: &str) -> Self {
        ensure_bridge();
        let log_path = format!("/tmp/gantry-{name}.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let exec = format!("/run/gantry-{name}");
        let child = Command::new("dockerd")
            .args([
                "--host",
                &format!("unix:///run/gantry-{name}.sock"),
                "--data-root",
                &format!("/var/tmp/gantry-{name}/data"),
                "--exec-root",
                &exec,
                "--pidfile",
                &format!("{exec}.pid"),
                "--bridge",
                BRIDGE,
                "--iptables=false",
                "--ip6tables=false",
            ])
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start a second dockerd (run the tests as root)");
        let engine = Self {
            child: Some(child),
            name: name.to_string(),
        };
        let t = Instant::now();
        while !engine.answers() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "the test engine did not start; see {log_path}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let has = Command::new("docker")
            .args(["-H", &engine.host(), "image", "inspect", IMAGE])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !has {
            let st = Command::new("sh")
                .args([
                    "-c",
                    &format!("docker save {IMAGE} | docker -H {} load", engine.host()),
                ])
                .status()
                .expect("copy the image");
            assert!(st.success(), "cannot load {IMAGE} into the test engine");
        }
        engine
    }

    /// Its `DOCKER_HOST`.
    pub fn host(&self) -> String {
        format!("unix:///run/gantry-{}.sock", self.name)
    }

    pub fn answers(&self) -> bool {
        Command::new("docker")
            .args(["-H", &self.host(), "info"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The engine dies at once (SIGKILL), as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let t = Instant::now();
        while self.answers() && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(!self.answers(), "the test engine still answers");
        // A killed dockerd leaves its pid file behind, which stops a restart.
        let _ = std::fs::remove_file(format!("/run/gantry-{}.pid", self.name));
    }
}

impl Drop for PrivateEngine {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(None) = child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(20) {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
