//! Changes across processes: `NOTIFY` out, `LISTEN` in.
//!
//! Each process has an instance id. The notifier sends this process's
//! changes on [`CHANNEL`] in batches (one `NOTIFY` per batch, from its own
//! connection, so no caller waits on it); the listener hands the changes of
//! other processes to this process's subscribers. Payload: the instance id
//! on the first line, then one change per line (`E`, `V <job>`,
//! `S <job> <status>`, `C <job>`).

use futures_util::StreamExt;
use gantry_core::{JobId, JobStatus};
use gantry_store::Change;
use rand::RngCore;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio_postgres::AsyncMessage;

/// The one `LISTEN`/`NOTIFY` channel.
pub const CHANNEL: &str = "gantry_changes";
/// Postgres refuses payloads of 8000 bytes or more.
const MAX_PAYLOAD: usize = 7000;
/// Longest pause between two attempts to reconnect.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub(crate) fn instance_id() -> String {
    let mut b = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) fn encode(change: &Change) -> String {
    match change {
        Change::Enqueued => "E".into(),
        Change::Events(id) => format!("V {id}"),
        Change::Status(id, s) => format!("S {id} {}", s.as_str()),
        Change::CancelRequested(id) => format!("C {id}"),
    }
}

pub(crate) fn decode(line: &str) -> Option<Change> {
    let mut parts = line.split(' ');
    let kind = parts.next()?;
    let job = |p: Option<&str>| p.and_then(|s| s.parse::<JobId>().ok());
    Some(match kind {
        "E" => Change::Enqueued,
        "V" => Change::Events(job(parts.next())?),
        "S" => {
            let id = job(parts.next())?;
            let status = parts.next()?.parse::<JobStatus>().ok()?;
            Change::Status(id, status)
        }
        "C" => Change::CancelRequested(job(parts.next())?),
        _ => return None,
    })
}

/// The changes of a payload, unless this instance sent it.
pub(crate) fn from_payload(payload: &str, me: &str) -> Vec<Change> {
    let mut lines = payload.lines();
    match lines.next() {
        Some(sender) if sender != me => lines.filter_map(decode).collect(),
        _ => Vec::new(),
    }
}

pub(crate) fn start(
    config: tokio_postgres::Config,
    instance: String,
    inbox: mpsc::UnboundedReceiver<Change>,
    changes: broadcast::Sender<Change>,
) -> tokio::sync::oneshot::Receiver<()> {
    let (listening, heard) = tokio::sync::oneshot::channel();
    tokio::spawn(notifier(config.clone(), instance.clone(), inbox));
    tokio::spawn(listener(config, instance, changes, listening));
    heard
}

async fn connect(config: &tokio_postgres::Config) -> Option<tokio_postgres::Client> {
    match config.connect(tokio_postgres::NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Some(client)
        }
        Err(e) => {
            tracing::debug!(error = %e, "the change notifier cannot connect");
            None
        }
    }
}

async fn notifier(
    config: tokio_postgres::Config,
    instance: String,
    mut inbox: mpsc::UnboundedReceiver<Change>,
) {
    let mut client: Option<tokio_postgres::Client> = None;
    let mut backoff = Duration::from_millis(100);
    while let Some(first) = inbox.recv().await {
        let mut payload = instance.clone();
        let mut next = Some(first);
        while let Some(change) = next.take() {
            payload.push('\n');
            payload.push_str(&encode(&change));
            if payload.len() >= MAX_PAYLOAD {
                break;
            }
            next = inbox.try_recv().ok();
        }
        // Sent or dropped: a change is a wake-up, and every waiter also
        // polls; a database that is down drops them until it is back.
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            client = connect(&config).await;
            if client.is_none() {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            backoff = Duration::from_millis(100);
        }
        if let Some(c) = &client {
            if let Err(e) = c
                .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
                .await
            {
                tracing::debug!(error = %e, "cannot send changes to other processes");
            }
        }
    }
}

async fn listener(
    config: tokio_postgres::Config,
    instance: String,
    changes: broadcast::Sender<Change>,
    listening: tokio::sync::oneshot::Sender<()>,
) {
    let mut backoff = Duration::from_millis(100);
    let mut first = true;
    let mut listening = Some(listening);
    loop {
        match config.connect(tokio_postgres::NoTls).await {
            Ok((client, mut connection)) => {
                let (tx, mut rx) = mpsc::unbounded_channel();
                let pump = tokio::spawn(async move {
                    let mut messages =
                        futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(m) = messages.next().await {
                        match m {
                            Ok(AsyncMessage::Notification(n)) => {
                                if tx.send(n.payload().to_string()).is_err() {
                                    break;
                                }
                            }
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                });
                if client
                    .batch_execute(&format!("LISTEN {CHANNEL}"))
                    .await
                    .is_ok()
                {
                    backoff = Duration::from_millis(100);
                    if !first {
                        // Changes may have gone by while it was away.
                        let _ = changes.send(Change::Enqueued);
                    }
                    first = false;
                    if let Some(l) = listening.take() {
                        let _ = l.send(());
                    }
                    while let Some(payload) = rx.recv().await {
                        for c in from_payload(&payload, &instance) {
                            let _ = changes.send(c);
                        }
                    }
                }
                pump.abort();
                drop(client);
            }
            Err(e) => tracing::debug!(error = %e, "the change listener cannot connect"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_go_round_and_own_payloads_are_ignored() {
        let id = JobId::new();
        let all = vec![
            Change::Enqueued,
            Change::Events(id),
            Change::Status(id, JobStatus::Succeeded),
            Change::CancelRequested(id),
        ];
        let payload = std::iter::once("other".to_string())
            .chain(all.iter().map(encode))
            .collect::<Vec<_>>()
            .join("\n");
        let got = from_payload(&payload, "me");
        assert_eq!(format!("{got:?}"), format!("{all:?}"));
        assert!(from_payload(&payload, "other").is_empty());
        assert!(decode("S nonsense").is_none());
    }
}
