//! `gantry tables ...` and `gantry files ...`: Storage through the API, with
//! streaming transfers and progress bars on a terminal.

use crate::client::Client;
use crate::commands::enc;
use crate::output;
use crate::{Global, OutputFormat};
use anyhow::Context;
use clap::Subcommand;
use futures_util::StreamExt;
use gantry_wire::{FileList, FileView, TableList, TableView, VersionList, VersionView};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

#[derive(Subcommand)]
pub enum TablesCommand {
    /// List tables with their current version.
    List,
    /// Create an empty table with its columns (and primary key).
    Create {
        id: String,
        /// Columns, comma-separated.
        #[arg(long, value_name = "A,B", required = true)]
        columns: String,
        /// Primary-key columns, comma-separated.
        #[arg(long, value_name = "A,B")]
        primary_key: Option<String>,
    },
    /// Show a table: columns, primary key, version, rows, bytes.
    Show { id: String },
    /// List a table's versions, newest first (who made each, when, rows, bytes).
    Versions { id: String },
    /// Load a CSV file (header row; `.gz` is decompressed) as a new version.
    Import {
        id: String,
        file: PathBuf,
        /// Append instead of replacing; with a primary key, rows with the same key are replaced.
        #[arg(long)]
        incremental: bool,
        /// Primary-key columns, comma-separated.
        #[arg(long, value_name = "A,B")]
        primary_key: Option<String>,
        /// Field delimiter of the file (one character).
        #[arg(long, default_value = ",")]
        delimiter: String,
        /// Quote character of the file (one character).
        #[arg(long, default_value = "\"")]
        enclosure: String,
    },
    /// Write a table (or an old version) as CSV.
    Export {
        id: String,
        #[arg(long)]
        version: Option<u64>,
        /// Only these columns, comma-separated.
        #[arg(long, value_name = "A,B")]
        columns: Option<String>,
        /// Output file (default: standard output).
        #[arg(short = 'o', long = "file", value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Make an old version the newest one again (as a new version).
    Restore {
        id: String,
        #[arg(long)]
        version: u64,
    },
    /// Pin a version: retention never removes it (`--unpin` to undo).
    Pin {
        id: String,
        #[arg(long)]
        version: u64,
        #[arg(long)]
        unpin: bool,
    },
    /// Rewrite a table's current version into one segment, as a new version
    /// with the same rows (after many incremental primary-key loads, reads
    /// are then byte copies again and hold no keys in memory).
    Compact { id: String },
    /// Delete a table and all its versions.
    Delete { id: String },
}

#[derive(Subcommand)]
pub enum FilesCommand {
    /// Store a file with tags.
    Upload {
        file: PathBuf,
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Name to store it under (default: the file's name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Write a stored file's content.
    Download {
        id: String,
        /// Output file (default: standard output).
        #[arg(short = 'o', long = "file", value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// List files, newest first; with --tag, only files having every tag.
    List {
        #[arg(long = "tag")]
        tags: Vec<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Show one file's details.
    Show { id: String },
}

fn bar(len: Option<u64>, what: &str) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    let template = if len.is_some() {
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}"
    } else {
        "{spinner} {msg} {bytes} {bytes_per_sec}"
    };
    pb.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    Some(pb)
}

async fn upload(client: &Client, path: &str, file: &Path, what: &str) -> anyhow::Result<Value> {
    let f = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("cannot open {}", file.display()))?;
    let len = f.metadata().await?.len();
    let pb = bar(Some(len), what);
    let pb2 = pb.clone();
    let stream = tokio_util::io::ReaderStream::with_capacity(f, 1 << 20).inspect(move |c| {
        if let (Some(pb), Ok(c)) = (&pb2, c) {
            pb.inc(c.len() as u64);
        }
    });
    let result = client
        .post_stream(path, reqwest::Body::wrap_stream(stream))
        .await;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    result
}

async fn download(
    client: &Client,
    path: &str,
    out: Option<&Path>,
    what: &str,
) -> anyhow::Result<u64> {
    let resp = client.get_stream(path).await?;
    let pb = if out.is_some() {
        bar(resp.content_length(), what)
    } else {
        None
    };
    let mut stream = resp.bytes_stream();
    let mut sink: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = match out {
        Some(p) => Box::new(
            tokio::fs::File::create(p)
                .await
                .with_context(|| format!("cannot create {}", p.display()))?,
        ),
        None => Box::new(tokio::io::stdout()),
    };
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.context("the download broke off")?;
        n += chunk.len() as u64;
        if let Some(pb) = &pb {
            pb.inc(chunk.len() as u64);
        }
        sink.write_all(&chunk).await?;
    }
    sink.flush().await?;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    Ok(n)
}

use output::print;

fn version_rows(v: &VersionList) -> Vec<Vec<String>> {
    v.versions
        .iter()
        .map(|x| {
            vec![
                x.version.to_string(),
                x.made_by.clone(),
                x.job.clone().unwrap_or_else(|| "-".into()),
                x.loaded_rows.to_string(),
                x.rows.to_string(),
                x.bytes.to_string(),
                x.created_at.clone(),
                x.note.clone().unwrap_or_default(),
            ]
        })
        .collect()
}

pub async fn tables(g: &Global, cmd: TablesCommand) -> anyhow::Result<u8> {
    let client = Client::new(g)?;
    match cmd {
        TablesCommand::List => {
            let v: TableList = client.get_as("/v1/tables").await?;
            print(g, &v, |v| {
                let rows: Vec<Vec<String>> = v
                    .tables
                    .iter()
                    .map(|t| {
                        vec![
                            t.id.clone(),
                            t.version.to_string(),
                            t.rows.to_string(),
                            t.bytes.to_string(),
                            t.updated_at.clone(),
                        ]
                    })
                    .collect();
                output::table(&["ID", "VERSION", "ROWS", "BYTES", "UPDATED"], &rows);
            });
        }
        TablesCommand::Create {
            id,
            columns,
            primary_key,
        } => {
            let split = |s: &str| {
                s.split(',')
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty())
                    .collect::<Vec<_>>()
            };
            let body = serde_json::json!({
                "id": id,
                "columns": split(&columns),
                "primary_key": primary_key.as_deref().map(split).unwrap_or_default(),
            });
            let v: TableView = client.post_as("/v1/tables", &body).await?;
            print(g, &v, |v| {
                eprintln!("table {} created (version {})", v.id, v.version)
            });
        }
        TablesCommand::Show { id } => {
            let v: TableView = client.get_as(&format!("/v1/tables/{}", enc(&id))).await?;
            print(g, &v, |t| {
                for (k, val) in [
                    ("id", t.id.clone()),
                    ("version", t.version.to_string()),
                    ("rows", t.rows.to_string()),
                    ("bytes", t.bytes.to_string()),
                    ("created_at", t.created_at.clone()),
                    ("updated_at", t.updated_at.clone()),
                ] {
                    println!("{k:<13}{val}");
                }
                let cols = &t.columns;
                let pk = &t.primary_key;
                println!("{:<13}{}", "columns", cols.join(", "));
                println!(
                    "{:<13}{}",
                    "primary key",
                    if pk.is_empty() {
                        "-".into()
                    } else {
                        pk.join(", ")
                    }
                );
            });
        }
        TablesCommand::Versions { id } => {
            let v: VersionList = client
                .get_as(&format!("/v1/tables/{}/versions", enc(&id)))
                .await?;
            print(g, &v, |v| {
                output::table(
                    &[
                        "VERSION", "MADE BY", "JOB", "LOADED", "ROWS", "BYTES", "CREATED", "NOTE",
                    ],
                    &version_rows(v),
                )
            });
        }
        TablesCommand::Import {
            id,
            file,
            incremental,
            primary_key,
            delimiter,
            enclosure,
        } => {
            let mut path = format!(
                "/v1/tables/{}/import?incremental={incremental}&delimiter={}&enclosure={}",
                enc(&id),
                enc(&delimiter),
                enc(&enclosure)
            );
            if let Some(pk) = primary_key {
                path.push_str(&format!("&primary_key={}", enc(&pk)));
            }
            if file.extension().is_some_and(|e| e == "gz") {
                path.push_str("&gzip=true");
            }
            let v: VersionView = serde_json::from_value(
                upload(
                    &client,
                    &path,
                    &file,
                    &format!("importing {}", file.display()),
                )
                .await?,
            )?;
            print(g, &v, |v| {
                eprintln!(
                    "{id}: version {} ({} rows, {} bytes loaded)",
                    v.version, v.loaded_rows, v.loaded_bytes
                )
            });
        }
        TablesCommand::Export {
            id,
            version,
            columns,
            out,
        } => {
            let mut path = format!("/v1/tables/{}/export?", enc(&id));
            if let Some(v) = version {
                path.push_str(&format!("version={v}&"));
            }
            if let Some(c) = columns {
                path.push_str(&format!("columns={}", enc(&c)));
            }
            let n = download(&client, &path, out.as_deref(), &format!("exporting {id}")).await?;
            if let Some(o) = out {
                eprintln!("{id}: {n} bytes written to {}", o.display());
            }
        }
        TablesCommand::Restore { id, version } => {
            let v: VersionView = client
                .post_as(
                    &format!("/v1/tables/{}/restore?version={version}", enc(&id)),
                    &Value::Null,
                )
                .await?;
            print(g, &v, |v| {
                eprintln!("{id}: version {version} restored as version {}", v.version)
            });
        }
        TablesCommand::Pin { id, version, unpin } => {
            let path = format!("/v1/tables/{}/versions/{version}/pin", enc(&id));
            let v: VersionView = serde_json::from_value(if unpin {
                client.delete(&path).await?
            } else {
                client.post(&path, &Value::Null).await?
            })?;
            print(g, &v, |v| {
                eprintln!(
                    "{id}: version {version} {}",
                    if v.pinned { "pinned" } else { "unpinned" }
                )
            });
        }
        TablesCommand::Compact { id } => {
            let v: VersionView = client
                .post_as(&format!("/v1/tables/{}/compact", enc(&id)), &Value::Null)
                .await?;
            print(g, &v, |v| match v.compacted {
                Some(true) => {
                    eprintln!("{id}: compacted into one segment as version {}", v.version)
                }
                _ => eprintln!("{id}: already one segment (version {})", v.version),
            });
        }
        TablesCommand::Delete { id } => {
            client.delete(&format!("/v1/tables/{}", enc(&id))).await?;
            if g.output == OutputFormat::Table {
                eprintln!("table {id} deleted");
            }
        }
    }
    Ok(0)
}

