//! [`ContainerRuntime`] over the Docker Engine API.

use crate::*;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, InspectContainerOptions, ListContainersOptions,
    RemoveContainerOptions, StopContainerOptions, WaitContainerOptions,
};
use bollard::Docker;
use futures_util::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::future::Future;

/// Bound on ordinary engine calls (create, start, inspect, remove ...).
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on a pull that makes no progress at all.
pub(crate) const PULL_STALL_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Clone)]
pub struct DockerRuntime {
    pub(crate) docker: Docker,
}

impl DockerRuntime {
    /// Connects to the local engine (`DOCKER_HOST` or the default socket).
    pub async fn connect() -> Result<Self> {
        let docker = Docker::connect_with_local_defaults().map_err(engine)?;
        // Speak the engine's API version when it is older than bollard's default.
        let docker = match timed(docker.clone().negotiate_version()).await {
            Ok(d) => d,
            Err(_) => docker,
        };
        Ok(Self { docker })
    }
}

/// What `gantry doctor` reads of the engine.
#[derive(Clone, Debug, Default)]
pub struct EngineInfo {
    pub version: String,
    pub api_version: String,
    pub cgroup_version: String,
    pub cgroup_driver: String,
    /// The engine applies its default seccomp profile.
    pub seccomp: bool,
    pub memory_limit: bool,
    pub pids_limit: bool,
    pub cpu_quota: bool,
    pub root_dir: String,
    /// The engine's clock (RFC 3339), for skew checks.
    pub system_time: String,
}

impl DockerRuntime {
    /// The engine's version, cgroup and security support, data root and clock.
    pub async fn engine_info(&self) -> Result<EngineInfo> {
        let info = timed(self.docker.info()).await?;
        let version = timed(self.docker.version()).await?;
        Ok(EngineInfo {
            version: info.server_version.unwrap_or_default(),
            api_version: version.api_version.unwrap_or_default(),
            cgroup_version: info
                .cgroup_version
                .map(|v| v.to_string())
                .unwrap_or_default(),
            cgroup_driver: info
                .cgroup_driver
                .map(|v| v.to_string())
                .unwrap_or_default(),
            seccomp: info
                .security_options
                .unwrap_or_default()
                .iter()
                .any(|o| o.split(',').any(|kv| kv == "name=seccomp")),
            memory_limit: info.memory_limit.unwrap_or(false),
            pids_limit: info.pids_limit.unwrap_or(false),
            cpu_quota: info.cpu_cfs_quota.unwrap_or(false),
            root_dir: info.docker_root_dir.unwrap_or_default(),
            system_time: info.system_time.unwrap_or_default(),
        })
    }
}

pub(crate) fn engine(e: bollard::errors::Error) -> RuntimeError {
    RuntimeError::Engine(e.to_string())
}

pub(crate) fn status_of(e: &bollard::errors::Error) -> Option<u16> {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

pub(crate) fn message_of(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

pub(crate) async fn timed<T>(
    fut: impl Future<Output = Result<T, bollard::errors::Error>>,
) -> Result<T> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(r) => r.map_err(engine),
        Err(_) => Err(RuntimeError::Timeout(CALL_TIMEOUT)),
    }
}

pub(crate) async fn timed_raw<T>(
    fut: impl Future<Output = Result<T, bollard::errors::Error>>,
) -> Result<Result<T, bollard::errors::Error>> {
    tokio::time::timeout(CALL_TIMEOUT, fut)
        .await
        .map_err(|_| RuntimeError::Timeout(CALL_TIMEOUT))
}

#[async_trait]
impl ContainerRuntime for DockerRuntime {
    async fn ping(&self) -> Result<()> {
        timed(self.docker.ping()).await.map(|_| ())
    }

    async fn image_id(&self, image: &str) -> Result<Option<String>> {
        match timed_raw(self.docker.inspect_image(image)).await? {
            Ok(i) => Ok(Some(i.id.unwrap_or_default())),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(engine(e)),
        }
    }

