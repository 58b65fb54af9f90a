//! Outbound notifications: the loop that `gantry up` and `gantry server` run
//! to POST a job's (or pipeline run's) end to the URLs its spec names,
//! signed with the Standard Webhooks scheme, retried with exponential backoff
//! until delivered or until the store's deadline, every attempt recorded.
//! Targets on loopback, private, link-local and similar ranges are refused
//! unless the server runs with `--allow-private-notify-targets` (SSRF); the
//! address checked is the address connected to (the client is pinned to it).

use base64::Engine;
use gantry_store::{Notification, Store};
use gantry_vault::Vault;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How often to look for due notifications without a wake-up (retries, and
/// jobs that ended in another process).
const POLL: Duration = Duration::from_secs(1);

/// Whether an address is one a notification may not reach by default.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || o[0] >= 224
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Resolves the URL's host and picks an address it may be sent to.
async fn target(url: &reqwest::Url, allow_private: bool) -> Result<SocketAddr, String> {
    let host = url.host_str().ok_or("the URL has no host")?;
    let port = url.port_or_known_default().ok_or("the URL has no port")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let first = addrs
        .first()
        .copied()
        .ok_or_else(|| format!("{host} has no address"))?;
    if !allow_private {
        if let Some(bad) = addrs.iter().find(|a| is_private(a.ip())) {
            return Err(format!(
                "refused: {host} resolves to {} (loopback/private/link-local); \
                 start the server with --allow-private-notify-targets to allow it",
                bad.ip()
            ));
        }
    }
    Ok(first)
}

fn sign(secret: &str, id: &str, ts: &str, body: &[u8]) -> Option<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.decode(secret.strip_prefix("whsec_")?).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!("v1,{}", b64.encode(mac.finalize().into_bytes())))
}

/// Runs until `stop` is cancelled.
pub async fn run(
    store: Arc<dyn Store>,
    vault: Vault,
    allow_private: bool,
    stop: CancellationToken,
) {
    tracing::info!(allow_private, "notifier started");
    let mut changes = store.subscribe();
    loop {
        match store.due_notifications(TIMEOUT * 3, 20).await {
            Ok(list) => {
                for n in list {
                    send(store.as_ref(), &vault, allow_private, n).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read due notifications"),
        }
        // A job or run ending in this process may have queued some: look at
        // once. Others (and retries, due in a second or more) are found by
        // the poll, which reads before it writes.
        let sleep = tokio::time::sleep(POLL);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = &mut sleep => break,
                c = changes.recv() => match c {
                    Ok(gantry_store::Change::Status(_, st)) if st.is_terminal() => break,
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        (&mut sleep).await;
                        break;
                    }
                },
            }
        }
        if stop.is_cancelled() {
            break;
        }
    }
    tracing::info!("notifier stopped");
}

async fn send(store: &dyn Store, vault: &Vault, allow_private: bool, n: Notification) {
    let backoff = Duration::from_secs(1 << n.attempts.min(6)).min(MAX_BACKOFF);
    let result = attempt(vault, allow_private, &n).await;
    let recorded = match result {
        Ok(code) if (200..300).contains(&code) => {
            tracing::info!(notification = n.id, url = %n.url, code, "notification delivered");
            store
                .record_notification_attempt(n.id, Some(code), None, true, Duration::ZERO)
                .await
        }
        Ok(code) => {
            tracing::info!(notification = n.id, url = %n.url, code, retry_in = ?backoff, "notification refused by its receiver; retrying");
            let why = format!("HTTP {code}");
            store
                .record_notification_attempt(n.id, Some(code), Some(&why), false, backoff)
                .await
        }
        Err((why, retry)) => {
            tracing::info!(notification = n.id, url = %n.url, error = %why, "notification not sent");
            // A refused target is not retried: nothing will change.
            let wait = if retry {
                backoff
            } else {
                Duration::from_millis(gantry_store::NOTIFY_DEADLINE_MS as u64)
            };
            store
                .record_notification_attempt(n.id, None, Some(&why), false, wait)
                .await
        }
    };
    if let Err(e) = recorded {
        tracing::warn!(notification = n.id, error = %e, "cannot record the notification attempt");
    }
}

/// One POST; `Err((why, retryable))` when no answer came.
async fn attempt(
    vault: &Vault,
    allow_private: bool,
    n: &Notification,
) -> Result<u16, (String, bool)> {
    let url = reqwest::Url::parse(&n.url).map_err(|e| (format!("bad URL: {e}"), false))?;
    let addr = target(&url, allow_private).await.map_err(|e| {
        let retry = !e.starts_with("refused");
        (e, retry)
    })?;
    let host = url.host_str().unwrap_or_default().to_string();
    // Pinned to the address just checked, so a second lookup cannot move it.
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .resolve(&host, addr)
        .build()
        .map_err(|e| (e.to_string(), true))?;
    let id = format!("ntf_{}", n.id);
    let ts = (gantry_core::time::now_ms() / 1000).to_string();
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", "gantry-notifier")
        .header("webhook-id", &id)
        .header("webhook-timestamp", &ts);
    if let Some(sealed) = &n.secret_sealed {
        let secret = vault
            .open(sealed)
            .map_err(|e| (format!("cannot open the signing secret: {e}"), false))?;
        if let Some(sig) = sign(&secret, &id, &ts, n.body.as_bytes()) {
            req = req.header("webhook-signature", sig);
        }
    }
    let resp = req
        .body(n.body.clone())
        .send()
        .await
        .map_err(|e| (with_causes(&e), true))?;
    Ok(resp.status().as_u16())
}

/// An error with its causes ("... : connection refused", "... : invalid
/// peer certificate: UnknownIssuer"), so a recorded attempt says why.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let c_text = c.to_string();
        if !text.contains(&c_text) {
            text.push_str(": ");
            text.push_str(&c_text);
        }
        cause = c.source();
    }
    text
}
