//! The measurements. Each pairs Gantry with a reference taken in the same run.

use crate::procs::{percentile, timed, Gantry};
use crate::{Args, Report, Row};
use anyhow::{bail, Context};
use gantry_store::{prelude::*, NewJob};
use gantry_store_sqlite::SqliteStore;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

const MIB: f64 = 1048576.0;

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

/// A memory figure against its limit: `below` is "<" or "≤".
fn memory_row(figure: &str, bytes: u64, below: &str, limit_mib: u64) -> Row {
    let limit = limit_mib << 20;
    let met = if below == "<" {
        bytes < limit
    } else {
        bytes <= limit
    };
    row(
        figure,
        format!("{:.1} MiB", mib(bytes)),
        "-".into(),
        None,
        &format!("{below} {limit_mib} MiB"),
        Some(met),
    )
}

fn row(
    figure: &str,
    gantry: String,
    reference: String,
    ratio: Option<f64>,
    goal: &str,
    met: Option<bool>,
) -> Row {
    Row {
        figure: figure.into(),
        gantry,
        reference,
        ratio,
        goal: goal.into(),
        met,
    }
}

fn noop_spec(image: &str) -> String {
    format!("image: {image}\ncommand: [\"true\"]\n")
}

/// A runc bundle of the image's root filesystem running `true`, or None
/// when runc is not installed.
fn runc_bundle(image: &str, dir: &Path) -> anyhow::Result<Option<()>> {
    if Command::new("runc").arg("--version").output().is_err() {
        return Ok(None);
    }
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&rootfs)?;
    let id = String::from_utf8(
        Command::new("docker")
            .args(["create", image, "true"])
            .output()?
            .stdout,
    )?;
    let id = id.trim();
    let export = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "docker export {id} | tar -C {} -x",
            rootfs.display()
        ))
        .status()?;
    Command::new("docker").args(["rm", "-f", id]).output()?;
    if !export.success() {
        bail!("cannot export the image for runc");
    }
    let spec = Command::new("runc")
        .args(["spec"])
        .current_dir(dir)
        .status()?;
    if !spec.success() {
        bail!("runc spec failed");
    }
    let path = dir.join("config.json");
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    cfg["process"]["terminal"] = json!(false);
    cfg["process"]["args"] = json!(["/bin/true"]);
    std::fs::write(&path, serde_json::to_vec(&cfg)?)?;
    Ok(Some(()))
}

/// Section 1: No-op latency: submit --wait vs docker run --rm (vs runc run), alternating.
pub fn latency(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    let n = if args.quick { 8 } else { 60 };
    eprintln!("latency: {n} rounds of gantry / docker run / runc run");
    let g = Gantry::start(&args.gantry, &["up", "--slots", "4"])?;
    let spec = g.write("noop.yaml", &noop_spec(&args.image))?;
    let spec = spec.to_str().context("path")?.to_string();
    let bundle = tempfile::tempdir()?;
    let runc = runc_bundle(&args.image, bundle.path()).unwrap_or_else(|e| {
        eprintln!("no runc floor: {e:#}");
        None
    });
    let (mut gs, mut ds, mut dn, mut rs) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..n + 2 {
        let t_g = timed(&mut g.cli(&["jobs", "submit", &spec, "--wait"]))?;
        let t_d = timed(Command::new("docker").args(["run", "--rm", &args.image, "true"]))?;
        let t_n = timed(Command::new("docker").args([
            "run",
            "--rm",
            "--network",
            "none",
            &args.image,
            "true",
        ]))?;
        let t_r = match runc {
            Some(()) => Some(timed(
                Command::new("runc")
                    .args(["run", "--bundle"])
                    .arg(bundle.path())
                    .arg(format!("gantry-bench-{i}")),
            )?),
            None => None,
        };
        if i >= 2 {
            gs.push(ms(t_g));
            ds.push(ms(t_d));
            dn.push(ms(t_n));
            if let Some(t) = t_r {
                rs.push(ms(t));
            }
        }
    }
    let (g50, g95, d50, d95) = (
        percentile(&gs, 50.0),
        percentile(&gs, 95.0),
        percentile(&ds, 50.0),
        percentile(&ds, 95.0),
    );
    let ratio = g50 / d50;
    report.rows.push(row(
        "no-op latency p50 (submit --wait vs docker run --rm)",
        format!("{g50:.0} ms"),
        format!("{d50:.0} ms"),
        Some(ratio),
        "≤ 1.10×",
        Some(ratio <= 1.10),
    ));
    report.rows.push(row(
        "no-op latency p95",
        format!("{g95:.0} ms"),
        format!("{d95:.0} ms"),
        Some(g95 / d95),
        "-",
        None,
    ));
    let n50 = percentile(&dn, 50.0);
    report.rows.push(row(
        "no-op latency p50 vs docker run --rm --network none",
        format!("{g50:.0} ms"),
        format!("{n50:.0} ms"),
        Some(g50 / n50),
        "context (Gantry's default network is none)",
        None,
    ));
    if !rs.is_empty() {
        let r50 = percentile(&rs, 50.0);
        report.rows.push(row(
            "no-op latency p50 vs the runc floor (runc run)",
            format!("{g50:.0} ms"),
            format!("{r50:.0} ms"),
            Some(g50 / r50),
            "context",
            None,
        ));
        report.latency_ms.push(("runc run".into(), rs));
    }
    report
        .latency_ms
        .insert(0, ("gantry submit --wait".into(), gs));
    report.latency_ms.insert(1, ("docker run --rm".into(), ds));
    report
        .latency_ms
        .insert(2, ("docker run --rm --network none".into(), dn));
    Ok(())
}

