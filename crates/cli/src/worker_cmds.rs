//! `gantry workers ...`: the fleet's workers (`/v1/workers`, admin token).

use crate::client::Client;
use crate::commands::enc;
use crate::output;
use crate::{Global, OutputFormat};
use clap::Subcommand;
use serde_json::{json, Value};

#[derive(Subcommand)]
pub enum WorkersCommand {
    /// List workers: id, host, version, tags, slots, running jobs, last
    /// heartbeat and state (active, draining, gone).
    List,
    /// Drain a worker: it claims no more jobs and lets its running jobs
    /// finish (restart it to make it active again). With --wait, return
    /// once it runs nothing.
    Drain {
        id: String,
        /// Wait until the worker runs no job (checked every second).
        #[arg(long)]
        wait: bool,
    },
}

fn rows(list: &Value) -> Vec<Vec<String>> {
    list["workers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| {
            let tags: Vec<String> = w["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .map(output::s)
                .collect();
            vec![
                output::s(&w["id"]),
                output::s(&w["host"]),
                output::s(&w["version"]),
                if tags.is_empty() {
                    "-".into()
                } else {
                    tags.join(",")
                },
                output::s(&w["slots"]),
                output::s(&w["running"]),
                output::s(&w["last_heartbeat"]),
                output::s(&w["state"]),
            ]
        })
        .collect()
}

const HEADERS: [&str; 8] = [
    "ID",
    "HOST",
    "VERSION",
    "TAGS",
    "SLOTS",
    "RUNNING",
    "LAST HEARTBEAT",
    "STATE",
];

pub async fn workers(g: &Global, cmd: WorkersCommand) -> anyhow::Result<u8> {
    let client = Client::new(g)?;
    match cmd {
        WorkersCommand::List => {
            let list = client.get("/v1/workers").await?;
            match g.output {
                OutputFormat::Json => output::json(&list),
                OutputFormat::Table => output::table(&HEADERS, &rows(&list)),
            }
        }
        WorkersCommand::Drain { id, wait } => {
            let mut w = client
                .post(&format!("/v1/workers/{}/drain", enc(&id)), &json!({}))
                .await?;
            while wait && w["state"] == "draining" && w["running"].as_u64().unwrap_or(0) > 0 {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                let list = client.get("/v1/workers").await?;
                match list["workers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|x| x["id"] == id.as_str())
                {
                    Some(x) => w = x.clone(),
                    None => break,
                }
            }
            match g.output {
                OutputFormat::Json => output::json(&w),
                OutputFormat::Table => output::table(&HEADERS, &rows(&json!({ "workers": [w] }))),
            }
        }
    }
    Ok(0)
}
