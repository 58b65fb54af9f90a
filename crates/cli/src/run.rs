//! `gantry run SPEC --data DIR`: one job, locally, no server. The same
//! attempt code, container settings and data folder as the worker uses.

use crate::commands::enc;
use crate::home::Home;
use crate::{Global, OutputFormat};
use anyhow::Context;
use gantry_core::events::LogLine;
use gantry_core::Spec;
use gantry_runtime::DockerRuntime;
use gantry_worker::attempt::{AttemptEnd, AttemptPlan};
use serde_json::json;
use std::path::PathBuf;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Where `gantry run` takes its spec from, and what it asks of a server.
#[derive(clap::Args)]
pub struct RunArgs {
    /// Spec file (YAML or JSON); or --config.
    pub spec: Option<PathBuf>,
    /// Run a configuration stored on the server (--server / GANTRY_URL)
    /// instead of a spec file: its spec (sealed secrets open with this
    /// home's key) and its state as in/state.json.
    #[arg(long)]
    pub config: Option<String>,
    /// Run this row of a configuration with rows (KBC_CONFIGROWID).
    #[arg(long)]
    pub row: Option<String>,
    /// Stage the spec's input mapping from the server's Storage into the
    /// data folder, as a job's would be (a read-only token is enough).
    #[arg(long)]
    pub stage: bool,
    /// Store the outputs and the new state through the server's API as
    /// a job would (versions made by `run`, noting the token), when the
    /// run succeeds.
    #[arg(long)]
    pub commit: bool,
    /// Data folder mounted at /data (default: a temporary folder, removed
    /// afterwards). Files you put in in/ are kept; out/ shows the results.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Per-job cap on printed log output.
    #[arg(long, default_value = "16m", value_parser = gantry_core::units::parse_size)]
    pub log_cap: u64,
}

