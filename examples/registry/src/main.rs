//! Run with: `cargo run --release --bin registry` (listens on 127.0.0.1:5000, stores under
//! `./registry-data`).
//!
//! The standalone registry: the distribution API over filesystem, S3 or in-memory storage, and
//! optionally a pull-through cache. Flags: `--listen ADDR`,
//! `--storage fs:PATH|s3://BUCKET[/PREFIX]|gs://BUCKET[/PREFIX]|azure://CONTAINER[/PREFIX]|memory`, `--config FILE`, `--htpasswd FILE`,
//! `--tls-cert FILE --tls-key FILE`, `--read-only`, `--mirror URL`, each also a `REGISTRY_*`
//! variable (`REGISTRY_LISTEN`, …). A flag beats the variables, which beat the config file, which
//! beats the defaults; every configuration key is also a `REGISTRY_<TABLE>_<KEY>` variable.
//! SIGTERM and Ctrl-C stop it gracefully. Subcommands: `gc [--dry-run]` collects garbage (and
//! applies retention rules), `scrub` checks the store, `reindex` moves a store written before the
//! listing index to it (the server does so at start), `history REPO[:TAG]` prints tag history,
//! `restore REPO:TAG [--to DIGEST]` points a tag back, `usage [--json] [REPO]` reports what takes
//! the space, `check-config FILE` checks a configuration file, `copy SRC DST` copies images between
//! registries, OCI layouts and archives, `replication status` prints the replication backlog.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use registry_core::admission::{Admission, AllOf};
use registry_core::lifecycle::{ImmutableTags, Quotas};
use registry_core::{Registry, RegistryConfig, Storage};
use registry_http::replication::Replication;
use registry_storage::{FilesystemStorage, MemoryStorage};

mod audit;
mod auth;
mod authfile;
mod commands;
mod config;
mod copy;
mod housekeeping;
mod logwriter;
mod notify;
mod telemetry;

use config::{Config, StorageSpec};
use registry_http::metrics::{MeteredStorage, Metrics};

