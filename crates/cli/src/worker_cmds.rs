//! `gantry workers ...`: the fleet's workers (`/v1/workers`, admin token).

use crate::client::Client;
use crate::commands::enc;
use crate::output;
use crate::{Global, OutputFormat};
use clap::Subcommand;
use gantry_wire::{WorkerList, WorkerView};
use serde_json::json;

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

fn rows(workers: &[WorkerView]) -> Vec<Vec<String>> {
    workers
        .iter()
        .map(|w| {
            vec![
                w.id.to_string(),
                w.host.clone(),
                w.version.clone(),
                if w.tags.is_empty() {
                    "-".into()
                } else {
                    w.tags.join(",")
                },
                w.slots.to_string(),
                w.running.to_string(),
                w.last_heartbeat.clone(),
                w.state.clone(),
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
            let list: WorkerList = client.get_as("/v1/workers").await?;
            match g.output {
                OutputFormat::Json => output::json(&list),
                OutputFormat::Table => output::table(&HEADERS, &rows(&list.workers)),
            }
        }
        WorkersCommand::Drain { id, wait } => {
            let mut w: WorkerView = client
                .post_as(&format!("/v1/workers/{}/drain", enc(&id)), &json!({}))
                .await?;
            while wait && w.state == "draining" && w.running > 0 {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                let list: WorkerList = client.get_as("/v1/workers").await?;
                match list.workers.into_iter().find(|x| x.id.as_str() == id) {
                    Some(x) => w = x,
                    None => break,
                }
            }
            match g.output {
                OutputFormat::Json => output::json(&w),
                OutputFormat::Table => output::table(&HEADERS, &rows(std::slice::from_ref(&w))),
            }
        }
    }
    Ok(0)
}
