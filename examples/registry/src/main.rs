//! Run with: `cargo run --release --bin registry` (listens on 127.0.0.1:5000, stores under
//! `./registry-data`).
//!
//! The standalone registry: the distribution API over filesystem or in-memory storage. Flags:
//! `--listen ADDR`, `--storage fs:PATH|s3://BUCKET[/PREFIX]|memory`, `--config FILE`, each also read from
//! `REGISTRY_LISTEN`, `REGISTRY_STORAGE` and `REGISTRY_CONFIG`. A flag beats the config file,
//! which beats the defaults. SIGTERM and Ctrl-C stop it gracefully. Subcommands: `scrub` checks
//! the store, `check-config FILE` checks a configuration file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use registry_core::{Registry, RegistryConfig, Storage};
use registry_storage::{FilesystemStorage, MemoryStorage};

mod auth;
mod config;

use config::{Config, StorageSpec};

/// Command-line flags; each is also an environment variable.
#[derive(Debug, Parser)]
#[command(name = "registry", version, about = "An OCI distribution registry")]
struct Args {
    /// Address to listen on [default: 127.0.0.1:5000]
    #[arg(long, env = "REGISTRY_LISTEN", global = true)]
    listen: Option<SocketAddr>,
    /// Where to store: `fs:PATH`, `s3://BUCKET[/PREFIX]` or `memory` [default: fs:./registry-data]
    #[arg(long, env = "REGISTRY_STORAGE", global = true)]
    storage: Option<StorageSpec>,
    /// A TOML configuration file
    #[arg(long, env = "REGISTRY_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Require Basic authentication against this htpasswd file (bcrypt entries, `htpasswd -B`)
    #[arg(long, env = "REGISTRY_HTPASSWD", global = true)]
    htpasswd: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key)
    #[arg(long, env = "REGISTRY_TLS_CERT", global = true, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(long, env = "REGISTRY_TLS_KEY", global = true, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Refuse every write while reads go on
    #[arg(long, env = "REGISTRY_READ_ONLY", global = true)]
    read_only: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the registry (what runs without a subcommand).
    Serve,
    /// Re-hash every blob and check every link and tag; report problems without repairing them.
    /// Exits with 1 when it finds any.
    Scrub,
    /// Check a configuration file and print the configuration it gives.
    CheckConfig {
        /// The TOML file to check.
        file: PathBuf,
    },
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
    let args = Args::parse();
    let result = match args.command {
        Some(Command::CheckConfig { ref file }) => check_config(file),
        Some(Command::Scrub) => match settings(&args) {
            Ok(config) => scrub(config).await,
            Err(e) => Err(e),
        },
        Some(Command::Serve) | None => match settings(&args) {
            Ok(config) => serve(config).await,
            Err(e) => Err(e),
        },
    };
    if let Err(e) = result {
        tracing::error!("{e}");
        std::process::exit(1);
    }
}

/// The configuration in force: defaults, then the file, then flags and environment.
fn settings(args: &Args) -> Result<Config, String> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(storage) = &args.storage {
        config.storage = storage.clone();
    }
    if args.read_only {
        config.read_only = true;
    }
    if let Some(htpasswd) = &args.htpasswd {
        config.htpasswd = Some(htpasswd.clone());
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config.tls_cert = Some(cert.clone());
        config.tls_key = Some(key.clone());
    }
    Ok(config)
}

fn registry(config: &Config) -> Result<Registry, String> {
    let storage: Arc<dyn Storage> = match &config.storage {
        StorageSpec::Filesystem(path) => Arc::new(
            FilesystemStorage::new(path)
                .map_err(|e| format!("cannot use storage folder {}: {e}", path.display()))?
                .inline_reads(config.fs_inline_reads),
        ),
        StorageSpec::Memory => Arc::new(MemoryStorage::new()),
        StorageSpec::S3 { bucket, prefix } => {
            let options = registry_storage::S3Options {
                bucket: bucket.clone(),
                prefix: prefix.clone(),
                ..config.s3.clone()
            };
            let storage = options
                .build()
                .map_err(|e| format!("cannot use {}: {e}", config.storage))?;
            Arc::new(storage)
        }
    };
    Ok(Registry::new(
        storage,
        RegistryConfig {
            max_manifest_size: config.max_manifest_size,
            validate_references: config.validate_references,
            metadata_ttl: Duration::from_secs(config.metadata_ttl_secs),
            ..RegistryConfig::default()
        },
    ))
}

async fn serve(config: Config) -> Result<(), String> {
    let registry = registry(&config)?;
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(registry_http::tls_acceptor(cert, key)?),
        (None, None) => None,
        _ => return Err("tls_cert and tls_key go together".into()),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    let auth::Auth {
        access,
        token_routes,
    } = auth::access_control(&config, &format!("{scheme}://{addr}/token"))?;
    tracing::info!(%addr, storage = %config.storage, auth = access.is_some(), "registry listening on {scheme}://{addr}");
    let options = registry_http::HttpOptions {
        body_idle_timeout: Duration::from_secs(config.body_idle_timeout_secs),
        access,
        read_only: config.read_only,
        blob_redirect: config.blob_redirect_secs.map(Duration::from_secs),
    };
    let limits = registry_http::ServeOptions {
        tls,
        max_connections: config.max_connections,
        header_read_timeout: Duration::from_secs(config.header_read_timeout_secs),
        ..Default::default()
    };
    let mut router = registry_http::router_with(registry, options);
    if let Some(tokens) = token_routes {
        router = router.merge(tokens);
    }
    registry_http::serve(listener, router, limits, shutdown()).await;
    tracing::info!("registry stopped");
    Ok(())
}

async fn scrub(config: Config) -> Result<(), String> {
    let registry = registry(&config)?;
    let report = registry_core::scrub::scrub(&registry)
        .await
        .map_err(|e| format!("scrub failed: {e}"))?;
    for problem in &report.problems {
        println!("{problem:?}");
    }
    println!(
        "scrub: {} blobs ({} bytes) re-hashed, {} links checked, {} problems",
        report.blobs,
        report.bytes,
        report.links,
        report.problems.len()
    );
    if report.problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{} problems found", report.problems.len()))
    }
}

fn check_config(file: &std::path::Path) -> Result<(), String> {
    let config = Config::load(file)?;
    auth::access_control(&config, "https://check.invalid/token")?;
    println!("{config:#?}");
    println!("{}: valid", file.display());
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
