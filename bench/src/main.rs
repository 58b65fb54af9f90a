//! Gantry's benchmark harness. Every figure is measured in the same run as its
//! reference, on the same machine, alternating the two where it can:
//! `gantry jobs submit --wait` against `docker run --rm` (and `runc run`),
//! throughput at several slot counts, the control plane without containers,
//! log capture, memory, Storage (import, staging, incremental loads) and warm
//! starts (against `runc run`). Results go to `bench/results/<date>.{md,json,svg}`.
#![forbid(unsafe_code)]

mod chart;
mod images;
mod measure;
mod procs;

use anyhow::Context;
use clap::Parser;
use serde::Serialize;
use std::path::PathBuf;

#[derive(Parser, Clone)]
#[command(
    about = "Measure Gantry against docker run, the runc floor and its own goals",
    args_override_self = true
)]
pub struct Args {
    /// Small sample sizes; finishes in under 3 minutes (a smoke test of the harness).
    #[arg(long)]
    pub quick: bool,
    /// The gantry binary to measure (build it with `cargo build --release`).
    #[arg(long, default_value = "target/release/gantry")]
    pub gantry: PathBuf,
    /// Where results are written.
    #[arg(long, default_value = "bench/results")]
    pub out: PathBuf,
    /// The image used for no-op and log jobs (built by scripts/images.sh).
    #[arg(long, default_value = "gantry-test/busybox:2")]
    pub image: String,
    /// The warm-start gate's static binary (bench/run.sh builds it).
    #[arg(long, default_value = "target/release/gantry-gate-static")]
    pub gate: PathBuf,
    /// Measure only these sections (repeatable): latency, throughput, control, logs, memory, storage, lifecycle, images, warm, fleet.
    #[arg(long)]
    pub only: Vec<String>,
}

impl Args {
    fn wants(&self, section: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == section)
    }
}

/// One line of the results table.
#[derive(Serialize, Clone, Debug)]
pub struct Row {
    pub figure: String,
    pub gantry: String,
    pub reference: String,
    pub ratio: Option<f64>,
    pub goal: String,
    /// `None` when the figure has no goal or was not measured.
    pub met: Option<bool>,
}

#[derive(Serialize, Default)]
pub struct Report {
    pub date: String,
    pub mode: String,
    pub machine: Vec<(String, String)>,
    pub rows: Vec<Row>,
    /// Raw samples for the chart (milliseconds).
    pub latency_ms: Vec<(String, Vec<f64>)>,
    /// (slots, gantry jobs/s) and the docker reference at 8 at a time.
    pub throughput_by_slots: Vec<(usize, f64)>,
    pub docker_throughput_8: f64,
    pub notes: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.gantry.exists(),
        "{} not found: run `cargo build --release` first",
        args.gantry.display()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let started = std::time::Instant::now();
    let mut report = Report {
        date: procs::today(),
        mode: if args.quick {
            "quick".into()
        } else {
            "full".into()
        },
        machine: procs::machine(),
        ..Default::default()
    };
    eprintln!(
        "gantry-bench ({} mode) on {}",
        report.mode,
        procs::machine_line(&report.machine)
    );

    if args.wants("latency") {
        measure::latency(&args, &mut report)?;
    }
    if args.wants("throughput") {
        measure::throughput(&args, &mut report)?;
    }
    if args.wants("control") {
        rt.block_on(measure::control_plane(&args, &mut report))?;
    }
    if args.wants("logs") {
        measure::logs(&args, &mut report)?;
    }
    if args.wants("memory") {
        measure::memory(&args, &mut report)?;
    }
    if args.wants("storage") {
        measure::storage(&args, &mut report)?;
    }
    if args.wants("lifecycle") {
        measure::lifecycle(&args, &mut report)?;
    }
    if args.wants("images") {
        images::images(&args, &mut report)?;
    }
    if args.wants("warm") {
        measure::warm(&args, &mut report)?;
    }
    if args.wants("fleet") {
        measure::fleet(&args, &mut report)?;
    }
    report.notes.push(format!(
        "Harness run time: {:.0} s.",
        started.elapsed().as_secs_f64()
    ));

    let md = render_markdown(&report);
    println!("{md}");
    std::fs::create_dir_all(&args.out)?;
    let stem = if args.quick {
        format!("{}-quick", report.date)
    } else {
        report.date.clone()
    };
    let md_path = args.out.join(format!("{stem}.md"));
    std::fs::write(&md_path, &md).with_context(|| format!("cannot write {}", md_path.display()))?;
    std::fs::write(
        args.out.join(format!("{stem}.json")),
        serde_json::to_string_pretty(&report)?,
    )?;
    let svg = args.out.join(format!("{stem}.svg"));
    match chart::draw(&report, &svg) {
        Ok(()) => eprintln!("wrote {}, .json and .svg", md_path.display()),
        Err(e) => eprintln!("wrote {} and .json; no chart: {e:#}", md_path.display()),
    }
    Ok(())
}

fn render_markdown(r: &Report) -> String {
    let mut s = format!("# Gantry benchmark, {} ({} mode)\n\n", r.date, r.mode);
    s.push_str("| machine | |\n|---|---|\n");
    for (k, v) in &r.machine {
        s.push_str(&format!("| {k} | {v} |\n"));
    }
    s.push_str(
        "\n| figure | Gantry | reference | ratio | goal | met? |\n|---|---|---|---|---|---|\n",
    );
    for row in &r.rows {
        let ratio = row.ratio.map_or("-".to_string(), |x| format!("{x:.2}"));
        let met = match row.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "-",
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            row.figure, row.gantry, row.reference, ratio, row.goal, met
        ));
    }
    if !r.notes.is_empty() {
        s.push('\n');
        for n in &r.notes {
            s.push_str(&format!("- {n}\n"));
        }
    }
    s
}
