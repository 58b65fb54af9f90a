//! Section: the fleet on PostgreSQL. A local cluster of the harness's own
//! (Debian's server, `initdb` in a temporary folder, durable commits:
//! `fsync` and `synchronous_commit` on): the store's claim+complete rate
//! with and without a backlog, single-request API enqueue, no-op latency
//! against the same on SQLite (alternating), and no-op throughput with 1, 2
//! and 4 worker processes, with where the CPU went.

use super::control::{api_enqueue, claim_complete, CLAIMERS};
use super::throughput::{submit_many, wait_all};
use super::*;
use crate::procs::{cpu_seconds, percentile, timed, Gantry, Worker};
use crate::{Args, Report};
use anyhow::Context;
use gantry_store::Store;
use gantry_store_postgres::testing::{fresh_database_on, Cluster};
use gantry_store_postgres::PgStore;
use serde_json::json;
use std::sync::Arc;

pub fn fleet(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    let cluster = Cluster::start().map_err(|e| anyhow::anyhow!("no PostgreSQL: {e}"))?;
    let admin = cluster.admin_url();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let spec = json!({"image": args.image, "command": ["true"]});

    // The store alone: claim+complete, as for SQLite in the control section.
    let backlogs: &[usize] = if args.quick {
        &[0, 10_000]
    } else {
        &[0, 10_000, 100_000]
    };
    let measured = if args.quick { 1_000 } else { 5_000 };
    let mut rates = Vec::new();
    for &backlog in backlogs {
        eprintln!("fleet: Postgres claim+complete of {measured} jobs with {backlog} queued");
        let rate = rt.block_on(async {
            let url = fresh_database_on(&admin).await;
            let store: Arc<dyn Store> = Arc::new(PgStore::connect(&url).await?);
            claim_complete(store, &spec, measured, backlog).await
        })?;
        rates.push((backlog, rate));
    }
    let base = rates[0].1;
    for (backlog, rate) in &rates {
        report.rows.push(row(
            &format!("store claim+complete (Postgres, {CLAIMERS} claimers of 8), {backlog} queued"),
            format!("{rate:.0} jobs/s"),
            format!("0 queued: {base:.0} jobs/s"),
            Some(rate / base),
            "≥ 5,000 jobs/s, ≤ 2× drop at 100k",
            Some(*rate >= 5_000.0 && base / rate <= 2.0),
        ));
    }

    // The reference: what this machine's PostgreSQL commits durably, as
    // pgbench measures it (its simple-update transaction, 8 clients).
    let tps = pgbench(&cluster, &rt, &admin, secs_of(args))?;
    report.rows.push(row(
        "durable commits: store claim+complete (0 queued) vs pgbench -N, 8 clients",
        format!("{base:.0} jobs/s"),
        format!("{tps:.0} tps"),
        Some(base / tps),
        "shows the bound",
        None,
    ));

    // The API on Postgres: single-request enqueues.
    let clients = 8;
    let secs = secs_of(args);
    eprintln!("fleet: HTTP enqueue on Postgres with {clients} clients for {secs} s");
    let url = rt.block_on(fresh_database_on(&admin));
    let g = Gantry::start_env(&args.gantry, &["server"], &[("GANTRY_DATABASE_URL", &url)])?;
    let rate = rt.block_on(api_enqueue(&g, &spec, clients, secs))?;
    let batch = 500;
    let batched = rt.block_on(super::control::batch_enqueue(
        &g, &spec, clients, batch, secs,
    ))?;
    drop(g);
    report.rows.push(row(
        &format!("API batch enqueue on Postgres ({clients} HTTP clients, {batch} jobs a request)"),
        format!("{batched:.0} jobs/s"),
        String::new(),
        None,
        "≥ 5,000 jobs/s",
        Some(batched >= 5_000.0),
    ));
    report.rows.push(row(
        &format!("API enqueue on Postgres ({clients} HTTP clients)"),
        format!("{rate:.0} jobs/s"),
        String::new(),
        None,
        "≥ 5,000 jobs/s",
        Some(rate >= 5_000.0),
    ));

    // No-op latency, Postgres against SQLite, alternating.
    let n = if args.quick { 8 } else { 40 };
    eprintln!("fleet: {n} rounds of no-op latency on Postgres and on SQLite");
    let url = rt.block_on(fresh_database_on(&admin));
    let pg = Gantry::start_env(
        &args.gantry,
        &["up", "--slots", "4"],
        &[("GANTRY_DATABASE_URL", &url)],
    )?;
    let lite = Gantry::start(&args.gantry, &["up", "--slots", "4"])?;
    let pg_spec = pg.write("noop.yaml", &noop_spec(&args.image))?;
    let lite_spec = lite.write("noop.yaml", &noop_spec(&args.image))?;
    let (pg_spec, lite_spec) = (
        pg_spec.to_str().context("path")?.to_string(),
        lite_spec.to_str().context("path")?.to_string(),
    );
    let (mut ps, mut ls) = (Vec::new(), Vec::new());
    for i in 0..n + 2 {
        let t_p = timed(&mut pg.cli(&["jobs", "submit", &pg_spec, "--wait"]))?;
        let t_l = timed(&mut lite.cli(&["jobs", "submit", &lite_spec, "--wait"]))?;
        // The first rounds warm caches up.
        if i >= 2 {
            ps.push(ms(t_p));
            ls.push(ms(t_l));
        }
    }
    drop((pg, lite));
    let (p50, l50) = (percentile(&ps, 50.0), percentile(&ls, 50.0));
    report.rows.push(row(
        "no-op latency p50, Postgres vs SQLite (`jobs submit --wait`)",
        format!("{p50:.0} ms"),
        format!("{l50:.0} ms"),
        Some(p50 / l50),
        "≤ 1.2×",
        Some(p50 / l50 <= 1.2),
    ));

    // No-op throughput with 1, 2 and 4 worker processes on one database.
    let jobs = if args.quick { 16 } else { 80 };
    let mut by_workers = Vec::new();
    let mut evidence = Vec::new();
    for workers in [1usize, 2, 4] {
        eprintln!("fleet: {jobs} no-op jobs on {workers} worker processes");
        let url = rt.block_on(fresh_database_on(&admin));
        let env = [("GANTRY_DATABASE_URL", url.as_str())];
        let g = Gantry::start_env(&args.gantry, &["server"], &env)?;
        let procs = (0..workers)
            .map(|_| Worker::start(&args.gantry, &["--slots", "4"], &env))
            .collect::<anyhow::Result<Vec<_>>>()?;
        // Let every worker register before the jobs come.
        std::thread::sleep(std::time::Duration::from_secs(2));
        let (busy0, groups0) = cpu_seconds();
        let t = std::time::Instant::now();
        submit_many(&g, jobs, &spec)?;
        let span = wait_all(&g, jobs)?;
        let wall = t.elapsed().as_secs_f64();
        let (busy1, groups1) = cpu_seconds();
        drop(procs);
        drop(g);
        let rate = jobs as f64 / span;
        by_workers.push(format!("{workers}: {rate:.1}"));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let share = |name: &str| {
            (groups1.get(name).copied().unwrap_or(0.0) - groups0.get(name).copied().unwrap_or(0.0))
                / (wall * cores)
                * 100.0
        };
        evidence.push(format!(
            "{workers} worker(s): machine CPU {:.0}% busy; postgres {:.0}%, gantry {:.0}%, dockerd {:.0}%, containerd {:.0}% (of {cores} cores)",
            (busy1 - busy0) / (wall * cores) * 100.0,
            share("postgres"),
            share("gantry"),
            share("dockerd"),
            share("containerd"),
        ));
    }
    report.rows.push(row(
        &format!(
            "no-op throughput on Postgres by worker processes (4 slots each, {jobs} jobs), jobs/s"
        ),
        by_workers.join(", "),
        String::new(),
        None,
        "shows where it saturates",
        None,
    ));
    report.notes.push(format!(
        "Fleet on Postgres (a local cluster of the harness's own, durable commits). Where the CPU went during the throughput runs (machine-wide, then by process group; a group's share misses processes that ended during the run): {}.",
        evidence.join("; ")
    ));
    drop(cluster);
    Ok(())
}

fn secs_of(args: &Args) -> f64 {
    if args.quick {
        2.0
    } else {
        10.0
    }
}

/// pgbench's simple-update transactions per second (`-N`, 8 clients) on a
/// fresh database of the cluster: the machine's durable commit rate.
fn pgbench(
    cluster: &Cluster,
    rt: &tokio::runtime::Runtime,
    admin: &str,
    secs: f64,
) -> anyhow::Result<f64> {
    let url = rt.block_on(fresh_database_on(admin));
    let db = url
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("dbname="))
        .context("database name")?
        .to_string();
    let bin = cluster.bin.join("pgbench");
    let host = cluster.dir.display().to_string();
    let base = ["-h", host.as_str(), "-p", "5432", "-U", "postgres"];
    let init = std::process::Command::new(&bin)
        .args(base)
        .args(["-i", "-q", "-s", "1", &db])
        .output()?;
    anyhow::ensure!(
        init.status.success(),
        "pgbench -i: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let out = std::process::Command::new(&bin)
        .args(base)
        .args(["-N", "-c", "8", "-j", "2", "-T"])
        .arg(format!("{}", secs.ceil() as u64))
        .arg(&db)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .with_context(|| format!("pgbench printed no tps: {text}"))
}
