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

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use registry_core::admission::{Admission, AllOf};
use registry_core::lifecycle::{ImmutableTags, Quotas};
use registry_core::{Registry, RegistryConfig, Storage};
use registry_http::remote::replication::Replication;
use registry_storage::{FilesystemStorage, MemoryStorage};

mod audit;
mod auth;
mod authfile;
mod cli;
mod commands;
mod config;
mod copy;
mod housekeeping;
mod logwriter;
mod notify;
mod telemetry;

use cli::{Cli, Command, ReplicationCommand};
use config::{Config, StorageSpec};
use registry_http::events::{EventSink, FeedEvents};
use registry_http::metrics::{MeteredStorage, Metrics};

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let sources = match &cli.command {
        None => cli.serve.sources(),
        Some(Command::Serve(serve)) => serve.sources(),
        Some(Command::CheckConfig { file }) => Config::from_sources(Some(file), std::env::vars()),
        Some(Command::Healthcheck { config, .. }) => Config::from_sources(
            config.as_deref().or(cli.serve.store.config.as_deref()),
            std::env::vars(),
        ),
        Some(Command::Copy(_)) => Config::from_sources(None, std::env::vars()),
        Some(
            Command::Gc { store, .. }
            | Command::Scrub { store }
            | Command::Reindex { store }
            | Command::History { store, .. }
            | Command::Restore { store, .. }
            | Command::Usage { store, .. }
            | Command::Replication { store, .. },
        ) => cli.store(store).and_then(|store| store.sources()),
    };
    let sources = match sources {
        Ok(s) => s,
        Err(e) => {
            eprintln!("registry: {e}");
            std::process::exit(1);
        }
    };
    let config = sources.config.clone();
    let telemetry = telemetry::init(&config);
    for warning in &sources.warnings {
        tracing::warn!("{warning}");
    }
    let result = match cli.command {
        Some(Command::CheckConfig { ref file }) => commands::check_config(file, &sources),
        Some(Command::Healthcheck { ref url, .. }) => {
            commands::healthcheck(&config, url.as_deref()).await
        }
        Some(Command::Scrub { .. }) => commands::scrub(config).await,
        Some(Command::Reindex { .. }) => commands::reindex(config).await,
        Some(Command::Gc { dry_run, full, .. }) => commands::gc(config, dry_run, full).await,
        Some(Command::History {
            ref target, json, ..
        }) => commands::history(config, target, json).await,
        Some(Command::Restore {
            ref target, ref to, ..
        }) => commands::restore(config, target, to.as_deref()).await,
        Some(Command::Usage {
            json,
            ref repository,
            ..
        }) => commands::usage(config, repository.as_deref(), json).await,
        Some(Command::Copy(ref args)) => copy::copy(args).await,
        Some(Command::Replication {
            action: ReplicationCommand::Status,
            ..
        }) => commands::replication_status(config).await,
        Some(Command::Serve(_)) | None => serve(config).await,
    };
    if let Err(e) = result {
        tracing::error!("{e}");
        drop(telemetry);
        std::process::exit(1);
    }
}

/// The registry the configuration describes, with its admission rules (immutable tags, quotas,
/// and replication's queueing).
fn registry(config: &Config, metrics: Option<&Arc<Metrics>>) -> Result<Registry, String> {
    registry_and_replication(config, metrics, None).map(|built| built.registry)
}