    async fn pull(&self, image: &str, progress: &(dyn Fn(String) + Send + Sync)) -> Result<()> {
        self.pull_auth(image, None, progress).await
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String> {
        self.create_body(spec, create_body(spec)).await
    }

    async fn attach(&self, id: &str) -> Result<BoxStream<'static, Result<OutputChunk>>> {
        let options = AttachContainerOptions {
            stdout: true,
            stderr: true,
            stream: true,
            logs: false,
            ..Default::default()
        };
        let attached = timed(self.docker.attach_container(id, Some(options))).await?;
        let stream = attached
            .output
            .map_err(engine)
            .try_filter_map(|out| async move {
                Ok(match out {
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        Some((OutputStream::Stdout, message))
                    }
                    LogOutput::StdErr { message } => Some((OutputStream::Stderr, message)),
                    LogOutput::StdIn { .. } => None,
                })
            });
        Ok(stream.boxed())
    }

    async fn start(&self, id: &str) -> Result<()> {
        match timed_raw(
            self.docker
                .start_container(id, None::<bollard::query_parameters::StartContainerOptions>),
        )
        .await?
        {
            Ok(()) => Ok(()),
            Err(e)
                if status_of(&e) == Some(400)
                    || status_of(&e) == Some(500) && is_exec_error(&message_of(&e)) =>
            {
                Err(RuntimeError::Rejected(message_of(&e)))
            }
            Err(e) => Err(engine(e)),
        }
    }

    async fn wait(&self, id: &str) -> Result<()> {
        let mut stream = self.docker.wait_container(id, None::<WaitContainerOptions>);
        match stream.next().await {
            // A non-zero exit comes back as an error from bollard; it is still a stop.
            Some(Ok(_))
            | Some(Err(bollard::errors::Error::DockerContainerWaitError { .. }))
            | None => Ok(()),
            Some(Err(e)) => Err(engine(e)),
        }
    }

    async fn exit_state(&self, id: &str) -> Result<ExitState> {
        let info = timed(
            self.docker
                .inspect_container(id, None::<InspectContainerOptions>),
        )
        .await?;
        let state = info.state.unwrap_or_default();
        Ok(ExitState {
            exit_code: state.exit_code.unwrap_or(-1),
            oom_killed: state.oom_killed.unwrap_or(false),
        })
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        let options = StopContainerOptions {
            t: Some(grace.as_secs() as i32),
            signal: None,
        };
        let fut = self.docker.stop_container(id, Some(options));
        match tokio::time::timeout(grace + CALL_TIMEOUT, fut).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if matches!(status_of(&e), Some(304) | Some(404)) => Ok(()),
            Ok(Err(e)) => Err(engine(e)),
            Err(_) => Err(RuntimeError::Timeout(grace + CALL_TIMEOUT)),
        }
    }

    async fn remove(&self, id: &str) -> Result<()> {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        match timed_raw(self.docker.remove_container(id, Some(options))).await? {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            // Removal already under way (e.g. by another cleanup).
            Err(e) if status_of(&e) == Some(409) => Ok(()),
            Err(e) => Err(engine(e)),
        }
    }

    async fn list_labelled(&self, label: &str, value: Option<&str>) -> Result<Vec<ContainerInfo>> {
        let filter = match value {
            Some(v) => format!("{label}={v}"),
            None => label.to_string(),
        };
        let mut filters = HashMap::new();
        filters.insert("label".to_string(), vec![filter]);
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let list = timed(self.docker.list_containers(Some(options))).await?;
        Ok(list
            .into_iter()
            .map(|c| ContainerInfo {
                id: c.id.unwrap_or_default(),
                labels: c.labels.unwrap_or_default().into_iter().collect(),
            })
            .collect())
    }

    async fn pull_with(
        &self,
        image: &str,
        auth: Option<&RegistryAuth>,
        progress: &(dyn Fn(String) + Send + Sync),
    ) -> Result<()> {
        self.pull_auth(image, auth, progress).await
    }

    async fn registry_digest(&self, image: &str, auth: Option<&RegistryAuth>) -> Result<String> {
        self.registry_digest_of(image, auth).await
    }

    async fn held_image(&self, image: &str) -> Result<Option<HeldImage>> {
        self.held(image).await
    }

    async fn tag(&self, source: &str, target: &str) -> Result<()> {
        self.tag_image(source, target).await
    }

    async fn build(
        &self,
        req: &BuildRequest,
        context: Bytes,
        progress: &(dyn Fn(String) + Send + Sync),
    ) -> Result<String> {
        self.build_image(req, context, progress).await
    }

    async fn remove_image(&self, reference: &str) -> Result<()> {
        self.remove_image_named(reference).await
    }

    async fn images_in_use(&self) -> Result<Vec<String>> {
        self.used_images().await
    }

    async fn export_images(&self, images: &[String], dest: &std::path::Path) -> Result<u64> {
        self.export_to(images, dest).await
    }

    async fn import_images(&self, src: &std::path::Path) -> Result<Vec<String>> {
        self.import_from(src).await
    }

    fn warm(&self) -> Option<&dyn WarmRuntime> {
        Some(self)
    }
}

