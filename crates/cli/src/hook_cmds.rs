//! `gantry webhooks ...`: manage inbound webhooks (`/v1/webhooks`).

use crate::client::Client;
use crate::commands::enc;
use crate::output;
use crate::{Global, OutputFormat};
use clap::Subcommand;
use gantry_wire::{HookList, HookView};
use serde_json::json;

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

fn show(g: &Global, v: &HookView) {
    match g.output {
        OutputFormat::Json => output::json(v),
        OutputFormat::Table => {
            let field = |k: &str, v: String| println!("{k:<14}{v}");
            field("id", v.id.clone());
            field(
                "url",
                format!("{}{}", g.server.trim_end_matches('/'), v.url),
            );
            match &v.pipeline {
                Some(p) => field("pipeline", p.clone()),
                None => field("config", output::or_dash(v.config.as_ref())),
            }
            field("auth", v.auth.clone());
            field("max body", v.max_body.to_string());
            field("rate limit", format!("{}/min", v.rate_limit));
            if let Some(u) = &v.old_secret_valid_until {
                field("old secret", format!("valid until {u}"));
            }
            if let Some(secret) = &v.secret {
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
            show(g, &client.post_as("/v1/webhooks", &body).await?);
        }
        WebhooksCommand::List => {
            let list: HookList = client.get_as("/v1/webhooks").await?;
            match g.output {
                OutputFormat::Json => output::json(&list),
                OutputFormat::Table => {
                    let rows: Vec<Vec<String>> = list
                        .webhooks
                        .iter()
                        .map(|h| {
                            vec![
                                h.id.clone(),
                                output::or_dash(h.config.as_ref()),
                                h.auth.clone(),
                                h.url.clone(),
                            ]
                        })
                        .collect();
                    output::table(&["ID", "CONFIG", "AUTH", "URL"], &rows);
                }
            }
        }
        WebhooksCommand::Show { id } => show(
            g,
            &client.get_as(&format!("/v1/webhooks/{}", enc(&id))).await?,
        ),
        WebhooksCommand::Rotate { id, grace } => {
            let body = match grace {
                Some(g) => json!({ "grace": g }),
                None => json!({}),
            };
            show(
                g,
                &client
                    .post_as(&format!("/v1/webhooks/{}/rotate", enc(&id)), &body)
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
