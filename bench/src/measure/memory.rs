//! Section 6: idle RSS of `gantry up` and RSS per running job.

use super::throughput::{submit_many, wait_all};
use super::*;
use crate::procs::Gantry;
use crate::{Args, Report};
use serde_json::json;
use std::time::Duration;

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
