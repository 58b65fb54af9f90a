//! Section 4: log capture against docker run to /dev/null.

use super::*;
use crate::procs::{timed, Gantry};
use crate::{Args, Report};
use anyhow::Context;
use serde_json::Value;
use std::process::Command;
use std::time::Instant;

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
