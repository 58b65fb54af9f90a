//! Section 5: Storage: imports, staging, incremental loads.

use super::*;
use crate::procs::{timed, Gantry};
use crate::{Args, Report};
use anyhow::Context;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Writes a CSV of `rows` rows of about 100 bytes: id,name,country,amount,note.
pub(super) fn write_csv(path: &Path, first_id: u64, rows: u64) -> anyhow::Result<u64> {
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
pub(super) fn settle() -> anyhow::Result<()> {
    Command::new("sync").status()?;
    Ok(())
}

pub(super) fn mb_s(bytes: u64, d: Duration) -> f64 {
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
pub(super) fn tree_bytes(dir: &Path) -> u64 {
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
