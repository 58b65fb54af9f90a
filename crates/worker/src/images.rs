//! Where a job's image comes from, before its attempt runs: a pull under the
//! spec's policy with the project's registry login (through the worker's
//! mirrors first), a code package built onto a stack, or a build from git.
//! Also what a worker keeps: warm images pulled ahead of need, and the
//! garbage collection of images no job used for a while.
//!
//! The result is the image's id: the attempt runs exactly that image
//! (`pull: never` on the id), and the job records it as its digest.

use bytes::Bytes;
use gantry_core::events::LogLine;
use gantry_core::image_source::{CodeSource, GitBuild};
use gantry_core::job::Outcome;
use gantry_core::{ErrorKind, ProjectId, PullPolicy, Spec};
use gantry_runtime::{
    registry_host, BuildRequest, ContainerRuntime, HeldImage, RegistryAuth, RuntimeError,
};
use gantry_storage::Storage;
use gantry_store::{EngineImage, Store, StoreError};
use gantry_vault::Vault;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// What a worker's operator sets about images.
#[derive(Clone, Debug, Default)]
pub struct ImageConfig {
    /// Registry mirrors (`host[:port]`), tried in order before the origin.
    pub mirrors: Vec<String>,
    /// Images to keep present (pulled at start and every sweep; never collected).
    pub warm: Vec<String>,
    /// Allow `build.git` URLs with the `file` scheme (tests, local mirrors).
    pub git_allow_file: bool,
    /// Collect images once the engine holds more than this many bytes of
    /// Gantry's images (`None`: never).
    pub budget: Option<u64>,
    /// Only images no job used for this long are collected.
    pub idle: Duration,
}

/// How long a git fetch or `ls-remote` may take.
const GIT_TIMEOUT: Duration = Duration::from_secs(300);
/// Largest git build context (a `git archive` of the context folder).
const MAX_GIT_CONTEXT: usize = 512 << 20;

/// Resolves and keeps images for one worker.
#[derive(Clone)]
pub struct Images {
    pub store: Arc<dyn Store>,
    pub storage: Storage,
    pub vault: Vault,
    pub runtime: Arc<dyn ContainerRuntime>,
    pub worker_id: gantry_core::WorkerId,
    pub cfg: ImageConfig,
    /// When each reference's use was last written (at most once a minute:
    /// the GC counts in days, and a job's path should not write for it).
    pub touched: Arc<std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>>,
}

/// How often one reference's last use is written to the store.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

fn infra(m: impl Into<String>) -> Outcome {
    Outcome::failed(ErrorKind::Infrastructure, m, None)
}

fn not_found(m: impl Into<String>) -> Outcome {
    Outcome::failed(ErrorKind::ImageNotFound, m, None)
}

fn build_error(m: impl Into<String>) -> Outcome {
    Outcome::failed(ErrorKind::BuildError, m, None)
}

fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

async fn say(tx: &mpsc::Sender<LogLine>, level: &str, m: impl Into<String>) {
    let _ = tx.send(LogLine::system(level, m)).await;
}

/// The reference without its registry host (`h:5000/a/b:1` → `a/b:1`).
fn path_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => rest,
        _ => image,
    }
}

impl Images {
    /// Makes the spec's image present and points the spec at its id.
    pub async fn resolve(
        &self,
        project: &ProjectId,
        spec: &mut Spec,
        tx: &mpsc::Sender<LogLine>,
    ) -> Result<(), Outcome> {
        let (reference, kind, held) = if let Some(code) = spec.code.clone() {
            let (r, h) = self.code_image(project, &code, spec, tx).await?;
            (r, "package", h)
        } else if let Some(build) = spec.build.clone() {
            let (r, h) = self.git_image(project, &build, spec, tx).await?;
            (r, "git", h)
        } else {
            let image = spec.image.clone();
            let h = self.pulled(project, &image, spec.pull, tx).await?;
            (image, "pulled", h)
        };
        say(
            tx,
            "info",
            format!(
                "image {reference} is {}{}",
                held.id,
                held.repo_digests
                    .first()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            ),
        )
        .await;
        let record = EngineImage {
            worker_id: self.worker_id.clone(),
            reference: reference.clone(),
            image_id: held.id.clone(),
            kind: kind.into(),
            size: held.size,
            warm: false,
            last_used: 0,
            created_at: 0,
        };
        let due = self.touched.lock().map_or(true, |mut m| {
            let now = std::time::Instant::now();
            // A tag that moved to another image is written at once.
            let key = format!("{}\n{}", record.reference, record.image_id);
            match m.get(&key) {
                Some(at) if now.duration_since(*at) < TOUCH_EVERY => false,
                _ => {
                    m.insert(key, now);
                    true
                }
            }
        });
        if due {
            if let Err(e) = self.store.touch_image(&record).await {
                tracing::warn!(error = %e, "cannot record an image's use");
            }
        }
        // Processors' images under the same policy and the project's logins
        // (their steps copy this spec, so they run with `never` below too).
        let mut extra: Vec<String> = std::iter::once(&spec.processors)
            .chain(spec.rows.iter().map(|r| &r.processors))
            .flat_map(|p| p.before.iter().chain(p.after.iter()))
            .map(|p| p.definition.image())
            .collect();
        extra.sort();
        extra.dedup();
        for image in extra {
            self.pulled(project, &image, spec.pull, tx).await?;
        }
        // By name (the log and the job's steps keep showing it); the name
        // now points at `held.id`, which the attempt records as its digest.
        spec.image = reference;
        spec.pull = PullPolicy::Never;
        Ok(())
    }