fn submit_many(g: &Gantry, n: usize, spec: &Value) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let http = reqwest::Client::new();
        for _ in 0..n {
            let r = http
                .post(format!("{}/v1/jobs", g.url))
                .bearer_auth(&g.token)
                .json(&json!({ "spec": spec }))
                .send()
                .await?;
            if r.status() != 201 {
                bail!("submit failed: {}", r.text().await?);
            }
        }
        Ok(())
    })
}

/// Waits until `n` jobs have ended; returns (first queued, last finished) span in seconds.
fn wait_all(g: &Gantry, n: usize) -> anyhow::Result<f64> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(900);
        loop {
            let page = g.get_json(&http, "/v1/jobs?limit=1000").await?;
            let jobs = page["jobs"].as_array().cloned().unwrap_or_default();
            let done = jobs.iter().filter(|j| j["finished_at"].is_string()).count();
            if done >= n {
                if let Some(bad) = jobs.iter().find(|j| j["status"] != "succeeded") {
                    bail!("a benchmark job failed: {bad}");
                }
                let t = |v: &Value| v.as_str().and_then(parse_rfc3339).unwrap_or(0.0);
                let first = jobs
                    .iter()
                    .map(|j| t(&j["queued_at"]))
                    .fold(f64::MAX, f64::min);
                let last = jobs
                    .iter()
                    .map(|j| t(&j["finished_at"]))
                    .fold(0.0, f64::max);
                return Ok(last - first);
            }
            if Instant::now() > deadline {
                bail!("jobs did not finish in time");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// Seconds since the epoch from `2026-11-21T10:59:38.510Z`.
fn parse_rfc3339(s: &str) -> Option<f64> {
    let (date, time) = s.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (h, mi, sec) = (
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
    );
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days as f64 * 86400.0 + h * 3600.0 + mi * 60.0 + sec)
}

fn docker_parallel(image: &str, n: usize, parallel: usize) -> anyhow::Result<f64> {
    let t = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut threads = Vec::new();
    for _ in 0..parallel {
        let next = next.clone();
        let image = image.to_string();
        threads.push(std::thread::spawn(move || -> anyhow::Result<()> {
            while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < n {
                timed(Command::new("docker").args(["run", "--rm", &image, "true"]))?;
            }
            Ok(())
        }));
    }
    for th in threads {
        th.join()
            .map_err(|_| anyhow::anyhow!("thread panicked"))??;
    }
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

/// Section 2: Throughput: N no-op jobs at 8 slots vs docker run --rm 8 at a time; and a slots sweep.
pub fn throughput(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    let n = if args.quick { 24 } else { 200 };
    let sweep_n = if args.quick { 16 } else { 60 };
    let spec = json!({"image": args.image, "command": ["true"]});
    eprintln!("throughput: {n} no-op jobs, 8 at a time");
    let docker = docker_parallel(&args.image, n, 8)?;
    let g = Gantry::start(&args.gantry, &["up", "--slots", "8"])?;
    submit_many(&g, n, &spec)?;
    let span = wait_all(&g, n)?;
    drop(g);
    let gantry = n as f64 / span;
    report.docker_throughput_8 = docker;
    let ratio = gantry / docker;
    report.rows.push(row(
        &format!("no-op throughput, {n} jobs, 8 at a time"),
        format!("{gantry:.1} jobs/s"),
        format!("{docker:.1} jobs/s"),
        Some(ratio),
        "≥ 0.95×",
        Some(ratio >= 0.95),
    ));
    let slots: &[usize] = if args.quick {
        &[1, 4, 16]
    } else {
        &[1, 2, 4, 8, 16]
    };
    let mut sweep = Vec::new();
    for &s in slots {
        eprintln!("throughput sweep: slots {s}");
        let g = Gantry::start(&args.gantry, &["up", "--slots", &s.to_string()])?;
        submit_many(&g, sweep_n, &spec)?;
        let span = wait_all(&g, sweep_n)?;
        sweep.push((s, sweep_n as f64 / span));
    }
    let text = sweep
        .iter()
        .map(|(s, r)| format!("{s}: {r:.1}"))
        .collect::<Vec<_>>()
        .join(", ");
    report.rows.push(row(
        &format!("throughput by slots ({sweep_n} jobs each), jobs/s"),
        text,
        format!("docker 8 at a time: {docker:.1}"),
        None,
        "shows saturation",
        None,
    ));
    report.throughput_by_slots = sweep;
    Ok(())
}

/// Concurrent claimers in the store benchmark (like slots across workers).
const CLAIMERS: usize = 8;

/// Section 3: Control plane: HTTP enqueue rate (several clients) and the store's claim+complete rate.
pub async fn control_plane(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    let clients = 8;
    let secs = if args.quick { 2.0 } else { 10.0 };
    eprintln!("control plane: HTTP enqueue with {clients} clients for {secs} s");
    let g = Gantry::start(&args.gantry, &["server"])?;
    let spec = json!({"image": args.image, "command": ["true"]});
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
    let rate = total as f64 / t.elapsed().as_secs_f64();
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
    let jobs = json!({ "jobs": vec![json!({ "spec": spec }); batch] });
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (url, token, jobs) = (g.url.clone(), g.token.clone(), jobs.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let r = http
                    .post(format!("{url}/v1/jobs/batch"))
                    .bearer_auth(&token)
                    .json(&jobs)
                    .send()
                    .await?;
                if r.status() != 201 {
                    bail!("batch enqueue failed: {}", r.status());
                }
                n += batch as u64;
            }
            Ok(n)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    let rate = total as f64 / t.elapsed().as_secs_f64();
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
        let store = SqliteStore::open(&dir.path().join("gantry.db"))?;
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
        // Like a fleet of busy slots: several claimers at once, each
        // finishing what it claimed concurrently (group commit shares fsyncs
        // among writes that arrive together).
        let store = std::sync::Arc::new(store);
        let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let t = Instant::now();
        let lease = Duration::from_secs(30);
        let mut claimers = Vec::new();
        for w in 0..CLAIMERS {
            let (store, done) = (store.clone(), done.clone());
            claimers.push(tokio::spawn(async move {
                let worker = format!("bench-{w}");
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
        rates.push((backlog, finished as f64 / t.elapsed().as_secs_f64()));
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

/// Section 4: Logs: a job printing N lines of 100 bytes vs docker run to /dev/null; lines stored; peak RSS.
pub fn logs(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    let lines: u64 = if args.quick { 100_000 } else { 1_000_000 };
    eprintln!("logs: {lines} lines of 100 bytes");
    let line = "x".repeat(99);
    let script = format!("yes {line} | head -n {lines}");
    let t = Instant::now();
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "docker run --rm {} sh -c '{script}' > /dev/null",
            args.image
        ))
        .status()?;
    anyhow::ensure!(st.success(), "docker reference failed");
    let docker = lines as f64 / t.elapsed().as_secs_f64();

    let g = Gantry::start(&args.gantry, &["up", "--log-cap", "1g"])?;
    let spec = g.write(
        "logs.yaml",
        &format!("image: {}\ncommand: [sh, -c, '{script}']\n", args.image),
    )?;
    let took = timed(&mut g.cli(&["jobs", "submit", spec.to_str().context("path")?, "--wait"]))?;
    let rate = lines as f64 / took.as_secs_f64();
    let (_, peak) = g.memory();
    let stored = count_stdout_events(&g)?;
    drop(g);
    report.rows.push(row(
        &format!("log capture, {lines} lines of 100 B"),
        format!("{rate:.0} lines/s"),
        format!("docker run > /dev/null: {docker:.0} lines/s"),
        Some(rate / docker),
        "≥ 200k lines/s",
        Some(rate >= 200_000.0),
    ));
    report.rows.push(row(
        "log lines stored (below the cap)",
        format!("{stored}"),
        format!("{lines} printed"),
        None,
        "none lost",
        Some(stored == lines),
    ));
    report
        .rows
        .push(memory_row("peak RSS while capturing", peak, "<", 256));

    // A 300 MB flood through one job (default 16 MiB cap: the rest is dropped and counted).
    let flood: u64 = if args.quick { 300_000 } else { 3_000_000 };
    eprintln!("logs: flood of {} MB", flood / 10_000);
    let g = Gantry::start(&args.gantry, &["up"])?;
    let spec = g.write(
        "flood.yaml",
        &format!(
            "image: {}\ncommand: [sh, -c, 'yes {line} | head -n {flood}']\n",
            args.image
        ),
    )?;
    let took = timed(&mut g.cli(&["jobs", "submit", spec.to_str().context("path")?, "--wait"]))?;
    let (_, peak) = g.memory();
    report.rows.push(row(
        &format!(
            "log flood of {} MB through one job (16 MiB cap)",
            flood / 10_000
        ),
        format!("peak RSS {:.1} MiB, {:.1} s", mib(peak), took.as_secs_f64()),
        "-".into(),
        None,
        "peak RSS < 256 MiB",
        Some(peak < 256 << 20),
    ));
    Ok(())
}

fn count_stdout_events(g: &Gantry) -> anyhow::Result<u64> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let http = reqwest::Client::new();
        let page = g.get_json(&http, "/v1/jobs?limit=1").await?;
        let id = page["jobs"][0]["id"]
            .as_str()
            .context("job id")?
            .to_string();
        let (mut after, mut count) = (0u64, 0u64);
        loop {
            let ev: Vec<Value> = serde_json::from_value(
                g.get_json(
                    &http,
                    &format!("/v1/jobs/{id}/events?after={after}&limit=10000"),
                )
                .await?,
            )?;
            if ev.is_empty() {
                return Ok(count);
            }
            count += ev.iter().filter(|e| e["stream"] == "stdout").count() as u64;
            after = ev.last().and_then(|e| e["seq"].as_u64()).unwrap_or(after);
        }
    })
}

/// Section 6: Memory: idle RSS of `gantry up`, and RSS per running job.
pub fn memory(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    eprintln!("memory: idle and per running job");
    let g = Gantry::start(&args.gantry, &["up", "--slots", "8"])?;
    std::thread::sleep(Duration::from_secs(2));
    let (idle, _) = g.memory();
    report
        .rows
        .push(memory_row("idle RSS of gantry up", idle, "≤", 40));
    let spec = json!({"image": args.image, "command": ["sleep", "5"]});
    submit_many(&g, 8, &spec)?;
    std::thread::sleep(Duration::from_secs(3));
    let (busy, _) = g.memory();
    let per_job = (busy.saturating_sub(idle)) as f64 / 8.0;
    report.rows.push(row(
        "RSS per running job (8 running)",
        format!("{:.2} MiB", per_job / MIB),
        format!("total {:.1} MiB", mib(busy)),
        None,
        "-",
        None,
    ));
    wait_all(&g, 8)?;
    Ok(())
}

/// Writes a CSV of `rows` rows of about 100 bytes: id,name,country,amount,note.
fn write_csv(path: &Path, first_id: u64, rows: u64) -> anyhow::Result<u64> {
    use std::io::Write;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(w, "id,name,country,amount,note")?;
    let countries = ["CZ", "SK", "DE", "AT"];
    let note = "x".repeat(58);
    for i in first_id..first_id + rows {
        writeln!(
            w,
            "{i},name-{i:08},{},{}.{:02},{note}",
            countries[(i % 4) as usize],
            i % 10_000,
            i % 100
        )?;
    }
    w.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// Writes dirty pages back, so the next measured write (Gantry's or the
/// reference's) is not throttled by the previous one's writeback.
fn settle() -> anyhow::Result<()> {
    Command::new("sync").status()?;
    Ok(())
}

fn mb_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

/// Storage (section 5): import vs cp, staging vs cp, filtered staging, incremental
/// primary-key loads into a big and a small table, peak RSS.
pub fn storage(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    let (rows, delta) = if args.quick {
        (200_000u64, 10_000u64)
    } else {
        (10_000_000u64, 100_000u64)
    };
    let work = tempfile::tempdir()?;
    let big = work.path().join("big.csv");
    eprintln!("storage: writing a {rows}-row CSV");
    let size = write_csv(&big, 0, rows)?;
    let delta_file = work.path().join("delta.csv");
    // Half updates of existing keys, half new keys.
    write_csv(&delta_file, rows - delta / 2, delta)?;
    let small = work.path().join("small.csv");
    write_csv(&small, 0, delta)?;

    let g = Gantry::start(&args.gantry, &["up", "--slots", "2"])?;
    let copy = work.path().join("copy.csv");
    let rounds = if args.quick { 2 } else { 5 };
    // Warm the page cache the same way for both.
    timed(
        Command::new("cat")
            .arg(&big)
            .stdout(std::process::Stdio::null()),
    )?;
    // cp of the big file; `durable` adds an fsync of the copy, as durable as
    // an import (which syncs every object before its version commits).
    let copy_once = |copy: &Path, durable: bool| -> anyhow::Result<Duration> {
        settle()?;
        let mut cmd = if durable {
            let mut c = Command::new("sh");
            c.args(["-c", "cp \"$1\" \"$2\" && sync \"$2\"", "sh"]);
            c
        } else {
            Command::new("cp")
        };
        let t = timed(cmd.arg(&big).arg(copy))?;
        std::fs::remove_file(copy)?;
        Ok(t)
    };
    let median = |mut v: Vec<Duration>| -> Duration {
        v.sort();
        v[v.len() / 2]
    };
    // "median MB/s (slowest–fastest)" of a set of timings of `size` bytes.
    let spread = |v: &[Duration]| -> String {
        let rates: Vec<f64> = v.iter().map(|d| mb_s(size, *d)).collect();
        let lo = rates.iter().copied().fold(f64::MAX, f64::min);
        let hi = rates.iter().copied().fold(0.0, f64::max);
        format!("{lo:.0}–{hi:.0}")
    };
    let path = big.to_str().context("path")?.to_string();
    // Alternate cp and import. Each cp removes its copy, so each import first
    // deletes the table its previous round made: both then write into memory
    // the kernel just freed (on a VM, never-touched memory costs host faults).
    let (mut cps, mut syncs, mut imports) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        cps.push(copy_once(&copy, false)?);
        syncs.push(copy_once(&copy, true)?);
        if round > 0 {
            let status = g
                .cli(&["tables", "delete", "in.c-bench.big"])
                .stdout(std::process::Stdio::null())
                .status()?;
            anyhow::ensure!(status.success(), "tables delete failed");
        }
        settle()?;
        imports.push(timed(&mut g.cli(&[
            "tables",
            "import",
            "in.c-bench.big",
            &path,
            "--primary-key",
            "id",
        ]))?);
    }
    let (cp_spread, sync_spread, imp_spread) = (spread(&cps), spread(&syncs), spread(&imports));
    let (t_cp, t_sync, t_import) = (median(cps), median(syncs), median(imports));
    let (cp_rate, sync_rate, imp_rate) =
        (mb_s(size, t_cp), mb_s(size, t_sync), mb_s(size, t_import));
    let what = format!(
        "import a {:.0} MB CSV ({rows} rows, primary key, durable), median of {rounds}",
        size as f64 / 1e6
    );
    report.rows.push(row(
        &what,
        format!("{imp_rate:.0} MB/s ({imp_spread})"),
        format!("cp + sync: {sync_rate:.0} MB/s ({sync_spread})"),
        Some(imp_rate / sync_rate),
        "≥ 0.5× cp",
        Some(imp_rate / sync_rate >= 0.5),
    ));
    report.rows.push(row(
        &format!("{what}, against cp into the page cache"),
        format!("{imp_rate:.0} MB/s ({imp_spread})"),
        format!("cp: {cp_rate:.0} MB/s ({cp_spread})"),
        Some(imp_rate / cp_rate),
        "context (cp alone leaves the copy in memory; an import is synced)",
        None,
    ));

    // Staging: the worker reports how long the input mapping took.
    let staged = |name: &str, mapping: &str| -> anyhow::Result<Duration> {
        let spec = g.write(
            name,
            &format!(
                "image: {}\ncommand: [\"true\"]\nstorage:\n  input:\n    tables:\n{mapping}",
                args.image
            ),
        )?;
        let out = g
            .cli(&[
                "jobs",
                "submit",
                spec.to_str().context("path")?,
                "--wait",
                "--output",
                "json",
            ])
            .output()?;
        let job: Value = serde_json::from_slice(&out.stdout).context("job json")?;
        anyhow::ensure!(job["status"] == "succeeded", "staging job failed: {job}");
        let id = job["id"].as_str().context("id")?;
        let logs = g.cli(&["jobs", "logs", id]).output()?;
        let text = String::from_utf8_lossy(&logs.stderr).to_string();
        let ms: f64 = text
            .lines()
            .find_map(|l| l.split("input mapping staged in ").nth(1))
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("no staging time in the job's log: {text}"))?;
        // The log has 0.1 ms steps.
        Ok(Duration::from_secs_f64(ms.max(0.1) / 1000.0))
    };
    let (mut cps, mut stages) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        cps.push(copy_once(&copy, false)?);
        settle()?;
        stages.push(staged("stage.yaml", "      - source: in.c-bench.big\n")?);
    }
    let (cp_spread, stage_spread) = (spread(&cps), spread(&stages));
    let (t_cp2, t_stage) = (median(cps), median(stages));
    let (stage_rate, cp2) = (mb_s(size, t_stage), mb_s(size, t_cp2));
    report.rows.push(row(
        &format!("stage an unfiltered table into /data/in, median of {rounds}"),
        format!(
            "{:.1} ms: {stage_rate:.0} MB/s ({stage_spread})",
            t_stage.as_secs_f64() * 1000.0
        ),
        format!("cp: {cp2:.0} MB/s ({cp_spread})"),
        Some(stage_rate / cp2),
        "≥ 0.8× cp",
        Some(stage_rate / cp2 >= 0.8),
    ));
    settle()?;
    let t_filter = staged(
        "filter.yaml",
        "      - source: in.c-bench.big\n        where_column: country\n        where_values: [CZ]\n        columns: [id, name, amount]\n",
    )?;
    let filter_rate = mb_s(size, t_filter);
    report.rows.push(row(
        "filtered input mapping (where + columns), table MB read per s",
        format!("{filter_rate:.0} MB/s"),
        "-".into(),
        None,
        "≥ 150 MB/s",
        Some(filter_rate >= 150.0),
    ));

    // Incremental primary-key loads: the same delta into the big and a small table.
    let small_path = small.to_str().context("path")?;
    timed(&mut g.cli(&[
        "tables",
        "import",
        "in.c-bench.small",
        small_path,
        "--primary-key",
        "id",
    ]))?;
    let delta_path = delta_file.to_str().context("path")?;
    let t_small = timed(&mut g.cli(&[
        "tables",
        "import",
        "in.c-bench.small",
        delta_path,
        "--incremental",
    ]))?;
    let t_big = timed(&mut g.cli(&[
        "tables",
        "import",
        "in.c-bench.big",
        delta_path,
        "--incremental",
    ]))?;
    let growth = t_big.as_secs_f64() / t_small.as_secs_f64();
    report.rows.push(row(
        &format!("incremental primary-key load of {delta} rows: into {rows} rows vs into {delta}"),
        format!("{:.0} ms", ms(t_big)),
        format!("{:.0} ms", ms(t_small)),
        Some(growth),
        "grows with the delta (≤ 2×)",
        Some(growth <= 2.0),
    ));
    // The merged table reads correctly: one row per key.
    let out = g
        .cli(&[
            "tables",
            "export",
            "in.c-bench.big",
            "-o",
            copy.to_str().context("path")?,
        ])
        .output()?;
    anyhow::ensure!(out.status.success(), "export failed");
    let lines = std::io::BufRead::lines(std::io::BufReader::new(std::fs::File::open(&copy)?))
        .count() as u64;
    anyhow::ensure!(
        lines == rows + delta / 2 + 1,
        "export after the incremental load has {lines} lines"
    );
    let (_, peak) = g.memory();
    report.rows.push(memory_row(
        "peak RSS of gantry up through the storage figures",
        peak,
        "<",
        512,
    ));
    Ok(())
}

