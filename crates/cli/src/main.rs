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
mod hook_cmds;
mod image_cmds;
mod lifecycle_cmds;
mod output;
mod pipeline_cmds;
mod run;
mod schedule_cmds;
mod serve;
mod stage;
mod storage_cmds;
mod worker_cmds;

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
    /// The metadata store and job queue (servers, workers): absent, an
    /// embedded SQLite database under $GANTRY_HOME; `postgres://user:pass@host:port/db`
    /// (or `host=... dbname=...`), a PostgreSQL database that many servers and
    /// workers on many machines share (see deploy/README.md).
    #[arg(
        long,
        global = true,
        env = "GANTRY_DATABASE_URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
    /// Where table and file contents live (servers, workers, backup,
    /// restore, sweep, retention): a folder path, file:///path, or s3://bucket/prefix?endpoint=...&region=...
    /// (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY).
    /// Default: $GANTRY_HOME/objects.
    #[arg(long, global = true, env = "GANTRY_STORAGE_URL")]
    storage_url: Option<String>,
    /// The secret key sealing `#` parameters, given to every server and
    /// worker of a fleet (32 bytes; refused unless only its owner may read
    /// it, e.g. mode 0600). Default: $GANTRY_HOME/secret.key, created on
    /// first start.
    #[arg(long, global = true, env = "GANTRY_SECRET_KEY_FILE")]
    secret_key_file: Option<PathBuf>,
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
    /// How long a claimed job stays this worker's without a renewal; leases
    /// are renewed every sixth of it. A worker that cannot reach the database
    /// for nearly a lease stops its own containers (self-fencing), and the
    /// jobs of a worker that died run again once their leases run out.
    #[arg(long, env = "GANTRY_LEASE", default_value = "30s", value_parser = parse_lease)]
    lease: std::time::Duration,
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
    /// The stack name jobs see as KBC_STACKID (Keboola's Common Interface);
    /// default: the host of the server URL.
    #[arg(long, env = "GANTRY_STACK_ID")]
    stack_id: Option<String>,
    /// This worker's id, for several workers sharing one home (and so one
    /// store). Default: the id kept in $GANTRY_HOME/worker-id. Keep it stable
    /// across restarts: a restarted worker takes back the jobs its id held.
    #[arg(long, env = "GANTRY_WORKER_ID", value_parser = parse_worker_id)]
    worker_id: Option<gantry_core::WorkerId>,
    /// This worker's tags, comma-separated (e.g. `gpu,eu`): a job whose spec
    /// names `worker_tags` runs only on a worker that has them all. Jobs
    /// without `worker_tags` run on any worker.
    #[arg(long, env = "GANTRY_WORKER_TAGS", value_delimiter = ',', value_parser = parse_tag)]
    tags: Vec<String>,
    #[command(flatten)]
    images: image_cmds::ImageArgs,
    /// Warm starts: keep containers of recently run images created and
    /// started ahead, each waiting for exactly one job (nothing is reused).
    #[arg(long, env = "GANTRY_WARM", default_value_t = false, action = clap::ArgAction::Set)]
    warm: bool,
    /// Images kept warm even before a job runs them (comma-separated).
    #[arg(long, env = "GANTRY_WARM_IMAGES", value_delimiter = ',')]
    warm_images: Vec<String>,
    /// Most idle warm containers of this worker, all images together.
    #[arg(long, env = "GANTRY_WARM_MAX", default_value_t = 8)]
    warm_max: usize,
    /// The warm-start gate's static binary (default: gantry-gate beside gantry).
    #[arg(long, env = "GANTRY_WARM_GATE")]
    warm_gate: Option<std::path::PathBuf>,
}

fn parse_tag(s: &str) -> Result<String, String> {
    let t = s.trim().to_string();
    gantry_core::spec::check_worker_tags(std::slice::from_ref(&t), "tags")
        .map(|()| t)
        .map_err(|e| e.to_string())
}

fn parse_worker_id(s: &str) -> Result<gantry_core::WorkerId, String> {
    // A worker id's own rule, and at most 64 so that its sync-action
    // worker (`<id>-actions`) is one too.
    match s.parse() {
        Ok(id) if s.len() <= 64 => Ok(id),
        _ => Err("must be 1 to 64 letters, digits, '-', '_' or '.'".into()),
    }
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    gantry_core::units::parse_duration(s)
}

/// A lease: at least 3 s (heartbeats come every sixth of it).
fn parse_lease(s: &str) -> Result<std::time::Duration, String> {
    let d = gantry_core::units::parse_duration(s)?;
    if d < std::time::Duration::from_secs(3) {
        return Err(format!("a lease of {s} is too short: at least 3s"));
    }
    Ok(d)
}

fn parse_size(s: &str) -> Result<u64, String> {
    gantry_core::units::parse_size(s)
}

