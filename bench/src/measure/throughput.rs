//! Section 2: throughput of no-op jobs against docker run --rm 8 at a time, and a slots sweep.

use super::*;
use crate::procs::{timed, Gantry};
use crate::{Args, Report};
use anyhow::bail;
use serde_json::{json, Value};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) fn submit_many(g: &Gantry, n: usize, spec: &Value) -> anyhow::Result<()> {
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
pub(super) fn wait_all(g: &Gantry, n: usize) -> anyhow::Result<f64> {
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

pub(super) fn docker_parallel(image: &str, n: usize, parallel: usize) -> anyhow::Result<f64> {
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
