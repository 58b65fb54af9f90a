//! The `gantry` binary: servers (`up`, `server`, `worker`), the local
//! one-shot runner (`run`), and the API client (`jobs`, `configs`).
#![forbid(unsafe_code)]

mod admin_cmds;
mod client;
mod commands;
mod exit;
mod home;
mod hook_cmds;
mod output;
mod pipeline_cmds;
mod run;
mod schedule_cmds;
mod serve;
mod storage_cmds;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "gantry",
    version,
    about = "Run anyone's code as batch jobs in disposable, locked-down Docker containers.",
    long_about = "Run anyone's code as batch jobs in disposable, locked-down Docker containers.\n\n\
        Start a server with an embedded worker:   gantry up\n\
        Submit a job and wait for it:             gantry jobs submit job.yaml --wait\n\
        Run a container locally, no server:       gantry run job.yaml --data ./data"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Global {
    /// Gantry server to talk to.
    #[arg(
        long,
        global = true,
        env = "GANTRY_URL",
        default_value = "http://127.0.0.1:8420"
    )]
    server: String,
    /// API token; defaults to the one in $GANTRY_HOME/token.
    #[arg(long, global = true, env = "GANTRY_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// How to print results.
    #[arg(long, global = true, value_enum, default_value = "table")]
    output: OutputFormat,
    /// Data directory: database, keys, token, job folders.
    #[arg(long, global = true, env = "GANTRY_HOME", default_value = "./.gantry")]
    home: PathBuf,
    /// Where table and file contents live (servers and workers): a folder
    /// path, file:///path, or s3://bucket/prefix?endpoint=...&region=...
    /// (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY).
    /// Default: $GANTRY_HOME/objects.
    #[arg(long, global = true, env = "GANTRY_STORAGE_URL")]
    storage_url: Option<String>,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Table,
    Json,
}

#[derive(Args, Clone)]
struct ListenArgs {
    /// Address the HTTP API listens on.
    #[arg(long, env = "GANTRY_LISTEN", default_value = "127.0.0.1:8420")]
    listen: SocketAddr,
    /// Let outbound notifications reach loopback, private and link-local
    /// addresses (refused by default: a spec could otherwise make the server
    /// call internal services).
    #[arg(long, env = "GANTRY_ALLOW_PRIVATE_NOTIFY_TARGETS")]
    allow_private_notify_targets: bool,
}

#[derive(Args, Clone)]
struct WorkerArgs {
    /// Jobs run at once (default: 2 x CPU cores).
    #[arg(long, env = "GANTRY_SLOTS")]
    slots: Option<usize>,
    /// How long running jobs may finish after SIGTERM/SIGINT before they are
    /// handed back to the queue.
    #[arg(long, env = "GANTRY_SHUTDOWN_GRACE", default_value = "30s", value_parser = parse_duration)]
    shutdown_grace: std::time::Duration,
    /// Per-job cap on stored log output; output past it is dropped and counted.
    #[arg(long, env = "GANTRY_LOG_CAP", default_value = "16m", value_parser = parse_size)]
    log_cap: u64,
    /// Most files and folders a job may leave in /data/out (tables, slices,
    /// files and manifests together); past it the job fails as invalid_output
    /// and nothing is stored.
    #[arg(long, env = "GANTRY_MAX_OUTPUT_FILES", default_value_t = 10_000)]
    max_output_files: usize,
    /// Most bytes a job may leave in /data/out, all files together.
    #[arg(long, env = "GANTRY_MAX_OUTPUT_BYTES", default_value = "100g", value_parser = parse_size)]
    max_output_bytes: u64,
    /// This worker's id, for several workers sharing one home (and so one
    /// store). Default: the id kept in $GANTRY_HOME/worker-id. Keep it stable
    /// across restarts: a restarted worker takes back the jobs its id held.
    #[arg(long, env = "GANTRY_WORKER_ID", value_parser = parse_worker_id)]
    worker_id: Option<String>,
}

fn parse_worker_id(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(s.to_string())
    } else {
        Err("must be 1 to 64 letters, digits, '-', '_' or '.'".into())
    }
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    gantry_core::units::parse_duration(s)
}