    /// The project's login to the image's registry host, opened.
    async fn login(
        &self,
        project: &ProjectId,
        image: &str,
    ) -> Result<Option<RegistryAuth>, Outcome> {
        self.login_for_host(project, &registry_host(image)).await
    }

    /// The project's login to `host` (registries and git servers alike).
    async fn login_for_host(
        &self,
        project: &ProjectId,
        host: &str,
    ) -> Result<Option<RegistryAuth>, Outcome> {
        let login = self
            .store
            .registry_login(project, host)
            .await
            .map_err(|e| infra(format!("cannot read the registry login of {host}: {e}")))?;
        match login {
            None => Ok(None),
            Some(l) => {
                let password = self
                    .vault
                    .open(&l.sealed_password)
                    .map_err(|e| infra(format!("cannot open the registry login of {host}: {e}")))?;
                Ok(Some(RegistryAuth {
                    username: l.username,
                    password,
                }))
            }
        }
    }

    async fn held(&self, image: &str) -> Result<Option<HeldImage>, Outcome> {
        self.runtime
            .held_image(image)
            .await
            .map_err(|e| infra(e.to_string()))
    }

    /// A pulled image under `policy`. `always` asks the registry for the
    /// tag's digest and pulls only when it changed; a registry that does
    /// not answer leaves the local image in use.
    pub async fn pulled(
        &self,
        project: &ProjectId,
        image: &str,
        policy: PullPolicy,
        tx: &mpsc::Sender<LogLine>,
    ) -> Result<HeldImage, Outcome> {
        let present = self.held(image).await?;
        let auth = match (policy, &present) {
            (PullPolicy::Never, _) | (PullPolicy::IfMissing, Some(_)) => None,
            _ => self.login(project, image).await?,
        };
        match (policy, present) {
            (PullPolicy::Never, Some(h)) | (PullPolicy::IfMissing, Some(h)) => Ok(h),
            (PullPolicy::Never, None) => Err(not_found(format!(
                "image {image} is not present and pull is 'never'"
            ))),
            (PullPolicy::Always, Some(h)) => {
                match self.runtime.registry_digest(image, auth.as_ref()).await {
                    Ok(digest) => {
                        if h.repo_digests
                            .iter()
                            .any(|d| d.ends_with(&format!("@{digest}")))
                        {
                            say(
                                tx,
                                "info",
                                format!("image {image} is up to date ({digest})"),
                            )
                            .await;
                            return Ok(h);
                        }
                        say(
                            tx,
                            "info",
                            format!("image {image} changed in its registry ({digest})"),
                        )
                        .await;
                        self.pull(image, auth.as_ref(), Some(h), tx).await
                    }
                    Err(RuntimeError::Unreachable { message, .. }) => {
                        say(
                            tx,
                            "warning",
                            format!(
                                "the registry of {image} does not answer ({message}); running the local image {}",
                                short(&h.id)
                            ),
                        )
                        .await;
                        Ok(h)
                    }
                    Err(e) => Err(self.pull_failure(image, e)),
                }
            }
            (_, None) => self.pull(image, auth.as_ref(), None, tx).await,
        }
    }