/// The config file of servers and workers (`gantry run --config` names a
/// stored configuration instead).
#[derive(Args, Clone)]
struct ConfigFile {
    /// A gantry.toml holding server and worker settings: each key is a
    /// flag's long name (`shutdown_grace = "1m"`); the environment and
    /// flags override it.
    #[arg(long = "config", env = "GANTRY_CONFIG", value_name = "FILE")]
    config_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Server (HTTP API, web dashboard, scheduler, notifier) and worker in
    /// one process, on embedded SQLite under --home.
    Up {
        #[command(flatten)]
        listen: ListenArgs,
        #[command(flatten)]
        worker: WorkerArgs,
        #[command(flatten)]
        file: ConfigFile,
    },
    /// The HTTP API, the web dashboard, the scheduler (schedules, pipeline
    /// runs) and the notifier alone (workers run elsewhere against the same
    /// store). Several servers may share a store: each schedule tick still
    /// makes one job.
    Server {
        #[command(flatten)]
        listen: ListenArgs,
        #[command(flatten)]
        file: ConfigFile,
    },
    /// A worker alone: claims jobs from the store and runs them.
    Worker {
        #[command(flatten)]
        worker: WorkerArgs,
        #[command(flatten)]
        file: ConfigFile,
        /// Serve this worker's Prometheus metrics (GET /metrics: its slots,
        /// job timings and log volume, plus the store's queue figures) on
        /// this address, e.g. 127.0.0.1:9420. Off unless given.
        #[arg(long, env = "GANTRY_METRICS_LISTEN")]
        metrics_listen: Option<std::net::SocketAddr>,
    },
    /// Run one job locally against a data folder, without a server — or with
    /// one: --config takes a stored configuration and its state, --stage its
    /// inputs from Storage, --commit stores the outputs as a job would. The
    /// same container, limits and data folder as production; the exit code
    /// follows the job (0 succeeded, 1 user error, the container's code for
    /// other exits, 124 timed out, 125 image not found, 130 cancelled, 137 OOM).
    Run {
        #[command(flatten)]
        args: run::RunArgs,
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
    /// The fleet's workers: list them, drain one (admin token).
    #[command(subcommand)]
    Workers(worker_cmds::WorkersCommand),
    /// Pipelines: phases of configurations run in order, tasks of a phase in parallel.
    #[command(subcommand)]
    Pipelines(pipeline_cmds::PipelinesCommand),
    /// Inbound webhooks: signed trigger URLs that run a configuration.
    #[command(subcommand)]
    Webhooks(hook_cmds::WebhooksCommand),
    /// Versioned tables: import, export, versions, restore, compact, pin.
    #[command(subcommand)]
    Tables(storage_cmds::TablesCommand),
    /// Tagged files: upload, download, list.
    #[command(subcommand)]
    Files(storage_cmds::FilesCommand),
    /// Private registry logins of the project (sealed; used for its pulls only).
    #[command(subcommand)]
    Registries(image_cmds::RegistriesCommand),
    /// Stacks: named base images code packages run on.
    #[command(subcommand)]
    Stacks(image_cmds::StacksCommand),
    /// Code packages: revisioned zip/tar.gz archives of code run on a stack.
    #[command(subcommand)]
    Packages(image_cmds::PackagesCommand),
    /// Images on this machine's engine: warm, export, import; list what workers hold.
    #[command(subcommand)]
    Images(image_cmds::ImagesCommand),
    /// Projects (tenants) and their policies: loosenings, import cap, retention (admin token).
    #[command(subcommand)]
    Projects(admin_cmds::ProjectsCommand),
    /// API tokens of projects: create, list, revoke (admin token).
    #[command(subcommand)]
    Tokens(admin_cmds::TokensCommand),
    /// Back up $GANTRY_HOME's metadata and every object it names to a folder
    /// or s3://bucket/prefix, while Gantry runs. A consistent snapshot (SQLite's
    /// online backup); objects already in DEST are not copied again. The
    /// secret key ($GANTRY_HOME/secret.key) is NOT included: keep it apart.
    /// With --database-url (PostgreSQL), refused: back the database up with
    /// pg_dump and the bucket with its own tools (deploy/README.md).
    Backup {
        /// A folder, or s3://bucket/prefix?endpoint=...&region=...
        dest: String,
    },
    /// Restore a backup into an empty $GANTRY_HOME (objects go to --storage-url
    /// or $GANTRY_HOME/objects; ones already there are skipped): tables with all versions, files,
    /// configurations and their state, jobs, projects, tokens (hashed) and
    /// sealed secrets. Put the backed-up secret.key into the home before starting.
    /// Embedded SQLite only (see `gantry backup`).
    Restore {
        /// What `gantry backup` wrote to: a folder or s3://bucket/prefix.
        src: String,
    },
    /// Delete orphaned objects: stored bytes no table version or file names
    /// (uploaded by an attempt that crashed before its commit, or an import
    /// cut short), once older than --grace and than every running attempt.
    /// Prints each (key, bytes).
    Sweep {
        /// Only objects last written longer ago than this; an import in
        /// progress for longer could lose its object, so keep it generous.
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        grace: std::time::Duration,
        /// Show what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Apply every project's retention policy (`gantry projects update
    /// --keep-*`): remove finished jobs and their events, table versions and
    /// files past it, and the objects nothing names any more. Never the
    /// current or a pinned version, never while a job of the project runs.
    /// Prints each version and file removed.
    Retention {
        /// Show what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Apply the policy as of this time (RFC 3339) instead of now.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
    },
    /// The configuration file and the effective settings.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Check this machine for Gantry: the container engine (cgroup limits,
    /// seccomp), the store, the object store, disk space and the clock;
    /// prints what to fix. Exit code 1 when a check fails.
    Doctor {
        #[command(flatten)]
        file: ConfigFile,
    },
}

impl Command {
    /// The config file this command reads, if any.
    fn config_file(&self) -> Option<&std::path::Path> {
        match self {
            Command::Up { file, .. }
            | Command::Server { file, .. }
            | Command::Worker { file, .. }
            | Command::Doctor { file }
            | Command::Config(ConfigCommand::Show { file }) => file.config_file.as_deref(),
            _ => None,
        }
    }
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print every server and worker setting in effect (from --config /
    /// GANTRY_CONFIG, the environment, or the default), with where each
    /// came from; secrets are shown as [hidden].
    Show {
        #[command(flatten)]
        file: ConfigFile,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The file's values go into the environment (where it is silent), and
    // the command line is read again: flags > environment > file. Before any
    // thread starts.
    let (cli, from_file) = match cli.command.config_file().map(config::load) {
        None => (cli, config::FromFile::default()),
        Some(Ok(from_file)) => (Cli::parse(), from_file),
        Some(Err(e)) => {
            eprintln!("gantry: {e:#}");
            return ExitCode::from(2);
        }
    };
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
        Command::Doctor { .. } => doctor::doctor(&g).await,
        Command::Config(ConfigCommand::Show { .. }) => {
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
        Command::Up { listen, worker, .. } => serve::up(&g, listen, worker).await.map(|_| 0),
        Command::Server { listen, .. } => serve::server(&g, listen).await.map(|_| 0),
        Command::Worker {
            worker,
            metrics_listen,
            ..
        } => serve::worker(&g, worker, metrics_listen).await.map(|_| 0),
        Command::Run { args } => run::run(&g, args).await,
        Command::Jobs(c) => commands::jobs(&g, c).await,
        Command::Configs(c) => commands::configs(&g, c).await,
        Command::Schedules(c) => schedule_cmds::schedules(&g, c).await,
        Command::Workers(c) => worker_cmds::workers(&g, c).await,
        Command::Webhooks(c) => hook_cmds::webhooks(&g, c).await,
        Command::Pipelines(c) => pipeline_cmds::pipelines(&g, c).await,
        Command::Tables(c) => storage_cmds::tables(&g, c).await,
        Command::Files(c) => storage_cmds::files(&g, c).await,
        Command::Registries(c) => image_cmds::registries(&g, c).await,
        Command::Stacks(c) => image_cmds::stacks(&g, c).await,
        Command::Packages(c) => image_cmds::packages(&g, c).await,
        Command::Images(c) => image_cmds::images(&g, c).await,
        Command::Projects(c) => admin_cmds::projects(&g, c).await,
        Command::Tokens(c) => admin_cmds::tokens(&g, c).await,
        Command::Backup { dest } => lifecycle_cmds::backup(&g, &dest).await,
        Command::Restore { src } => lifecycle_cmds::restore(&g, &src).await,
        Command::Sweep { grace, dry_run } => lifecycle_cmds::sweep(&g, grace, dry_run).await,
        Command::Retention { dry_run, at } => lifecycle_cmds::retention(&g, dry_run, at).await,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_worker_id;

    #[test]
    fn a_worker_id_follows_the_worker_rule_and_leaves_room_for_its_actions_worker() {
        assert_eq!(
            parse_worker_id("w-1.eu_2").map(String::from).as_deref(),
            Ok("w-1.eu_2")
        );
        let longest = "a".repeat(64);
        assert!(parse_worker_id(&longest).is_ok());
        for bad in ["", "a b", "..", ".", "ü", &"a".repeat(65)] {
            assert!(parse_worker_id(bad).is_err(), "{bad:?}");
        }
        let actions = format!("{}-actions", parse_worker_id(&longest).expect("id"));
        assert!(actions.parse::<gantry_core::WorkerId>().is_ok());
    }
}
