//! A scripted, in-memory [`ContainerRuntime`] for tests of the worker loop
//! that need no Docker engine (hand-backs, stale fences, discards).
//!
//! Each created container gets a [`Behaviour`] from the script: the output
//! it prints, the files it writes into its data folder when it starts, its
//! exit code, and whether it holds (runs until [`FakeRuntime::release`] or a
//! stop). Every call is recorded, so a test can assert what the worker did.

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use gantry_runtime::{
    ContainerInfo, ContainerRuntime, ContainerSpec, ExitState, OutputChunk, OutputStream, Result,
    RuntimeError,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// What one fake container does.
#[derive(Clone, Debug, Default)]
pub struct Behaviour {
    /// Printed on stdout as soon as it is attached.
    pub stdout: Vec<String>,
    /// Written under the data folder when it starts (`out/files/x`, ...).
    pub files: Vec<(String, Vec<u8>)>,
    pub exit_code: i64,
    /// Runs until [`FakeRuntime::release`] (or a stop) instead of ending at once.
    pub hold: bool,
    /// Killed for its memory limit: the engine's OOM flag is set, but (as
    /// a busy engine does) only from this many reads of the exit state on.
    pub oom_flag_late_by: Option<u32>,
}

type Script = dyn Fn(&ContainerSpec) -> Behaviour + Send + Sync;

struct Container {
    spec: ContainerSpec,
    behaviour: Behaviour,
    exited: watch::Sender<Option<i64>>,
    removed: bool,
    /// Reads of the exit state so far.
    reads: u32,
}

/// The fake engine. Clone the `Arc` to share it with the worker.
pub struct FakeRuntime {
    script: Box<Script>,
    containers: Mutex<HashMap<String, Container>>,
    calls: Mutex<Vec<String>>,
    released: watch::Sender<bool>,
    next: Mutex<u64>,
}

impl FakeRuntime {
    pub fn new(script: impl Fn(&ContainerSpec) -> Behaviour + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            script: Box::new(script),
            containers: Mutex::default(),
            calls: Mutex::default(),
            released: watch::channel(false).0,
            next: Mutex::new(0),
        })
    }

    /// Lets every holding container end (now and from now on).
    pub fn release(&self) {
        self.released.send_replace(true);
    }

    /// The calls made so far, as `verb container-name`.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Names of containers created and not removed.
    pub fn left(&self) -> Vec<String> {
        self.containers
            .lock()
            .map(|m| {
                m.values()
                    .filter(|c| !c.removed)
                    .map(|c| c.spec.name.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until some container was started `n` times in all.
    pub async fn started(&self, n: usize) {
        loop {
            if self
                .calls()
                .iter()
                .filter(|c| c.starts_with("start "))
                .count()
                >= n
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn record(&self, verb: &str, id: &str) {
        let name = self
            .containers
            .lock()
            .ok()
            .and_then(|m| m.get(id).map(|c| c.spec.name.clone()))
            .unwrap_or_else(|| id.to_string());
        if let Ok(mut c) = self.calls.lock() {
            c.push(format!("{verb} {name}"));
        }
    }

    fn exited(&self, id: &str) -> Result<watch::Receiver<Option<i64>>> {
        self.containers
            .lock()
            .map_err(|_| RuntimeError::Engine("poisoned".into()))?
            .get(id)
            .map(|c| c.exited.subscribe())
            .ok_or_else(|| RuntimeError::Engine(format!("no such container: {id}")))
    }

    fn end(&self, id: &str, code: i64) {
        if let Ok(m) = self.containers.lock() {
            if let Some(c) = m.get(id) {
                c.exited.send_if_modified(|e| {
                    let first = e.is_none();
                    if first {
                        *e = Some(code);
                    }
                    first
                });
            }
        }
    }
}

#[async_trait]
impl ContainerRuntime for FakeRuntime {
    async fn ping(&self) -> Result<()> {
        Ok(())
    }
    async fn image_id(&self, image: &str) -> Result<Option<String>> {
        Ok(Some(format!("sha256:fake-{image}")))
    }
    async fn pull(&self, _: &str, _: &(dyn Fn(String) + Send + Sync)) -> Result<()> {
        Ok(())
    }
    async fn create(&self, spec: &ContainerSpec) -> Result<String> {
        let id = {
            let mut n = self
                .next
                .lock()
                .map_err(|_| RuntimeError::Engine("poisoned".into()))?;
            *n += 1;
            format!("fake{n}")
        };
        let behaviour = (self.script)(spec);
        self.containers
            .lock()
            .map_err(|_| RuntimeError::Engine("poisoned".into()))?
            .insert(
                id.clone(),
                Container {
                    spec: spec.clone(),
                    behaviour,
                    exited: watch::channel(None).0,
                    removed: false,
                    reads: 0,
                },
            );
        self.record("create", &id);
        Ok(id)
    }
    async fn attach(&self, id: &str) -> Result<BoxStream<'static, Result<OutputChunk>>> {
        let lines = self
            .containers
            .lock()
            .map_err(|_| RuntimeError::Engine("poisoned".into()))?
            .get(id)
            .map(|c| c.behaviour.stdout.clone())
            .unwrap_or_default();
        let mut exited = self.exited(id)?;
        let chunks = lines
            .into_iter()
            .map(|l| Ok((OutputStream::Stdout, Bytes::from(format!("{l}\n")))));
        // The stream ends when the container does, as the engine's does.
        let end = stream::once(async move {
            let _ = exited.wait_for(Option::is_some).await;
        })
        .filter_map(|_| async { None });
        Ok(stream::iter(chunks).chain(end).boxed())
    }
    async fn start(&self, id: &str) -> Result<()> {
        self.record("start", id);
        let (spec, behaviour) = self
            .containers
            .lock()
            .map_err(|_| RuntimeError::Engine("poisoned".into()))?
            .get(id)
            .map(|c| (c.spec.clone(), c.behaviour.clone()))
            .ok_or_else(|| RuntimeError::Engine(format!("no such container: {id}")))?;
        for (path, bytes) in &behaviour.files {
            let file = spec.data_dir.join(path);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent).map_err(|e| RuntimeError::Engine(e.to_string()))?;
            }
            std::fs::write(&file, bytes).map_err(|e| RuntimeError::Engine(e.to_string()))?;
        }
        if !behaviour.hold || *self.released.borrow() {
            self.end(id, behaviour.exit_code);
        } else {
            let mut released = self.released.subscribe();
            let mut exited = self.exited(id)?;
            let id = id.to_string();
            let code = behaviour.exit_code;
            let me = self.exited_sender(&id)?;
            tokio::spawn(async move {
                tokio::select! {
                    _ = released.wait_for(|r| *r) => {
                        me.send_if_modified(|e| {
                            let first = e.is_none();
                            if first { *e = Some(code); }
                            first
                        });
                    }
                    _ = exited.wait_for(Option::is_some) => {}
                }
            });
        }
        Ok(())
    }
    async fn wait(&self, id: &str) -> Result<()> {
        let mut exited = self.exited(id)?;
        let _ = exited.wait_for(Option::is_some).await;
        Ok(())
    }
    async fn exit_state(&self, id: &str) -> Result<ExitState> {
        let code = *self.exited(id)?.borrow();
        let mut m = self
            .containers
            .lock()
            .map_err(|_| RuntimeError::Engine("poisoned".into()))?;
        let c = m
            .get_mut(id)
            .ok_or_else(|| RuntimeError::Engine(format!("no such container: {id}")))?;
        c.reads += 1;
        let oom_killed = c
            .behaviour
            .oom_flag_late_by
            .is_some_and(|late| c.reads > late);
        Ok(ExitState {
            exit_code: code.unwrap_or(-1),
            oom_killed,
        })
    }
    async fn stop(&self, id: &str, _grace: Duration) -> Result<()> {
        self.record("stop", id);
        // As if SIGTERM ended it.
        self.end(id, 143);
        Ok(())
    }
    async fn remove(&self, id: &str) -> Result<()> {
        self.record("remove", id);
        self.end(id, 137);
        if let Ok(mut m) = self.containers.lock() {
            if let Some(c) = m.get_mut(id) {
                c.removed = true;
            }
        }
        Ok(())
    }
    async fn list_labelled(&self, label: &str, value: Option<&str>) -> Result<Vec<ContainerInfo>> {
        let m = self
            .containers
            .lock()
            .map_err(|_| RuntimeError::Engine("poisoned".into()))?;
        Ok(m.iter()
            .filter(|(_, c)| !c.removed)
            .filter(|(_, c)| match (c.spec.labels.get(label), value) {
                (Some(v), Some(want)) => v == want,
                (Some(_), None) => true,
                (None, _) => false,
            })
            .map(|(id, c)| ContainerInfo {
                id: id.clone(),
                labels: c.spec.labels.clone(),
            })
            .collect())
    }
}

impl FakeRuntime {
    fn exited_sender(&self, id: &str) -> Result<watch::Sender<Option<i64>>> {
        self.containers
            .lock()
            .map_err(|_| RuntimeError::Engine("poisoned".into()))?
            .get(id)
            .map(|c| c.exited.clone())
            .ok_or_else(|| RuntimeError::Engine(format!("no such container: {id}")))
    }
}
