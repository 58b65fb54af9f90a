//! `gantry projects ...` and `gantry tokens ...`: what an admin token manages.

use crate::client::Client;
use crate::commands::enc;
use crate::output;
use crate::{Global, OutputFormat};
use clap::Subcommand;
use gantry_wire::{ProjectList, ProjectView, TokenList, TokenView};
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
    /// Change a project's policy: what its jobs may loosen, how large an
    /// import may expand, what retention keeps, and how many of its jobs run
    /// at once (enforced where workers claim jobs, across all of them).
    #[command(group(clap::ArgGroup::new("change").required(true).multiple(true).args([
        "allow", "import_max_size", "max_running", "keep_jobs_days", "keep_versions", "keep_versions_days", "keep_files_days"
    ])))]
    Update {
        id: String,
        #[arg(long, value_delimiter = ',', help = ALLOW_HELP)]
        allow: Option<Vec<String>>,
        /// The most CSV one import (or one job's output table) may expand to
        /// after gzip, e.g. `10G`; past it the import is refused (413).
        #[arg(long, value_name = "SIZE", value_parser = gantry_core::units::parse_size)]
        import_max_size: Option<u64>,
        /// Retention (`gantry retention`): finished jobs and their events older
        /// than this many days go (default 90; 0 keeps them).
        #[arg(long, value_name = "DAYS")]
        keep_jobs_days: Option<u32>,
        /// Retention: a table keeps its newest this many versions (default
        /// 100; 0: no limit); the current and pinned ones always stay.
        #[arg(long, value_name = "N")]
        keep_versions: Option<u32>,
        /// Retention: versions older than this many days go (default 0: none),
        /// except the current and pinned ones.
        #[arg(long, value_name = "DAYS")]
        keep_versions_days: Option<u32>,
        /// Retention: files older than this many days go (default 0: none).
        #[arg(long, value_name = "DAYS")]
        keep_files_days: Option<u32>,
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

fn allow_text(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(",")
    }
}

const PROJECT_HEADERS: [&str; 4] = ["ID", "ALLOW", "MAX RUNNING", "CREATED"];

fn project_rows(list: &[ProjectView]) -> Vec<Vec<String>> {
    list.iter()
        .map(|p| {
            vec![
                p.id.clone(),
                allow_text(&p.allow),
                p.max_running.map_or_else(|| "-".into(), |m| m.to_string()),
                p.created_at.clone(),
            ]
        })
        .collect()
}

pub async fn projects(g: &Global, cmd: ProjectsCommand) -> anyhow::Result<u8> {
    let client = Client::new(g)?;
    let one = |p: &ProjectView| match g.output {
        OutputFormat::Json => output::json(p),
        OutputFormat::Table => {
            output::table(&PROJECT_HEADERS, &project_rows(std::slice::from_ref(p)))
        }
    };
    match cmd {
        ProjectsCommand::Create { id, allow } => {
            let p: ProjectView = client
                .post_as(
                    "/v1/projects",
                    &json!({"id": id, "allow": allow_list(allow)}),
                )
                .await?;
            one(&p);
        }
        ProjectsCommand::List => {
            let list: ProjectList = client.get_as("/v1/projects").await?;
            match g.output {
                OutputFormat::Json => output::json(&list),
                OutputFormat::Table => {
                    output::table(&PROJECT_HEADERS, &project_rows(&list.projects))
                }
            }
        }
        ProjectsCommand::Show { id } => {
            let p: ProjectView = client.get_as(&format!("/v1/projects/{}", enc(&id))).await?;
            one(&p);
        }
        ProjectsCommand::Update {
            id,
            allow,
            import_max_size,
            keep_jobs_days,
            keep_versions,
            keep_versions_days,
            keep_files_days,
            max_running,
        } => {
            let mut body = json!({});
            let changes = [
                ("jobs_days", keep_jobs_days),
                ("versions", keep_versions),
                ("versions_days", keep_versions_days),
                ("files_days", keep_files_days),
            ];
            if changes.iter().any(|(_, v)| v.is_some()) {
                let current: ProjectView =
                    client.get_as(&format!("/v1/projects/{}", enc(&id))).await?;
                let mut policy = current.retention;
                for (k, v) in changes {
                    if let Some(v) = v {
                        policy[k] = json!(v);
                    }
                }
                body["retention"] = policy;
            }
            if let Some(allow) = allow {
                body["allow"] = allow_list(allow);
            }
            if let Some(max) = import_max_size {
                body["import_max_bytes"] = json!(max);
            }
            if let Some(m) = max_running {
                body["max_running"] = json!(m);
            }
            let p: ProjectView = serde_json::from_value(
                client
                    .patch(&format!("/v1/projects/{}", enc(&id)), &body)
                    .await?,
            )?;
            one(&p);
        }
    }
    Ok(0)
}

fn token_rows(list: &[TokenView]) -> Vec<Vec<String>> {
    list.iter()
        .map(|t| {
            vec![
                t.id.to_string(),
                t.project.clone(),
                if t.admin { "yes" } else { "no" }.into(),
                t.description.clone(),
                t.created_at.clone(),
            ]
        })
        .collect()
}

const TOKEN_HEADERS: [&str; 5] = ["ID", "PROJECT", "ADMIN", "DESCRIPTION", "CREATED"];

pub async fn tokens(g: &Global, cmd: TokensCommand) -> anyhow::Result<u8> {
    let client = Client::new(g)?;
    match cmd {
        TokensCommand::Create {
            project,
            description,
            admin,
        } => {
            let t: TokenView = client
                .post_as(
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
                        t.token.as_deref().unwrap_or("-")
                    );
                }
            }
        }
        TokensCommand::List { project } => {
            let path = match project {
                Some(p) => format!("/v1/tokens?project={}", enc(&p)),
                None => "/v1/tokens".into(),
            };
            let list: TokenList = client.get_as(&path).await?;
            match g.output {
                OutputFormat::Json => output::json(&list),
                OutputFormat::Table => output::table(&TOKEN_HEADERS, &token_rows(&list.tokens)),
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