    fn pull_failure(&self, image: &str, e: RuntimeError) -> Outcome {
        match e {
            RuntimeError::AuthFailed { message, .. } => not_found(format!(
                "image {image}: authentication failed at registry {} ({message}); check the project's login (gantry registries)",
                registry_host(image)
            )),
            RuntimeError::ImageNotFound(m) => not_found(format!("image {m} not found")),
            e @ RuntimeError::PullFailed { .. } => not_found(e.to_string()),
            RuntimeError::Unreachable { message, .. } => infra(format!(
                "the registry of {image} does not answer ({message}) and the engine has no copy of it"
            )),
            other => infra(other.to_string()),
        }
    }

    /// Pulls through the mirrors, then the origin.
    async fn pull(
        &self,
        image: &str,
        auth: Option<&RegistryAuth>,
        fallback: Option<HeldImage>,
        tx: &mpsc::Sender<LogLine>,
    ) -> Result<HeldImage, Outcome> {
        let progress_tx = tx.clone();
        let progress = move |line: String| {
            let _ = progress_tx.try_send(LogLine::system("info", format!("pull: {line}")));
        };
        let pulling = std::time::Instant::now();
        let origin = registry_host(image);
        for mirror in self.cfg.mirrors.iter().filter(|m| **m != origin) {
            let mirrored = format!("{mirror}/{}", path_of(image));
            say(
                tx,
                "info",
                format!("pulling image {image} from mirror {mirror}"),
            )
            .await;
            match self.runtime.pull_with(&mirrored, None, &progress).await {
                Ok(()) => {
                    self.runtime
                        .tag(&mirrored, image)
                        .await
                        .map_err(|e| infra(e.to_string()))?;
                    let _ = self.runtime.remove_image(&mirrored).await;
                    gantry_metrics::global()
                        .observe(gantry_metrics::Phase::ImagePull, pulling.elapsed());
                    return self.held(image).await?.ok_or_else(|| {
                        not_found(format!("image {image} is missing after its pull"))
                    });
                }
                Err(e) => say(tx, "warning", format!("mirror {mirror}: {e}")).await,
            }
        }
        say(tx, "info", format!("pulling image {image}")).await;
        let pulled = self.runtime.pull_with(image, auth, &progress).await;
        gantry_metrics::global().observe(gantry_metrics::Phase::ImagePull, pulling.elapsed());
        match pulled {
            Ok(()) => self
                .held(image)
                .await?
                .ok_or_else(|| not_found(format!("image {image} is missing after its pull"))),
            Err(RuntimeError::Unreachable { message, .. }) if fallback.is_some() => {
                say(
                    tx,
                    "warning",
                    format!("the registry of {image} does not answer ({message}); running the local image"),
                )
                .await;
                fallback.ok_or_else(|| infra("no local image"))
            }
            Err(e) => Err(self.pull_failure(image, e)),
        }
    }

    /// Stack + code package, built once per (stack image, package digest).
    async fn code_image(
        &self,
        project: &ProjectId,
        code: &CodeSource,
        spec: &Spec,
        tx: &mpsc::Sender<LogLine>,
    ) -> Result<(String, HeldImage), Outcome> {
        let user = |e: StoreError| match e {
            StoreError::NotFound(what) => {
                Outcome::failed(ErrorKind::UserError, format!("{what} does not exist"), None)
            }
            other => infra(other.to_string()),
        };
        let stack = self.store.get_stack(&code.stack).await.map_err(user)?;
        let package = self
            .store
            .get_package(project, &code.package, code.rev)
            .await
            .map_err(user)?;
        let base = self
            .pulled(project, &stack.image, PullPolicy::IfMissing, tx)
            .await?;
        let key = hex(&Sha256::digest(format!("{}\n{}", base.id, package.sha256)));
        let tag = format!("gantry-code:{}", &key[..32]);
        if let Some(h) = self.held(&tag).await? {
            say(
                tx,
                "info",
                format!(
                    "code package {}@{} on stack {} is built already",
                    package.name, package.rev, stack.name
                ),
            )
            .await;
            return Ok((tag, h));
        }
        say(
            tx,
            "info",
            format!(
                "building code package {}@{} on stack {} ({})",
                package.name, package.rev, stack.name, stack.image
            ),
        )
        .await;
        let archive = self
            .storage
            .package_bytes(&package)
            .await
            .map_err(|e| infra(format!("cannot read code package {}: {e}", package.name)))?;
        // FROM the stack's name, which points at `base.id` now (no pull in
        // a build): the cache key above holds the id.
        let from = stack.image.clone();
        let context = tokio::task::spawn_blocking(move || {
            gantry_storage::packages::build_context(&archive, &from)
        })
        .await
        .map_err(|e| infra(e.to_string()))?
        .map_err(|e| build_error(e.to_string()))?;
        let mut labels = BTreeMap::new();
        labels.insert("io.gantry.source".to_string(), "package".to_string());
        let req = BuildRequest {
            tag: tag.clone(),
            dockerfile: "Dockerfile".into(),
            memory: 512 << 20,
            cpus: spec.limits.cpus,
            network: "none".into(),
            labels,
        };
        self.build(&req, context, Duration::from_secs(600), tx)
            .await?;
        let held = self
            .held(&tag)
            .await?
            .ok_or_else(|| build_error("the build made no image"))?;
        Ok((tag, held))
    }

