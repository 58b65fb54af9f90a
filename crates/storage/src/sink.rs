//! Writing one new object, durably, before any metadata names it.
//!
//! In a local folder the bytes go straight to a temporary file beside the
//! object on a blocking thread (no staging copy); once an object grows past
//! `SYNC_EVERY`, a second thread syncs what is written as it goes, so the
//! final `fsync` waits for little. The file is then synced, renamed into place
//! and its folder synced: object_store's local store does none of that.
//! Local objects are read-only files (mode 0444).
//! Elsewhere (S3) it is a multipart upload, durable once acknowledged.

use crate::Result;
use bytes::Bytes;
use object_store::WriteMultipart;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// Bytes written between background syncs.
const SYNC_EVERY: u64 = 32 << 20;

pub(crate) enum ObjectSink {
    Local(LocalSink),
    Remote(WriteMultipart),
}

pub(crate) struct LocalSink {
    tx: mpsc::Sender<Msg>,
    /// The writer; taken once its end has been read.
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

enum Msg {
    Data(Bytes),
    Finish,
}

impl LocalSink {
    /// Closes the channel (after `last`, if any) and returns how the writer
    /// ended: without `Finish` it removes its temporary file.
    async fn end(self, last: Option<Msg>) -> Result<()> {
        if let Some(m) = last {
            let _ = self.tx.send(m).await;
        }
        drop(self.tx);
        match self.task {
            Some(t) => Ok(t.await.map_err(std::io::Error::other)??),
            None => Err(std::io::Error::other("the object writer had stopped").into()),
        }
    }
}

impl ObjectSink {
    pub(crate) fn local(path: PathBuf) -> Self {
        let (tx, rx) = mpsc::channel(16);
        let task = tokio::task::spawn_blocking(move || write_local(&path, rx));
        Self::Local(LocalSink {
            tx,
            task: Some(task),
        })
    }

    /// Writes the next bytes. An error ends the sink: the caller drops or
    /// aborts it.
    pub(crate) async fn write(&mut self, data: Bytes) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        match self {
            Self::Remote(up) => {
                up.wait_for_capacity(4).await?;
                up.write(&data);
                Ok(())
            }
            Self::Local(l) => match l.tx.send(Msg::Data(data)).await {
                Ok(()) => Ok(()),
                // The writer stopped on an error: its task has ended; say why
                // now rather than after reading the rest of the input.
                Err(_) => {
                    let ended = match l.task.take() {
                        Some(t) => t.await.map_err(std::io::Error::other).and_then(|r| r),
                        None => Ok(()),
                    };
                    Err(ended
                        .err()
                        .unwrap_or_else(|| std::io::Error::other("the object writer stopped"))
                        .into())
                }
            },
        }
    }

    /// Makes the object durable and visible under its key.
    pub(crate) async fn finish(self) -> Result<()> {
        match self {
            Self::Remote(up) => {
                up.finish().await?;
                Ok(())
            }
            Self::Local(l) => l.end(Some(Msg::Finish)).await,
        }
    }

    /// Drops what was written; nothing is left behind.
    pub(crate) async fn abort(self) {
        match self {
            Self::Remote(up) => {
                let _ = up.abort().await;
            }
            Self::Local(l) => {
                let _ = l.end(None).await;
            }
        }
    }
}

fn write_local(path: &Path, mut rx: mpsc::Receiver<Msg>) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("an object path has no folder"))?;
    std::fs::create_dir_all(dir)?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!("#{}", uuid::Uuid::now_v7().simple()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        // Stored objects never change: read-only, and readable by the
        // containers a table's object may be linked into.
        file.set_permissions(std::fs::Permissions::from_mode(0o444))?;
        let mut syncer = None;
        let written = receive(&mut file, &mut rx, &mut syncer);
        if let Some(s) = syncer {
            s.stop();
        }
        written?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes what arrives until `Finish`; past each `SYNC_EVERY` bytes asks the
/// syncer (started on first need) to sync what is written so far.
fn receive(
    file: &mut std::fs::File,
    rx: &mut mpsc::Receiver<Msg>,
    syncer: &mut Option<Syncer>,
) -> std::io::Result<()> {
    let (mut written, mut synced) = (0u64, 0u64);
    loop {
        match rx.blocking_recv() {
            Some(Msg::Data(b)) => {
                file.write_all(&b)?;
                written += b.len() as u64;
                if written - synced >= SYNC_EVERY {
                    if syncer.is_none() {
                        *syncer = Some(Syncer::start(file.try_clone()?));
                    }
                    if let Some(s) = syncer {
                        s.kick();
                    }
                    synced = written;
                }
            }
            Some(Msg::Finish) => return Ok(()),
            None => return Err(std::io::Error::other("the upload was abandoned")),
        }
    }
}

/// A thread that syncs a file beside its writes; a request while one sync
/// runs is dropped (the next sync covers it).
struct Syncer {
    kick: std::sync::mpsc::SyncSender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Syncer {
    fn start(file: std::fs::File) -> Self {
        let (kick, kicked) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::spawn(move || {
            while kicked.recv().is_ok() {
                let _ = file.sync_data();
            }
        });
        Self { kick, thread }
    }

    fn kick(&self) {
        let _ = self.kick.try_send(());
    }

    fn stop(self) {
        drop(self.kick);
        let _ = self.thread.join();
    }
}
