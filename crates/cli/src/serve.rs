//! `gantry up`, `gantry server`, `gantry worker`: open the store and keys,
//! bootstrap the admin token, start the API and the scheduler and/or the worker, and shut down
//! gently on SIGTERM/SIGINT.

use crate::home::Home;
use crate::{Global, ListenArgs, WorkerArgs};
use anyhow::Context;
use gantry_api::{app, AppState, Readiness};
use gantry_runtime::{ContainerRuntime, DockerRuntime};
use gantry_storage::{OutputLimits, Storage};
use gantry_store::{SqliteStore, Store};
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
    let store = SqliteStore::open(&home.db())
        .with_context(|| format!("cannot open the database {}", home.db().display()))?;
    let vault = Vault::open_or_create(&home.key())?;
    let store: Arc<dyn Store> = Arc::new(store);
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

/// On first start: creates the admin token, prints it once, saves it 0600.
async fn bootstrap_token(store: &dyn Store, home: &Home) -> anyhow::Result<()> {
    if store.token_count().await? > 0 {
        return Ok(());
    }
    let token = store
        .create_token(
            &gantry_core::ProjectId::default_project(),
            true,
            "admin token created on first start",
        )
        .await?;
    let token = token.secret;
    gantry_vault::write_private(&home.token(), token.as_bytes())
        .context("cannot save the admin token")?;
    eprintln!(
        "Admin token (shown once; saved to {}): {token}",
        home.token().display()
    );
    Ok(())
}

fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
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
    cfg.log_cap = args.log_cap;
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

async fn serve_http(
    listen: SocketAddr,
    state: AppState,
    stop: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    eprintln!("Gantry API listening on http://{addr}");
    let router = app(state);
    Ok(tokio::spawn(async move {
        let graceful =
            axum::serve(listener, router).with_graceful_shutdown(stop.clone().cancelled_owned());
        // Followers of live logs may hold connections open; do not wait on them forever.
        let server = tokio::spawn(async move { graceful.await });
        stop.cancelled().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    }))
}

pub async fn up(g: &Global, l: ListenArgs, args: WorkerArgs) -> anyhow::Result<()> {
    let listen = l.listen;
    let o = open(g).await?;
    bootstrap_token(o.store.as_ref(), &o.home).await?;
    let runtime = connect_engine().await?;
    let worker = make_worker(&o, &args, runtime.clone()).await?;
    let shutdown = shutdown_on_signals();
    let http_stop = CancellationToken::new();
    let state = AppState {
        store: o.store.clone(),
        storage: o.storage.clone(),
        vault: o.vault.clone(),
        readiness: Some(Arc::new(EngineReady(runtime))),
    };
    let http = serve_http(listen, state, http_stop.clone()).await?;
    let scheduler = tokio::spawn(gantry_api::scheduler::run(
        o.store.clone(),
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
    };
    let http = serve_http(listen, state, shutdown.clone()).await?;
    let scheduler = tokio::spawn(gantry_api::scheduler::run(
        o.store.clone(),
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

pub async fn worker(g: &Global, args: WorkerArgs) -> anyhow::Result<()> {
    let o = open(g).await?;
    let runtime = connect_engine().await?;
    let worker = make_worker(&o, &args, runtime).await?;
    worker
        .run(shutdown_on_signals())
        .await
        .context("the worker failed")?;
    Ok(())
}