/// The storage the configuration names, metered when `metrics` are given.
fn storage(config: &Config, metrics: Option<&Arc<Metrics>>) -> Result<Arc<dyn Storage>, String> {
    let mut storage: Arc<dyn Storage> = match &config.storage {
        StorageSpec::Filesystem(path) if path.exists() && !path.is_dir() => {
            return Err(format!("storage fs:{}: is not a directory", path.display()));
        }
        StorageSpec::Filesystem(path) => Arc::new(
            FilesystemStorage::new(path)
                .map_err(|e| unusable_folder(path, &e))?
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

/// Why the storage folder `path` cannot be used and, when this process may not write it (a
/// volume another image's root user wrote, say), what to do about it.
fn unusable_folder(path: &Path, e: &registry_core::StorageError) -> String {
    let denied = match e {
        registry_core::StorageError::Backend { source } => source
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied),
        _ => false,
    };
    let mut why = format!("cannot use storage folder {}: {e}", path.display());
    if denied {
        why.push_str(
            "; this process may not write there: give its user the folder (the registry-rs image \
             runs as uid 65532: chown -R 65532:65532 on the volume) or run it as the folder's \
             owner (docker run --user 0)",
        );
    }
    why
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

/// What [`registry_and_replication`] builds.
struct Built {
    registry: Registry,
    /// The replication whose queues it writes (to start in a server).
    replication: Option<Arc<Replication>>,
    /// Its quotas, whose use the UI shows.
    quotas: Option<Arc<Quotas>>,
}

/// [`registry`], with the replication whose queues it writes and its quotas. Every committed
/// change goes to replication's queues, to `events` (the webhooks) and to `metrics`, whoever
/// makes it.
fn registry_and_replication(
    config: &Config,
    metrics: Option<&Arc<Metrics>>,
    events: Option<Arc<dyn EventSink>>,
) -> Result<Built, String> {
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
    let quotas = (!lifecycle.quota.is_empty())
        .then(|| Arc::new(Quotas::new(registry.clone(), lifecycle.quota)));
    if let Some(quotas) = &quotas {
        rules.push(quotas.clone());
    }
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
    let mut registry = match rules.is_empty() {
        true => registry,
        false => registry.with_admission(Arc::new(AllOf(rules))),
    };
    if let Some(replication) = &replication {
        registry = registry.with_subscriber(replication.clone());
    }
    if let Some(events) = events {
        registry = registry.with_subscriber(Arc::new(FeedEvents(events)));
    }
    if let Some(metrics) = metrics {
        registry = registry.with_subscriber(metrics.feed());
    }
    Ok(Built {
        registry,
        replication,
        quotas,
    })
}

async fn serve(config: Config) -> Result<(), String> {
    let metrics = Arc::new(Metrics::new());
    let events = notify::Webhooks::start(&config.notifications, &metrics)?;
    let Built {
        registry,
        replication,
        quotas,
    } = registry_and_replication(
        &config,
        Some(&metrics),
        events.clone().map(|e| e as Arc<dyn EventSink>),
    )?;
    if !config.read_only {
        housekeeping::reindex_if_needed(&registry).await;
    }
    start_remotes(&config, &registry, replication, &metrics)?;
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
    let tls = tls(&config)?;
    let trusted_proxies = trusted_proxies(&config)?;
    let headers = response_headers(&config)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    let watch = auth::LoginWatch {
        throttle: config.throttle.build(),
        audit: audit_sink(&config)?,
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
        quotas,
        secure_cookies: tls.is_some(),
        deletes: config.deletes,
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
        deletes: config.deletes,
        headers: headers.clone(),
        blob_redirect: config.blob_redirect_secs.map(Duration::from_secs),
        metrics: config.metrics.enabled.then(|| metrics.clone()),
        events: events.map(|e| e as Arc<dyn EventSink>),
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
    let limits = serve_options(&config, tls, trusted_proxies);
    // Only requests read through the mirror: collections and reindexing see the store as it is.
    let served = match mirror {
        Some(mirror) => registry.with_source(mirror),
        None => registry,
    };
    let mut router = registry_http::router_with(served.clone(), options);
    if let Some(ui) = ui {
        let ui = registry_http::ui::router(served, ui);
        router = router.merge(registry_http::request_log(ui, None, headers.clone()));
    }
    if let Some(tokens) = token_routes {
        router = router.merge(registry_http::request_log(tokens, None, headers));
    }
    registry_http::serve(listener, router, limits, shutdown()).await;
    for task in housekeeping.into_iter().chain(reloading) {
        task.abort();
    }
    tracing::info!("registry stopped");
    Ok(())
}

/// Starts what talks to other registries: replication's worker and the sync schedules (none on
/// a read-only registry).
fn start_remotes(
    config: &Config,
    registry: &Registry,
    replication: Option<Arc<Replication>>,
    metrics: &Arc<Metrics>,
) -> Result<(), String> {
    if let Some(replication) = replication {
        replication.register_metrics(metrics);
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
        let sync =
            registry_http::remote::sync::Sync::new(configs).map_err(|e| format!("sync: {e}"))?;
        sync.register_metrics(metrics);
        tokio::spawn(Arc::new(sync).run(registry.clone()));
    }
    Ok(())
}

/// The TLS acceptor `tls_cert` and `tls_key` make, asking for client certificates when the
/// `[tls]` table names their CAs; `None` for plain HTTP.
fn tls(config: &Config) -> Result<Option<registry_http::server::TlsAcceptor>, String> {
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            registry_http::tls_acceptor_with(cert, key, config.tls.clients().as_ref())
                .map(Some)
                .map_err(|e| e.to_string())
        }
        (None, None) if !config.tls.client_ca.is_empty() => {
            Err("client certificates (tls client_ca) need TLS: set tls_cert and tls_key".into())
        }
        (None, None) => Ok(None),
        _ => Err("tls_cert and tls_key go together".into()),
    }
}

/// The peers whose forwarded addresses are believed, checked against `proxy_protocol`.
fn trusted_proxies(config: &Config) -> Result<registry_http::TrustedProxies, String> {
    let trusted =
        registry_http::TrustedProxies::parse(&config.trusted_proxies).map_err(|e| e.to_string())?;
    if config.proxy_protocol && trusted.is_empty() {
        return Err("proxy_protocol needs trusted_proxies: the peers that send the header".into());
    }
    Ok(trusted)
}

/// The audit trail's file, when `[audit] path` names one.
fn audit_sink(config: &Config) -> Result<Option<Arc<dyn registry_http::audit::AuditSink>>, String> {
    Ok(match &config.audit.path {
        Some(path) => Some(Arc::new(audit::AuditFile::open(path)?)),
        None => None,
    })
}

/// The connection limits and TLS of the server loop.
fn serve_options(
    config: &Config,
    tls: Option<registry_http::server::TlsAcceptor>,
    trusted_proxies: registry_http::TrustedProxies,
) -> registry_http::ServeOptions {
    registry_http::ServeOptions {
        tls,
        client_name: config.tls.name(),
        max_connections: config.max_connections,
        max_connections_per_address: config.max_connections_per_address,
        header_read_timeout: Duration::from_secs(config.header_read_timeout_secs),
        idle_timeout: Duration::from_secs(config.idle_timeout_secs.max(1)),
        trusted_proxies,
        proxy_protocol: config.proxy_protocol,
        ..Default::default()
    }
}

/// The immutable-tag rules of the configuration (checked at start by `registry()`).
fn lifecycle_immutable(config: &Config) -> Vec<registry_core::lifecycle::ImmutableRule> {
    config.lifecycle().map(|l| l.immutable).unwrap_or_default()
}

/// The `headers` table, checked.
fn response_headers(config: &Config) -> Result<Vec<(http::HeaderName, http::HeaderValue)>, String> {
    config
        .headers
        .iter()
        .map(|(name, value)| {
            let bad = |e: String| format!("header {name}: {e}");
            Ok((
                http::HeaderName::try_from(name.as_str()).map_err(|e| bad(e.to_string()))?,
                http::HeaderValue::try_from(value.as_str()).map_err(|e| bad(e.to_string()))?,
            ))
        })
        .collect()
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