    async fn build(
        &self,
        req: &BuildRequest,
        context: Bytes,
        limit: Duration,
        tx: &mpsc::Sender<LogLine>,
    ) -> Result<String, Outcome> {
        let progress_tx = tx.clone();
        let progress = move |line: String| {
            let _ = progress_tx.try_send(LogLine::system("info", format!("build: {line}")));
        };
        let started = std::time::Instant::now();
        let built = tokio::time::timeout(limit, self.runtime.build(req, context, &progress)).await;
        match built {
            Err(_) => Err(build_error(format!(
                "the build ran longer than its limit ({}s) and was stopped",
                limit.as_secs()
            ))),
            Ok(Ok(id)) => {
                say(
                    tx,
                    "info",
                    format!("built {} in {} ms", req.tag, started.elapsed().as_millis()),
                )
                .await;
                Ok(id)
            }
            Ok(Err(RuntimeError::BuildFailed(tail))) => Err(build_error(format!(
                "the build of {} failed:\n{tail}",
                req.tag
            ))),
            Ok(Err(e)) => Err(infra(e.to_string())),
        }
    }

    /// A build from git, tagged by commit; a commit built before is reused.
    async fn git_image(
        &self,
        project: &ProjectId,
        build: &GitBuild,
        spec: &Spec,
        tx: &mpsc::Sender<LogLine>,
    ) -> Result<(String, HeldImage), Outcome> {
        if build.url.starts_with("file://") && !self.cfg.git_allow_file {
            return Err(build_error(format!(
                "build.git: file:// URLs are not allowed on this worker ({})",
                build.url
            )));
        }
        // Not under the work folder: its sweep removes what no attempt owns.
        let dir = tempfile::Builder::new()
            .prefix("gantry-git-")
            .tempdir()
            .map_err(|e| infra(format!("cannot make a folder for the fetch: {e}")))?;
        let auth = match git_http_host(&build.url) {
            Some(host) => self.login_for_host(project, &host).await?,
            None => None,
        };
        let git = GitCtx::new(
            dir.path(),
            auth,
            tokio::time::Instant::now() + build.timeout,
        )?;
        // A repository fetched with a project's login is that project's:
        // another project's job never reuses its image without its own login.
        let mut key = build.url.clone();
        if git.auth.is_some() {
            key.push('\n');
            key.push_str(project.as_str());
        }
        let repo = &hex(&Sha256::digest(key.as_bytes()))[..24];
        let commit = if is_commit(&build.git_ref) {
            build.git_ref.clone()
        } else {
            let out = self
                .git(&git, &["ls-remote", "--", &build.url, &build.git_ref])
                .await?;
            let found = out
                .lines()
                .filter_map(|l| l.split_once('\t'))
                .find(|(_, name)| {
                    *name == build.git_ref
                        || *name == format!("refs/heads/{}", build.git_ref)
                        || *name == format!("refs/tags/{}", build.git_ref)
                })
                .map(|(sha, _)| sha.to_string());
            found.ok_or_else(|| {
                build_error(format!(
                    "build.ref: {} not found in {}",
                    build.git_ref, build.url
                ))
            })?
        };
        let tag = format!("gantry-git/{repo}:{commit}");
        if let Some(h) = self.held(&tag).await? {
            say(
                tx,
                "info",
                format!("commit {commit} of {} is built already", build.url),
            )
            .await;
            return Ok((tag, h));
        }
        say(tx, "info", format!("fetching {} at {commit}", build.url)).await;
        self.git(&git, &["init", "-q", "--bare", "repo.git"])
            .await?;
        let fetch_ref = if is_commit(&build.git_ref) {
            commit.as_str()
        } else {
            build.git_ref.as_str()
        };
        self.git(
            &git,
            &[
                "--git-dir",
                "repo.git",
                "fetch",
                "-q",
                "--depth",
                "1",
                "--",
                &build.url,
                fetch_ref,
            ],
        )
        .await?;
        let fetched = self
            .git(
                &git,
                &["--git-dir", "repo.git", "rev-parse", "FETCH_HEAD^{commit}"],
            )
            .await?;
        let fetched = fetched.trim().to_string();
        let (commit, tag) = if fetched == commit {
            (commit, tag)
        } else {
            // The ref moved between the look-up and the fetch: build what came.
            let t = format!("gantry-git/{repo}:{fetched}");
            (fetched, t)
        };
        let tree = if build.context == "." {
            commit.clone()
        } else {
            format!("{commit}:{}", build.context.trim_start_matches("./"))
        };
        let context = self
            .git_run(
                &git,
                &["--git-dir", "repo.git", "archive", "--format=tar", &tree],
            )
            .await?;
        if context.len() > MAX_GIT_CONTEXT {
            return Err(build_error(format!(
                "the build context is larger than {} MiB",
                MAX_GIT_CONTEXT >> 20
            )));
        }
        let mut labels = BTreeMap::new();
        labels.insert("io.gantry.source".to_string(), "git".to_string());
        labels.insert("io.gantry.git.commit".to_string(), commit.clone());
        let req = BuildRequest {
            tag: tag.clone(),
            dockerfile: build.dockerfile.clone(),
            memory: build.memory,
            cpus: spec.limits.cpus,
            network: spec.limits.network.as_str().to_string(),
            labels,
        };
        let left = git
            .deadline
            .saturating_duration_since(tokio::time::Instant::now());
        self.build(&req, Bytes::from(context), left, tx).await?;
        let held = self
            .held(&tag)
            .await?
            .ok_or_else(|| build_error("the build made no image"))?;
        Ok((tag, held))
    }

