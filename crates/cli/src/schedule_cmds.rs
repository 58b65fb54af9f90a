//! `gantry schedules ...`: thin wrappers over `/v1/schedules`.

use crate::client::Client;
use crate::commands::enc;
use crate::output;
use crate::{Global, OutputFormat};
use clap::Subcommand;
use gantry_wire::{ScheduleList, ScheduleView};
use serde_json::{json, Value};

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum SchedulesCommand {
    /// Run a configuration (or a pipeline) on a schedule: a cron expression (5 fields, or 6
    /// with seconds first, or @hourly/@daily/@weekly/@monthly/@yearly) in a
    /// time zone, or every N seconds. Each tick makes exactly one job (across
    /// restarts and any number of servers on one store), recorded on the job
    /// as its trigger.
    Create {
        id: String,
        /// The configuration to run.
        #[arg(
            long,
            conflicts_with = "pipeline",
            required_unless_present = "pipeline"
        )]
        config: Option<String>,
        /// The pipeline to run instead (each tick starts one run).
        #[arg(long)]
        pipeline: Option<String>,
        /// Cron expression, e.g. "30 2 * * *" or "*/10 * * * * *".
        #[arg(long, conflicts_with = "every", required_unless_present = "every")]
        cron: Option<String>,
        /// Run every this long (e.g. 30s, 15m), counted from --start-at
        /// (else from the Unix epoch, so 1m fires on each minute).
        #[arg(long)]
        every: Option<String>,
        /// IANA time zone of the cron expression (default UTC); DST follows
        /// classic cron: a 02:30 job runs once on both change days.
        #[arg(long)]
        timezone: Option<String>,
        /// No tick before this RFC 3339 time.
        #[arg(long)]
        start_at: Option<String>,
        /// No tick after this RFC 3339 time.
        #[arg(long)]
        end_at: Option<String>,
        /// End after this many jobs.
        #[arg(long)]
        max_runs: Option<u64>,
        /// Ticks missed while no server ran: latest (run the most recent once)
        /// or skip (run none). Never a burst.
        #[arg(long, value_parser = ["latest", "skip"])]
        missed: Option<String>,
        /// A tick while the previous job still queues or runs: skip (record
        /// the tick as skipped), queue (make the job; it waits its turn) or allow.
        #[arg(long, value_parser = ["skip", "queue", "allow"])]
        overlap: Option<String>,
    },
    /// List schedules with their status and next tick.
    List,
    /// Show a schedule: the next 5 fire times and its latest ticks.
    Show { id: String },
    /// Stop making jobs until resumed.
    Pause { id: String },
    /// Resume from now on (the paused time is not caught up).
    Resume { id: String },
    /// Delete a schedule (the jobs it made stay).
    Delete { id: String },
}

/// How a schedule fires, from its document: `cron ...` or `every ...`.
fn when(doc: &Value) -> String {
    doc["cron"]
        .as_str()
        .map(|c| format!("cron {c}"))
        .or_else(|| doc["every"].as_str().map(|e| format!("every {e}")))
        .unwrap_or_else(|| format!("every {}s", output::s(&doc["every"])))
}

fn show(g: &Global, v: &ScheduleView) {
    match g.output {
        OutputFormat::Json => output::json(v),
        OutputFormat::Table => {
            let field = |k: &str, v: String| println!("{k:<12}{v}");
            field("id", v.id.clone());
            match &v.pipeline {
                Some(p) => field("pipeline", p.clone()),
                None => field("config", output::or_dash(v.config.as_ref())),
            }
            field("status", v.status.clone());
            field("when", when(&v.schedule));
            if let Some(tz) = v.schedule["timezone"].as_str() {
                field("timezone", tz.to_string());
            }
            field("runs", v.runs.to_string());
            for (i, t) in v.next.iter().enumerate() {
                field(if i == 0 { "next" } else { "" }, t.clone());
            }
            for t in &v.recent {
                let what = match (&t.job, &t.run) {
                    (Some(j), _) => format!("job {j}"),
                    (_, Some(r)) => format!("pipeline run {r}"),
                    _ => format!("{}: {}", t.outcome, output::or_dash(t.note.as_ref())),
                };
                field("tick", format!("{} {what}", t.tick));
            }
        }
    }
}

pub async fn schedules(g: &Global, cmd: SchedulesCommand) -> anyhow::Result<u8> {
    let client = Client::new(g)?;
    match cmd {
        SchedulesCommand::Create {
            id,
            config,
            pipeline,
            cron,
            every,
            timezone,
            start_at,
            end_at,
            max_runs,
            missed,
            overlap,
        } => {
            let mut body = json!({ "id": id });
            let fields = [
                ("config", config),
                ("pipeline", pipeline),
                ("cron", cron),
                ("every", every),
                ("timezone", timezone),
                ("start_at", start_at),
                ("end_at", end_at),
                ("missed", missed),
                ("overlap", overlap),
            ];
            for (k, v) in fields {
                if let Some(v) = v {
                    body[k] = json!(v);
                }
            }
            if let Some(m) = max_runs {
                body["max_runs"] = json!(m);
            }
            show(g, &client.post_as("/v1/schedules", &body).await?);
        }
        SchedulesCommand::List => {
            let list: ScheduleList = client.get_as("/v1/schedules").await?;
            match g.output {
                OutputFormat::Json => output::json(&list),
                OutputFormat::Table => {
                    let rows: Vec<Vec<String>> = list
                        .schedules
                        .iter()
                        .map(|s| {
                            let when = s.schedule["cron"]
                                .as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| {
                                    format!("every {}", output::s(&s.schedule["every"]))
                                });
                            vec![
                                s.id.clone(),
                                s.config.clone().unwrap_or_else(|| {
                                    format!("pipeline {}", output::or_dash(s.pipeline.as_ref()))
                                }),
                                when,
                                s.status.clone(),
                                s.runs.to_string(),
                                output::or_dash(s.next_tick.as_ref()),
                            ]
                        })
                        .collect();
                    output::table(&["ID", "CONFIG", "WHEN", "STATUS", "RUNS", "NEXT"], &rows);
                }
            }
        }
        SchedulesCommand::Show { id } => show(
            g,
            &client
                .get_as(&format!("/v1/schedules/{}", enc(&id)))
                .await?,
        ),
        SchedulesCommand::Pause { id } => show(
            g,
            &client
                .post_as(&format!("/v1/schedules/{}/pause", enc(&id)), &json!({}))
                .await?,
        ),
        SchedulesCommand::Resume { id } => show(
            g,
            &client
                .post_as(&format!("/v1/schedules/{}/resume", enc(&id)), &json!({}))
                .await?,
        ),
        SchedulesCommand::Delete { id } => {
            client
                .delete(&format!("/v1/schedules/{}", enc(&id)))
                .await?;
            if g.output == OutputFormat::Table {
                println!("schedule {id} deleted");
            }
        }
    }
    Ok(0)
}
