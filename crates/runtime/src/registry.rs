//! Images beyond a plain pull, over the Docker Engine API: pulls with a
//! registry login, the registry's digest of a tag (no pull), builds from a
//! tar context, tags, removal, `docker save`/`load` bundles. Registry
//! failures are sorted into what they mean for a job: the credentials were
//! refused ([`RuntimeError::AuthFailed`]), the registry did not answer
//! ([`RuntimeError::Unreachable`]), the image does not exist
//! ([`RuntimeError::ImageNotFound`]).

use crate::docker::{split_reference, timed, timed_raw, PULL_STALL_TIMEOUT};
use crate::*;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{
    BuildImageOptions, CreateImageOptions, ImportImageOptions, ListContainersOptions,
    RemoveImageOptions, TagImageOptions,
};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

/// A registry login, opened from the vault just before use.
#[derive(Clone)]
pub struct RegistryAuth {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("password", &"[hidden]")
            .finish()
    }
}

/// What the engine holds under a name.
#[derive(Debug, Clone, Default)]
pub struct HeldImage {
    pub id: String,
    /// `repo@sha256:...`, one per registry the image came from or went to.
    pub repo_digests: Vec<String>,
    pub size: u64,
}

/// One image build.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub tag: String,
    /// Path of the Dockerfile inside the context.
    pub dockerfile: String,
    pub memory: u64,
    pub cpus: f64,
    /// `none` unless the job may use the network.
    pub network: String,
    pub labels: BTreeMap<String, String>,
}

/// The registry host of an image reference, as the engine reads it: the
/// first path part when it has a `.` or `:` or is `localhost`, else Docker
/// Hub (`docker.io`).
pub fn registry_host(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first.to_string(),
        _ => "docker.io".to_string(),
    }
}

fn credentials(auth: Option<&RegistryAuth>, image: &str) -> Option<DockerCredentials> {
    auth.map(|a| DockerCredentials {
        username: Some(a.username.clone()),
        password: Some(a.password.clone()),
        serveraddress: Some(registry_host(image)),
        ..Default::default()
    })
}

/// Sorts a registry failure (the engine forwards the registry's words).
pub(crate) fn registry_error(image: &str, status: Option<u16>, message: &str) -> RuntimeError {
    let m = message.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| m.contains(w));
    let (image, message) = (image.to_string(), message.to_string());
    if has(&[
        "unauthorized",
        "authentication required",
        "no basic auth credentials",
        "incorrect username or password",
        "denied",
    ]) {
        RuntimeError::AuthFailed { image, message }
    } else if has(&[
        "dial tcp",
        "connection refused",
        "no such host",
        "i/o timeout",
        "tls handshake timeout",
        "connection reset",
        "deadline exceeded",
        "client.timeout",
        "server misbehaving",
        "network is unreachable",
        "no route to host",
        "unexpected eof",
        "502 bad gateway",
        "503 service unavailable",
        "504 gateway",
    ]) {
        RuntimeError::Unreachable { image, message }
    } else if status == Some(404)
        || has(&[
            "manifest unknown",
            "not found",
            "does not exist",
            "name unknown",
        ])
    {
        RuntimeError::ImageNotFound(format!("{image} ({message})"))
    } else {
        RuntimeError::PullFailed { image, message }
    }
}

fn status_and_message(e: &bollard::errors::Error) -> (Option<u16>, String) {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => (Some(*status_code), message.clone()),
        other => (None, other.to_string()),
    }
}

/// How much of a failed build's output its error keeps.
const BUILD_TAIL_LINES: usize = 20;

