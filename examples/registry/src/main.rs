//! Run with: `cargo run --release --bin registry` (listens on 127.0.0.1:5000, stores under
//! `./registry-data`).
//!
//! The standalone registry: the distribution API over filesystem or in-memory storage. Flags:
//! `--listen ADDR`, `--storage fs:PATH|memory`, `--config FILE`, each also read from
//! `REGISTRY_LISTEN`, `REGISTRY_STORAGE` and `REGISTRY_CONFIG`. A flag beats the config file,
//! which beats the defaults. SIGTERM and Ctrl-C stop it gracefully.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use registry_core::{Registry, RegistryConfig, Storage};
use registry_storage::{FilesystemStorage, MemoryStorage};

mod config;

use config::{Config, StorageSpec};

/// Command-line flags; each is also an environment variable.
#[derive(Debug, Parser)]
#[command(name = "registry", version, about = "An OCI distribution registry")]
struct Args {
    /// Address to listen on [default: 127.0.0.1:5000]
    #[arg(long, env = "REGISTRY_LISTEN")]
    listen: Option<SocketAddr>,
    /// Where to store: `fs:PATH` or `memory` [default: fs:./registry-data]
    #[arg(long, env = "REGISTRY_STORAGE")]
    storage: Option<StorageSpec>,
    /// A TOML configuration file
    #[arg(long, env = "REGISTRY_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Err(e) = run(Args::parse()).await {
        tracing::error!("{e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(storage) = args.storage {
        config.storage = storage;
    }
    let storage: Arc<dyn Storage> = match &config.storage {
        StorageSpec::Filesystem(path) => Arc::new(
            FilesystemStorage::new(path)
                .map_err(|e| format!("cannot use storage folder {}: {e}", path.display()))?,
        ),
        StorageSpec::Memory => Arc::new(MemoryStorage::new()),
    };
    let registry = Registry::new(
        storage,
        RegistryConfig {
            max_manifest_size: config.max_manifest_size,
            validate_references: config.validate_references,
        },
    );
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    tracing::info!(%addr, storage = %config.storage, "registry listening on http://{addr}");
    axum::serve(listener, registry_http::router(registry))
        .with_graceful_shutdown(shutdown())
        .await
        .map_err(|e| format!("server failed: {e}"))?;
    tracing::info!("registry stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
