//! The command line: `registry [SERVER FLAGS]` serves; each subcommand takes only the flags it
//! uses (its `--help` lists those). Configuration keys, including the server flags' own, are
//! also `REGISTRY_*` variables (read by [`crate::config::Config::from_sources`]); a flag beats
//! them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, Sources, StorageSpec};

/// An OCI distribution registry.
#[derive(Debug, Parser)]
#[command(name = "registry", version)]
pub struct Cli {
    /// The server's flags, when no subcommand is given; `--storage` and `--config` before a
    /// subcommand are that subcommand's (`registry --config F gc`, as earlier versions read it).
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Which store, and which configuration.
#[derive(Debug, Clone, Default, Args)]
pub struct StoreArgs {
    /// Where the store is: `fs:PATH`, `s3://BUCKET[/PREFIX]`, `gs://BUCKET[/PREFIX]`,
    /// `azure://CONTAINER[/PREFIX]` or `memory` [default: fs:./registry-data]
    #[arg(long)]
    pub storage: Option<StorageSpec>,
    /// A configuration file: TOML, or distribution's `config.yml`
    #[arg(long, env = "REGISTRY_CONFIG")]
    pub config: Option<PathBuf>,
}

/// What the server is told on its command line.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on [default: 127.0.0.1:5000]
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Require Basic authentication against this htpasswd file (bcrypt entries, `htpasswd -B`)
    #[arg(long)]
    pub htpasswd: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key)
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Identify clients by certificates this PEM CA file signed (with --tls-cert; `[tls]
    /// client_auth` makes them required)
    #[arg(long)]
    pub tls_client_ca: Option<PathBuf>,
    /// Refuse every write while reads go on
    #[arg(long)]
    pub read_only: bool,
    /// Be a pull-through cache of this registry (credentials: REGISTRY_MIRROR_USERNAME and
    /// REGISTRY_MIRROR_PASSWORD, or the [mirror] table)
    #[arg(long, env = "REGISTRY_MIRROR")]
    pub mirror: Option<String>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the registry (what runs without a subcommand).
    Serve(ServeArgs),
    /// Remove what no tag reaches and abandoned uploads, as the `[gc]` and `[uploads]` tables
    /// say; safe while the server runs. Reads only what changed since the last collection (the
    /// candidate records) unless `--full`. Prints each removal, then what was kept and why.
    Gc {
        #[command(flatten)]
        store: StoreArgs,
        /// Print what would be removed, and remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Walk the whole store (mark and sweep): an audit of the incremental collections.
        #[arg(long)]
        full: bool,
    },
    /// Re-hash every blob and check every link and tag; report problems without repairing them.
    /// Exits with 1 when it finds any.
    Scrub {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Move a store written before the listing index (or by distribution) to it; the server
    /// does so at start. Safe beside a running server, and to run again.
    Reindex {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print every kept move and delete of a repository's tags, or of one tag (`REPO:TAG`).
    History {
        #[command(flatten)]
        store: StoreArgs,
        /// `REPO` or `REPO:TAG`.
        target: String,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Point a tag back at a digest from its history: by default the one it pointed at before
    /// its last change (undoing a delete or a move). The manifest must still be stored.
    Restore {
        #[command(flatten)]
        store: StoreArgs,
        /// `REPO:TAG`.
        target: String,
        /// The digest to point at; it must appear in the tag's history.
        #[arg(long)]
        to: Option<String>,
    },
    /// Report the bytes each repository references, exclusive to it and shared with others,
    /// what deleting each tag would free, and the store's totals.
    Usage {
        #[command(flatten)]
        store: StoreArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Only this repository.
        repository: Option<String>,
    },
    /// Copy an image (every platform of an index, and its referrers) or, with --all-tags, a
    /// repository: `docker://HOST[:PORT]/REPO[:TAG|@DIGEST]`, `oci:DIR[:TAG]` or
    /// `oci-archive:FILE[:TAG]` on each side. Skips what the destination has; run it again to
    /// finish an interrupted copy.
    Copy(crate::copy::CopyArgs),
    /// Push replication: `registry replication status` prints each target's backlog, and each
    /// replica's last success and error.
    Replication {
        #[command(flatten)]
        store: StoreArgs,
        #[command(subcommand)]
        action: ReplicationCommand,
    },
    /// Check a configuration file (TOML, or distribution's `config.yml`) with the variables,
    /// report every problem at once, and print the configuration in force as TOML.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Exit 0 when the server configured here answers `GET /healthz` (a container's
    /// `HEALTHCHECK`), 1 otherwise.
    Healthcheck {
        /// A configuration file, for the address and TLS
        #[arg(long, env = "REGISTRY_CONFIG")]
        config: Option<PathBuf>,
        /// The URL to ask instead [default: from the configuration's listen address]
        #[arg(long)]
        url: Option<String>,
    },
}

/// What `registry replication` does.
#[derive(Debug, Subcommand)]
pub enum ReplicationCommand {
    /// Print each `[[replication]]` target's backlog, and each replica's last success and error.
    Status,
}

impl Cli {
    /// The store flags of a subcommand: its own, else those given before it.
    pub fn store(&self, own: &StoreArgs) -> Result<StoreArgs, String> {
        let serve = &self.serve;
        if serve.listen.is_some()
            || serve.htpasswd.is_some()
            || serve.tls_cert.is_some()
            || serve.tls_client_ca.is_some()
            || serve.read_only
        {
            return Err(
                "the server's flags (--listen, --htpasswd, --tls-*, --read-only) \
                        go without a subcommand, or after `serve`"
                    .into(),
            );
        }
        Ok(StoreArgs {
            storage: own.storage.clone().or_else(|| serve.store.storage.clone()),
            config: own.config.clone().or_else(|| serve.store.config.clone()),
        })
    }
}

impl StoreArgs {
    /// The configuration in force: defaults, the file, `REGISTRY_*` variables, then these flags.
    pub fn sources(&self) -> Result<Sources, String> {
        let mut sources = Config::from_sources(self.config.as_deref(), std::env::vars())?;
        if let Some(storage) = &self.storage {
            sources.config.storage = storage.clone();
        }
        Ok(sources)
    }
}

impl ServeArgs {
    /// The configuration in force, with the server's flags over it.
    pub fn sources(&self) -> Result<Sources, String> {
        let mut sources = self.store.sources()?;
        let config = &mut sources.config;
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if self.read_only {
            config.read_only = true;
        }
        if let Some(url) = &self.mirror {
            config.mirror.url = Some(url.clone());
        }
        if let Some(htpasswd) = &self.htpasswd {
            config.htpasswd = Some(htpasswd.clone());
        }
        if let Some(ca) = &self.tls_client_ca {
            config.tls.client_ca = vec![ca.clone()];
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            config.tls_cert = Some(cert.clone());
            config.tls_key = Some(key.clone());
        }
        Ok(sources)
    }
}
