//! `gantry webhooks ...`: manage inbound webhooks (`/v1/webhooks`).

use crate::client::Client;
use crate::commands::enc;
use crate::output;
use crate::{Global, OutputFormat};
use clap::Subcommand;
use serde_json::{json, Value};

#[derive(Subcommand)]
pub enum WebhooksCommand {
    /// Make a trigger URL (POST /v1/hooks/ID) that runs a configuration (or
    /// starts a pipeline run). A delivery id seen before runs nothing. Its
    /// secret is printed once and stored sealed. Senders sign each delivery
    /// with Standard Webhooks (webhook-id, webhook-timestamp,
    /// webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">,
    /// keyed by the base64 after "whsec_") or GitHub's X-Hub-Signature-256
    /// (keyed by the whole secret text). The body reaches the job as
    /// /data/in/files/webhook.json, its headers in webhook.json.manifest.
    Create {
        /// The configuration to run.
        #[arg(
            long,
            conflicts_with = "pipeline",
            required_unless_present = "pipeline"
        )]
        config: Option<String>,
        /// The pipeline to run instead (each delivery starts one run; every
        /// task finds the body in /data/in/files/webhook.json).
        #[arg(long)]
        pipeline: Option<String>,
        /// signature (default) or token (a Gantry bearer token of the project
        /// instead of a signature).
        #[arg(long, value_parser = ["signature", "token"])]
        auth: Option<String>,
        /// Largest body accepted (default 1m; at most 16m).
        #[arg(long, value_parser = crate::parse_size)]
        max_body: Option<u64>,
        /// Deliveries accepted per minute (default 60); past it 429 with Retry-After.
        #[arg(long)]
        rate_limit: Option<u32>,
    },
    /// List webhooks (never their secrets).
    List,
    /// Show a webhook: its URL, target, limits, whether an old secret is still valid.
    Show { id: String },
    /// Make a new secret (printed once); the old one keeps working for --grace.
    Rotate {
        id: String,
        /// How long the old secret stays valid (default 24h; 0s ends it now).
        #[arg(long)]
        grace: Option<String>,
    },
    /// Delete a webhook: its URL answers 404 from then on.
    Delete { id: String },
}

fn show(g: &Global, v: &Value) {
    match g.output {
        OutputFormat::Json => output::json(v),
        OutputFormat::Table => {
            let field = |k: &str, v: String| println!("{k:<14}{v}");
            field("id", output::s(&v["id"]));
            field(
                "url",
                format!("{}{}", g.server.trim_end_matches('/'), output::s(&v["url"])),
            );
            match v["pipeline"].as_str() {
                Some(p) => field("pipeline", p.to_string()),
                None => field("config", output::s(&v["config"])),
            }
            field("auth", output::s(&v["auth"]));
            field("max body", output::s(&v["max_body"]));
            field("rate limit", format!("{}/min", output::s(&v["rate_limit"])));
            if let Some(u) = v["old_secret_valid_until"].as_str() {
                field("old secret", format!("valid until {u}"));
            }
            if let Some(secret) = v["secret"].as_str() {
                field("secret", secret.to_string());
                eprintln!("The secret is shown once; only a sealed copy is stored.");
            }
        }
    }
}

pub async fn webhooks(g: &Global, cmd: WebhooksCommand) -> anyhow::Result<u8> {
    let client = Client::new(g)?;
    match cmd {
        WebhooksCommand::Create {
            config,
            pipeline,
            auth,
            max_body,
            rate_limit,
        } => {
            let mut body = json!({ "config": config, "pipeline": pipeline });
            if let Some(a) = auth {
                body["auth"] = json!(a);
            }
            if let Some(m) = max_body {
                body["max_body"] = json!(m);
            }
            if let Some(r) = rate_limit {
                body["rate_limit"] = json!(r);
            }
            show(g, &client.post("/v1/webhooks", &body).await?);
        }
        WebhooksCommand::List => {
            let list = client.get("/v1/webhooks").await?;
            match g.output {
                OutputFormat::Json => output::json(&list),
                OutputFormat::Table => {
                    let rows: Vec<Vec<String>> = list["webhooks"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|h| {
                            vec![
                                output::s(&h["id"]),
                                output::s(&h["config"]),
                                output::s(&h["auth"]),
                                output::s(&h["url"]),
                            ]
                        })
                        .collect();
                    output::table(&["ID", "CONFIG", "AUTH", "URL"], &rows);
                }
            }
        }
        WebhooksCommand::Show { id } => {
            show(g, &client.get(&format!("/v1/webhooks/{}", enc(&id))).await?)
        }
        WebhooksCommand::Rotate { id, grace } => {
            let body = match grace {
                Some(g) => json!({ "grace": g }),
                None => json!({}),
            };
            show(
                g,
                &client
                    .post(&format!("/v1/webhooks/{}/rotate", enc(&id)), &body)
                    .await?,
            );
        }
        WebhooksCommand::Delete { id } => {
            client.delete(&format!("/v1/webhooks/{}", enc(&id))).await?;
            if g.output == OutputFormat::Table {
                println!("webhook {id} deleted");
            }
        }
    }
    Ok(0)
}