    fn git_command(&self, git: &GitCtx, args: &[&str]) -> tokio::process::Command {
        let mut allowed = "https:http:git".to_string();
        if self.cfg.git_allow_file {
            allowed.push_str(":file");
        }
        let mut cmd = tokio::process::Command::new("git");
        cmd.args(args)
            .current_dir(git.dir)
            .env("GIT_ALLOW_PROTOCOL", allowed)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        // A login reaches git through its askpass program and this child's
        // environment only: never on a command line or in a URL.
        if let (Some(askpass), Some(auth)) = (&git.askpass, &git.auth) {
            cmd.env("GIT_ASKPASS", askpass)
                .env("GANTRY_GIT_USERNAME", &auth.username)
                .env("GANTRY_GIT_PASSWORD", &auth.password);
        }
        cmd
    }

    async fn git(&self, git: &GitCtx<'_>, args: &[&str]) -> Result<String, Outcome> {
        let out = self.git_run(git, args).await?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    async fn git_run(&self, git: &GitCtx<'_>, args: &[&str]) -> Result<Vec<u8>, Outcome> {
        let verb = args
            .iter()
            .find(|a| !a.starts_with('-') && !a.ends_with(".git"))
            .copied()
            .unwrap_or("git");
        let child = self
            .git_command(git, args)
            .spawn()
            .map_err(|e| infra(format!("cannot run git: {e}")))?;
        let limit = git
            .deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .min(GIT_TIMEOUT);
        let out = match tokio::time::timeout(limit, child.wait_with_output()).await {
            Err(_) => {
                return Err(build_error(format!(
                    "git {verb} ran longer than the build's limit"
                )))
            }
            Ok(r) => r.map_err(|e| infra(format!("git {verb}: {e}")))?,
        };
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = err.lines().rev().take(10).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(build_error(format!(
                "git {verb} failed: {}",
                tail.join("\n")
            )));
        }
        Ok(out.stdout)
    }

    /// Pulls the warm images that are missing (no project login: warm images
    /// are the operator's) and marks them warm.
    pub async fn keep_warm(&self) {
        let (tx, mut rx) = mpsc::channel(256);
        let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let project = ProjectId::default_project();
        let mut images = self.cfg.warm.clone();
        match self.store.kept_images().await {
            Ok(kept) => images.extend(kept),
            Err(e) => tracing::warn!(error = %e, "cannot read the fleet's warm images"),
        }
        images.sort();
        images.dedup();
        for image in &images {
            match self
                .pulled(&project, image, PullPolicy::IfMissing, &tx)
                .await
            {
                Ok(h) => {
                    let record = EngineImage {
                        worker_id: self.worker_id.clone(),
                        reference: image.clone(),
                        image_id: h.id,
                        kind: "pulled".into(),
                        size: h.size,
                        warm: true,
                        last_used: 0,
                        created_at: 0,
                    };
                    if let Err(e) = self.store.touch_image(&record).await {
                        tracing::warn!(error = %e, "cannot record a warm image");
                    }
                }
                Err(o) => {
                    let why = o.error.map(|e| e.message).unwrap_or_default();
                    tracing::warn!(image = %image, error = %why, "cannot warm an image");
                }
            }
        }
        drop(tx);
        let _ = drain.await;
    }