fn parse_size(s: &str) -> Result<u64, String> {
    gantry_core::units::parse_size(s)
}

#[derive(Subcommand)]
enum Command {
    /// Server (API, scheduler, notifier) and worker in one process, on embedded SQLite under --home.
    Up {
        #[command(flatten)]
        listen: ListenArgs,
        #[command(flatten)]
        worker: WorkerArgs,
    },
    /// The HTTP API, the scheduler (schedules, pipeline runs) and the
    /// notifier alone (workers run elsewhere against the same store). Several
    /// servers may share a store: each schedule tick still makes one job.
    Server {
        #[command(flatten)]
        listen: ListenArgs,
    },
    /// A worker alone: claims jobs from the store and runs them.
    Worker {
        #[command(flatten)]
        worker: WorkerArgs,
    },
    /// Run one job locally against a data folder, without a server. The same
    /// container, limits and data folder as production; the exit code follows
    /// the job (0 succeeded, 1 user error, the container's code for other
    /// exits, 124 timed out, 125 image not found, 130 cancelled, 137 OOM).
    Run {
        /// Spec file (YAML or JSON).
        spec: PathBuf,
        /// Data folder mounted at /data (default: a temporary folder, removed
        /// afterwards). Files you put in in/ are kept; out/ shows the results.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Per-job cap on printed log output.
        #[arg(long, default_value = "16m", value_parser = parse_size)]
        log_cap: u64,
    },
    /// Submit, inspect, follow and cancel jobs.
    #[command(subcommand)]
    Jobs(commands::JobsCommand),
    /// Stored specs with persisted state.
    #[command(subcommand)]
    Configs(commands::ConfigsCommand),
    /// Run configurations by themselves: cron or every N seconds, exactly
    /// once per tick (the servers' schedulers fire them).
    #[command(subcommand)]
    Schedules(schedule_cmds::SchedulesCommand),
    /// Pipelines: phases of configurations run in order, tasks of a phase in parallel.
    #[command(subcommand)]
    Pipelines(pipeline_cmds::PipelinesCommand),
    /// Inbound webhooks: signed trigger URLs that run a configuration.
    #[command(subcommand)]
    Webhooks(hook_cmds::WebhooksCommand),
    /// Versioned tables: import, export, versions, restore.
    #[command(subcommand)]
    Tables(storage_cmds::TablesCommand),
    /// Tagged files: upload, download, list.
    #[command(subcommand)]
    Files(storage_cmds::FilesCommand),
    /// Projects (tenants) and what their jobs may loosen (admin token).
    #[command(subcommand)]
    Projects(admin_cmds::ProjectsCommand),
    /// API tokens of projects: create, list, revoke (admin token).
    #[command(subcommand)]
    Tokens(admin_cmds::TokensCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let server_mode = matches!(
        cli.command,
        Command::Up { .. } | Command::Server { .. } | Command::Worker { .. }
    );
    init_tracing(server_mode);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gantry: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("gantry: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_tracing(server_mode: bool) {
    let default = if server_mode { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("GANTRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    let g = cli.global;
    match cli.command {
        Command::Up { listen, worker } => serve::up(&g, listen, worker).await.map(|_| 0),
        Command::Server { listen } => serve::server(&g, listen).await.map(|_| 0),
        Command::Worker { worker } => serve::worker(&g, worker).await.map(|_| 0),
        Command::Run {
            spec,
            data,
            log_cap,
        } => run::run(&g, &spec, data, log_cap).await,
        Command::Jobs(c) => commands::jobs(&g, c).await,
        Command::Configs(c) => commands::configs(&g, c).await,
        Command::Schedules(c) => schedule_cmds::schedules(&g, c).await,
        Command::Webhooks(c) => hook_cmds::webhooks(&g, c).await,
        Command::Pipelines(c) => pipeline_cmds::pipelines(&g, c).await,
        Command::Tables(c) => storage_cmds::tables(&g, c).await,
        Command::Files(c) => storage_cmds::files(&g, c).await,
        Command::Projects(c) => admin_cmds::projects(&g, c).await,
        Command::Tokens(c) => admin_cmds::tokens(&g, c).await,
    }
}
