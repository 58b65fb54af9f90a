//! `gantry jobs ...` and `gantry configs ...`: thin wrappers over the API.

use crate::client::Client;
use crate::output::{self, job_row, JOB_HEADERS};
use crate::{Global, OutputFormat};
use anyhow::Context;
use clap::Subcommand;
use gantry_core::{ErrorKind, JobStatus};
use gantry_wire::{ConfigList, ConfigView, EventView, JobList, JobView};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum JobsCommand {
    /// Submit a job from a spec file (YAML or JSON).
    Submit {
        spec: PathBuf,
        #[command(flatten)]
        timing: Timing,
        /// Wait for the job to end; the exit code follows it.
        #[arg(long)]
        wait: bool,
        /// Print the job's log live while waiting (implies --wait).
        #[arg(long)]
        follow: bool,
        /// Keboola's debug mode: keep the job's whole data folder as a file
        /// in Storage (tags debug, job-<id>; secrets sealed).
        #[arg(long)]
        debug: bool,
    },
    /// List jobs, newest first.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Continue after this job id (from a previous page).
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show one job with its attempts, timings and limits.
    Show { id: String },
    /// Print a job's log.
    Logs {
        id: String,
        /// Keep printing as the job runs, until it ends.
        #[arg(long, short)]
        follow: bool,
    },
    /// Cancel a job: a queued one at once, a running one within the grace period.
    Cancel { id: String },
    /// Wait for a job to end; the exit code follows it.
    Wait { id: String },
}

/// When and how urgently a submitted job runs.
#[derive(clap::Args)]
pub struct Timing {
    /// 0 (low), 1 (normal) or 2 (high): higher priority is claimed first;
    /// a job waiting long rises one level a minute, so none waits forever.
    /// Overrides the spec's `priority`.
    #[arg(long)]
    priority: Option<u8>,
    /// Hold the job queued this long first (e.g. 30s, 10m, 2h).
    #[arg(long, conflicts_with = "run_after")]
    delay: Option<String>,
    /// Hold the job queued until this RFC 3339 time (e.g. 2026-01-31T12:00:00Z).
    #[arg(long)]
    run_after: Option<String>,
}

impl Timing {
    fn apply(self, body: &mut Value) {
        if let Some(p) = self.priority {
            body["priority"] = json!(p);
        }
        if let Some(d) = self.delay {
            body["delay"] = json!(d);
        }
        if let Some(t) = self.run_after {
            body["run_after"] = json!(t);
        }
    }
}

#[derive(Subcommand)]
pub enum ConfigsCommand {
    /// Store a spec as a named configuration.
    Create { id: String, spec: PathBuf },
    /// Replace a configuration's spec (its state is kept).
    Update { id: String, spec: PathBuf },
    /// List the project's configurations (id, image, version, last update).
    List,
    /// Show a configuration: its spec (secrets sealed) and version.
    Show { id: String },
    /// Delete a configuration and its state (its past jobs are kept).
    Delete { id: String },
    /// Run a configuration as a job.
    Run {
        id: String,
        #[command(flatten)]
        timing: Timing,
        #[arg(long)]
        wait: bool,
        #[arg(long)]
        follow: bool,
        /// Keboola's debug mode: keep the job's whole data folder as a file
        /// in Storage (tags debug, job-<id>; secrets sealed).
        #[arg(long)]
        debug: bool,
    },
    /// Print the state saved by the configuration's last successful job.
    State { id: String },
    /// Run a Keboola sync action of a configuration at once (no queue, no
    /// Storage mapping, 30 s at most) and print its JSON answer. A component
    /// that exits 1 fails it with its message.
    Action { id: String, action: String },
}

/// Reads and validates a spec file (YAML or JSON) with the same rules the
/// server applies, so mistakes are named before anything is sent.
pub fn read_spec(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (doc, _) = gantry_core::Spec::parse(&text)
        .map_err(|e| anyhow::anyhow!("{}: invalid spec: {e}", path.display()))?;
    Ok(serde_json::to_value(doc)?)
}