pub async fn run(g: &Global, args: RunArgs) -> anyhow::Result<u8> {
    let RunArgs {
        spec: spec_path,
        data,
        log_cap,
        config,
        row,
        stage,
        commit,
    } = args;
    let client = || crate::client::Client::new(g);
    let (mut spec, mut state) = match (&spec_path, &config) {
        (Some(path), None) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let (_, spec) = Spec::parse(&text)
                .map_err(|e| anyhow::anyhow!("{}: invalid spec: {e}", path.display()))?;
            (spec, None)
        }
        (None, Some(id)) => {
            let c = client()?;
            let stored = c.get(&format!("/v1/configs/{}", enc(id))).await?;
            let state = c.get(&format!("/v1/configs/{}/state", enc(id))).await?;
            let (_, spec) = Spec::from_value(stored["spec"].clone())
                .map_err(|e| anyhow::anyhow!("configuration {id}: invalid spec: {e}"))?;
            (spec, Some(state))
        }
        _ => anyhow::bail!("give a spec file or --config ID (not both)"),
    };
    // Secrets copied from a server's configuration are sealed; open them with
    // this home's key when there is one.
    if let Ok(vault) = gantry_vault::Vault::open_existing(&Home::new(&g.home).key()) {
        vault
            .open_params(&mut spec.parameters)
            .context("cannot open the spec's sealed secrets")?;
        vault
            .open_params(&mut spec.authorization)
            .context("cannot open the spec's sealed secrets")?;
        for row in &mut spec.rows {
            vault
                .open_params(&mut row.parameters)
                .context("cannot open the spec's sealed secrets")?;
        }
    }
    // One row of a configuration with rows, as its job would run it.
    let row_id = match (row, spec.rows.is_empty()) {
        (Some(r), false) => {
            let Some(found) = spec.rows.iter().find(|x| x.id == r) else {
                anyhow::bail!("no row '{r}' in this spec");
            };
            spec = spec.for_row(found);
            state = state
                .map(|s| s["rows"][&r].clone())
                .filter(|s| s.is_object());
            Some(r)
        }
        (None, false) => anyhow::bail!(
            "this spec has rows ({}); run one with --row ID",
            spec.rows
                .iter()
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        (Some(r), true) => anyhow::bail!("--row {r}: this spec has no rows"),
        (None, true) => None,
    };
    if config.is_some() && state.is_none() {
        state = Some(json!({}));
    }

    let (dir, _temp) = match data {
        Some(d) => (d, None),
        None => {
            let t = tempfile_dir()?;
            (t.clone(), Some(TempDir(t)))
        }
    };
    let dir =
        std::path::absolute(&dir).with_context(|| format!("bad data folder {}", dir.display()))?;
    for note in spec.ignored_keys() {
        eprintln!("gantry: warning: {note}");
    }
    let prepared = gantry_worker::datadir::prepare(&dir, &spec, state.as_ref(), "run")
        .with_context(|| format!("cannot prepare the data folder {}", dir.display()))?;
    if stage && !spec.storage.input.is_empty() {
        let staged = crate::stage::stage_inputs(&client()?, &spec.storage.input, &dir).await?;
        eprintln!("gantry: staged {staged} from {}", g.server);
    }
    if prepared.cleared_out > 0 {
        eprintln!(
            "gantry: removed {} entries an earlier run left in {} (every job starts with an empty out/, as in Keboola)",
            prepared.cleared_out,
            dir.join("out").display()
        );
    }

    let runtime = DockerRuntime::connect().await.context(
        "cannot connect to the Docker engine (is dockerd running? see scripts/ensure-docker.sh)",
    )?;
    let job_id = format!("local-{}", gantry_core::JobId::new());
    let plan = AttemptPlan {
        job_id: job_id.clone(),
        attempt: 1,
        worker_id: "local".into(),
        project: "local".into(),
        config_id: config.clone(),
        spec,
        data_dir: dir.clone(),
        log_cap,
        collect_state: false,
        kbc: gantry_worker::attempt::KbcContext {
            project_number: 0,
            stack_id: gantry_worker::attempt::url_host(&g.server),
            url: g.server.clone(),
            token_id: None,
            token_desc: None,
            config_row_id: row_id,
        },
        step: None,
    };

    let (tx, mut rx) = mpsc::channel::<LogLine>(1024);
    let json_out = g.output == OutputFormat::Json;
    let printer = tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            if json_out {
                eprintln!("{}", serde_json::to_string(&line).unwrap_or_default());
                continue;
            }
            match line.stream {
                gantry_core::events::Stream::Stdout => println!("{}", line.message),
                gantry_core::events::Stream::Stderr => eprintln!("{}", line.message),
                gantry_core::events::Stream::System => eprintln!("gantry: {}", line.message),
            }
        }
    });
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("gantry: stopping the container (SIGTERM, then SIGKILL after 10s)");
            c.cancel();
        }
    });
    let end = gantry_worker::processors::run_with_processors(
        &runtime,
        &plan,
        tx,
        cancel,
        CancellationToken::new(),
    )
    .await;
    let _ = printer.await;
    let report = match end {
        AttemptEnd::Finished(report) => report,
        AttemptEnd::EngineAway => anyhow::bail!(
            "the Docker engine stopped answering before the container started (is dockerd running?)"
        ),
        AttemptEnd::Abandoned => anyhow::bail!("the run was abandoned"),
    };
    let o = &report.outcome;
    let code = crate::exit::for_job(o.status, o.error.as_ref().map(|e| e.kind), o.exit_code);
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "status": o.status, "error": o.error, "exit_code": o.exit_code,
                "image_digest": report.image_digest, "limits": report.limits,
                "data": _temp.is_none().then(|| dir.display().to_string()),
            }))?
        );
    } else {
        match &o.error {
            Some(e) => eprintln!(
                "gantry: job {} ({}): {}",
                o.status,
                e.kind.as_str(),
                e.message
            ),
            None => eprintln!("gantry: job {}", o.status),
        }
        if _temp.is_none() {
            eprintln!("gantry: outputs are in {}", dir.join("out").display());
        }
    }
    if commit {
        if o.status != gantry_core::JobStatus::Succeeded {
            eprintln!("gantry: the run did not succeed; nothing was committed");
        } else {
            let mut query = Vec::new();
            if let Some(c) = &config {
                query.push(format!("config={}", enc(c)));
            }
            if let Some(r) = &plan.kbc.config_row_id {
                query.push(format!("row={}", enc(r)));
            }
            let mapping = (config.is_none()).then(|| plan.spec.storage.output.clone());
            let body = crate::stage::pack_outputs(&dir.join("out"), mapping.as_ref())?;
            let committed: gantry_wire::RunCommitted = serde_json::from_value(
                crate::client::Client::new(g)?
                    .post_stream(
                        &format!("/v1/runs?{}", query.join("&")),
                        reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
                            tokio::fs::File::from_std(body),
                            1 << 20,
                        )),
                    )
                    .await
                    .context("committing the outputs failed; nothing was stored")?,
            )
            .context("the server's answer is not a committed run")?;
            eprintln!(
                "gantry: committed to {}: tables {}, {} files{}",
                g.server,
                serde_json::to_string(&committed.tables).unwrap_or_default(),
                committed.files,
                if committed.state { ", new state" } else { "" }
            );
        }
    }
    Ok(code)
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let base = std::env::temp_dir().join(format!("gantry-run-{}", gantry_core::JobId::new()));
    std::fs::create_dir_all(&base)?;
    Ok(base)
}

/// Removes a temporary data folder when the run ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        gantry_worker::datadir::remove(&self.0);
    }
}
