//! The dashboard in a real browser: Debian's headless `chromium` driven
//! through `chromedriver` over the W3C WebDriver protocol (a few JSON calls,
//! spoken here with the `reqwest` client the tests already use). Sign in, run
//! a configuration and watch its log lines arrive live, re-run, cancel a
//! running job, preview a table version, and check a phone-width layout.
//! Screenshots go to `<target>/ui-screenshots/`; with
//! `GANTRY_UPDATE_SCREENSHOT=1` the job page's also replaces
//! `docs/dashboard.png` (the README's).

use crate::util::*;
use base64::Engine;
use serde_json::{json, Value};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    child: Child,
    http: reqwest::Client,
    url: String,
    session: String,
    _scratch: tempfile::TempDir,
}

impl Drop for Driver {
    /// Ends chromedriver and the browser it started: they run in their own
    /// process group, ended as one.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Driver {
    async fn start() -> Self {
        for tool in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: scripts/test.sh installs Debian's chromium and chromium-driver"
            );
        }
        let http = reqwest::Client::new();
        let port = free_port();
        // The browser's profile and temporary files, removed with the test.
        let scratch = tempfile::tempdir().expect("browser scratch dir");
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .env("TMPDIR", scratch.path())
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = match http.get(format!("{url}/status")).send().await {
                Ok(r) => r
                    .json::<Value>()
                    .await
                    .ok()
                    .map(|v| v["value"]["ready"] == true),
                Err(_) => None,
            };
            if ready == Some(true) {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1200,900",
                    format!("--user-data-dir={}", scratch.path().join("profile").display()),
                ]
            }
        }}});
        let resp: Value = http
            .post(format!("{url}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("session json");
        let session = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {resp}"))
            .to_string();
        Self {
            child,
            http,
            url,
            session,
            _scratch: scratch,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.url, self.session);
        let mut r = self.http.request(method, url);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let v: Value = r
            .send()
            .await
            .expect("webdriver")
            .json()
            .await
            .expect("json");
        v["value"].clone()
    }

    /// Ends the session: the browser quits and cleans up after itself.
    async fn quit(&self) {
        let url = format!("{}/session/{}", self.url, self.session);
        let _ = self.http.delete(url).send().await;
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn current_url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The element, waiting for it to appear.
    async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self
                .call(
                    reqwest::Method::POST,
                    "/element",
                    Some(json!({"using": "css selector", "value": css})),
                )
                .await;
            if let Some(id) = v[ELEMENT].as_str() {
                return id.to_string();
            }
            assert!(Instant::now() < deadline, "no element {css}: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn text(&self, css: &str) -> String {
        let el = self.find(css).await;
        let v = self
            .call(reqwest::Method::GET, &format!("/element/{el}/text"), None)
            .await;
        v.as_str().unwrap_or_default().to_string()
    }

    async fn click(&self, css: &str) {
        let el = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{el}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{el}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn script(&self, js: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": js, "args": []})),
        )
        .await
    }

    async fn window(&self, width: u32, height: u32) {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    /// Waits until the element's text satisfies `ok`; returns that text.
    async fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let t = self.text(css).await;
            if ok(&t) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "{css} never showed {what}: {t:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("screenshot"))
            .expect("base64");
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }
}

/// `<target>/ui-screenshots`, next to the binary under test.
fn screenshots_dir() -> PathBuf {
    let bin = bin();
    let target = bin
        .parent()
        .and_then(Path::parent)
        .expect("the binary is in <target>/<profile>/");
    target.join("ui-screenshots")
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_in_a_real_browser() {
    let g = Gantry::up(&[]);
    let api = g.client();
    // What the pages will show: a configuration that prints over a few
    // seconds, and a table with two versions.
    let ticker = sh("for i in 1 2 3 4 5 6 7 8; do echo \"tick $i\"; sleep 1; done");
    assert_eq!(
        api.post("/v1/configs", json!({"id": "ticker", "spec": ticker}))
            .await
            .0,
        201
    );
    let (s, _) = api
        .import(
            "in.c-main.people",
            "primary_key=id",
            "id,name\n1,alice\n2,<b>bob</b>\n",
        )
        .await;
    assert_eq!(s, 201);
    let (s, _) = api
        .import("in.c-main.people", "incremental=true", "id,name\n3,carol\n")
        .await;
    assert_eq!(s, 201);

    let b = Driver::start().await;

    // Signing in leads to where the user was going.
    b.goto(&format!("{}/ui/jobs", g.url)).await;
    b.find("#token").await;
    assert!(b.current_url().await.contains("/ui/login?next="));
    b.type_into("#token", &g.token).await;
    b.click("#sign-in").await;
    b.wait_text("h1", "the jobs page", |t| t == "Jobs").await;
    assert_eq!(b.text("#project").await, "default");
    b.screenshot("01-jobs-empty").await;

    // Run the configuration from its page; the job page follows its log.
    b.goto(&format!("{}/ui/configs/ticker", g.url)).await;
    b.click("#run").await;
    b.find("#log").await;
    let job_url = b.current_url().await;
    let job = job_url
        .rsplit('/')
        .next()
        .expect("job id in the url")
        .to_string();
    // Lines arrive while the page stays loaded: first some, later all.
    let partial = b
        .wait_text("#log", "its first lines", |t| t.contains("tick 2"))
        .await;
    assert!(
        !partial.contains("tick 8"),
        "the page showed the whole log at once, not live: {partial:?}"
    );
    b.screenshot("02-job-live-log").await;
    b.wait_text("#log", "every line", |t| t.contains("tick 8"))
        .await;
    b.wait_text("#status", "the end of the job", |t| t == "succeeded")
        .await;
    assert_eq!(b.current_url().await, job_url, "no reload happened");
    let lines: Vec<String> = b
        .text("#log")
        .await
        .lines()
        .filter(|l| l.starts_with("tick"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        lines,
        (1..=8).map(|i| format!("tick {i}")).collect::<Vec<_>>(),
        "each line once, in order"
    );
    // The finished page, as the README shows it.
    b.goto(&job_url).await;
    b.find("#rerun").await;
    let shot = b.screenshot("03-job-finished").await;
    if std::env::var_os("GANTRY_UPDATE_SCREENSHOT").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
        std::fs::create_dir_all(&docs).expect("docs/");
        std::fs::copy(&shot, docs.join("dashboard.png")).expect("update docs/dashboard.png");
    }

    // Re-run makes a new job of the same configuration.
    b.click("#rerun").await;
    b.wait_text("h1", "a new job page", |t| !t.contains(&job))
        .await;
    let rerun_url = b.current_url().await;
    assert_ne!(rerun_url, job_url);
    b.wait_text("#status", "the re-run's end", |t| t == "succeeded")
        .await;

    // Cancel a running job from its page.
    let long = api.submit(sh("echo started; sleep 300")).await;
    b.goto(&format!("{}/ui/jobs/{long}", g.url)).await;
    b.wait_text("#log", "the job running", |t| t.contains("started"))
        .await;
    b.click("#cancel").await;
    b.wait_text("#status", "the cancellation", |t| t == "cancelled")
        .await;
    b.screenshot("04-job-cancelled").await;
    assert_eq!(api.wait(&long).await["status"], "cancelled");

    // The jobs page refreshes itself (htmx): a job submitted meanwhile
    // appears without a reload.
    b.goto(&format!("{}/ui/jobs", g.url)).await;
    b.find("#jobs").await;
    let listed = b.current_url().await;
    let fresh = api.submit(sh("echo fresh")).await;
    b.wait_text("#jobs tbody", "the new job", |t| t.contains(&fresh))
        .await;
    assert_eq!(b.current_url().await, listed);

    // The jobs list filters by configuration.
    b.goto(&format!("{}/ui/jobs?config=ticker", g.url)).await;
    let rows = b.text("#jobs tbody").await;
    assert!(rows.contains(&job) && !rows.contains(&long), "{rows}");
    b.screenshot("05-jobs-by-config").await;

    // A pipeline run from its page; the run's page refreshes itself until
    // the run ends, and its phase view links each task's job.
    let (s, body) = api
        .post(
            "/v1/configs",
            json!({"id": "quick", "spec": sh("echo quick")}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let (s, body) = api
        .post(
            "/v1/pipelines",
            json!({"id": "two", "phases": [
                {"name": "first", "tasks": [{"config": "quick"}]},
                {"name": "second", "tasks": [{"config": "quick"}]},
            ]}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    b.goto(&format!("{}/ui/pipelines/two", g.url)).await;
    b.click("#run").await;
    b.find("#run-status").await;
    let run_url = b.current_url().await;
    assert!(run_url.contains("/ui/pipeline-runs/"), "{run_url}");
    b.wait_text("#run-status", "the run's end", |t| t == "succeeded")
        .await;
    assert_eq!(b.current_url().await, run_url, "no reload happened");
    let phases = b.text("ol.phases").await;
    assert!(
        phases.contains("first") && phases.contains("second"),
        "{phases}"
    );
    b.screenshot("06-pipeline-run").await;

    // A table's versions, and a preview of the first one.
    b.goto(&format!("{}/ui/tables/in.c-main.people", g.url))
        .await;
    b.click("tr.version[data-version=\"1\"] a.preview").await;
    let preview = b
        .wait_text("#preview", "the rows of version 1", |t| t.contains("alice"))
        .await;
    assert!(
        preview.contains("<b>bob</b>"),
        "markup shown as text: {preview}"
    );
    assert!(!preview.contains("carol"), "version 1 only: {preview}");
    b.screenshot("07-table-preview").await;

    // A phone's width: the page does not overflow sideways.
    b.window(390, 844).await;
    b.goto(&format!("{}/ui/jobs", g.url)).await;
    b.find("#jobs").await;
    let fits = b
        .script("return document.documentElement.scrollWidth <= window.innerWidth + 1;")
        .await;
    assert_eq!(fits, true, "the jobs page overflows a phone's width");
    b.screenshot("08-jobs-phone").await;
    b.quit().await;
}
