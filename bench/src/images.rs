//! Images (issue 15): a job on a cached code package and a cached git build
//! against the same code in a prebuilt image, and the layer cache of a git
//! build whose slow `RUN` step did not change.

use crate::measure::{ms, row};
use crate::procs::{percentile, timed, Gantry};
use crate::{Args, Report};
use anyhow::{bail, Context};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output()?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    run(Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.email=b@example", "-c", "user.name=b"])
        .args(args))
}

pub fn images(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    let n = if args.quick { 5 } else { 40 };
    let work = tempfile::tempdir()?;
    let code = work.path().join("code");
    std::fs::create_dir(&code)?;
    std::fs::write(code.join("main.sh"), "echo hello\n")?;

    // The same code three ways: prebuilt into an image, a code package on a
    // stack, a git repository with a Dockerfile.
    let tag = format!("gantry-bench/prebuilt:{}", std::process::id());
    std::fs::write(
        code.join("Dockerfile"),
        format!(
            "FROM {}\nCOPY main.sh /code/main.sh\nWORKDIR /code\n",
            args.image
        ),
    )?;
    run(Command::new("docker")
        .args(["build", "-q", "-t", &tag])
        .arg(&code))?;
    // A new slow step each run: the engine's cache of an earlier run must
    // not make the first build look cached.
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let repo = work.path().join("repo");
    std::fs::create_dir(&repo)?;
    std::fs::write(repo.join("main.sh"), "echo hello\n")?;
    std::fs::write(
        repo.join("Dockerfile"),
        format!(
            "FROM {}\nRUN sleep 3 && echo slow {nonce} > /slow\nCOPY main.sh /code/main.sh\nWORKDIR /code\n",
            args.image
        ),
    )?;
    git(&repo, &["init", "-q", "-b", "main"])?;
    git(&repo, &["add", "."])?;
    git(&repo, &["commit", "-q", "-m", "one"])?;
    std::fs::remove_file(code.join("Dockerfile"))?;
    let package = work.path().join("code.tar.gz");
    run(Command::new("tar")
        .arg("czf")
        .arg(&package)
        .arg("-C")
        .arg(&code)
        .arg("."))?;

    let g = Gantry::start(&args.gantry, &["up", "--slots", "2", "--git-allow-file"])?;
    run(&mut g.cli(&["stacks", "add", "bench", &args.image]))?;
    run(&mut g.cli(&[
        "packages",
        "upload",
        "bench",
        package.to_str().context("path")?,
    ]))?;
    let prebuilt = g.write(
        "prebuilt.yaml",
        &format!("image: {tag}\ncommand: [sh, /code/main.sh]\n"),
    )?;
    let packaged = g.write(
        "package.yaml",
        "code: {package: bench, stack: bench}\ncommand: [sh, /code/main.sh]\n",
    )?;
    let url = format!("file://{}", repo.display());
    let built = g.write(
        "git.yaml",
        &format!("build: {{git: \"{url}\", ref: main}}\ncommand: [sh, /code/main.sh]\n"),
    )?;
    let submit = |spec: &Path| -> anyhow::Result<Duration> {
        timed(&mut g.cli(&["jobs", "submit", spec.to_str().context("path")?, "--wait"]))
    };

    // First runs build (not counted in the cached figures).
    let first_package = submit(&packaged)?;
    let first_git = submit(&built)?;
    eprintln!("images: {n} rounds of prebuilt / code package / git build (cached)");
    let (mut p, mut c, mut b) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        p.push(ms(submit(&prebuilt)?));
        c.push(ms(submit(&packaged)?));
        b.push(ms(submit(&built)?));
    }
    let (p50, c50, b50) = (
        percentile(&p, 50.0),
        percentile(&c, 50.0),
        percentile(&b, 50.0),
    );
    // Paired per round (each round runs the three back to back), so a busy
    // machine's drift between rounds cancels out: medians of the rounds'
    // ratios and differences.
    let paired = |x: &[f64], f: fn(f64, f64) -> f64| -> f64 {
        let v: Vec<f64> = x.iter().zip(&p).map(|(a, b)| f(*a, *b)).collect();
        percentile(&v, 50.0)
    };
    let (c_ratio, c_diff) = (paired(&c, |a, b| a / b), paired(&c, |a, b| a - b));
    let b_diff = paired(&b, |a, b| a - b);
    report.rows.push(row(
        "job on a cached code package vs the same code prebuilt (median of per-round ratios)",
        format!("p50 {c50:.0} ms"),
        format!("p50 {p50:.0} ms"),
        Some(c_ratio),
        "≤ 1.2×",
        Some(c_ratio <= 1.2),
    ));
    report.rows.push(row(
        "second run of an unchanged (stack, package): overhead over prebuilt (median per-round difference)",
        format!("{c_diff:.0} ms"),
        "-".into(),
        None,
        "≤ 200 ms",
        Some(c_diff <= 200.0),
    ));
    report.rows.push(row(
        "second build of an unchanged git commit: overhead over prebuilt (median per-round difference)",
        format!("{b_diff:.0} ms"),
        format!("p50 {b50:.0} ms vs {p50:.0} ms"),
        Some(b50 / p50),
        "≤ 200 ms",
        Some(b_diff <= 200.0),
    ));

    // A new commit that changes only the code: the slow RUN layer is cached.
    std::fs::write(repo.join("main.sh"), "echo hello again\n")?;
    git(&repo, &["commit", "-q", "-am", "two"])?;
    let rebuilt = submit(&built)?;
    report.rows.push(row(
        "git build of a new commit, slow RUN step unchanged (layer cache) vs the first build",
        format!("{:.0} ms", ms(rebuilt)),
        format!("{:.0} ms", ms(first_git)),
        Some(ms(rebuilt) / ms(first_git)),
        "context (the RUN step sleeps 3 s)",
        None,
    ));
    report.notes.push(format!(
        "Images: the first code-package job (build included) took {:.0} ms; cached figures are medians of {n} runs each, alternating prebuilt / package / git.",
        ms(first_package)
    ));
    drop(g);
    let _ = Command::new("docker").args(["rmi", &tag]).output();
    Ok(())
}
