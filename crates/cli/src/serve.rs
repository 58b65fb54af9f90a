//! `gantry up`, `gantry server`, `gantry worker`: open the store and keys,
//! bootstrap the admin token, start the API and the scheduler and/or the worker, and shut down
//! gently on SIGTERM/SIGINT.

use crate::home::Home;
use crate::{Global, ListenArgs, WorkerArgs};
use anyhow::Context;
use gantry_api::{app, ActionAnswer, ActionRequest, ActionRunner, AppState, Readiness};
use gantry_control::Control;
use gantry_runtime::{ContainerRuntime, DockerRuntime};
use gantry_storage::{OutputLimits, Storage};
use gantry_store::Store;
use gantry_store_postgres::PgStore;
use gantry_store_sqlite::SqliteStore;
use gantry_vault::Vault;
use gantry_worker::{Worker, WorkerConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct Opened {
    home: Home,
    store: Arc<dyn Store>,
    storage: Storage,
    vault: Vault,
}

async fn open(g: &Global) -> anyhow::Result<Opened> {
    let home = Home::new(&g.home);
    home.create()
        .with_context(|| format!("cannot create the home folder {}", g.home.display()))?;
    let vault = match &g.secret_key_file {
        Some(path) => Vault::open_given(path)?,
        None => Vault::open_or_create(&home.key())?,
    };
    let store = open_store(g, &home).await?;
    let url = match &g.storage_url {
        Some(u) => u.clone(),
        None => home.objects().display().to_string(),
    };
    let storage = Storage::open(&url, store.clone())
        .with_context(|| format!("cannot open the object store {url}"))?;
    Ok(Opened {
        home,
        store,
        storage,
        vault,
    })
}

/// The store `--database-url` names: PostgreSQL for `postgres://` (or
/// key=value) URLs, else the embedded SQLite database under the home folder.
pub(crate) async fn open_store(g: &Global, home: &Home) -> anyhow::Result<Arc<dyn Store>> {
    match g.database_url.as_deref().filter(|u| !u.is_empty()) {
        Some(url) if is_postgres_url(url) => {
            let store = PgStore::connect(url).await.with_context(|| {
                format!(
                    "cannot open the PostgreSQL database {}",
                    gantry_store_postgres::redact_url(url)
                )
            })?;
            Ok(Arc::new(store))
        }
        Some(url) => anyhow::bail!(
            "--database-url must be a PostgreSQL URL (postgres://user:password@host:port/database); \
             leave it out for the embedded SQLite database under $GANTRY_HOME (got {})",
            gantry_store_postgres::redact_url(url)
        ),
        None => {
            let store = SqliteStore::open(&home.db())
                .with_context(|| format!("cannot open the database {}", home.db().display()))?;
            Ok(Arc::new(store))
        }
    }
}

fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://")
        || url.starts_with("postgresql://")
        || (!url.contains("://") && url.contains('='))
}

/// On first start: creates the admin token, prints it once, saves it 0600.
async fn bootstrap_token(store: &dyn Store, home: &Home) -> anyhow::Result<()> {
    // Atomic in the store: of servers starting together on an empty
    // database, exactly one makes it.
    let Some(token) = store
        .bootstrap_admin_token("admin token created on first start")
        .await?
    else {
        return Ok(());
    };
    let token = token.secret;
    gantry_vault::write_private(&home.token(), token.as_bytes())
        .context("cannot save the admin token")?;
    eprintln!(
        "Admin token (shown once; saved to {}): {token}",
        home.token().display()
    );
    Ok(())
}

/// Cancels the returned token on SIGTERM or SIGINT. The handlers are
/// installed here, before the caller announces that it listens: a signal
/// sent right after that announcement must not find the default action
/// (which kills the process) still in place.
fn shutdown_on_signals() -> CancellationToken {
    use tokio::signal::unix::{signal, SignalKind};
    let token = CancellationToken::new();
    let t = token.clone();
    let (term, int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => (term, int),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM/SIGINT");
            return token;
        }
    };
    tokio::spawn(async move {
        let (mut term, mut int) = (term, int);
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutdown signal received");
        t.cancel();
    });
    token
}

struct EngineReady(Arc<DockerRuntime>);