/// Bytes of every file under `dir`.
fn tree_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Data lifecycle (section 6): `gantry backup` of the benchmark table against
/// `cp -r` of its objects, a second backup with nothing new, reading a
/// primary-key table after 1,000 incremental loads and a compaction against
/// one loaded once, and the peak RSS of a gzip import that expands ~1000×.
pub fn lifecycle(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    let (rows, pk_rows, loads, bomb_mb) = if args.quick {
        (200_000u64, 100_000u64, 100u64, 100u64)
    } else {
        (10_000_000u64, 1_000_000u64, 1_000u64, 1_000u64)
    };
    let work = tempfile::tempdir()?;
    let big = work.path().join("big.csv");
    eprintln!("lifecycle: writing a {rows}-row CSV");
    write_csv(&big, 0, rows)?;
    let g = Gantry::start(&args.gantry, &["up", "--slots", "2"])?;
    timed(&mut g.cli(&[
        "tables",
        "import",
        "in.c-bench.big",
        big.to_str().context("path")?,
    ]))?;
    std::fs::remove_file(&big)?;
    let objects = g.home.path().join("objects");
    let size = tree_bytes(&objects);
    let rounds = if args.quick { 2 } else { 3 };
    let median = |mut v: Vec<Duration>| -> Duration {
        v.sort();
        v[v.len() / 2]
    };
    let (mut cps, mut syncs, mut backups) = (Vec::new(), Vec::new(), Vec::new());
    let last = work.path().join("backup-last");
    for round in 0..rounds {
        let copy = work.path().join("cp");
        settle()?;
        cps.push(timed(
            Command::new("cp").arg("-r").arg(&objects).arg(&copy),
        )?);
        std::fs::remove_dir_all(&copy)?;
        settle()?;
        syncs.push(timed(
            Command::new("sh")
                .args(["-c", "cp -r \"$1\" \"$2\" && sync -f \"$2\"", "sh"])
                .arg(&objects)
                .arg(&copy),
        )?);
        std::fs::remove_dir_all(&copy)?;
        settle()?;
        let dest = if round + 1 == rounds {
            last.clone()
        } else {
            work.path().join("backup")
        };
        backups.push(timed(
            &mut g.cli(&["backup", dest.to_str().context("path")?]),
        )?);
        if round + 1 < rounds {
            std::fs::remove_dir_all(&dest)?;
        }
    }
    let (t_cp, t_sync, t_bk) = (median(cps), median(syncs), median(backups));
    let (cp_rate, sync_rate, bk_rate) = (mb_s(size, t_cp), mb_s(size, t_sync), mb_s(size, t_bk));
    let what = format!(
        "backup of the {:.0} MB benchmark table (metadata + objects, synced), median of {rounds}",
        size as f64 / 1e6
    );
    report.rows.push(row(
        &what,
        format!("{bk_rate:.0} MB/s ({:.2} s)", t_bk.as_secs_f64()),
        format!("cp -r of the objects: {cp_rate:.0} MB/s"),
        Some(bk_rate / cp_rate),
        "≥ 0.8× cp",
        Some(bk_rate / cp_rate >= 0.8),
    ));
    report.rows.push(row(
        &format!("{what}, against cp -r + sync"),
        format!("{bk_rate:.0} MB/s"),
        format!("cp -r + sync: {sync_rate:.0} MB/s"),
        Some(bk_rate / sync_rate),
        "context (cp leaves its copy in memory; a backup is synced)",
        None,
    ));
    settle()?;
    let t_again = timed(&mut g.cli(&["backup", last.to_str().context("path")?]))?;
    report.rows.push(row(
        "a second backup with nothing new",
        format!("{:.0} ms", ms(t_again)),
        "-".into(),
        None,
        "≤ 1 s",
        Some(t_again <= Duration::from_secs(1)),
    ));
    std::fs::remove_dir_all(&last)?;
    timed(&mut g.cli(&["tables", "delete", "in.c-bench.big"]))?;

    // A primary-key table after `loads` incremental loads of 100 changed rows.
    eprintln!("lifecycle: {loads} incremental primary-key loads");
    let base = work.path().join("base.csv");
    write_csv(&base, 0, pk_rows)?;
    timed(&mut g.cli(&[
        "tables",
        "import",
        "in.c-bench.pk",
        base.to_str().context("path")?,
        "--primary-key",
        "id",
    ]))?;
    let delta = work.path().join("delta.csv");
    for i in 0..loads {
        write_csv(&delta, (i * 997) % (pk_rows - 100), 100)?;
        timed(&mut g.cli(&[
            "tables",
            "import",
            "in.c-bench.pk",
            delta.to_str().context("path")?,
            "--incremental",
        ]))?;
    }
    let out = work.path().join("out.csv");
    let export = |table: &str| -> anyhow::Result<Duration> {
        let t = timed(&mut g.cli(&[
            "tables",
            "export",
            table,
            "-o",
            out.to_str().context("path")?,
        ]))?;
        Ok(t)
    };
    let t_many = median(
        (0..rounds)
            .map(|_| export("in.c-bench.pk"))
            .collect::<Result<_, _>>()?,
    );
    let t_compact = timed(&mut g.cli(&["tables", "compact", "in.c-bench.pk"]))?;
    export("in.c-bench.pk")?;
    let once = work.path().join("once.csv");
    std::fs::rename(&out, &once)?;
    timed(&mut g.cli(&[
        "tables",
        "import",
        "in.c-bench.once",
        once.to_str().context("path")?,
        "--primary-key",
        "id",
    ]))?;
    let (mut compacted, mut single) = (Vec::new(), Vec::new());
    for _ in 0..rounds.max(3) {
        compacted.push(export("in.c-bench.pk")?);
        single.push(export("in.c-bench.once")?);
    }
    let (t_compacted, t_single) = (median(compacted), median(single));
    let ratio = t_compacted.as_secs_f64() / t_single.as_secs_f64();
    report.rows.push(row(
        &format!(
            "read a {pk_rows}-row primary-key table after {loads} incremental loads, compacted ({:.0} ms to compact; {:.0} ms to read before)",
            ms(t_compact),
            ms(t_many)
        ),
        format!("{:.0} ms", ms(t_compacted)),
        format!("loaded once: {:.0} ms", ms(t_single)),
        Some(ratio),
        "≤ 1.2×",
        Some(ratio <= 1.2),
    ));
    drop(g);

    // A gzip import that expands ~1000×: the server's peak RSS.
    let bomb = work.path().join("bomb.csv.gz");
    // Whole lines of 37 bytes, about `bomb_mb` MiB.
    let lines = (bomb_mb << 20) / 37;
    let status = Command::new("sh")
        .args([
            "-c",
            &format!(
                "{{ echo a,b; yes 1234567890,abcdefghijklmnopqrstuvwxyz | head -n {lines}; }} | gzip -9 > \"$1\"",
            ),
            "sh",
        ])
        .arg(&bomb)
        .status()?;
    anyhow::ensure!(status.success(), "cannot write the gzip");
    let gz = std::fs::metadata(&bomb)?.len();
    let s = Gantry::start(&args.gantry, &["server"])?;
    let (_, idle) = s.memory();
    let t = timed(&mut s.cli(&[
        "tables",
        "import",
        "in.c-bench.bomb",
        bomb.to_str().context("path")?,
    ]))?;
    let (_, peak) = s.memory();
    report.rows.push(row(
        &format!(
            "gzip import of {:.1} MB expanding to {bomb_mb} MiB of CSV ({:.1} s): server peak RSS",
            gz as f64 / 1e6,
            t.as_secs_f64()
        ),
        format!("{:.1} MiB", mib(peak)),
        format!("idle: {:.1} MiB", mib(idle)),
        None,
        "< 100 MiB (memory does not follow the expansion)",
        Some(peak < 100 << 20),
    ));
    Ok(())
}
