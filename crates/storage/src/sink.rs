//! Writing one new object, durably, before any metadata names it.
//!
//! In a local folder the bytes go straight to a temporary file beside the
//! object on a blocking thread (no staging copy); a second thread syncs what
//! is written as it goes, so the final `fsync` waits for little. The file is then synced, renamed into place and its folder synced:
//! object_store's local store does none of that. Elsewhere (S3) it is a
//! multipart upload, durable once acknowledged.

use crate::Result;
use bytes::Bytes;
use object_store::WriteMultipart;
use std::io::Write;
use std::path::PathBuf;
use tokio::sync::mpsc;

/// Bytes written between background syncs.
const SYNC_EVERY: u64 = 32 << 20;

pub(crate) enum ObjectSink {
    Local(LocalSink),
    Remote(WriteMultipart),
}

pub(crate) struct LocalSink {
    tx: mpsc::Sender<Msg>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

enum Msg {
    Data(Bytes),
    Finish,
}

impl ObjectSink {
    pub(crate) fn local(path: PathBuf) -> Self {
        let (tx, rx) = mpsc::channel(16);
        let task = tokio::task::spawn_blocking(move || write_local(path, rx));
        Self::Local(LocalSink { tx, task })
    }

    pub(crate) async fn write(&mut self, data: Bytes) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        match self {
            Self::Remote(up) => {
                up.wait_for_capacity(4).await?;
                up.write(&data);
            }
            Self::Local(l) => {
                if l.tx.send(Msg::Data(data)).await.is_err() {
                    // The writer stopped on an error: finish() reports it.
                }
            }
        }
        Ok(())
    }

    /// Makes the object durable and visible under its key.
    pub(crate) async fn finish(self) -> Result<()> {
        match self {
            Self::Remote(up) => {
                up.finish().await?;
            }
            Self::Local(l) => {
                let _ = l.tx.send(Msg::Finish).await;
                drop(l.tx);
                l.task.await.map_err(std::io::Error::other)??;
            }
        }
        Ok(())
    }

    /// Drops what was written; nothing is left behind.
    pub(crate) async fn abort(self) {
        match self {
            Self::Remote(up) => {
                let _ = up.abort().await;
            }
            Self::Local(l) => {
                drop(l.tx);
                let _ = l.task.await;
            }
        }
    }
}

fn write_local(path: PathBuf, mut rx: mpsc::Receiver<Msg>) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("an object path has no folder"))?
        .to_path_buf();
    std::fs::create_dir_all(&dir)?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!("#{}", uuid::Uuid::now_v7().simple()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        // Syncs run beside the writes; a request while one runs is dropped.
        let syncer_file = file.try_clone()?;
        let (kick, kicked) = std::sync::mpsc::sync_channel::<()>(1);
        let syncer = std::thread::spawn(move || {
            while kicked.recv().is_ok() {
                let _ = syncer_file.sync_data();
            }
        });
        let written = (|| {
            let (mut written, mut synced) = (0u64, 0u64);
            loop {
                match rx.blocking_recv() {
                    Some(Msg::Data(b)) => {
                        file.write_all(&b)?;
                        written += b.len() as u64;
                        if written - synced >= SYNC_EVERY {
                            let _ = kick.try_send(());
                            synced = written;
                        }
                    }
                    Some(Msg::Finish) => return Ok(written),
                    None => return Err(std::io::Error::other("the upload was abandoned")),
                }
            }
        })();
        drop(kick);
        let _ = syncer.join();
        written?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
