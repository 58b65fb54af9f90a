//! What warm starts need of the engine: containers created and started with
//! the gate as their first process, the image's own entrypoint and command,
//! limits changed on a running container, and the one hand-over on stdin.

use crate::docker::{engine, message_of, status_of, timed, timed_raw};
use crate::*;
use bollard::container::LogOutput;
use bollard::models::ContainerUpdateBody;
use bollard::query_parameters::{AttachContainerOptions, InspectContainerOptions};
use futures_util::{StreamExt, TryStreamExt};
use std::path::Path;
use tokio::io::AsyncWriteExt;

/// Where the gate's binary is mounted (read-only) in a warm container: in
/// the engine's own `/dev` tmpfs, so the image's root filesystem is untouched.
pub const GATE_PATH: &str = "/dev/.gantry-gate";

/// The parts of an image's configuration that decide what a container runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
}

impl ImageConfig {
    /// What the engine runs for a container of this image: its entrypoint
    /// followed by `command` when given (which replaces only the image's
    /// CMD), else by the image's CMD.
    pub fn argv(&self, command: Option<&[String]>) -> Vec<String> {
        let mut argv = self.entrypoint.clone();
        argv.extend(command.map_or_else(|| self.cmd.clone(), <[String]>::to_vec));
        argv
    }
}

/// The limits a job sets on its warm container when it claims it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub memory: u64,
    pub cpus: f64,
    pub pids: i64,
}

#[async_trait]
pub trait WarmRuntime: Send + Sync {
    async fn image_config(&self, image: &str) -> Result<ImageConfig>;
    /// Creates a container whose first process is the gate (mounted from
    /// `gate`), with stdin open for the one hand-over, and starts it. The
    /// spec's `command` and `env` are not used: they come with the hand-over.
    async fn create_gated(&self, spec: &ContainerSpec, gate: &Path) -> Result<String>;
    async fn update_limits(&self, id: &str, limits: Limits) -> Result<()>;
    /// Attaches to the container's output, then writes the hand-over on its
    /// stdin and closes it; returns the output from its first byte.
    async fn hand_over(
        &self,
        id: &str,
        message: &[u8],
    ) -> Result<BoxStream<'static, Result<OutputChunk>>>;
}

#[async_trait]
impl WarmRuntime for DockerRuntime {
    async fn image_config(&self, image: &str) -> Result<ImageConfig> {
        let info = match timed_raw(self.docker.inspect_image(image)).await? {
            Ok(i) => i,
            Err(e) if status_of(&e) == Some(404) => {
                return Err(RuntimeError::ImageNotFound(image.to_string()))
            }
            Err(e) => return Err(engine(e)),
        };
        let config = info.config.unwrap_or_default();
        Ok(ImageConfig {
            entrypoint: config.entrypoint.unwrap_or_default(),
            cmd: config.cmd.unwrap_or_default(),
        })
    }

    async fn create_gated(&self, spec: &ContainerSpec, gate: &Path) -> Result<String> {
        let mut body = crate::docker::create_body(spec);
        body.entrypoint = Some(vec![GATE_PATH.to_string()]);
        body.cmd = Some(Vec::new());
        body.env = None;
        body.attach_stdin = Some(true);
        body.open_stdin = Some(true);
        // The engine closes the container's stdin when the hand-over's
        // attach closes its side: the gate reads one message to its end.
        body.stdin_once = Some(true);
        if let Some(host) = body.host_config.as_mut() {
            host.binds
                .get_or_insert_with(Vec::new)
                .push(format!("{}:{GATE_PATH}:ro", gate.display()));
        }
        let id = self.create_body(spec, body).await?;
        if let Err(e) = self.start(&id).await {
            let _ = self.remove(&id).await;
            return Err(e);
        }
        Ok(id)
    }

    async fn update_limits(&self, id: &str, limits: Limits) -> Result<()> {
        let body = ContainerUpdateBody {
            memory: Some(limits.memory as i64),
            memory_swap: Some(limits.memory as i64),
            nano_cpus: Some((limits.cpus * 1e9) as i64),
            pids_limit: Some(limits.pids),
            ..Default::default()
        };
        match timed_raw(self.docker.update_container(id, body)).await? {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(400) => Err(RuntimeError::Rejected(message_of(&e))),
            Err(e) => Err(engine(e)),
        }
    }

    async fn hand_over(
        &self,
        id: &str,
        message: &[u8],
    ) -> Result<BoxStream<'static, Result<OutputChunk>>> {
        let options = AttachContainerOptions {
            stdin: true,
            stdout: true,
            stderr: true,
            stream: true,
            logs: false,
            ..Default::default()
        };
        // An attach to a stopped container may be answered (and then never
        // end) or left unanswered: the container's state is read alongside
        // the attach, and a wait (which answers at once for a stopped
        // container) bounds both. A container killed, whose gate died or
        // whose engine restarted is given up before anything is written.
        let attach = timed(self.docker.attach_container(id, Some(options)));
        let running = async {
            timed(
                self.docker
                    .inspect_container(id, None::<InspectContainerOptions>),
            )
            .await
            .ok()
            .and_then(|i| i.state.and_then(|s| s.running))
            .unwrap_or(false)
        };
        let not_running = || RuntimeError::Engine(format!("warm container {id} is not running"));
        let (attached, running) = tokio::select! {
            both = async { tokio::join!(attach, running) } => both,
            _ = self.wait(id) => return Err(not_running()),
        };
        let attached = attached?;
        if !running {
            return Err(not_running());
        }
        let mut input = attached.input;
        let write = async {
            input.write_all(message).await?;
            input.flush().await?;
            input.shutdown().await
        };
        match tokio::time::timeout(Duration::from_secs(30), write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(RuntimeError::Engine(format!("hand-over: {e}"))),
            Err(_) => return Err(RuntimeError::Timeout(Duration::from_secs(30))),
        }
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
}

#[cfg(test)]
mod tests {
    use super::ImageConfig;

    #[test]
    fn command_replaces_only_the_images_cmd() {
        let c = ImageConfig {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["run".into()],
        };
        assert_eq!(c.argv(None), ["/entry", "run"]);
        assert_eq!(c.argv(Some(&["x".to_string()])), ["/entry", "x"]);
        let plain = ImageConfig {
            entrypoint: vec![],
            cmd: vec!["sh".into()],
        };
        assert_eq!(plain.argv(Some(&["true".to_string()])), ["true"]);
    }
}
