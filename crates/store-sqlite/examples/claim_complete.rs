//! Store claim+complete throughput on SQLite, as `bench/` measures it
//! (8 claimers of 8, each finishing what it claimed concurrently), for
//! profiling the queue without building the whole benchmark:
//! `cargo run --release -p gantry-store-sqlite --example claim_complete -- [JOBS] [BACKLOG]`.

use gantry_store::prelude::*;
use gantry_store::NewJob;
use gantry_store_sqlite::SqliteStore;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLAIMERS: usize = 8;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let measured: usize = args.next().map_or(Ok(5_000), |a| a.parse())?;
    let backlog: usize = args.next().map_or(Ok(0), |a| a.parse())?;
    let dir = std::env::temp_dir().join(format!("gantry-claim-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store = Arc::new(SqliteStore::open(&dir.join("gantry.db"))?);
    let spec = serde_json::json!({"image": "gantry-test/busybox:2", "command": ["true"]});
    let job = || {
        NewJob::new(
            gantry_core::ProjectId::default_project(),
            None,
            spec.clone(),
            1,
            Duration::ZERO,
        )
    };
    store
        .enqueue_batch((0..measured).map(|_| job()).collect())
        .await?;
    for chunk in (0..backlog).collect::<Vec<_>>().chunks(10_000) {
        store
            .enqueue_batch(chunk.iter().map(|_| job()).collect())
            .await?;
    }
    let done = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let mut claimers = Vec::new();
    for w in 0..CLAIMERS {
        let (store, done) = (store.clone(), done.clone());
        claimers.push(tokio::spawn(async move {
            let worker: gantry_core::WorkerId = format!("bench-{w}")
                .parse()
                .map_err(gantry_store::StoreError::Internal)?;
            let outcome = gantry_core::job::Outcome::succeeded(0);
            let no_outputs = gantry_store::Outputs::default();
            while done.load(Ordering::Relaxed) < measured {
                let claim = store.claim(&worker, 8, Duration::from_secs(30)).await?;
                if claim.jobs.is_empty() {
                    break;
                }
                let mut finishes = Vec::new();
                for c in &claim.jobs {
                    let (store, worker, outcome, no_outputs) = (
                        store.clone(),
                        worker.clone(),
                        outcome.clone(),
                        no_outputs.clone(),
                    );
                    let (id, attempt) = (c.job.id, c.job.attempt);
                    finishes.push(tokio::spawn(async move {
                        store
                            .finish_attempt(id, attempt, &worker, &outcome, None, &no_outputs)
                            .await
                    }));
                }
                for f in finishes {
                    f.await
                        .map_err(|e| gantry_store::StoreError::Internal(e.to_string()))??;
                }
                done.fetch_add(claim.jobs.len(), Ordering::Relaxed);
            }
            Ok::<_, gantry_store::StoreError>(())
        }));
    }
    for c in claimers {
        c.await??;
    }
    let n = done.load(Ordering::Relaxed);
    println!(
        "claim+complete: {n} jobs, {backlog} queued behind: {:.0} jobs/s",
        n as f64 / t.elapsed().as_secs_f64()
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
