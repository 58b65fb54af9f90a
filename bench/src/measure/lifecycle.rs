//! Section 7: data lifecycle: backups, reads after many loads, gzip imports.

use super::storage::{mb_s, settle, tree_bytes, write_csv};
use super::*;
use crate::procs::{timed, Gantry};
use crate::{Args, Report};
use anyhow::Context;
use std::process::Command;
use std::time::Duration;

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
