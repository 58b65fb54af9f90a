//! `gantry projects ...` and `gantry tokens ...`: what an admin token manages.

use crate::client::Client;
use crate::commands::enc;
use crate::output;
use crate::{Global, OutputFormat};
use clap::Subcommand;
use serde_json::{json, Value};

/// What `--allow` takes: the loosenings of the locked-down defaults.
const ALLOW_HELP: &str = "Loosenings the project's jobs may ask for, comma-separated: \
root-user (`user: root`), bridge-network (`limits.network: bridge`), writable-root \
(`writable_root: true`); `none` allows nothing";

#[derive(Subcommand)]
pub enum ProjectsCommand {
    /// Create a project (a tenant with its own jobs, configurations, tables,
    /// files and tokens). Then give it a token: `gantry tokens create --project ID`.
    Create {
        id: String,
        #[arg(long, value_delimiter = ',', help = ALLOW_HELP)]
        allow: Vec<String>,
    },
    /// List projects with what each allows.
    List,
    /// Show one project.
    Show { id: String },
    /// Replace what a project's jobs may loosen, and/or cap how many of its
    /// jobs run at once (enforced where workers claim jobs, across all of them).
    Update {
        id: String,
        #[arg(long, value_delimiter = ',', help = ALLOW_HELP)]
        allow: Option<Vec<String>>,
        /// Most jobs of the project running at once; 0 removes the cap.
        /// Jobs past it wait queued and say why.
        #[arg(long)]
        max_running: Option<u32>,
    },
}

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Create a token for a project; its secret is printed once (only its
    /// hash is stored).
    Create {
        #[arg(long)]
        project: String,
        #[arg(long, default_value = "")]
        description: String,
        /// The token may also manage projects and tokens.
        #[arg(long)]
        admin: bool,
    },
    /// List tokens (ids, never secrets).
    List {
        #[arg(long)]
        project: Option<String>,
    },
    /// Revoke a token by the id `tokens list` shows.
    Revoke { id: String },
}

fn allow_list(allow: Vec<String>) -> Value {
    let items: Vec<String> = allow
        .into_iter()
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty() && a != "none")
        .collect();
    json!(items)
}

fn allow_text(v: &Value) -> String {
    let items: Vec<String> = v.as_array().into_iter().flatten().map(output::s).collect();
    if items.is_empty() {
        "none".into()
    } else {
        items.join(",")
    }
}

const PROJECT_HEADERS: [&str; 4] = ["id", "allow", "max running", "created"];

fn project_rows(list: &[Value]) -> Vec<Vec<String>> {
    list.iter()
        .map(|p| {
            vec![
                output::s(&p["id"]),
                allow_text(&p["allow"]),
                output::s(&p["max_running"]),
                output::s(&p["created_at"]),
            ]
        })
        .collect()
}

pub async fn projects(g: &Global, cmd: ProjectsCommand) -> anyhow::Result<u8> {
    let client = Client::new(g)?;
    let one = |p: &Value| match g.output {
        OutputFormat::Json => output::json(p),
        OutputFormat::Table => {
            output::table(&PROJECT_HEADERS, &project_rows(std::slice::from_ref(p)))
        }
    };
    match cmd {
        ProjectsCommand::Create { id, allow } => {
            let p = client
                .post(
                    "/v1/projects",
                    &json!({"id": id, "allow": allow_list(allow)}),
                )
                .await?;
            one(&p);
        }
        ProjectsCommand::List => {
            let list = client.get("/v1/projects").await?;
            match g.output {
                OutputFormat::Json => output::json(&list),
                OutputFormat::Table => output::table(
                    &PROJECT_HEADERS,
                    &project_rows(list["projects"].as_array().map_or(&[], |v| v)),
                ),
            }
        }
        ProjectsCommand::Show { id } => {
            let p = client.get(&format!("/v1/projects/{}", enc(&id))).await?;
            one(&p);
        }
        ProjectsCommand::Update {
            id,
            allow,
            max_running,
        } => {
            if allow.is_none() && max_running.is_none() {
                anyhow::bail!("give --allow, --max-running or both");
            }
            let mut body = json!({});
            if let Some(a) = allow {
                body["allow"] = allow_list(a);
            }
            if let Some(m) = max_running {
                body["max_running"] = json!(m);
            }
            let p = client
                .patch(&format!("/v1/projects/{}", enc(&id)), &body)
                .await?;
            one(&p);
        }
    }
    Ok(0)
}

fn token_rows(list: &[Value]) -> Vec<Vec<String>> {
    list.iter()
        .map(|t| {
            vec![
                output::s(&t["id"]),
                output::s(&t["project"]),
                if t["admin"] == json!(true) {
                    "yes"
                } else {
                    "no"
                }
                .into(),
                output::s(&t["description"]),
                output::s(&t["created_at"]),
            ]
        })
        .collect()
}

const TOKEN_HEADERS: [&str; 5] = ["id", "project", "admin", "description", "created"];

pub async fn tokens(g: &Global, cmd: TokensCommand) -> anyhow::Result<u8> {
    let client = Client::new(g)?;
    match cmd {
        TokensCommand::Create {
            project,
            description,
            admin,
        } => {
            let t = client
                .post(
                    "/v1/tokens",
                    &json!({"project": project, "description": description, "admin": admin}),
                )
                .await?;
            match g.output {
                OutputFormat::Json => output::json(&t),
                OutputFormat::Table => {
                    output::table(&TOKEN_HEADERS, &token_rows(std::slice::from_ref(&t)));
                    println!(
                        "\ntoken (shown once; keep it secret): {}",
                        output::s(&t["token"])
                    );
                }
            }
        }
        TokensCommand::List { project } => {
            let path = match project {
                Some(p) => format!("/v1/tokens?project={}", enc(&p)),
                None => "/v1/tokens".into(),
            };
            let list = client.get(&path).await?;
            match g.output {
                OutputFormat::Json => output::json(&list),
                OutputFormat::Table => output::table(
                    &TOKEN_HEADERS,
                    &token_rows(list["tokens"].as_array().map_or(&[], |v| v)),
                ),
            }
        }
        TokensCommand::Revoke { id } => {
            client.delete(&format!("/v1/tokens/{}", enc(&id))).await?;
            if g.output == OutputFormat::Table {
                println!("token {id} revoked");
            }
        }
    }
    Ok(0)
}