pub async fn files(g: &Global, cmd: FilesCommand) -> anyhow::Result<u8> {
    let client = Client::new(g)?;
    let file_rows = |v: &FileList| -> Vec<Vec<String>> {
        v.files
            .iter()
            .map(|f| {
                vec![
                    f.id.to_string(),
                    f.name.clone(),
                    f.size.to_string(),
                    f.tags.join(","),
                    f.created_at.clone(),
                ]
            })
            .collect()
    };
    match cmd {
        FilesCommand::Upload { file, tags, name } => {
            let name = match name {
                Some(n) => n,
                None => file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .context("the file has no usable name; pass --name")?
                    .to_string(),
            };
            let mut path = format!("/v1/files?name={}", enc(&name));
            for t in &tags {
                path.push_str(&format!("&tag={}", enc(t)));
            }
            let v: FileView = serde_json::from_value(
                upload(
                    &client,
                    &path,
                    &file,
                    &format!("uploading {}", file.display()),
                )
                .await?,
            )?;
            print(g, &v, |v| println!("{}", v.id));
        }
        FilesCommand::Download { id, out } => {
            let n = download(
                &client,
                &format!("/v1/files/{}/content", enc(&id)),
                out.as_deref(),
                &format!("downloading file {id}"),
            )
            .await?;
            if let Some(o) = out {
                eprintln!("file {id}: {n} bytes written to {}", o.display());
            }
        }
        FilesCommand::List { tags, limit } => {
            let mut path = format!("/v1/files?limit={limit}");
            for t in &tags {
                path.push_str(&format!("&tag={}", enc(t)));
            }
            let v: FileList = client.get_as(&path).await?;
            print(g, &v, |v| {
                output::table(&["ID", "NAME", "SIZE", "TAGS", "CREATED"], &file_rows(v))
            });
        }
        FilesCommand::Show { id } => {
            let v: FileView = client.get_as(&format!("/v1/files/{}", enc(&id))).await?;
            print(g, &v, |f| {
                for (k, val) in [
                    ("id", f.id.to_string()),
                    ("name", f.name.clone()),
                    ("size", f.size.to_string()),
                    ("tags", serde_json::to_string(&f.tags).unwrap_or_default()),
                    ("job", f.job.clone().unwrap_or_else(|| "-".into())),
                    ("created_at", f.created_at.clone()),
                ] {
                    println!("{k:<11}{val}");
                }
            });
        }
    }
    Ok(0)
}
