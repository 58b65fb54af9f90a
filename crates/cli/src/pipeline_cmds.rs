//! `gantry pipelines ...`: thin wrappers over `/v1/pipelines` and `/v1/pipeline-runs`.

use crate::client::Client;
use crate::commands::enc;
use crate::output;
use crate::{Global, OutputFormat};
use anyhow::Context;
use clap::Subcommand;
use gantry_wire::{PipelineList, PipelineRunList, PipelineRunView, PipelineView};
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

fn show_pipeline(g: &Global, v: &PipelineView) {
    match g.output {
        OutputFormat::Json => output::json(v),
        OutputFormat::Table => {
            println!("pipeline {} (version {})", v.id, v.version);
            for (i, p) in v.phases.iter().enumerate() {
                let tasks: Vec<String> = p
                    .tasks
                    .iter()
                    .map(|t| {
                        let cof = if t.continue_on_failure {
                            " (continue on failure)"
                        } else {
                            ""
                        };
                        format!("{}{cof}", t.config)
                    })
                    .collect();
                let name = p.name.as_ref().map(|n| format!(" {n}")).unwrap_or_default();
                println!("  phase {i}{name}: {}", tasks.join(", "));
            }
        }
    }
}

fn show_run(g: &Global, r: &PipelineRunView) {
    match g.output {
        OutputFormat::Json => output::json(r),
        OutputFormat::Table => {
            let field = |k: &str, v: String| println!("{k:<10}{v}");
            field("run", r.id.clone());
            field("pipeline", r.pipeline.clone());
            field("status", r.status.clone());
            if let Some(e) = &r.error {
                field("error", e.clone());
            }
            field("started", output::or_dash(r.started_at.as_ref()));
            field("finished", output::or_dash(r.finished_at.as_ref()));
            let rows: Vec<Vec<String>> = r
                .tasks
                .iter()
                .map(|t| {
                    vec![
                        t.phase.to_string(),
                        t.config.clone(),
                        t.status.clone(),
                        output::or_dash(t.job.as_ref()),
                    ]
                })
                .collect();
            output::table(&["PHASE", "CONFIG", "STATUS", "JOB"], &rows);
        }
    }
}

fn run_rows(list: &PipelineRunList) -> Vec<Vec<String>> {
    list.runs
        .iter()
        .map(|r| {
            vec![
                r.id.clone(),
                r.pipeline.clone(),
                r.status.clone(),
                format!("{}/{}", r.phase, r.phases),
                r.created_at.clone(),
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
            show_pipeline(g, &client.post_as("/v1/pipelines", &body).await?);
        }
        PipelinesCommand::Update { id, file } => {
            let doc = read_pipeline(&file)?;
            show_pipeline(
                g,
                &client
                    .put_as(&format!("/v1/pipelines/{}", enc(&id)), &doc)
                    .await?,
            );
        }
        PipelinesCommand::List => {
            let list: PipelineList = client.get_as("/v1/pipelines").await?;
            match g.output {
                OutputFormat::Json => output::json(&list),
                OutputFormat::Table => {
                    let rows: Vec<Vec<String>> = list
                        .pipelines
                        .iter()
                        .map(|p| {
                            vec![
                                p.id.clone(),
                                p.phases.len().to_string(),
                                p.updated_at.clone(),
                            ]
                        })
                        .collect();
                    output::table(&["ID", "PHASES", "UPDATED"], &rows);
                }
            }
        }
        PipelinesCommand::Show { id } => show_pipeline(
            g,
            &client
                .get_as(&format!("/v1/pipelines/{}", enc(&id)))
                .await?,
        ),
        PipelinesCommand::Run { id, wait } => {
            let run: PipelineRunView = client
                .post_as(&format!("/v1/pipelines/{}/run", enc(&id)), &json!({}))
                .await?;
            if !wait {
                match g.output {
                    OutputFormat::Json => output::json(&run),
                    OutputFormat::Table => println!("{}", run.id),
                }
                return Ok(0);
            }
            let path = format!("/v1/pipeline-runs/{}", enc(&run.id));
            let end = loop {
                let r: PipelineRunView = client.get_as(&path).await?;
                let done = matches!(
                    r.status.as_str(),
                    "succeeded" | "warning" | "failed" | "cancelled"
                );
                if done {
                    break r;
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            };
            show_run(g, &end);
            return Ok(match end.status.as_str() {
                "succeeded" | "warning" => 0,
                "cancelled" => 130,
                _ => 1,
            });
        }
        PipelinesCommand::Runs { id, run } => {
            if let Some(run) = run {
                show_run(
                    g,
                    &client
                        .get_as(&format!("/v1/pipeline-runs/{}", enc(&run)))
                        .await?,
                );
                return Ok(0);
            }
            let list: PipelineRunList = match id {
                Some(id) => {
                    client
                        .get_as(&format!("/v1/pipelines/{}/runs", enc(&id)))
                        .await?
                }
                None => client.get_as("/v1/pipeline-runs").await?,
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
                .post_as(
                    &format!("/v1/pipeline-runs/{}/cancel", enc(&run)),
                    &json!({}),
                )
                .await?,
        ),
    }
    Ok(0)
}