/// Command-line flags; each is also an environment variable.
#[derive(Debug, Parser)]
#[command(name = "registry", version, about = "An OCI distribution registry")]
struct Args {
    /// Address to listen on [default: 127.0.0.1:5000]
    #[arg(long, env = "REGISTRY_LISTEN", global = true)]
    listen: Option<SocketAddr>,
    /// Where to store: `fs:PATH`, `s3://BUCKET[/PREFIX]`, `gs://BUCKET[/PREFIX]`,
    /// `azure://CONTAINER[/PREFIX]` or `memory` [default: fs:./registry-data]
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
    /// Identify clients by certificates this PEM CA file signed (with --tls-cert; `[tls]
    /// client_auth` makes them required)
    #[arg(long, env = "REGISTRY_TLS_CLIENT_CA", global = true)]
    tls_client_ca: Option<PathBuf>,
    /// Refuse every write while reads go on
    #[arg(long, env = "REGISTRY_READ_ONLY", global = true)]
    read_only: bool,
    /// Be a pull-through cache of this registry (credentials: REGISTRY_MIRROR_USERNAME and
    /// REGISTRY_MIRROR_PASSWORD, or the [mirror] table)
    #[arg(long, env = "REGISTRY_MIRROR", global = true)]
    mirror: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the registry (what runs without a subcommand).
    Serve,
    /// Remove what no tag reaches and abandoned uploads, as the `[gc]` and `[uploads]` tables
    /// say; safe while the server runs. Prints each removal and a summary.
    Gc {
        /// Print what would be removed, and remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Re-hash every blob and check every link and tag; report problems without repairing them.
    /// Exits with 1 when it finds any.
    Scrub,
    /// Move a store written before the listing index to it (tag records, the catalog); the
    /// server does so at start. Safe beside a running server, and to run again.
    Reindex,
    /// Print every kept move and delete of a repository's tags, or of one tag (`REPO:TAG`).
    History {
        /// `REPO` or `REPO:TAG`.
        target: String,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Point a tag back at a digest from its history: by default the one it pointed at before
    /// its last change (undoing a delete or a move). The manifest must still be stored.
    Restore {
        /// `REPO:TAG`.
        target: String,
        /// The digest to point at; it must appear in the tag's history.
        #[arg(long)]
        to: Option<String>,
    },
    /// Report the bytes each repository references, exclusive to it and shared with others,
    /// what deleting each tag would free, and the store's totals.
    Usage {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Only this repository (still reckoned against every other).
        repository: Option<String>,
    },
    /// Copy an image (every platform of an index, and its referrers) or, with --all-tags, a
    /// repository: `docker://HOST[:PORT]/REPO[:TAG|@DIGEST]`, `oci:DIR[:TAG]` or
    /// `oci-archive:FILE[:TAG]` on each side. Skips what the destination has; run it again to
    /// finish an interrupted copy.
    Copy {
        /// Where from.
        src: String,
        /// Where to.
        dst: String,
        /// Copy every tag of the source repository.
        #[arg(long)]
        all_tags: bool,
        /// Check the source registry's certificate (false: also allow plain HTTP).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        src_tls_verify: bool,
        /// Check the destination registry's certificate (false: also allow plain HTTP).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        dest_tls_verify: bool,
        /// `USER:PASSWORD` for the source registry (else from the auth file).
        #[arg(long)]
        src_creds: Option<String>,
        /// `USER:PASSWORD` for the destination registry (else from the auth file).
        #[arg(long)]
        dest_creds: Option<String>,
        /// The auth file to read credentials from (default: $REGISTRY_AUTH_FILE,
        /// ${XDG_RUNTIME_DIR}/containers/auth.json, ~/.docker/config.json).
        #[arg(long)]
        authfile: Option<PathBuf>,
        /// Only these platforms of an index (`os/arch[/variant]`, repeatable); all by default.
        #[arg(long = "platform")]
        platforms: Vec<String>,
    },
    /// Push replication: `registry replication status` prints each target's backlog, and each
    /// replica's last success and error.
    Replication {
        #[command(subcommand)]
        action: ReplicationCommand,
    },
    /// Check a configuration file and print the configuration it gives.
    CheckConfig {
        /// The TOML file to check.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ReplicationCommand {
    /// Print each `[[replication]]` target's backlog, and each replica's last success and error.
    Status,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let settings = match &args.command {
        Some(Command::CheckConfig { file }) => Config::from_sources(Some(file), std::env::vars()),
        _ => settings(&args),
    };
    let (config, warnings) = match settings {
        Ok(s) => s,
        Err(e) => {
            eprintln!("registry: {e}");
            std::process::exit(1);
        }
    };
    let telemetry = telemetry::init(&config);
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    let result = match args.command {
        Some(Command::CheckConfig { ref file }) => commands::check_config(file, &config),
        Some(Command::Scrub) => commands::scrub(config).await,
        Some(Command::Reindex) => commands::reindex(config).await,
        Some(Command::Gc { dry_run }) => commands::gc(config, dry_run).await,
        Some(Command::History { ref target, json }) => {
            commands::history(config, target, json).await
        }
        Some(Command::Restore { ref target, ref to }) => {
            commands::restore(config, target, to.as_deref()).await
        }
        Some(Command::Usage {
            json,
            ref repository,
        }) => commands::usage(config, repository.as_deref(), json).await,
        Some(Command::Copy {
            ref src,
            ref dst,
            all_tags,
            src_tls_verify,
            dest_tls_verify,
            ref src_creds,
            ref dest_creds,
            ref authfile,
            ref platforms,
        }) => {
            let flags = copy::CopyFlags {
                all_tags,
                src_tls_verify,
                dest_tls_verify,
                src_creds: src_creds.clone(),
                dest_creds: dest_creds.clone(),
                authfile: authfile.clone(),
                platforms: platforms.clone(),
            };
            copy::copy(src, dst, &flags).await
        }
        Some(Command::Replication {
            action: ReplicationCommand::Status,
        }) => commands::replication_status(config).await,
        Some(Command::Serve) | None => serve(config).await,
    };
    if let Err(e) = result {
        tracing::error!("{e}");
        drop(telemetry);
        std::process::exit(1);
    }
}

/// The configuration in force: defaults, then the file, then `REGISTRY_*` variables, then flags.
fn settings(args: &Args) -> Result<(Config, Vec<String>), String> {
    let (mut config, warnings) = Config::from_sources(args.config.as_deref(), std::env::vars())?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(storage) = &args.storage {
        config.storage = storage.clone();
    }
    if args.read_only {
        config.read_only = true;
    }
    if let Some(url) = &args.mirror {
        config.mirror.url = Some(url.clone());
    }
    if let Some(htpasswd) = &args.htpasswd {
        config.htpasswd = Some(htpasswd.clone());
    }
    if let Some(ca) = &args.tls_client_ca {
        config.tls.client_ca = Some(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config.tls_cert = Some(cert.clone());
        config.tls_key = Some(key.clone());
    }
    Ok((config, warnings))
}

/// The registry the configuration describes, with its admission rules (immutable tags, quotas,
/// and replication's queueing).
fn registry(config: &Config, metrics: Option<&Arc<Metrics>>) -> Result<Registry, String> {
    registry_and_replication(config, metrics).map(|(registry, _)| registry)
}

/// The storage the configuration names, metered when `metrics` are given.
fn storage(config: &Config, metrics: Option<&Arc<Metrics>>) -> Result<Arc<dyn Storage>, String> {
    let mut storage: Arc<dyn Storage> = match &config.storage {
        StorageSpec::Filesystem(path) => Arc::new(
            FilesystemStorage::new(path)
                .map_err(|e| format!("cannot use storage folder {}: {e}", path.display()))?
                .inline_reads(config.fs_inline_reads),
        ),
        StorageSpec::Memory => Arc::new(MemoryStorage::new()),
        StorageSpec::S3 { bucket, prefix } => object_store(
            &config.storage,
            registry_storage::S3Options {
                bucket: bucket.clone(),
                prefix: prefix.clone(),
                ..config.s3.clone()
            }
            .build(),
        )?,
        StorageSpec::Gcs { bucket, prefix } => object_store(
            &config.storage,
            registry_storage::GcsOptions {
                bucket: bucket.clone(),
                prefix: prefix.clone(),
                ..config.gcs.clone()
            }
            .build(),
        )?,
        StorageSpec::Azure { container, prefix } => object_store(
            &config.storage,
            registry_storage::AzureOptions {
                container: container.clone(),
                prefix: prefix.clone(),
                ..config.azure.clone()
            }
            .build(),
        )?,
    };
    if let Some(metrics) = metrics {
        storage = Arc::new(MeteredStorage::new(storage, metrics.clone()));
    }
    Ok(storage)
}

/// An object store the configuration names, or why it cannot be used.
fn object_store(
    spec: &StorageSpec,
    built: registry_core::Result<registry_storage::ObjectStorage>,
) -> Result<Arc<dyn Storage>, String> {
    built
        .map(|s| Arc::new(s) as Arc<dyn Storage>)
        .map_err(|e| format!("cannot use {spec}: {e}"))
}

/// [`registry`], and the replication whose queues it writes (to start in a server).
fn registry_and_replication(
    config: &Config,
    metrics: Option<&Arc<Metrics>>,
) -> Result<(Registry, Option<Arc<Replication>>), String> {
    let storage = storage(config, metrics)?;
    let defaults = RegistryConfig::default();
    let registry = Registry::new(
        storage.clone(),
        RegistryConfig {
            max_manifest_size: config.max_manifest_size,
            validate_references: config.validate_references,
            metadata_ttl: Duration::from_secs(config.metadata_ttl_secs),
            // Reused blobs are marked well within the collection's grace period; a read-only
            // registry never writes, not even marks.
            touch_interval: defaults
                .touch_interval
                .map(|t| t.min(Duration::from_secs(config.gc.grace_secs) / 4))
                .filter(|_| !config.read_only),
            read_only: config.read_only,
            pull_record_interval: defaults.pull_record_interval.filter(|_| !config.read_only),
            ..defaults
        },
    );
    let lifecycle = config.lifecycle()?;
    let mut rules: Vec<Arc<dyn Admission>> = Vec::new();
    if !lifecycle.immutable.is_empty() {
        rules.push(Arc::new(ImmutableTags::new(
            registry.clone(),
            lifecycle.immutable,
        )));
    }
    if !lifecycle.quota.is_empty() {
        rules.push(Arc::new(Quotas::new(registry.clone(), lifecycle.quota)));
    }
    // Last: a change another rule refuses is not queued.
    let replication = match config.replication.is_empty() || config.read_only {
        true => None,
        false => {
            let targets = config
                .replication
                .iter()
                .map(|r| r.core())
                .collect::<Result<Vec<_>, String>>()?;
            let replication =
                Replication::new(storage.clone(), targets).map_err(|e| e.to_string())?;
            Some(Arc::new(replication))
        }
    };
    if let Some(replication) = &replication {
        rules.push(replication.clone());
    }
    let registry = match rules.is_empty() {
        true => registry,
        false => registry.with_admission(Arc::new(AllOf(rules))),
    };
    Ok((registry, replication))
}

async fn serve(config: Config) -> Result<(), String> {
    let metrics = Arc::new(Metrics::new());
    let (registry, replication) = registry_and_replication(&config, Some(&metrics))?;
    if !config.read_only {
        housekeeping::reindex_if_needed(&registry).await;
    }
    if let Some(replication) = replication {
        replication.register_metrics(&metrics);
        tracing::info!(
            replica = replication.replica(),
            "replication: {replication:?}"
        );
        tokio::spawn(replication.run(registry.clone()));
    }
    if !config.read_only && !config.sync.is_empty() {
        let configs = config
            .sync
            .iter()
            .map(|s| s.core())
            .collect::<Result<Vec<_>, String>>()?;
        let sync = registry_http::sync::Sync::new(configs).map_err(|e| format!("sync: {e}"))?;
        sync.register_metrics(&metrics);
        tokio::spawn(Arc::new(sync).run(registry.clone()));
    }
    let events = notify::Webhooks::start(&config.notifications, &metrics)?;
    // Read-only, a mirror serves what it cached and fetches nothing: storage stays as it is.
    let mirror = config
        .mirror
        .build()?
        .filter(|_| !config.read_only)
        .map(Arc::new);
    if let Some(mirror) = &mirror {
        mirror.register_metrics(&metrics);
        tracing::info!(upstreams = ?mirror, "pull-through cache");
    }
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(
            registry_http::tls_acceptor_with(cert, key, config.tls.clients().as_ref())
                .map_err(|e| e.to_string())?,
        ),
        (None, None) if config.tls.client_ca.is_some() => {
            return Err(
                "client certificates (tls client_ca) need TLS: set tls_cert and tls_key".into(),
            );
        }
        (None, None) => None,
        _ => return Err("tls_cert and tls_key go together".into()),
    };
    let trusted_proxies =
        registry_http::TrustedProxies::parse(&config.trusted_proxies).map_err(|e| e.to_string())?;
    if config.proxy_protocol && trusted_proxies.is_empty() {
        return Err("proxy_protocol needs trusted_proxies: the peers that send the header".into());
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    let watch =
        auth::LoginWatch {
            throttle: config.throttle.build(),
            audit: match &config.audit.path {
                Some(path) => Some(Arc::new(audit::AuditFile::open(path)?)
                    as Arc<dyn registry_http::audit::AuditSink>),
                None => None,
            },
        };
    let auth::Auth {
        access,
        token_routes,
        users,
    } = auth::access_control(&config, &format!("{scheme}://{addr}/token"), &watch)?;
    let reloading = users.map(|u| tokio::spawn(auth::reload_users(u)));
    tracing::info!(%addr, storage = %config.storage, auth = access.is_some(), "registry listening on {scheme}://{addr}");
    let ui = config.ui.enabled.then(|| registry_http::ui::UiOptions {
        access: access.clone(),
        immutable: Some(Arc::new(ImmutableTags::new(
            registry.clone(),
            lifecycle_immutable(&config),
        ))),
        secure_cookies: tls.is_some(),
        session_lifetime: Duration::from_secs(config.ui.session_secs),
        read_only: config.read_only,
        throttle: watch.throttle.clone(),
        pull_host: config.ui.pull_host.clone(),
        audit: watch.audit.clone(),
    });
    let options = registry_http::HttpOptions {
        body_idle_timeout: Duration::from_secs(config.body_idle_timeout_secs),
        access,
        read_only: config.read_only,
        blob_redirect: config.blob_redirect_secs.map(Duration::from_secs),
        metrics: config.metrics.enabled.then(|| metrics.clone()),
        events: events.map(|e| e as Arc<dyn registry_http::events::EventSink>),
        throttle: watch.throttle.clone(),
        audit: watch.audit.clone(),
    };
    let gc_options = config.gc_options(false)?;
    let housekeeping = (!config.read_only).then(|| {
        tokio::spawn(housekeeping::run(
            registry.clone(),
            config.clone(),
            gc_options,
            metrics.clone(),
        ))
    });
    let limits = registry_http::ServeOptions {
        tls,
        client_name: config.tls.name(),
        max_connections: config.max_connections,
        max_connections_per_address: config.max_connections_per_address,
        header_read_timeout: Duration::from_secs(config.header_read_timeout_secs),
        idle_timeout: Duration::from_secs(config.idle_timeout_secs.max(1)),
        trusted_proxies,
        proxy_protocol: config.proxy_protocol,
        ..Default::default()
    };
    // Only requests read through the mirror: collections and reindexing see the store as it is.
    let served = match mirror {
        Some(mirror) => registry.with_source(mirror),
        None => registry,
    };
    let mut router = registry_http::router_with(served.clone(), options);
    if let Some(ui) = ui {
        router = router.merge(registry_http::ui::router(served, ui));
    }
    if let Some(tokens) = token_routes {
        router = router.merge(tokens);
    }
    registry_http::serve(listener, router, limits, shutdown()).await;
    for task in housekeeping.into_iter().chain(reloading) {
        task.abort();
    }
    tracing::info!("registry stopped");
    Ok(())
}

/// The immutable-tag rules of the configuration (checked at start by `registry()`).
fn lifecycle_immutable(config: &Config) -> Vec<registry_core::lifecycle::ImmutableRule> {
    config.lifecycle().map(|l| l.immutable).unwrap_or_default()
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
