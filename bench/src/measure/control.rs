//! Section 3: the control plane without containers: HTTP enqueue and store claim+complete.

use super::*;
use crate::procs::Gantry;
use crate::{Args, Report};
use anyhow::bail;
use gantry_store::{NewJob, Store};
use gantry_store_sqlite::SqliteStore;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Concurrent claimers in the store benchmark (like slots across workers).
pub(super) const CLAIMERS: usize = 8;

/// Section 3: Control plane: HTTP enqueue rate (several clients) and the store's claim+complete rate.
pub async fn control_plane(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    let clients = 8;
    let secs = if args.quick { 2.0 } else { 10.0 };
    eprintln!("control plane: HTTP enqueue with {clients} clients for {secs} s");
    let g = Gantry::start(&args.gantry, &["server"])?;
    let spec = json!({"image": args.image, "command": ["true"]});
    let rate = api_enqueue(&g, &spec, clients, secs).await?;
    report.rows.push(row(
        &format!("API enqueue ({clients} HTTP clients)"),
        format!("{rate:.0} jobs/s"),
        "River ~46k/s (8-core laptop), graphile-worker ~15.6k/s".into(),
        None,
        "≥ 5,000 jobs/s",
        Some(rate >= 5000.0),
    ));

    // Batches: POST /v1/jobs/batch, one request and one commit per batch.
    let batch = 500;
    eprintln!(
        "control plane: HTTP batch enqueue ({batch} a request) with {clients} clients for {secs} s"
    );
    let rate = batch_enqueue(&g, &spec, clients, batch, secs).await?;
    drop(g);
    report.rows.push(row(
        &format!("API batch enqueue ({clients} HTTP clients, {batch} jobs a request)"),
        format!("{rate:.0} jobs/s"),
        String::new(),
        None,
        "≥ 20,000 jobs/s",
        Some(rate >= 20_000.0),
    ));

    let backlogs: &[usize] = if args.quick {
        &[0, 10_000]
    } else {
        &[0, 10_000, 100_000]
    };
    let measured = if args.quick { 1_000 } else { 5_000 };
    let mut rates = Vec::new();
    for &backlog in backlogs {
        eprintln!("control plane: store claim+complete of {measured} jobs with {backlog} queued");
        let dir = tempfile::tempdir()?;
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("gantry.db"))?);
        rates.push((
            backlog,
            claim_complete(store, &spec, measured, backlog).await?,
        ));
    }
    let base = rates[0].1;
    for (backlog, rate) in &rates {
        let ok = *rate >= 20_000.0 && base / rate <= 2.0;
        report.rows.push(row(
            &format!("store claim+complete (SQLite, {CLAIMERS} claimers of 8), {backlog} queued"),
            format!("{rate:.0} jobs/s"),
            format!("0 queued: {base:.0} jobs/s"),
            Some(rate / base),
            "≥ 20,000 jobs/s, ≤ 2× drop at 100k",
            Some(ok),
        ));
    }
    report.notes.push(
        "Store claim+complete: every claim and every completion is durable (synchronous=FULL); writes that arrive together share one commit and one fsync (group commit).".into(),
    );
    report.notes.push("Storage figures: cp and Gantry alternate, several rounds each, medians compared; `sync` runs before every measured write; both read the same file from the page cache. An import is durable (its objects are fsynced before the version commits), so its like-for-like reference is cp + sync of the copy; plain cp only fills the page cache and varies widely between rounds on this VM (fresh memory costs host faults).".into());
    Ok(())
}

/// `POST /v1/jobs/batch` from `clients` HTTP clients for `secs`; jobs/s.
pub(super) async fn batch_enqueue(
    g: &Gantry,
    spec: &serde_json::Value,
    clients: usize,
    batch: usize,
    secs: f64,
) -> anyhow::Result<f64> {
    let jobs = json!({ "jobs": vec![json!({ "spec": spec }); batch] });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(secs);
    let t = std::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (url, token, jobs) = (g.url.clone(), g.token.clone(), jobs.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut n = 0u64;
            while std::time::Instant::now() < deadline {
                let r = http
                    .post(format!("{url}/v1/jobs/batch"))
                    .bearer_auth(&token)
                    .json(&jobs)
                    .send()
                    .await?;
                anyhow::ensure!(r.status() == 201, "batch enqueue failed: {}", r.status());
                n += batch as u64;
            }
            anyhow::Ok(n)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    Ok(total as f64 / t.elapsed().as_secs_f64())
}

/// Single-request enqueues from `clients` HTTP clients for `secs`; jobs/s.
pub(super) async fn api_enqueue(
    g: &Gantry,
    spec: &serde_json::Value,
    clients: usize,
    secs: f64,
) -> anyhow::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (url, token, spec) = (g.url.clone(), g.token.clone(), spec.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let r = http
                    .post(format!("{url}/v1/jobs"))
                    .bearer_auth(&token)
                    .json(&json!({ "spec": spec }))
                    .send()
                    .await?;
                if r.status() != 201 {
                    bail!("enqueue failed: {}", r.status());
                }
                n += 1;
            }
            Ok(n)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    Ok(total as f64 / t.elapsed().as_secs_f64())
}

/// Claims and completes `measured` jobs with `backlog` more queued behind
/// them, from [`CLAIMERS`] concurrent claimers; jobs/s.
pub(super) async fn claim_complete(
    store: Arc<dyn Store>,
    spec: &serde_json::Value,
    measured: usize,
    backlog: usize,
) -> anyhow::Result<f64> {
    let job = || {
        NewJob::new(
            gantry_core::ProjectId::default_project(),
            None,
            spec.clone(),
            1,
            Duration::ZERO,
        )
    };
    // The measured jobs first (claims take the oldest), then the backlog behind them.
    store
        .enqueue_batch((0..measured).map(|_| job()).collect())
        .await?;
    for chunk in (0..backlog).collect::<Vec<_>>().chunks(10_000) {
        store
            .enqueue_batch(chunk.iter().map(|_| job()).collect())
            .await?;
    }
    // Like a fleet of busy slots: several claimers at once, each finishing
    // what it claimed concurrently (commits that arrive together share fsyncs).
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t = Instant::now();
    let lease = Duration::from_secs(30);
    let mut claimers = Vec::new();
    for w in 0..CLAIMERS {
        let (store, done) = (store.clone(), done.clone());
        claimers.push(tokio::spawn(async move {
            let worker: gantry_core::WorkerId =
                format!("bench-{w}").parse().map_err(anyhow::Error::msg)?;
            while done.load(std::sync::atomic::Ordering::Relaxed) < measured {
                let claim = store.claim(&worker, 8, lease).await?;
                if claim.jobs.is_empty() {
                    break;
                }
                let outcome = gantry_core::job::Outcome::succeeded(0);
                let no_outputs = Default::default();
                let finishes = claim.jobs.iter().map(|c| {
                    store.finish_attempt(
                        c.job.id,
                        c.job.attempt,
                        &worker,
                        &outcome,
                        None,
                        &no_outputs,
                    )
                });
                for f in futures_util::future::join_all(finishes).await {
                    f?;
                }
                done.fetch_add(claim.jobs.len(), std::sync::atomic::Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for c in claimers {
        c.await??;
    }
    let finished = done.load(std::sync::atomic::Ordering::Relaxed);
    Ok(finished as f64 / t.elapsed().as_secs_f64())
}
