//! Section 8: warm starts. No-op latency of a warm start against `runc run`
//! of the same root filesystem and `docker run --rm` (and a cold Gantry) in
//! one alternating loop; no-op throughput 8 at a time; the idle RSS of a
//! worker holding 8 warm containers and what the pool costs the host.

use super::latency::runc_bundle;
use super::throughput::{submit_many, wait_all};
use super::*;
use crate::procs::{percentile, timed, Gantry};
use crate::{Args, Report};
use anyhow::Context;
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

fn warm_gantry(args: &Args, slots: &str) -> anyhow::Result<Gantry> {
    let gate = args
        .gate
        .canonicalize()
        .with_context(|| format!("{}: build it as bench/run.sh does", args.gate.display()))?;
    let gate = gate.to_str().context("gate path")?.to_string();
    Gantry::start(
        &args.gantry,
        &[
            "up",
            "--slots",
            slots,
            "--warm",
            "true",
            "--warm-gate",
            &gate,
            "--warm-images",
            &args.image,
            "--warm-max",
            "8",
        ],
    )
}

/// Ids of the worker's running pool containers.
fn pool(g: &Gantry) -> Vec<String> {
    let worker = std::fs::read_to_string(g.home.path().join("worker-id")).unwrap_or_default();
    let out = Command::new("docker")
        .args(["ps", "-q", "--no-trunc", "--filter"])
        .arg(format!("label=io.gantry.pool={}", worker.trim()))
        .args(["--filter", "status=running"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    out.lines().map(str::to_string).collect()
}

fn wait_pool(g: &Gantry, n: usize, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let have = pool(g).len();
        if have >= n || Instant::now() > deadline {
            return have;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Host memory a container costs: its cgroup's usage plus its shim's RSS.
fn container_cost(id: &str) -> u64 {
    let cgroup = [
        format!("/sys/fs/cgroup/memory/docker/{id}/memory.usage_in_bytes"),
        format!("/sys/fs/cgroup/system.slice/docker-{id}.scope/memory.current"),
        format!("/sys/fs/cgroup/docker/{id}/memory.current"),
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok())
    .and_then(|s| s.trim().parse::<u64>().ok())
    .unwrap_or(0);
    let shim = Command::new("ps")
        .args(["-eo", "rss=,args="])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("containerd-shim") && l.contains(id))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum::<u64>()
        * 1024;
    cgroup + shim
}

/// Mean time of each job phase (ms) from an instance's /metrics: where a
/// no-op job's time goes inside Gantry.
fn phase_means(g: &Gantry) -> anyhow::Result<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let text = rt.block_on(async {
        reqwest::Client::new()
            .get(format!("{}/metrics", g.url))
            .bearer_auth(&g.token)
            .send()
            .await?
            .text()
            .await
    })?;
    let value = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && !l.starts_with('#'))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let mut parts = Vec::new();
    for (label, metric) in [
        ("queue wait", "gantry_job_queue_wait_seconds"),
        (
            "container start (warm: claim to hand-over)",
            "gantry_container_start_seconds",
        ),
        ("run (to the engine's exit)", "gantry_job_run_seconds"),
        ("outputs + commit", "gantry_output_commit_seconds"),
    ] {
        let (sum, count) = (
            value(&format!("{metric}_sum")),
            value(&format!("{metric}_count")),
        );
        if count > 0.0 {
            parts.push(format!("{label} {:.1} ms", sum / count * 1000.0));
        }
    }
    Ok(parts.join(", "))
}

pub fn warm(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    let n = if args.quick { 10 } else { 60 };
    eprintln!("warm: {n} rounds of warm gantry / cold gantry / runc run / docker run --rm");
    let warm = warm_gantry(args, "4")?;
    let cold = Gantry::start(&args.gantry, &["up", "--slots", "4"])?;
    let spec = warm.write("noop.yaml", &noop_spec(&args.image))?;
    let spec = spec.to_str().context("path")?.to_string();
    let bundle = tempfile::tempdir()?;
    runc_bundle(&args.image, bundle.path())?.context("runc is not installed")?;
    wait_pool(&warm, 1, Duration::from_secs(30));
    let (mut ws, mut cs, mut rs, mut ds) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut cold_starts = 0;
    for i in 0..n + 2 {
        // The pool refills after each job; a round starts with one ready.
        wait_pool(&warm, 1, Duration::from_secs(10));
        let t_w = timed(&mut warm.cli(&["jobs", "submit", &spec, "--wait"]))?;
        let t_c = timed(&mut cold.cli(&["jobs", "submit", &spec, "--wait"]))?;
        let t_r = timed(
            Command::new("runc")
                .args(["run", "--bundle"])
                .arg(bundle.path())
                .arg(format!("gantry-bench-warm-{i}")),
        )?;
        let t_d = timed(Command::new("docker").args(["run", "--rm", &args.image, "true"]))?;
        if i >= 2 {
            ws.push(ms(t_w));
            cs.push(ms(t_c));
            rs.push(ms(t_r));
            ds.push(ms(t_d));
        }
    }
    // Which of the measured jobs really started warm.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let jobs = rt.block_on(async {
        let http = reqwest::Client::new();
        warm.get_json(&http, "/v1/jobs?limit=1000").await
    })?;
    for j in jobs["jobs"].as_array().cloned().unwrap_or_default() {
        if j["limits"]["start"] == "cold" {
            cold_starts += 1;
        }
    }
    let p = |v: &[f64], q| percentile(v, q);
    let (w50, w95, c50, c95, r50, r95, d50, d95) = (
        p(&ws, 50.0),
        p(&ws, 95.0),
        p(&cs, 50.0),
        p(&cs, 95.0),
        p(&rs, 50.0),
        p(&rs, 95.0),
        p(&ds, 50.0),
        p(&ds, 95.0),
    );
    report.rows.push(row(
        "warm no-op latency p50 (submit --wait vs runc run)",
        format!("{w50:.1} ms"),
        format!("{r50:.1} ms"),
        Some(w50 / r50),
        "≤ 1.0×",
        Some(w50 / r50 <= 1.0),
    ));
    report.rows.push(row(
        "warm no-op latency p50 (vs docker run --rm)",
        format!("{w50:.1} ms"),
        format!("{d50:.1} ms"),
        Some(w50 / d50),
        "≤ 0.15×",
        Some(w50 / d50 <= 0.15),
    ));
    report.rows.push(row(
        "warm no-op latency p95 (vs runc run p95)",
        format!("{w95:.1} ms"),
        format!("{r95:.1} ms"),
        Some(w95 / r95),
        "-",
        None,
    ));
    report.rows.push(row(
        "cold no-op latency p50 (warm off, vs docker run --rm)",
        format!("{c50:.1} ms (p95 {c95:.1})"),
        format!("{d50:.1} ms (p95 {d95:.1})"),
        Some(c50 / d50),
        "unchanged or better",
        None,
    ));
    report.latency_ms.push(("gantry warm".into(), ws));
    report.notes.push(format!(
        "Warm section: {cold_starts} of the warm instance's {} jobs started cold (no idle container of their key at the claim).",
        n + 2
    ));
    report.notes.push(format!(
        "Warm section, mean phases of the warm instance: {}.",
        phase_means(&warm).unwrap_or_else(|e| format!("no metrics: {e:#}"))
    ));
    report.notes.push(format!(
        "Warm section, mean phases of the cold instance: {}.",
        phase_means(&cold).unwrap_or_else(|e| format!("no metrics: {e:#}"))
    ));
    drop(cold);

    // Throughput 8 at a time, warm, against docker run --rm 8 at a time.
    let tn = if args.quick { 24 } else { 160 };
    drop(warm);
    let warm = warm_gantry(args, "8")?;
    wait_pool(&warm, 1, Duration::from_secs(30));
    eprintln!("warm: throughput, {tn} no-op jobs at 8 slots vs docker run --rm 8 at a time");
    let spec_v = json!({"image": args.image, "command": ["true"]});
    submit_many(&warm, tn, &spec_v)?;
    let span = wait_all(&warm, tn)?;
    let g_rate = tn as f64 / span;
    let d_rate = super::throughput::docker_parallel(&args.image, tn, 8)?;
    report.rows.push(row(
        "warm no-op throughput, 8 at a time (vs docker run --rm 8 at a time)",
        format!("{g_rate:.1} jobs/s"),
        format!("{d_rate:.1} /s"),
        Some(g_rate / d_rate),
        "≥ 4×",
        Some(g_rate / d_rate >= 4.0),
    ));

    // The pool grew with that demand; idle, it holds up to 8.
    let idle = wait_pool(&warm, 8, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));
    let (rss, _) = warm.memory();
    let ids = pool(&warm);
    let cost: u64 = ids.iter().map(|id| container_cost(id)).sum();
    report.rows.push(row(
        &format!("idle RSS of gantry up with {idle} warm containers"),
        format!("{:.1} MiB", mib(rss)),
        "-".into(),
        None,
        "reported",
        None,
    ));
    report.rows.push(row(
        &format!(
            "host memory of the pool ({} containers: cgroup usage + shim RSS)",
            ids.len()
        ),
        format!("{:.1} MiB", mib(cost)),
        format!("{:.1} MiB each", mib(cost / ids.len().max(1) as u64)),
        None,
        "reported",
        None,
    ));
    Ok(())
}
