//! One attempt on a warm container: claim it, stage the data folder into its
//! slot, set the job's limits, hand the job to the gate, supervise it as a
//! cold one, remove the container and bring the folder back.
//!
//! Returns `None` whenever the job should start cold instead (no pool of its
//! key, no idle container, or a container that no longer takes a hand-over:
//! killed, its gate dead, the engine restarted); nothing of the job ran then.

use crate::attempt::{supervise, AttemptPlan, Start, Supervised};
use crate::warm::{move_back, move_in, PoolKey, WarmPools};
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use gantry_core::events::LogLine;
use gantry_gate::Handover;
use gantry_runtime::{ContainerRuntime, ContainerSpec, Limits, OutputChunk, OutputStream};
use rand::RngCore;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub(crate) async fn run(
    rt: &dyn ContainerRuntime,
    pools: &Arc<WarmPools>,
    plan: &AttemptPlan,
    cspec: &ContainerSpec,
    digest: &str,
    (events, cancel, abort): (
        &mpsc::Sender<LogLine>,
        &CancellationToken,
        &CancellationToken,
    ),
    creating: std::time::Instant,
) -> Option<Supervised> {
    let warm = rt.warm()?;
    let config = pools.image_config(digest).await?;
    let argv = config.argv(cspec.command.as_deref());
    if argv.is_empty() {
        // The engine's own error ("no command specified") comes from a cold start.
        return None;
    }
    let key = PoolKey::of(cspec, digest);
    let mut template = cspec.clone();
    template.env.clear();
    template.labels.clear();
    loop {
        let w = pools.take(&key, &template)?;
        let give_up = |w: &crate::warm::WarmContainer| {
            let _ = move_back(&w.slot, &plan.data_dir);
            pools.done(&w.id);
        };
        if let Err(e) = move_in(&plan.data_dir, &w.slot) {
            tracing::warn!(error = %e, "cannot stage into a warm container; starting cold");
            let _ = rt.remove(&w.id).await;
            give_up(&w);
            return None;
        }
        let limits = Limits {
            memory: cspec.memory,
            cpus: cspec.cpus,
            pids: cspec.pids,
        };
        if limits != w.limits {
            if let Err(e) = warm.update_limits(&w.id, limits).await {
                tracing::warn!(container = %w.id, error = %e, "a warm container refused the job's limits; trying another");
                let _ = rt.remove(&w.id).await;
                give_up(&w);
                continue;
            }
        }
        let nonce = nonce();
        let message = Handover {
            nonce: nonce.clone(),
            argv: argv.clone(),
            env: cspec.env.clone(),
        }
        .encode();
        tracing::debug!(container = %w.id, job = %plan.job_id, "warm start");
        let end = supervise(
            rt,
            plan,
            &w.id,
            events.clone(),
            cancel.clone(),
            abort.clone(),
            creating,
            Start::Warm { message, nonce },
        )
        .await;
        let back = if matches!(end, Supervised::Ended(_)) {
            // The job's process ended (the engine's wait answered): nothing
            // runs in the container any more, its mounts are gone with it,
            // so the folder comes back first and the removal happens beside
            // the commit instead of before it.
            let back = move_back(&w.slot, &plan.data_dir);
            pools.retire(w.id.clone());
            back
        } else {
            if let Err(e) = rt.remove(&w.id).await {
                tracing::warn!(container = %w.id, error = %e, "cannot remove a warm container; the sweep will retry");
            }
            let back = move_back(&w.slot, &plan.data_dir);
            pools.done(&w.id);
            back
        };
        if let Supervised::NotStarted(o) = &end {
            let why = o.error.as_ref().map(|e| e.message.clone());
            tracing::warn!(container = %w.id, error = ?why, "a warm container took no hand-over; trying another");
            continue;
        }
        if let Err(e) = back {
            return Some(Supervised::Failed(gantry_core::job::Outcome::failed(
                gantry_core::ErrorKind::Infrastructure,
                format!("cannot bring the data folder back from the warm container: {e}"),
                None,
            )));
        }
        return Some(end);
    }
}