impl DockerRuntime {
    pub(crate) async fn pull_auth(
        &self,
        image: &str,
        auth: Option<&RegistryAuth>,
        progress: &(dyn Fn(String) + Send + Sync),
    ) -> Result<()> {
        let (repo, tag) = split_reference(image);
        let options = CreateImageOptions {
            from_image: Some(repo.to_string()),
            tag: tag.map(str::to_string),
            ..Default::default()
        };
        let mut stream = self
            .docker
            .create_image(Some(options), None, credentials(auth, image));
        let mut last = String::new();
        loop {
            let next = tokio::time::timeout(PULL_STALL_TIMEOUT, stream.next())
                .await
                .map_err(|_| RuntimeError::Unreachable {
                    image: image.to_string(),
                    message: "no progress for 5 minutes".into(),
                })?;
            match next {
                None => return Ok(()),
                Some(Ok(info)) => {
                    if let Some(err) = info.error {
                        return Err(registry_error(image, None, &err));
                    }
                    let line = [
                        info.id.as_deref(),
                        info.status.as_deref(),
                        info.progress.as_deref(),
                    ]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ");
                    // Download ticks repeat; report only changes of phase.
                    let phase = [info.id.as_deref(), info.status.as_deref()]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" ");
                    if !line.is_empty() && phase != last {
                        progress(line);
                        last = phase;
                    }
                }
                Some(Err(e)) => {
                    let (status, message) = status_and_message(&e);
                    return Err(registry_error(image, status, &message));
                }
            }
        }
    }

    pub(crate) async fn registry_digest_of(
        &self,
        image: &str,
        auth: Option<&RegistryAuth>,
    ) -> Result<String> {
        match timed_raw(
            self.docker
                .inspect_registry_image(image, credentials(auth, image)),
        )
        .await
        {
            Err(RuntimeError::Timeout(d)) => Err(RuntimeError::Unreachable {
                image: image.to_string(),
                message: format!("no answer within {d:?}"),
            }),
            Err(e) => Err(e),
            Ok(Ok(d)) => d.descriptor.digest.ok_or_else(|| RuntimeError::PullFailed {
                image: image.to_string(),
                message: "the registry gave no digest".into(),
            }),
            Ok(Err(e)) => {
                let (status, message) = status_and_message(&e);
                Err(registry_error(image, status, &message))
            }
        }
    }

    pub(crate) async fn held(&self, image: &str) -> Result<Option<HeldImage>> {
        match timed_raw(self.docker.inspect_image(image)).await? {
            Ok(i) => Ok(Some(HeldImage {
                id: i.id.unwrap_or_default(),
                repo_digests: i.repo_digests.unwrap_or_default(),
                size: i.size.unwrap_or(0).max(0) as u64,
            })),
            Err(e) if status_and_message(&e).0 == Some(404) => Ok(None),
            Err(e) => Err(RuntimeError::Engine(e.to_string())),
        }
    }

    pub(crate) async fn tag_image(&self, source: &str, target: &str) -> Result<()> {
        let (repo, tag) = split_reference(target);
        let options = TagImageOptions {
            repo: Some(repo.to_string()),
            tag: tag.map(str::to_string),
        };
        timed(self.docker.tag_image(source, Some(options))).await
    }

    pub(crate) async fn build_image(
        &self,
        req: &BuildRequest,
        context: Bytes,
        progress: &(dyn Fn(String) + Send + Sync),
    ) -> Result<String> {
        let memory = req.memory.min(i32::MAX as u64) as i32;
        let options = BuildImageOptions {
            dockerfile: req.dockerfile.clone(),
            t: Some(req.tag.clone()),
            rm: true,
            forcerm: true,
            memory: Some(memory),
            memswap: Some(memory),
            cpuperiod: Some(100_000),
            cpuquota: Some((req.cpus * 100_000.0) as i32),
            networkmode: Some(req.network.clone()),
            labels: Some(req.labels.clone().into_iter().collect()),
            ..Default::default()
        };
        let mut stream = self
            .docker
            .build_image(options, None, Some(bollard::body_full(context)));
        let mut tail: std::collections::VecDeque<String> = Default::default();
        let mut keep = |line: &str| {
            if tail.len() == BUILD_TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line.to_string());
        };
        let mut id = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(err) = info.error {
                        keep(&err);
                        let text = tail.iter().cloned().collect::<Vec<_>>().join("\n");
                        return Err(RuntimeError::BuildFailed(text));
                    }
                    if let Some(aux) = info.aux.and_then(|a| a.id) {
                        id = Some(aux);
                    }
                    for line in info.stream.iter().flat_map(|s| s.lines()) {
                        let line = line.trim_end();
                        if !line.is_empty() {
                            keep(line);
                            progress(line.to_string());
                        }
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    keep(&error);
                    let text = tail.iter().cloned().collect::<Vec<_>>().join("\n");
                    return Err(RuntimeError::BuildFailed(text));
                }
                Err(e) => {
                    let (status, message) = status_and_message(&e);
                    return Err(match status {
                        Some(400) | Some(500) => RuntimeError::BuildFailed(message),
                        _ => RuntimeError::Engine(message),
                    });
                }
            }
        }
        match id {
            Some(id) => Ok(id),
            None => self
                .held(&req.tag)
                .await?
                .map(|h| h.id)
                .ok_or_else(|| RuntimeError::BuildFailed("the build made no image".into())),
        }
    }

    pub(crate) async fn remove_image_named(&self, reference: &str) -> Result<()> {
        let options = RemoveImageOptions {
            force: false,
            noprune: false,
        };
        match timed_raw(self.docker.remove_image(reference, Some(options), None)).await? {
            Ok(_) => Ok(()),
            Err(e) if status_and_message(&e).0 == Some(404) => Ok(()),
            Err(e) => Err(RuntimeError::Engine(status_and_message(&e).1)),
        }
    }

    pub(crate) async fn used_images(&self) -> Result<Vec<String>> {
        let options = ListContainersOptions {
            all: true,
            ..Default::default()
        };
        let list = timed(self.docker.list_containers(Some(options))).await?;
        Ok(list.into_iter().filter_map(|c| c.image_id).collect())
    }

    pub(crate) async fn export_to(&self, images: &[String], dest: &std::path::Path) -> Result<u64> {
        let names: Vec<&str> = images.iter().map(String::as_str).collect();
        let mut stream = self.docker.export_images(&names);
        let io = |e: std::io::Error| RuntimeError::Engine(format!("{}: {e}", dest.display()));
        let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
        let mut written = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| RuntimeError::Engine(status_and_message(&e).1))?;
            file.write_all(&chunk).await.map_err(io)?;
            written += chunk.len() as u64;
        }
        file.sync_all().await.map_err(io)?;
        Ok(written)
    }

    pub(crate) async fn import_from(&self, src: &std::path::Path) -> Result<Vec<String>> {
        let io = |e: std::io::Error| RuntimeError::Engine(format!("{}: {e}", src.display()));
        let file = tokio::fs::File::open(src).await.map_err(io)?;
        let body = tokio_util::io::ReaderStream::new(file);
        let mut stream = self.docker.import_image_stream(
            ImportImageOptions {
                quiet: true,
                ..Default::default()
            },
            body.filter_map(|c| async move { c.ok() }),
            None,
        );
        let mut lines = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(err) = info.error {
                        return Err(RuntimeError::Engine(err));
                    }
                    if let Some(s) = info.stream {
                        lines.push(s.trim_end().to_string());
                    }
                }
                Err(e) => return Err(RuntimeError::Engine(status_and_message(&e).1)),
            }
        }
        Ok(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(registry_host("busybox"), "docker.io");
        assert_eq!(registry_host("gantry-test/busybox:2"), "docker.io");
        assert_eq!(registry_host("127.0.0.1:5000/a/b:1"), "127.0.0.1:5000");
        assert_eq!(
            registry_host("registry.example/team/app"),
            "registry.example"
        );
        assert_eq!(registry_host("localhost/x"), "localhost");
    }

    /// The engine's own words for each failure (Docker 20.10 forwarding a
    /// `docker-registry`), sorted into what they mean for a job.
    #[test]
    fn registry_failures_are_sorted() {
        let auth = registry_error("i", Some(500), "unauthorized: authentication required");
        assert!(matches!(auth, RuntimeError::AuthFailed { .. }));
        let missing = registry_error(
            "i",
            Some(500),
            "Head \"http://127.0.0.1:5055/v2/priv/bb/manifests/1\": no basic auth credentials",
        );
        assert!(matches!(missing, RuntimeError::AuthFailed { .. }));
        let down = registry_error(
            "i",
            Some(500),
            "Get \"http://127.0.0.1:5059/v2/\": dial tcp 127.0.0.1:5059: connect: connection refused",
        );
        assert!(matches!(down, RuntimeError::Unreachable { .. }));
        let dns = registry_error("i", Some(500), "Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io: no such host");
        assert!(matches!(dns, RuntimeError::Unreachable { .. }));
        let gone = registry_error("i", Some(404), "manifest unknown: manifest unknown");
        assert!(matches!(gone, RuntimeError::ImageNotFound(_)));
    }
}