/// Percent-encodes a path segment or query value.
pub fn enc(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

fn print_job(g: &Global, job: &JobView) {
    match g.output {
        OutputFormat::Json => output::json(job),
        OutputFormat::Table => output::job_detail(job),
    }
}

fn job_exit(job: &JobView) -> u8 {
    let status = job.status.parse::<JobStatus>().unwrap_or(JobStatus::Failed);
    let kind = job
        .error
        .as_ref()
        .and_then(|e| e.kind.parse::<ErrorKind>().ok());
    crate::exit::for_job(status, kind, job.exit_code)
}

/// Waits for a job to end by long-polling (the server answers the moment it
/// ends), with a spinner on a terminal.
async fn wait_job(client: &Client, id: &str) -> anyhow::Result<JobView> {
    let spinner = output::spinner(&format!("waiting for job {id}"));
    let result = loop {
        let job: JobView = client
            .get_as(&format!("/v1/jobs/{}?wait=60s", enc(id)))
            .await?;
        if let Some(pb) = &spinner {
            pb.set_message(format!("job {id} {}", job.status));
        }
        if job
            .status
            .parse::<JobStatus>()
            .is_ok_and(JobStatus::is_terminal)
        {
            break job;
        }
    };
    if let Some(pb) = spinner {
        pb.finish_and_clear();
    }
    Ok(result)
}

async fn follow_job(client: &Client, id: &str) -> anyhow::Result<JobView> {
    let mut end = None;
    client
        .follow_events(id, 0, |kind, data| match kind {
            "end" => end = serde_json::from_value::<JobView>(data).ok(),
            _ => {
                if let Ok(e) = serde_json::from_value::<EventView>(data) {
                    output::event_line(&e)
                }
            }
        })
        .await?;
    match end {
        Some(job) => Ok(job),
        // The stream broke before the end: fall back to waiting.
        None => wait_job(client, id).await,
    }
}

fn summarize(g: &Global, job: &JobView) {
    match g.output {
        OutputFormat::Json => output::json(job),
        OutputFormat::Table => {
            let (id, status) = (&job.id, &job.status);
            match &job.error {
                Some(e) => eprintln!("job {id} {status} ({}): {}", e.kind, e.message),
                None => eprintln!("job {id} {status}"),
            }
        }
    }
}

async fn submit_and_maybe_wait(
    g: &Global,
    client: &Client,
    body: Value,
    wait: bool,
    follow: bool,
) -> anyhow::Result<u8> {
    let job: JobView = client.post_as("/v1/jobs", &body).await?;
    let id = job.id.clone();
    if !(wait || follow) {
        match g.output {
            OutputFormat::Json => output::json(&job),
            OutputFormat::Table => println!("{id}"),
        }
        return Ok(0);
    }
    let end = if follow {
        follow_job(client, &id).await?
    } else {
        wait_job(client, &id).await?
    };
    summarize(g, &end);
    Ok(job_exit(&end))
}

pub async fn jobs(g: &Global, cmd: JobsCommand) -> anyhow::Result<u8> {
    let client = Client::new(g)?;
    match cmd {
        JobsCommand::Submit {
            spec,
            timing,
            wait,
            follow,
            debug,
        } => {
            let spec = read_spec(&spec)?;
            let mut body = json!({ "spec": spec });
            timing.apply(&mut body);
            if debug {
                body["mode"] = json!("debug");
            }
            submit_and_maybe_wait(g, &client, body, wait, follow).await
        }
        JobsCommand::List {
            status,
            limit,
            cursor,
        } => {
            let mut path = format!("/v1/jobs?limit={limit}");
            if let Some(s) = status {
                path.push_str(&format!("&status={}", enc(&s)));
            }
            if let Some(c) = cursor {
                path.push_str(&format!("&cursor={}", enc(&c)));
            }
            let page: JobList = client.get_as(&path).await?;
            match g.output {
                OutputFormat::Json => output::json(&page),
                OutputFormat::Table => {
                    let rows: Vec<Vec<String>> = page.jobs.iter().map(job_row).collect();
                    output::table(&JOB_HEADERS, &rows);
                    if let Some(c) = &page.next_cursor {
                        eprintln!("more: gantry jobs list --cursor {c}");
                    }
                }
            }
            Ok(0)
        }
        JobsCommand::Show { id } => {
            let job: JobView = client.get_as(&format!("/v1/jobs/{}", enc(&id))).await?;
            print_job(g, &job);
            Ok(0)
        }
        JobsCommand::Logs { id, follow } => {
            if follow {
                let job = follow_job(&client, &id).await?;
                summarize(g, &job);
                return Ok(job_exit(&job));
            }
            let mut after = 0u64;
            loop {
                let list: Vec<EventView> = client
                    .get_as(&format!(
                        "/v1/jobs/{}/events?after={after}&limit=5000",
                        enc(&id)
                    ))
                    .await?;
                if list.is_empty() {
                    break;
                }
                for e in &list {
                    match g.output {
                        OutputFormat::Json => {
                            println!("{}", serde_json::to_string(e).unwrap_or_default())
                        }
                        OutputFormat::Table => output::event_line(e),
                    }
                }
                after = list.last().map_or(after, |e| e.seq);
            }
            Ok(0)
        }
        JobsCommand::Cancel { id } => {
            let job: JobView = client
                .post_as(&format!("/v1/jobs/{}/cancel", enc(&id)), &json!({}))
                .await?;
            match g.output {
                OutputFormat::Json => output::json(&job),
                OutputFormat::Table => {
                    let note = if job.status == "running" {
                        " (stopping; it ends within the grace period)"
                    } else {
                        ""
                    };
                    println!("job {} {}{note}", job.id, job.status);
                }
            }
            Ok(0)
        }
        JobsCommand::Wait { id } => {
            let job = wait_job(&client, &id).await?;
            summarize(g, &job);
            Ok(job_exit(&job))
        }
    }
}

pub async fn configs(g: &Global, cmd: ConfigsCommand) -> anyhow::Result<u8> {
    let client = Client::new(g)?;
    let show = |v: &ConfigView| match g.output {
        OutputFormat::Json => output::json(v),
        OutputFormat::Table => {
            println!("{:<10}{}", "id", v.id);
            println!("{:<10}{}", "version", v.version);
            println!("{:<10}{}", "updated", v.updated_at);
            println!(
                "{}",
                serde_json::to_string_pretty(&v.spec).unwrap_or_default()
            );
        }
    };
    match cmd {
        ConfigsCommand::Create { id, spec } => {
            let spec = read_spec(&spec)?;
            let c: ConfigView = client
                .post_as("/v1/configs", &json!({"id": id, "spec": spec}))
                .await?;
            show(&c);
        }
        ConfigsCommand::Update { id, spec } => {
            let spec = read_spec(&spec)?;
            let c: ConfigView = client
                .put_as(
                    &format!("/v1/configs/{}", enc(&id)),
                    &json!({ "spec": spec }),
                )
                .await?;
            show(&c);
        }
        ConfigsCommand::List => {
            let list: ConfigList = client.get_as("/v1/configs").await?;
            match g.output {
                OutputFormat::Json => output::json(&list),
                OutputFormat::Table => {
                    let rows: Vec<Vec<String>> = list
                        .configs
                        .iter()
                        .map(|c| {
                            vec![
                                c.id.clone(),
                                output::s(&c.spec["image"]),
                                c.version.to_string(),
                                c.updated_at.clone(),
                            ]
                        })
                        .collect();
                    output::table(&["ID", "IMAGE", "VERSION", "UPDATED"], &rows);
                }
            }
        }
        ConfigsCommand::Show { id } => {
            show(&client.get_as(&format!("/v1/configs/{}", enc(&id))).await?)
        }
        ConfigsCommand::Delete { id } => {
            client.delete(&format!("/v1/configs/{}", enc(&id))).await?;
            if g.output == OutputFormat::Table {
                println!("configuration {id} deleted");
            }
        }
        ConfigsCommand::Run {
            id,
            timing,
            wait,
            follow,
            debug,
        } => {
            let mut body = json!({ "config": id });
            timing.apply(&mut body);
            if debug {
                body["mode"] = json!("debug");
            }
            return submit_and_maybe_wait(g, &client, body, wait, follow).await;
        }
        ConfigsCommand::Action { id, action } => output::json(
            &client
                .post(
                    &format!("/v1/configs/{}/actions/{}", enc(&id), enc(&action)),
                    &json!({}),
                )
                .await?,
        ),
        ConfigsCommand::State { id } => output::json(
            &client
                .get(&format!("/v1/configs/{}/state", enc(&id)))
                .await?,
        ),
    }
    Ok(0)
}
