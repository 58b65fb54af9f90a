//! Images (issue 15): private registries with real `docker-registry`
//! instances (htpasswd auth), pull policies and registry outages, mirrors,
//! bundles and warm images, code packages on stacks, builds from git served
//! by `git daemon`, and image garbage collection.

use crate::util::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port()
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `docker-registry` on a loopback port, optionally with htpasswd auth;
/// it can be stopped and started again on the same port and data.
struct Registry {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    /// A private docker CLI config for pushes (root's is left alone).
    docker_config: tempfile::TempDir,
    login: Option<(String, String)>,
}

impl Registry {
    fn start(login: Option<(&str, &str)>) -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = login {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("htpasswd is installed by scripts/test.sh (apache2-utils)");
            assert!(out.status.success());
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, out.stdout).expect("htpasswd file");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: gantry\n    path: {}\n",
                file.display()
            ));
        }
        std::fs::write(dir.path().join("config.yml"), config).expect("config");
        let mut r = Self {
            child: None,
            port,
            dir,
            docker_config: tempfile::tempdir().expect("tmp"),
            login: login.map(|(u, p)| (u.to_string(), p.to_string())),
        };
        r.resume();
        r
    }

    fn resume(&mut self) {
        let child = Command::new("docker-registry")
            .args([
                "serve",
                self.dir.path().join("config.yml").to_str().expect("path"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry is installed by scripts/test.sh");
        self.child = Some(child);
        wait_port(self.port);
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .env("DOCKER_CONFIG", self.docker_config.path())
            .args(args)
            .output()
            .expect("docker")
    }

    /// Tags a local image as `host/path` and pushes it (logging in first
    /// when the registry wants a login), then removes the local tag.
    fn push(&self, local: &str, path: &str) -> String {
        self.push_via(&self.host(), local, path)
    }

    /// Pushes under another name of the same registry (`localhost:PORT`),
    /// so the engine's image for `host/path` stays what it was.
    fn push_via(&self, host: &str, local: &str, path: &str) -> String {
        let image = format!("{host}/{path}");
        if let Some((u, p)) = &self.login {
            let mut c = Command::new("docker")
                .env("DOCKER_CONFIG", self.docker_config.path())
                .args(["login", host, "-u", u, "--password-stdin"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("login");
            use std::io::Write;
            c.stdin
                .take()
                .expect("stdin")
                .write_all(p.as_bytes())
                .expect("password");
            assert!(c.wait().expect("login").success());
        }
        docker(&["tag", local, &image]);
        let out = self.docker(&["push", &image]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        docker(&["rmi", &image]);
        image
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A tiny image of its own, built from the test busybox image. Built
/// without the engine's cache: a cached step would reuse an image another
/// run or test may hold and remove (its tag's `rmi`) between the cache
/// lookup and the build's use of it ("unable to find image sha256:..."), so
/// every build makes a new image that only this test holds.
fn tiny_image(tag: &str, label: &str) -> String {
    let mut c = Command::new("docker")
        .args(["build", "-q", "--no-cache", "-t", tag, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker build");
    use std::io::Write;
    c.stdin
        .take()
        .expect("stdin")
        .write_all(format!("FROM {IMAGE}\nLABEL gantry.test={label}\n").as_bytes())
        .expect("dockerfile");
    let out = c.wait_with_output().expect("build");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tag.to_string()
}

fn present(image: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("inspect")
        .success()
}

fn cli_with_stdin(g: &Gantry, args: &[&str], input: &str) -> std::process::Output {
    let mut c = Command::new(bin())
        .args(args)
        .envs(g.vars())
        .env("GANTRY_URL", &g.url)
        .env("GANTRY_HOME", g.home_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gantry");
    use std::io::Write;
    c.stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("stdin");
    c.wait_with_output().expect("gantry")
}

fn error_of(job: &Value) -> (String, String) {
    (
        job["error"]["kind"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        job["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn private_registry_logins_are_sealed_used_for_their_host_only_and_say_when_authentication_failed(
) {
    let g = Gantry::up(&[]);
    let api = g.client();
    let reg = Registry::start(Some(("alice", "s3cret-pa55word")));
    let image = reg.push(IMAGE, &format!("team/private:{}", std::process::id()));
    assert!(!present(&image));
    let spec = json!({"image": image, "command": ["echo", "private"]});

    // No login: the registry asks for one; the job says so (not "not found").
    let job = api.run(spec.clone()).await;
    let (kind, message) = error_of(&job);
    assert_eq!(kind, "image_not_found", "{job}");
    assert!(message.contains("authentication failed"), "{message}");
    assert_eq!(job["attempt"], 1, "not retried");

    // A wrong password: the same.
    let o = cli_with_stdin(
        &g,
        &[
            "registries",
            "add",
            &reg.host(),
            "--username",
            "alice",
            "--password-stdin",
        ],
        "wrong\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let job = api.run(spec.clone()).await;
    let (kind, message) = error_of(&job);
    assert_eq!(kind, "image_not_found", "{job}");
    assert!(message.contains("authentication failed"), "{message}");

    // The right one (replacing it): the pull works and the job records the
    // image it ran.
    let o = cli_with_stdin(
        &g,
        &[
            "registries",
            "add",
            &reg.host(),
            "--username",
            "alice",
            "--password-stdin",
        ],
        "s3cret-pa55word\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let job = api.run(spec.clone()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let digest = job["image_digest"].as_str().expect("digest");
    assert!(digest.starts_with("sha256:"), "{job}");
    let id = job["id"].as_str().expect("id");
    assert_eq!(api.messages(id, "stdout").await, vec!["private"]);

    // A processor's image from the same registry is pulled with the login too.
    docker(&["rmi", &image]);
    let (component, version) = image.rsplit_once(':').expect("tag");
    let job = api
        .run(json!({"image": IMAGE, "command": ["true"], "processors": {"before": [
            {"definition": {"component": component, "tag": version}, "command": ["echo", "processed"]}
        ]}}))
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let stdout_lines = api
        .messages(job["id"].as_str().expect("id"), "stdout")
        .await;
    assert_eq!(stdout_lines, vec!["processed"]);

    // Listed without the password, in the API and the CLI.
    let (status, list) = api.get("/v1/registries").await;
    assert_eq!(status, 200);
    assert_eq!(list["registries"][0]["host"], reg.host().as_str(), "{list}");
    assert_eq!(list["registries"][0]["username"], "alice");
    assert!(!list.to_string().contains("s3cret"), "{list}");
    let o = g.cli(&["registries", "list"]);
    assert!(stdout(&o).contains("alice") && !stdout(&o).contains("s3cret"));
    // Sealed at rest; in no log line either.
    assert_in_no_file(g.home_path(), "s3cret-pa55word");
    let log = g.log.lock().expect("log").join("\n");
    assert!(!log.contains("s3cret-pa55word"));
    let events = api.events(id).await;
    assert!(!serde_json::to_string(&events)
        .expect("json")
        .contains("s3cret"));

    // Another project's jobs never use this login.
    assert!(g.cli(&["projects", "create", "other"]).status.success());
    let o = g.cli(&["tokens", "create", "--project", "other", "--output", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let created: Value = serde_json::from_str(&stdout(&o)).expect("json");
    let other = Api {
        http: reqwest::Client::new(),
        url: g.url.clone(),
        token: Some(created["token"].as_str().expect("token").to_string()),
    };
    docker(&["rmi", &image]);
    let job = other.run(spec.clone()).await;
    let (kind, message) = error_of(&job);
    assert_eq!(kind, "image_not_found", "{job}");
    assert!(message.contains("authentication failed"), "{message}");
    let (_, theirs) = other.get("/v1/registries").await;
    assert_eq!(theirs["registries"], json!([]), "{theirs}");

    // Removed: gone from the list, and pulls fail again.
    let o = g.cli(&["registries", "remove", &reg.host()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, list) = api.get("/v1/registries").await;
    assert_eq!(list["registries"], json!([]));
    let job = api.run(spec).await;
    assert_eq!(error_of(&job).0, "image_not_found", "{job}");
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_always_pulls_only_a_changed_digest_and_a_registry_outage_runs_the_local_image() {
    let g = Gantry::up(&[]);
    let api = g.client();
    let mut reg = Registry::start(None);
    let tag = format!("team/app:always-{}", std::process::id());
    let one = tiny_image(
        &format!("gantry-test/always-one:{}", std::process::id()),
        "one",
    );
    let image = reg.push(&one, &tag);
    let spec = json!({"image": image, "command": ["true"], "pull": "always"});

    let first = api.run(spec.clone()).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let msgs = api
        .messages(first["id"].as_str().expect("id"), "system")
        .await;
    assert!(
        msgs.iter().any(|m| m.starts_with("pulling image")),
        "{msgs:?}"
    );

    // Unchanged in the registry: asked, not pulled.
    let second = api.run(spec.clone()).await;
    assert_eq!(second["status"], "succeeded", "{second}");
    let msgs = api
        .messages(second["id"].as_str().expect("id"), "system")
        .await;
    assert!(msgs.iter().any(|m| m.contains("is up to date")), "{msgs:?}");
    assert!(
        !msgs.iter().any(|m| m.starts_with("pulling image")),
        "{msgs:?}"
    );
    assert_eq!(first["image_digest"], second["image_digest"]);

    // A new image under the tag: pulled, and the job records the new digest.
    let two = tiny_image(
        &format!("gantry-test/always-two:{}", std::process::id()),
        "two",
    );
    reg.push_via(&format!("localhost:{}", reg.port), &two, &tag);
    assert!(present(&image), "the engine still holds the first image");
    let third = api.run(spec.clone()).await;
    assert_eq!(third["status"], "succeeded", "{third}");
    let msgs = api
        .messages(third["id"].as_str().expect("id"), "system")
        .await;
    assert!(
        msgs.iter().any(|m| m.contains("changed in its registry")),
        "{msgs:?}"
    );
    assert_ne!(third["image_digest"], second["image_digest"], "{third}");

    // The registry goes down: `always` runs the local image and says so.
    reg.stop();
    let fourth = api.run(spec.clone()).await;
    assert_eq!(fourth["status"], "succeeded", "{fourth}");
    let msgs = api
        .messages(fourth["id"].as_str().expect("id"), "system")
        .await;
    assert!(
        msgs.iter()
            .any(|m| m.contains("does not answer") && m.contains("running the local image")),
        "{msgs:?}"
    );
    assert_eq!(fourth["image_digest"], third["image_digest"]);

    // Down and no local copy: infrastructure (retried), not image_not_found.
    docker(&["rmi", &image]);
    let job = api
        .run(json!({"image": image, "pull": "if-missing", "retry": {"attempts": 2, "backoff": "10ms"}}))
        .await;
    let (kind, message) = error_of(&job);
    assert_eq!(kind, "infrastructure", "{job}");
    assert!(message.contains("does not answer"), "{message}");
    assert_eq!(job["attempt"], 2, "retried: {job}");

    // Back up: the same job spec works again.
    reg.resume();
    let job = api.run(spec).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    docker(&["rmi", &image, &one, &two]);
}

#[tokio::test(flavor = "multi_thread")]
async fn mirrors_are_tried_first_bundles_carry_images_and_warm_images_are_kept() {
    let mirror = Registry::start(None);
    let n = std::process::id();
    let local = tiny_image(&format!("gantry-test/mirrored:{n}"), "mirrored");
    mirror.push(&local, &format!("team/mirrored:{n}"));
    // The origin does not exist at all: only the mirror has the image.
    let origin = format!("127.0.0.1:{}", free_port());
    let image = format!("{origin}/team/mirrored:{n}");
    let warm_local = tiny_image(&format!("gantry-test/warm:{n}"), "warm");
    let warm = mirror.push(&warm_local, &format!("team/warm:{n}"));
    docker(&["rmi", &local, &warm_local]);

    let g = Gantry::up(&["--registry-mirror", &mirror.host(), "--warm-image", &warm]);
    let api = g.client();
    let job = api.run(json!({"image": image, "command": ["true"]})).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let msgs = api
        .messages(job["id"].as_str().expect("id"), "system")
        .await;
    assert!(
        msgs.iter()
            .any(|m| m.contains(&format!("from mirror {}", mirror.host()))),
        "{msgs:?}"
    );

    // The warm image is pulled without any job and listed as warm.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, list) = api.get("/v1/images").await;
        let listed = list["images"].as_array().cloned().unwrap_or_default();
        if listed
            .iter()
            .any(|i| i["reference"] == warm.as_str() && i["warm"] == true)
        {
            assert!(listed.iter().any(|i| i["reference"] == image.as_str()
                && i["size"].as_u64() > Some(0)
                && i["last_used"].is_string()));
            break;
        }
        assert!(Instant::now() < deadline, "warm image never listed: {list}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let o = g.cli(&["images", "list"]);
    assert!(stdout(&o).contains(&warm), "{}", stdout(&o));
    assert!(present(&warm));

    // A bundle: export, remove, import (no registry involved).
    let bundle = g.home_path().join("bundle.tar");
    let o = g.cli(&[
        "images",
        "export",
        bundle.to_str().expect("path"),
        &image,
        &warm,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    docker(&["rmi", &image, &warm]);
    assert!(!present(&image));
    let o = g.cli(&["images", "import", bundle.to_str().expect("path")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(present(&image) && present(&warm));

    // `gantry images warm` pulls through a mirror too.
    docker(&["rmi", &image]);
    let o = g.cli(&[
        "images",
        "warm",
        &image,
        "--registry-mirror",
        &mirror.host(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("from mirror"), "{}", stdout(&o));
    assert!(present(&image));
    let o = g.cli(&["images", "warm", &image]);
    assert!(stdout(&o).contains("present"), "{}", stdout(&o));

    // The fleet's warm list: a worker (here after a restart) pulls what is
    // on it without any job.
    let kept_local = tiny_image(&format!("gantry-test/kept:{n}"), "kept");
    let kept = mirror.push(&kept_local, &format!("team/kept:{n}"));
    docker(&["rmi", &kept_local]);
    let o = g.cli(&["images", "keep", &kept]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, listed) = api.get("/v1/images/keep").await;
    assert_eq!(listed["images"], json!([kept]), "{listed}");
    let mut g = g;
    g.stop_with("TERM", Duration::from_secs(30));
    g.start();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !present(&kept) {
        assert!(Instant::now() < deadline, "{kept} never pulled");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let o = g.cli(&["images", "unkeep", &kept]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, listed) = g.client().get("/v1/images/keep").await;
    assert_eq!(listed["images"], json!([]), "{listed}");
    docker(&["rmi", &image, &warm, &kept]);
}

/// A zip written by Python's zipfile, which keeps names as given (so it can
/// write the hostile archives too).
fn python_archive(dir: &Path, name: &str, script: &str) -> PathBuf {
    let path = dir.join(name);
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn code_packages_run_on_stacks_build_once_and_unsafe_archives_are_refused() {
    let g = Gantry::up(&[]);
    let api = g.client();
    let o = g.cli(&["stacks", "add", "busybox-2", IMAGE]);
    assert!(o.status.success(), "{}", stderr(&o));
    let dir = tempfile::tempdir().expect("tmp");
    let n = std::process::id();
    let good = python_archive(
        dir.path(),
        "good.zip",
        &format!(
            r#"
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED)
i = zipfile.ZipInfo("main.sh"); i.external_attr = 0o100755 << 16
z.writestr(i, "echo hello from package {n}; cat /code/lib/data.txt; touch /code/x 2>/dev/null && echo writable || echo read-only\n")
z.writestr("lib/data.txt", "data\n")
z.close()
"#
        ),
    );
    let o = g.cli(&[
        "packages",
        "upload",
        "hello",
        good.to_str().expect("path"),
        "--output",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rev: Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(rev["rev"], 1, "{rev}");
    // The orphan sweep (and backups) count a package's object as named.
    let o = g.cli(&["sweep", "--grace", "0s"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("deleted 0 orphaned objects"),
        "{}",
        stderr(&o)
    );

    let spec = json!({"code": {"package": "hello", "stack": "busybox-2"}, "command": ["sh", "/code/main.sh"]});
    let first = api.run(spec.clone()).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let id = first["id"].as_str().expect("id");
    assert_eq!(
        api.messages(id, "stdout").await,
        vec![
            format!("hello from package {n}"),
            "data".into(),
            "read-only".into()
        ]
    );
    let msgs = api.messages(id, "system").await;
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("building code package hello@1")),
        "{msgs:?}"
    );

    // The same (stack, package) pair builds nothing the second time.
    let second = api.run(spec.clone()).await;
    assert_eq!(second["status"], "succeeded", "{second}");
    let msgs = api
        .messages(second["id"].as_str().expect("id"), "system")
        .await;
    assert!(
        msgs.iter().any(|m| m.contains("is built already")),
        "{msgs:?}"
    );
    assert!(!msgs.iter().any(|m| m.starts_with("build: ")), "{msgs:?}");
    assert_eq!(first["image_digest"], second["image_digest"]);

    // A missing stack or package is the user's error.
    let job = api
        .run(json!({"code": {"package": "hello", "stack": "nope"}}))
        .await;
    assert_eq!(error_of(&job).0, "user_error", "{job}");
    assert!(error_of(&job).1.contains("stack nope"), "{job}");
    let (status, body) = api
        .post(
            "/v1/jobs",
            json!({"spec": {"image": IMAGE, "code": {"package": "hello", "stack": "busybox-2"}}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");

    // Hostile archives are refused at upload with a clear error.
    let hostile = [
        ("slip.zip", "zipfile.ZipFile(p, 'w').writestr('../../etc/cron.d/evil', 'x')", "path with .. refused"),
        ("abs.zip", "zipfile.ZipFile(p, 'w').writestr('/etc/passwd', 'x')", "absolute path refused"),
        (
            "link.zip",
            "z = zipfile.ZipFile(p, 'w'); i = zipfile.ZipInfo('l'); i.external_attr = 0o120777 << 16; z.writestr(i, '../../../etc/shadow'); z.close()",
            "link pointing outside",
        ),
        (
            "bomb.zip",
            "z = zipfile.ZipFile(p, 'w', zipfile.ZIP_DEFLATED); z.writestr('zeros', bytes(200 << 20)); z.close()",
            "unpacks to more than",
        ),
        (
            "dev.tar.gz",
            "t = tarfile.open(p, 'w:gz'); i = tarfile.TarInfo('null'); i.type = tarfile.CHRTYPE; i.devmajor = 1; i.devminor = 3; t.addfile(i); t.close()",
            "device file",
        ),
    ];
    for (name, code, want) in hostile {
        let path = python_archive(
            dir.path(),
            name,
            &format!("import sys, zipfile, tarfile\np = sys.argv[1]\n{code}\n"),
        );
        let bytes = std::fs::read(&path).expect("archive");
        let resp = api
            .req(Method::POST, "/v1/packages/hostile")
            .body(bytes)
            .send()
            .await
            .expect("upload");
        let status = resp.status().as_u16();
        let body = resp.text().await.expect("body");
        assert_eq!(status, 400, "{name}: {body}");
        assert!(body.contains(want), "{name}: {body}");
    }
    let (_, list) = api.get("/v1/packages").await;
    assert!(
        !list.to_string().contains("hostile"),
        "nothing kept of refused packages: {list}"
    );
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.email=t@example", "-c", "user.name=t"])
        .args(args)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A repository with branches `main` (a slow RUN step), `broken` (a failing
/// step) and `slow` (a step longer than any limit), served by `git daemon`.
struct GitServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl GitServer {
    fn start(tag: &str) -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let repo = dir.path().join("repo");
        std::fs::create_dir(&repo).expect("repo");
        git(&repo, &["init", "-q", "-b", "main"]);
        let write = |text: &str| std::fs::write(repo.join("Dockerfile"), text).expect("Dockerfile");
        write(&format!(
            "FROM {IMAGE}\nRUN sleep 2 && echo built {tag} > /built\nCMD [\"cat\", \"/built\"]\n"
        ));
        git(&repo, &["add", "."]);
        git(&repo, &["commit", "-q", "-m", "main"]);
        git(&repo, &["checkout", "-q", "-b", "broken"]);
        write(&format!("FROM {IMAGE}\nRUN echo about to fail && exit 3\n"));
        git(&repo, &["commit", "-q", "-am", "broken"]);
        git(&repo, &["checkout", "-q", "-b", "slow", "main"]);
        write(&format!("FROM {IMAGE}\nRUN sleep 120\n"));
        git(&repo, &["commit", "-q", "-am", "slow"]);
        let port = free_port();
        let child = Command::new("git")
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                &format!("--base-path={}", dir.path().display()),
                dir.path().to_str().expect("path"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon");
        wait_port(port);
        Self {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("git://127.0.0.1:{}/repo", self.port)
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn git_builds_stream_into_the_log_reuse_the_commit_and_fail_as_build_error() {
    let g = Gantry::up(&[]);
    let api = g.client();
    let tag = format!("t{}", std::process::id());
    let server = GitServer::start(&tag);

    let spec = json!({"build": {"git": server.url(), "ref": "main"}});
    let first = api.run(spec.clone()).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let id = first["id"].as_str().expect("id");
    assert_eq!(
        api.messages(id, "stdout").await,
        vec![format!("built {tag}")]
    );
    let msgs = api.messages(id, "system").await;
    assert!(
        msgs.iter().any(|m| m.starts_with("build: ")),
        "build output in the log: {msgs:?}"
    );
    assert!(
        msgs.iter().any(|m| m.starts_with("image gantry-git/")),
        "{msgs:?}"
    );

    // The same commit again: no build at all.
    let second = api.run(spec).await;
    assert_eq!(second["status"], "succeeded", "{second}");
    let msgs = api
        .messages(second["id"].as_str().expect("id"), "system")
        .await;
    assert!(
        msgs.iter().any(|m| m.contains("is built already")),
        "{msgs:?}"
    );
    assert!(!msgs.iter().any(|m| m.starts_with("build: ")), "{msgs:?}");
    assert_eq!(first["image_digest"], second["image_digest"]);

    // A failing step: build_error with the tail of the build log, not retried.
    let job = api
        .run(json!({"build": {"git": server.url(), "ref": "broken"}, "retry": {"attempts": 3, "backoff": "10ms"}}))
        .await;
    let (kind, message) = error_of(&job);
    assert_eq!(kind, "build_error", "{job}");
    assert!(message.contains("about to fail"), "{message}");
    assert_eq!(job["attempt"], 1, "not retried: {job}");

    // A build past its time limit is stopped.
    let job = api
        .run(json!({"build": {"git": server.url(), "ref": "slow", "timeout": "3s"}}))
        .await;
    let (kind, message) = error_of(&job);
    assert_eq!(kind, "build_error", "{job}");
    assert!(message.contains("ran longer than"), "{message}");

    // An unknown ref; a file:// URL on a worker that does not allow them;
    // a plain path is refused at submit.
    let job = api
        .run(json!({"build": {"git": server.url(), "ref": "nope"}}))
        .await;
    assert_eq!(error_of(&job).0, "build_error", "{job}");
    assert!(error_of(&job).1.contains("not found"), "{job}");
    let job = api
        .run(json!({"build": {"git": "file:///etc", "ref": "main"}}))
        .await;
    assert_eq!(error_of(&job).0, "build_error", "{job}");
    assert!(error_of(&job).1.contains("not allowed"), "{job}");
    for url in ["/etc", "ext::sh -c id", "ssh://h/r"] {
        let (status, body) = api
            .post("/v1/jobs", json!({"spec": {"build": {"git": url}}}))
            .await;
        assert_eq!(status, 400, "{url}: {body}");
        assert!(body.to_string().contains("build.git"), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn image_gc_removes_the_least_recently_used_past_the_budget_never_warm_or_in_use() {
    let n = std::process::id();
    let reg = Registry::start(None);
    let names: Vec<String> = ["old", "newer", "warm", "used"]
        .iter()
        .map(|l| {
            let local = tiny_image(&format!("gantry-test/gc-{l}:{n}"), &format!("gc-{l}-{n}"));
            let pushed = reg.push(&local, &format!("gc/{l}:{n}"));
            docker(&["rmi", &local]);
            pushed
        })
        .collect();
    let (old, newer, warm, used) = (&names[0], &names[1], &names[2], &names[3]);

    let mut g = Gantry::up(&[]);
    let api = g.client();
    for image in [old, newer, warm, used] {
        let job = api.run(json!({"image": image, "command": ["true"]})).await;
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    let (_, list) = api.get("/v1/images").await;
    let total: u64 = list["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|i| i["size"].as_u64().expect("size"))
        .sum();
    // A container made from `used` keeps it.
    let container = docker(&["create", used, "true"]);

    // Restart with a budget one byte short of what is held: GC removes the
    // least recently used image that is neither warm nor in use, and stops.
    g.stop_with("TERM", Duration::from_secs(30));
    let budget = (total - 1).to_string();
    let args: Vec<String> = [
        "up",
        "--listen",
        "127.0.0.1:0",
        "--image-budget",
        &budget,
        "--image-idle",
        "0s",
        "--warm-image",
        warm,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    g.start_with(&args);
    let deadline = Instant::now() + Duration::from_secs(60);
    while present(old) {
        assert!(
            Instant::now() < deadline,
            "the image GC never removed {old}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let api = g.client();
    let (_, list) = api.get("/v1/images").await;
    let refs: Vec<&str> = list["images"]
        .as_array()
        .expect("images")
        .iter()
        .filter_map(|i| i["reference"].as_str())
        .collect();
    assert!(!refs.contains(&old.as_str()), "{list}");
    for kept in [newer, warm, used] {
        assert!(present(kept), "{kept} kept");
        assert!(refs.contains(&kept.as_str()), "{kept}: {list}");
    }
    docker(&["rm", &container]);
    docker(&["rmi", newer, warm, used]);
}

/// `git http-backend` behind HTTP basic auth (bob / the password), served
/// by a few lines of Python's http.server.
struct HttpGit {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

const HTTP_GIT: &str = r#"
import base64, http.server, os, subprocess, sys
root, port, login = sys.argv[1], int(sys.argv[2]), sys.argv[3]
want = "Basic " + base64.b64encode(login.encode()).decode()
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self): self.git()
    def do_POST(self): self.git()
    def git(self):
        if self.headers.get("Authorization") != want:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        env = dict(os.environ, GIT_PROJECT_ROOT=root, GIT_HTTP_EXPORT_ALL="1", PATH_INFO=path,
                   QUERY_STRING=query, REQUEST_METHOD=self.command, REMOTE_USER="bob",
                   CONTENT_TYPE=self.headers.get("Content-Type", ""))
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
        head, _, rest = out.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode().split("\r\n"):
            k, _, v = line.partition(": ")
            if k.lower() == "status":
                status = int(v.split()[0])
            elif k:
                headers.append((k, v))
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(rest)))
        self.end_headers()
        self.wfile.write(rest)
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
"#;

impl HttpGit {
    fn start(password: &str, tag: &str) -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let work = dir.path().join("work");
        std::fs::create_dir(&work).expect("work");
        git(&work, &["init", "-q", "-b", "main"]);
        std::fs::write(
            work.join("Dockerfile"),
            format!("FROM {IMAGE}\nCMD [\"echo\", \"private build {tag}\"]\n"),
        )
        .expect("Dockerfile");
        git(&work, &["add", "."]);
        git(&work, &["commit", "-q", "-m", "private"]);
        git(dir.path(), &["clone", "-q", "--bare", "work", "repo.git"]);
        let port = free_port();
        let child = Command::new("python3")
            .arg("-c")
            .arg(HTTP_GIT)
            .arg(dir.path())
            .arg(port.to_string())
            .arg(format!("bob:{password}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        wait_port(port);
        Self {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for HttpGit {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn git_builds_over_http_use_the_projects_login_and_no_other_projects() {
    let g = Gantry::up(&[]);
    let api = g.client();
    let tag = format!("h{}", std::process::id());
    let server = HttpGit::start("git-pa55", &tag);
    let host = format!("127.0.0.1:{}", server.port);
    let spec = json!({"build": {"git": format!("http://{host}/repo.git"), "ref": "main"}});

    // No login: git is refused, and asks nobody (no terminal prompt).
    let job = api.run(spec.clone()).await;
    let (kind, message) = error_of(&job);
    assert_eq!(kind, "build_error", "{job}");
    assert!(message.contains("git ls-remote failed"), "{message}");

    // The project's login for the host (the same store as registry logins).
    let o = cli_with_stdin(
        &g,
        &[
            "registries",
            "add",
            &host,
            "--username",
            "bob",
            "--password-stdin",
        ],
        "git-pa55\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let job = api.run(spec.clone()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let id = job["id"].as_str().expect("id");
    assert_eq!(
        api.messages(id, "stdout").await,
        vec![format!("private build {tag}")]
    );
    let events = serde_json::to_string(&api.events(id).await).expect("json");
    assert!(!events.contains("git-pa55"), "{events}");
    assert!(!g.log.lock().expect("log").join("\n").contains("git-pa55"));

    // Another project: neither the login nor the image built with it.
    assert!(g.cli(&["projects", "create", "other"]).status.success());
    let o = g.cli(&["tokens", "create", "--project", "other", "--output", "json"]);
    let created: Value = serde_json::from_str(&stdout(&o)).expect("json");
    let other = Api {
        http: reqwest::Client::new(),
        url: g.url.clone(),
        token: Some(created["token"].as_str().expect("token").to_string()),
    };
    let job = other.run(spec).await;
    assert_eq!(error_of(&job).0, "build_error", "{job}");
}