fn nonce() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

enum Gate {
    /// Stdout so far is a prefix of the gate's marker: held back.
    Deciding(Vec<u8>),
    /// The job's own output.
    Pass,
    /// The gate's failure message.
    Failed(Vec<u8>),
}

/// Splits the gate's own failure report (stdout starting with the nonce,
/// which the job never saw) from the job's output. Output that merely starts
/// like the marker is held back only until it differs, or the stream ends.
pub(crate) fn gate_filter(
    output: BoxStream<'static, gantry_runtime::Result<OutputChunk>>,
    nonce: &str,
) -> (
    BoxStream<'static, gantry_runtime::Result<OutputChunk>>,
    Arc<Mutex<Option<String>>>,
) {
    let failure = Arc::new(Mutex::new(None));
    let state = Arc::new(Mutex::new(Gate::Deciding(Vec::new())));
    let marker = format!("{nonce} ").into_bytes();
    let (st, fail) = (state.clone(), failure.clone());
    let filtered = output.flat_map(move |item| {
        let out: Vec<gantry_runtime::Result<OutputChunk>> = match item {
            Ok((OutputStream::Stdout, bytes)) => {
                let mut st = st.lock().unwrap_or_else(|p| p.into_inner());
                match &mut *st {
                    Gate::Pass => vec![Ok((OutputStream::Stdout, bytes))],
                    Gate::Failed(buf) => {
                        buf.extend_from_slice(&bytes);
                        set(&fail, buf);
                        vec![]
                    }
                    Gate::Deciding(buf) => {
                        buf.extend_from_slice(&bytes);
                        if buf.starts_with(&marker) {
                            let rest = buf[marker.len()..].to_vec();
                            set(&fail, &rest);
                            *st = Gate::Failed(rest);
                            vec![]
                        } else if marker.starts_with(buf) {
                            vec![]
                        } else {
                            let held = std::mem::take(buf);
                            *st = Gate::Pass;
                            vec![Ok((OutputStream::Stdout, Bytes::from(held)))]
                        }
                    }
                }
            }
            other => vec![other],
        };
        stream::iter(out)
    });
    let flush = stream::once(async move {
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        match &mut *st {
            Gate::Deciding(buf) if !buf.is_empty() => {
                Some(Ok((OutputStream::Stdout, Bytes::from(std::mem::take(buf)))))
            }
            _ => None,
        }
    })
    .filter_map(|x| async move { x });
    (filtered.chain(flush).boxed(), failure)
}

fn set(fail: &Arc<Mutex<Option<String>>>, bytes: &[u8]) {
    if let Ok(mut f) = fail.lock() {
        *f = Some(String::from_utf8_lossy(bytes).into_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(chunks: &[&str]) -> (String, Option<String>) {
        let items: Vec<gantry_runtime::Result<OutputChunk>> = chunks
            .iter()
            .map(|c| Ok((OutputStream::Stdout, Bytes::from(c.to_string()))))
            .collect();
        let (s, fail) = gate_filter(stream::iter(items).boxed(), "abc123");
        let out: Vec<_> = s.collect().await;
        let text = out
            .into_iter()
            .map(|r| String::from_utf8_lossy(&r.expect("chunk").1).into_owned())
            .collect::<String>();
        let failure = fail.lock().expect("lock").clone();
        (text, failure)
    }

    #[tokio::test]
    async fn the_gates_report_is_told_from_the_jobs_output() {
        assert_eq!(run(&["hello\n"]).await, ("hello\n".into(), None));
        // Output that starts like the marker comes out whole, late at worst.
        assert_eq!(run(&["ab", "c1"]).await, ("abc1".into(), None));
        assert_eq!(run(&["ab", "cx\n"]).await, ("abcx\n".into(), None));
        assert_eq!(
            run(&["abc1", "23 exec: \"x\": not found\n"]).await,
            (String::new(), Some("exec: \"x\": not found\n".into()))
        );
    }
}
