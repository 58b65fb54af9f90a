//! The `gantry` binary: servers (`up`, `server`, `worker`), the local
//! one-shot runner (`run`), and the API client (`jobs`, `configs`).
#![forbid(unsafe_code)]

mod admin_cmds;
mod client;
mod commands;
mod config;
mod doctor;
mod exit;
mod home;
mod output;
mod run;
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
    /// A gantry.toml holding settings: each key is a flag's long name
    /// (`shutdown_grace = "1m"`); the environment and flags override it.
    #[arg(long, global = true, env = "GANTRY_CONFIG")]
    config: Option<PathBuf>,
    /// Gantry's own log lines (on stderr): plain text or one JSON object a line.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "GANTRY_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    /// Servers and workers: forward job events and Gantry's own log lines
    /// to these receivers (comma-separated): gelf+udp://IP:PORT,
    /// gelf+tcp://IP:PORT, syslog+udp://IP:PORT (RFC 5424),
    /// syslog+tcp://IP:PORT (RFC 5424, octet-counted). Never blocks a job:
    /// what a receiver cannot take is dropped and counted.
    #[arg(long, global = true, env = "GANTRY_LOG_SHIP", value_delimiter = ',')]
    log_ship: Vec<gantry_logship::Target>,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Table,
    Json,
}

#[derive(Args, Clone)]
struct ListenArgs {
    /// Address the HTTP API and the web dashboard (at /) listen on.
    #[arg(long, env = "GANTRY_LISTEN", default_value = "127.0.0.1:8420")]
    listen: SocketAddr,
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
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    gantry_core::units::parse_duration(s)
}

fn parse_size(s: &str) -> Result<u64, String> {
    gantry_core::units::parse_size(s)
}

#[derive(Subcommand)]
enum Command {
    /// Server (HTTP API and web dashboard) and worker in one process, on
    /// embedded SQLite under --home.
    Up {
        #[command(flatten)]
        listen: ListenArgs,
        #[command(flatten)]
        worker: WorkerArgs,
    },
    /// The HTTP API and web dashboard alone (workers run elsewhere against
    /// the same store).
    Server {
        #[command(flatten)]
        listen: ListenArgs,
    },
    /// A worker alone: claims jobs from the store and runs them.
    Worker {
        #[command(flatten)]
        worker: WorkerArgs,
        /// Serve this worker's Prometheus metrics (GET /metrics: its slots,
        /// job timings and log volume, plus the store's queue figures) on
        /// this address, e.g. 127.0.0.1:9420. Off unless given.
        #[arg(long, env = "GANTRY_METRICS_LISTEN")]
        metrics_listen: Option<std::net::SocketAddr>,
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
    /// The configuration file and the effective settings.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Check this machine for Gantry: the container engine (cgroup limits,
    /// seccomp), the store, the object store, disk space and the clock;
    /// prints what to fix. Exit code 1 when a check fails.
    Doctor,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print every server and worker setting in effect (from --config /
    /// GANTRY_CONFIG, the environment, or the default), with where each
    /// came from; secrets are shown as [hidden].
    Show,
}

fn main() -> ExitCode {
    // Before clap reads the environment, and before any thread starts.
    let from_file = match config::load(&std::env::args_os().collect::<Vec<_>>()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("gantry: {e:#}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse();
    let server_mode = matches!(
        cli.command,
        Command::Up { .. } | Command::Server { .. } | Command::Worker { .. }
    );
    init_tracing(server_mode, cli.global.log_format);
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
    match runtime.block_on(dispatch(cli, from_file)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("gantry: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_tracing(server_mode: bool, format: LogFormat) {
    let default = if server_mode { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("GANTRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(gantry_logship::OwnLogs);
    match format {
        LogFormat::Text => registry.with(fmt).init(),
        LogFormat::Json => registry.with(fmt.json().flatten_event(true)).init(),
    }
}

async fn dispatch(cli: Cli, from_file: config::FromFile) -> anyhow::Result<u8> {
    let g = cli.global;
    if matches!(
        cli.command,
        Command::Up { .. } | Command::Server { .. } | Command::Worker { .. }
    ) {
        gantry_logship::install(&g.log_ship);
    }
    match cli.command {
        Command::Doctor => doctor::doctor(&g).await,
        Command::Config(ConfigCommand::Show) => {
            let settings = config::effective(&from_file)?;
            match g.output {
                OutputFormat::Json => {
                    let v: serde_json::Map<String, serde_json::Value> = settings
                        .into_iter()
                        .map(|s| {
                            (
                                s.key,
                                serde_json::json!({"value": s.value, "source": s.source}),
                            )
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&v)?);
                }
                OutputFormat::Table => output::table(
                    &["KEY", "VALUE", "SOURCE"],
                    &settings
                        .into_iter()
                        .map(|s| vec![s.key, s.value, s.source])
                        .collect::<Vec<_>>(),
                ),
            }
            Ok(0)
        }
        Command::Up { listen, worker } => serve::up(&g, listen.listen, worker).await.map(|_| 0),
        Command::Server { listen } => serve::server(&g, listen.listen).await.map(|_| 0),
        Command::Worker {
            worker,
            metrics_listen,
        } => serve::worker(&g, worker, metrics_listen).await.map(|_| 0),
        Command::Run {
            spec,
            data,
            log_cap,
        } => run::run(&g, &spec, data, log_cap).await,
        Command::Jobs(c) => commands::jobs(&g, c).await,
        Command::Configs(c) => commands::configs(&g, c).await,
        Command::Tables(c) => storage_cmds::tables(&g, c).await,
        Command::Files(c) => storage_cmds::files(&g, c).await,
        Command::Projects(c) => admin_cmds::projects(&g, c).await,
        Command::Tokens(c) => admin_cmds::tokens(&g, c).await,
    }
}
