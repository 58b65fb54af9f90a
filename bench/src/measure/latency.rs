//! Section 1: no-op latency against docker run --rm and the runc floor.

use super::*;
use crate::procs::{percentile, timed, Gantry};
use crate::{Args, Report};
use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

/// A runc bundle of the image's root filesystem running `true`, or None
/// when runc is not installed.
pub(super) fn runc_bundle(image: &str, dir: &Path) -> anyhow::Result<Option<()>> {
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
