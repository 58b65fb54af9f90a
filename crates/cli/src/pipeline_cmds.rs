//! `gantry pipelines ...`: thin wrappers over `/v1/pipelines` and `/v1/pipeline-runs`.

use crate::client::Client;
use crate::commands::enc;
use crate::output;
use crate::{Global, OutputFormat};
use anyhow::Context;
use clap::Subcommand;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum PipelinesCommand {
    /// Store a pipeline from a YAML or JSON file: `phases:` in order, each with
    /// `tasks:` that run in parallel (`config`, optional `parameters` merged
    /// over the configuration's, optional `continue_on_failure: true`). A phase
    /// starts when the one before has ended; the first failure of a task
    /// without continue_on_failure stops the run (`failed`; tasks not started
    /// are `skipped`); failures of the others make it end `warning`.
    Create { id: String, file: PathBuf },
    /// Replace a pipeline's phases.
    Update { id: String, file: PathBuf },
    /// List pipelines.
    List,
    /// Show a pipeline's phases and tasks.
    Show { id: String },
    /// Start a run. The run advances from the store: a restarted server
    /// carries on where it was.
    Run {
        id: String,
        /// Wait for the run to end; the exit code is 0 for succeeded or warning.
        #[arg(long)]
        wait: bool,
    },
    /// List a pipeline's runs (all runs without ID), or show one with --run.
    Runs {
        id: Option<String>,
        /// Show this run: its status, phase and each task's job.
        #[arg(long)]
        run: Option<String>,
    },
    /// Cancel a run: its queued jobs at once, its running ones within the grace period.
    Cancel { run: String },
}

fn read_pipeline(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value: Value = serde_yaml_ng::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: not valid YAML or JSON: {e}", path.display()))?;
    let (doc, _) = gantry_core::pipeline::PipelineDoc::from_value(value)
        .map_err(|e| anyhow::anyhow!("{}: invalid pipeline: {e}", path.display()))?;
    Ok(serde_json::to_value(doc)?)
}

fn show_pipeline(g: &Global, v: &Value) {
    match g.output {
        OutputFormat::Json => output::json(v),
        OutputFormat::Table => {
            println!(
                "pipeline {} (version {})",
                output::s(&v["id"]),
                output::s(&v["version"])
            );
            for (i, p) in v["phases"].as_array().into_iter().flatten().enumerate() {
                let tasks: Vec<String> = p["tasks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        let cof = if t["continue_on_failure"] == true {
                            " (continue on failure)"
                        } else {
                            ""
                        };
                        format!("{}{cof}", output::s(&t["config"]))
                    })
                    .collect();
                let name = p["name"]
                    .as_str()
                    .map(|n| format!(" {n}"))
                    .unwrap_or_default();
                println!("  phase {i}{name}: {}", tasks.join(", "));
            }
        }
    }
}

fn show_run(g: &Global, r: &Value) {
    match g.output {
        OutputFormat::Json => output::json(r),
        OutputFormat::Table => {
            let field = |k: &str, v: String| println!("{k:<10}{v}");
            field("run", output::s(&r["id"]));
            field("pipeline", output::s(&r["pipeline"]));
            field("status", output::s(&r["status"]));
            if let Some(e) = r["error"].as_str() {
                field("error", e.to_string());
            }
            field("started", output::s(&r["started_at"]));
            field("finished", output::s(&r["finished_at"]));
            let rows: Vec<Vec<String>> = r["tasks"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    vec![
                        output::s(&t["phase"]),
                        output::s(&t["config"]),
                        output::s(&t["status"]),
                        output::s(&t["job"]),
                    ]
                })
                .collect();
            output::table(&["PHASE", "CONFIG", "STATUS", "JOB"], &rows);
        }
    }
}

fn run_rows(list: &Value) -> Vec<Vec<String>> {
    list["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            vec![
                output::s(&r["id"]),
                output::s(&r["pipeline"]),
                output::s(&r["status"]),
                format!("{}/{}", output::s(&r["phase"]), output::s(&r["phases"])),
                output::s(&r["created_at"]),
            ]
        })
        .collect()
}

pub async fn pipelines(g: &Global, cmd: PipelinesCommand) -> anyhow::Result<u8> {
    let client = Client::new(g)?;
    match cmd {
        PipelinesCommand::Create { id, file } => {
            let doc = read_pipeline(&file)?;
            let body = json!({"id": id, "phases": doc["phases"]});
            show_pipeline(g, &client.post("/v1/pipelines", &body).await?);
        }
        PipelinesCommand::Update { id, file } => {
            let doc = read_pipeline(&file)?;
            show_pipeline(
                g,
                &client
                    .put(&format!("/v1/pipelines/{}", enc(&id)), &doc)
                    .await?,
            );
        }
        PipelinesCommand::List => {
            let list = client.get("/v1/pipelines").await?;
            match g.output {
                OutputFormat::Json => output::json(&list),
                OutputFormat::Table => {
                    let rows: Vec<Vec<String>> = list["pipelines"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|p| {
                            vec![
                                output::s(&p["id"]),
                                p["phases"].as_array().map_or(0, Vec::len).to_string(),
                                output::s(&p["updated_at"]),
                            ]
                        })
                        .collect();
                    output::table(&["ID", "PHASES", "UPDATED"], &rows);
                }
            }
        }
        PipelinesCommand::Show { id } => show_pipeline(
            g,
            &client.get(&format!("/v1/pipelines/{}", enc(&id))).await?,
        ),
        PipelinesCommand::Run { id, wait } => {
            let run = client
                .post(&format!("/v1/pipelines/{}/run", enc(&id)), &json!({}))
                .await?;
            if !wait {
                match g.output {
                    OutputFormat::Json => output::json(&run),
                    OutputFormat::Table => println!("{}", output::s(&run["id"])),
                }
                return Ok(0);
            }
            let path = format!("/v1/pipeline-runs/{}", enc(&output::s(&run["id"])));
            let end = loop {
                let r = client.get(&path).await?;
                let done = matches!(
                    r["status"].as_str(),
                    Some("succeeded" | "warning" | "failed" | "cancelled")
                );
                if done {
                    break r;
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            };
            show_run(g, &end);
            return Ok(match end["status"].as_str() {
                Some("succeeded" | "warning") => 0,
                Some("cancelled") => 130,
                _ => 1,
            });
        }
        PipelinesCommand::Runs { id, run } => {
            if let Some(run) = run {
                show_run(
                    g,
                    &client
                        .get(&format!("/v1/pipeline-runs/{}", enc(&run)))
                        .await?,
                );
                return Ok(0);
            }
            let list = match id {
                Some(id) => {
                    client
                        .get(&format!("/v1/pipelines/{}/runs", enc(&id)))
                        .await?
                }
                None => client.get("/v1/pipeline-runs").await?,
            };
            match g.output {
                OutputFormat::Json => output::json(&list),
                OutputFormat::Table => output::table(
                    &["RUN", "PIPELINE", "STATUS", "PHASE", "CREATED"],
                    &run_rows(&list),
                ),
            }
        }
        PipelinesCommand::Cancel { run } => show_run(
            g,
            &client
                .post(
                    &format!("/v1/pipeline-runs/{}/cancel", enc(&run)),
                    &json!({}),
                )
                .await?,
        ),
    }
    Ok(0)
}