#[async_trait::async_trait]
impl Readiness for EngineReady {
    async fn engine_ready(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}

fn default_slots() -> usize {
    2 * std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

async fn make_worker(
    o: &Opened,
    args: &WorkerArgs,
    runtime: Arc<DockerRuntime>,
    url: String,
) -> anyhow::Result<Worker> {
    let id = match &args.worker_id {
        Some(id) => id.clone(),
        None => o
            .home
            .worker_id_or_create()
            .context("cannot create the worker id")?,
    };
    let mut cfg = WorkerConfig::new(id, args.slots.unwrap_or_else(default_slots), o.home.work());
    cfg.shutdown_grace = args.shutdown_grace;
    cfg.lease = args.lease;
    cfg.heartbeat = args.lease / 6;
    cfg.log_cap = args.log_cap;
    cfg.tags = args.tags.clone();
    cfg.images = args.images.config();
    cfg.stack_id = args
        .stack_id
        .clone()
        .unwrap_or_else(|| gantry_worker::attempt::url_host(&url));
    cfg.url = url;
    if args.warm {
        let gate = args.warm_gate.clone().unwrap_or_else(|| {
            std::env::current_exe()
                .map(|e| e.with_file_name("gantry-gate"))
                .unwrap_or_default()
        });
        let mut warm = gantry_worker::warm::WarmConfig::new(gate);
        warm.images = args.warm_images.clone();
        warm.max_idle = args.warm_max;
        warm.per_key = args.warm_max;
        cfg.warm = Some(warm);
    }
    let storage = o.storage.clone().with_output_limits(OutputLimits {
        max_entries: args.max_output_files,
        max_bytes: args.max_output_bytes,
    });
    Ok(Worker::new(
        o.store.clone(),
        storage,
        runtime,
        o.vault.clone(),
        cfg,
    ))
}

async fn connect_engine() -> anyhow::Result<Arc<DockerRuntime>> {
    let rt = DockerRuntime::connect().await.context(
        "cannot connect to the Docker engine (is dockerd running? see scripts/ensure-docker.sh)",
    )?;
    if let Err(e) = rt.ping().await {
        tracing::warn!(error = %e, "the Docker engine does not answer yet; jobs wait in the queue until it does");
    }
    Ok(Arc::new(rt))
}

/// Keboola's sync actions, run on this process's engine.
struct EngineActions {
    runtime: Arc<DockerRuntime>,
    vault: Vault,
    work_dir: std::path::PathBuf,
    worker_id: String,
    url: String,
    stack_id: String,
}

#[async_trait::async_trait]
impl ActionRunner for EngineActions {
    async fn run_action(&self, r: ActionRequest) -> ActionAnswer {
        let mut value = r.spec;
        if let Err(e) =
            gantry_core::spec::visit_secret_maps(&mut value, |m| self.vault.open_params(m))
        {
            return ActionAnswer::Failed(format!("cannot open the spec's secrets: {e}"));
        }
        let spec = match gantry_core::Spec::from_value(value) {
            Ok((_, spec)) => spec,
            Err(e) => return ActionAnswer::UserError(format!("invalid spec: {e}")),
        };
        let (project, config) = (r.project.to_string(), r.config.to_string());
        let run = gantry_worker::actions::ActionRun {
            project: &project,
            config_id: &config,
            spec,
            state: &r.state,
            action: &r.action,
            kbc: gantry_worker::attempt::KbcContext {
                project_number: r.project_number,
                stack_id: self.stack_id.clone(),
                url: self.url.clone(),
                token_id: Some(r.token_id.to_string()),
                token_desc: Some(r.token_desc),
                config_row_id: None,
            },
            work_dir: &self.work_dir,
            worker_id: &self.worker_id,
        };
        match gantry_worker::actions::run_action(self.runtime.as_ref(), run).await {
            gantry_worker::actions::ActionEnd::Answer(v) => ActionAnswer::Json(v),
            gantry_worker::actions::ActionEnd::UserError(m) => ActionAnswer::UserError(m),
            gantry_worker::actions::ActionEnd::Failed(d) => ActionAnswer::Failed(d),
        }
    }
}

async fn bind(listen: SocketAddr) -> anyhow::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

async fn serve_http(
    listener: tokio::net::TcpListener,
    state: AppState,
    stop: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let addr = listener.local_addr()?;
    eprintln!("Gantry API listening on http://{addr}");
    let router = app(state);
    let handle = tokio::spawn(async move {
        let graceful =
            axum::serve(listener, router).with_graceful_shutdown(stop.clone().cancelled_owned());
        // Followers of live logs may hold connections open; do not wait on them forever.
        let server = tokio::spawn(async move { graceful.await });
        stop.cancelled().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    });
    Ok(handle)
}

pub async fn up(g: &Global, l: ListenArgs, args: WorkerArgs) -> anyhow::Result<()> {
    let listen = l.listen;
    let o = open(g).await?;
    bootstrap_token(o.store.as_ref(), &o.home).await?;
    let runtime = connect_engine().await?;
    let shutdown = shutdown_on_signals();
    let http_stop = CancellationToken::new();
    let (listener, addr) = bind(listen).await?;
    let worker = make_worker(&o, &args, runtime.clone(), format!("http://{addr}")).await?;
    let cfg = worker.config();
    let actions = EngineActions {
        runtime: runtime.clone(),
        vault: o.vault.clone(),
        // Beside the worker's folder, whose sweep removes what it does not run.
        work_dir: {
            let mut dir = cfg.work_dir.clone().into_os_string();
            dir.push("-actions");
            dir.into()
        },
        // Not the worker's id: its sweep must not take an action's container.
        worker_id: format!("{}-actions", cfg.id),
        url: cfg.url.clone(),
        stack_id: cfg.stack_id.clone(),
    };
    let state = AppState {
        store: o.store.clone(),
        storage: o.storage.clone(),
        vault: o.vault.clone(),
        readiness: Some(Arc::new(EngineReady(runtime))),
        actions: Some(Arc::new(actions)),
    };
    let http = serve_http(listener, state, http_stop.clone()).await?;
    let scheduler = tokio::spawn(gantry_api::scheduler::run(
        Control::new(o.store.clone(), o.storage.clone(), o.vault.clone()),
        shutdown.clone(),
    ));
    // Notifications of jobs ending while the worker drains still go out.
    let notify_stop = CancellationToken::new();
    let notifier = tokio::spawn(gantry_api::notifier::run(
        o.store.clone(),
        o.vault.clone(),
        l.allow_private_notify_targets,
        notify_stop.clone(),
    ));
    // The API stays up while the worker drains, so clients see jobs end.
    worker.run(shutdown).await.context("the worker failed")?;
    let _ = scheduler.await;
    notify_stop.cancel();
    let _ = notifier.await;
    http_stop.cancel();
    let _ = http.await;
    Ok(())
}

pub async fn server(g: &Global, l: ListenArgs) -> anyhow::Result<()> {
    let listen = l.listen;
    let o = open(g).await?;
    bootstrap_token(o.store.as_ref(), &o.home).await?;
    let shutdown = shutdown_on_signals();
    let state = AppState {
        store: o.store.clone(),
        storage: o.storage.clone(),
        vault: o.vault.clone(),
        readiness: None,
        actions: None,
    };
    let (listener, _) = bind(listen).await?;
    let http = serve_http(listener, state, shutdown.clone()).await?;
    let scheduler = tokio::spawn(gantry_api::scheduler::run(
        Control::new(o.store.clone(), o.storage.clone(), o.vault.clone()),
        shutdown.clone(),
    ));
    let notifier = tokio::spawn(gantry_api::notifier::run(
        o.store.clone(),
        o.vault.clone(),
        l.allow_private_notify_targets,
        shutdown,
    ));
    let _ = scheduler.await;
    let _ = notifier.await;
    let _ = http.await;
    Ok(())
}

pub async fn worker(
    g: &Global,
    args: WorkerArgs,
    metrics_listen: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let o = open(g).await?;
    let runtime = connect_engine().await?;
    let worker = make_worker(&o, &args, runtime, g.server.clone()).await?;
    let metrics_stop = CancellationToken::new();
    let metrics = match metrics_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} for metrics"))?;
            eprintln!(
                "Gantry worker metrics on http://{}/metrics",
                listener.local_addr()?
            );
            let router = gantry_api::metrics_app(o.store.clone());
            let stop = metrics_stop.clone();
            Some(tokio::spawn(async move {
                let _ = axum::serve(listener, router)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await;
            }))
        }
        None => None,
    };
    let ran = worker.run(shutdown_on_signals()).await;
    metrics_stop.cancel();
    if let Some(m) = metrics {
        let _ = m.await;
    }
    ran.context("the worker failed")?;
    Ok(())
}