    /// Removes images of this worker no job used for `idle` while they add
    /// up past the budget: least recently used first, never a warm one,
    /// never one a container uses. Returns the references removed.
    pub async fn collect_garbage(&self, now_ms: i64) -> Vec<String> {
        let Some(budget) = self.cfg.budget else {
            return Vec::new();
        };
        let records = match self.store.list_images(Some(&self.worker_id)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "image GC: cannot list images");
                return Vec::new();
            }
        };
        let in_use = match self.runtime.images_in_use().await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "image GC: cannot list containers");
                return Vec::new();
            }
        };
        let mut warm: Vec<String> = self.cfg.warm.clone();
        match self.store.kept_images().await {
            Ok(kept) => warm.extend(kept),
            Err(e) => {
                tracing::warn!(error = %e, "image GC: cannot read the fleet's warm images");
                return Vec::new();
            }
        }
        let mut total: u64 = records.iter().map(|r| r.size).sum();
        let mut removed = Vec::new();
        for r in &records {
            if total <= budget {
                break;
            }
            let idle_ms = now_ms - r.last_used;
            if r.warm
                || warm.contains(&r.reference)
                || in_use.contains(&r.image_id)
                || idle_ms < self.cfg.idle.as_millis() as i64
            {
                continue;
            }
            match self.runtime.remove_image(&r.reference).await {
                Ok(()) => {
                    tracing::info!(image = %r.reference, size = r.size, "image GC: removed");
                    let _ = self.store.forget_image(&self.worker_id, &r.reference).await;
                    total = total.saturating_sub(r.size);
                    removed.push(r.reference.clone());
                }
                Err(e) => {
                    tracing::warn!(image = %r.reference, error = %e, "image GC: cannot remove")
                }
            }
        }
        removed
    }
}

/// One git build's scratch folder, login and deadline.
struct GitCtx<'a> {
    dir: &'a std::path::Path,
    auth: Option<RegistryAuth>,
    /// A program git asks for the login (prints it from its environment).
    askpass: Option<std::path::PathBuf>,
    deadline: tokio::time::Instant,
}

impl<'a> GitCtx<'a> {
    fn new(
        dir: &'a std::path::Path,
        auth: Option<RegistryAuth>,
        deadline: tokio::time::Instant,
    ) -> Result<Self, Outcome> {
        let askpass = match &auth {
            None => None,
            Some(_) => {
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let path = dir.join("askpass");
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o700)
                    .open(&path)
                    .map_err(|e| infra(format!("cannot write git's askpass: {e}")))?;
                f.write_all(
                    b"#!/bin/sh\ncase \"$1\" in\n  Username*) printf '%s\\n' \"$GANTRY_GIT_USERNAME\" ;;\n  *) printf '%s\\n' \"$GANTRY_GIT_PASSWORD\" ;;\nesac\n",
                )
                .map_err(|e| infra(format!("cannot write git's askpass: {e}")))?;
                Some(path)
            }
        };
        Ok(Self {
            dir,
            auth,
            askpass,
            deadline,
        })
    }
}

/// `host[:port]` of an http(s) git URL (a login is looked up for it).
fn git_http_host(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    (!host.is_empty()).then(|| host.to_string())
}

fn is_commit(r: &str) -> bool {
    r.len() == 40 && r.chars().all(|c| c.is_ascii_hexdigit())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_paths_drop_the_origin_host() {
        assert_eq!(path_of("127.0.0.1:5000/team/app:1"), "team/app:1");
        assert_eq!(path_of("team/app:1"), "team/app:1");
        assert_eq!(path_of("busybox"), "busybox");
        assert_eq!(
            git_http_host("https://u@git.example:8443/team/app.git").as_deref(),
            Some("git.example:8443")
        );
        assert_eq!(git_http_host("git://h/r"), None);
    }
}