/// The engine's create request for a job container (also the base of a
/// warm one, see `warm.rs`).
pub(crate) fn create_body(spec: &ContainerSpec) -> ContainerCreateBody {
    let mut tmpfs = HashMap::new();
    tmpfs.insert(
        "/tmp".to_string(),
        format!("rw,nosuid,nodev,mode=1777,size={}", spec.tmp_size),
    );
    let host = HostConfig {
        // Inputs are read-only: a staged table may be the stored object itself.
        binds: Some(vec![
            format!("{}:/data:rw", spec.data_dir.display()),
            format!("{}/in:/data/in:ro", spec.data_dir.display()),
        ]),
        memory: Some(spec.memory as i64),
        memory_swap: Some(spec.memory as i64),
        nano_cpus: Some((spec.cpus * 1e9) as i64),
        pids_limit: Some(spec.pids),
        network_mode: Some(spec.network.clone()),
        cap_drop: Some(vec!["ALL".to_string()]),
        security_opt: Some(vec!["no-new-privileges:true".to_string()]),
        readonly_rootfs: Some(spec.read_only_root),
        tmpfs: Some(tmpfs),
        privileged: Some(false),
        // Output goes to the worker through attach; the engine keeps no copy.
        log_config: Some(HostConfigLogConfig {
            typ: Some("none".to_string()),
            config: None,
        }),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: spec.command.clone(),
        env: Some(spec.env.clone()),
        user: Some(spec.user.clone()),
        labels: Some(
            spec.labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        // The image's WORKDIR, ENTRYPOINT and CMD stay as built (Keboola's
        // runner keeps them); the spec's `command` replaces CMD only.
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        network_disabled: Some(spec.network == "none"),
        host_config: Some(host),
        ..Default::default()
    }
}

impl DockerRuntime {
    /// Creates a container from a prepared request; returns its id.
    pub(crate) async fn create_body(
        &self,
        spec: &ContainerSpec,
        body: ContainerCreateBody,
    ) -> Result<String> {
        let options = CreateContainerOptions {
            name: Some(spec.name.clone()),
            ..Default::default()
        };
        match timed_raw(self.docker.create_container(Some(options), body)).await? {
            Ok(r) => Ok(r.id),
            Err(e) if status_of(&e) == Some(404) => {
                Err(RuntimeError::ImageNotFound(spec.image.clone()))
            }
            Err(e) if status_of(&e) == Some(400) => Err(RuntimeError::Rejected(message_of(&e))),
            Err(e) => Err(engine(e)),
        }
    }
}

fn is_exec_error(msg: &str) -> bool {
    msg.contains("executable file not found")
        || msg.contains("no such file or directory")
        || msg.contains("no command specified")
}

/// Splits `repo[:tag][@digest]` into what the pull API wants.
pub(crate) fn split_reference(image: &str) -> (&str, Option<&str>) {
    if image.contains('@') {
        return (image, None);
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(i) => (&image[..last_slash + i], Some(&image[last_slash + i + 1..])),
        None => (image, Some("latest")),
    }
}

#[cfg(test)]
mod tests {
    use super::split_reference;

    #[test]
    fn references() {
        assert_eq!(split_reference("busybox"), ("busybox", Some("latest")));
        assert_eq!(
            split_reference("localhost:5000/a/b:1.2"),
            ("localhost:5000/a/b", Some("1.2"))
        );
        assert_eq!(
            split_reference("localhost:5000/a/b"),
            ("localhost:5000/a/b", Some("latest"))
        );
        assert_eq!(split_reference("a@sha256:abc"), ("a@sha256:abc", None));
    }
}
