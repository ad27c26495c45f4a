//! The server's configuration: defaults, then the TOML file, then flags and environment.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod distribution;
mod identity;
mod lifecycle;
mod mirror;
mod sources;
mod transfer;

#[cfg(test)]
use sources::IMAGE_STORAGE;
pub use sources::Sources;

#[cfg(test)]
use identity::ClientAuth;
pub use identity::{AuditConfig, LdapSettings, OidcSettings, ThrottleSettings, TlsConfig};
pub use lifecycle::Lifecycle;
use lifecycle::{ImmutableConfig, QuotaConfig, RetentionConfig};
pub use mirror::MirrorSettings;
pub use transfer::{ReplicationConfig, SyncSettings};

/// Where the registry stores its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageSpec {
    /// `fs:PATH`: files under a folder.
    Filesystem(PathBuf),
    /// `memory`: nothing survives a restart.
    Memory,
    /// `s3://BUCKET[/PREFIX]`: an S3-compatible bucket, shared by any number of replicas.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix inside it (may be empty).
        prefix: String,
    },
    /// `gs://BUCKET[/PREFIX]`: a Google Cloud Storage bucket.
    Gcs {
        /// The bucket.
        bucket: String,
        /// The key prefix inside it (may be empty).
        prefix: String,
    },
    /// `azure://CONTAINER[/PREFIX]`: an Azure Blob Storage container.
    Azure {
        /// The container.
        container: String,
        /// The key prefix inside it (may be empty).
        prefix: String,
    },
}

impl FromStr for StorageSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            _ if s == "memory" => Ok(StorageSpec::Memory),
            Some(("s3", _)) => {
                let o = registry_storage::S3Options::from_url(s).map_err(|e| e.to_string())?;
                Ok(StorageSpec::S3 {
                    bucket: o.bucket,
                    prefix: o.prefix,
                })
            }
            Some(("gs", _)) => {
                let o = registry_storage::GcsOptions::from_url(s).map_err(|e| e.to_string())?;
                Ok(StorageSpec::Gcs {
                    bucket: o.bucket,
                    prefix: o.prefix,
                })
            }
            Some(("azure", _)) => {
                let o = registry_storage::AzureOptions::from_url(s).map_err(|e| e.to_string())?;
                Ok(StorageSpec::Azure {
                    container: o.container,
                    prefix: o.prefix,
                })
            }
            Some(("fs", path)) if !path.is_empty() => Ok(StorageSpec::Filesystem(path.into())),
            _ => Err(format!(
                "unknown storage {s:?}: use fs:PATH, s3://BUCKET[/PREFIX], gs://BUCKET[/PREFIX], azure://CONTAINER[/PREFIX] or memory"
            )),
        }
    }
}

impl fmt::Display for StorageSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageSpec::Filesystem(p) => write!(f, "fs:{}", p.display()),
            StorageSpec::Memory => f.write_str("memory"),
            StorageSpec::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            StorageSpec::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            StorageSpec::Gcs { bucket, prefix } if prefix.is_empty() => write!(f, "gs://{bucket}"),
            StorageSpec::Gcs { bucket, prefix } => write!(f, "gs://{bucket}/{prefix}"),
            StorageSpec::Azure { container, prefix } if prefix.is_empty() => {
                write!(f, "azure://{container}")
            }
            StorageSpec::Azure { container, prefix } => write!(f, "azure://{container}/{prefix}"),
        }
    }
}

impl Serialize for StorageSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for StorageSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Everything the server can be told.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where to store.
    pub storage: StorageSpec,
    /// Largest manifest accepted, in bytes.
    pub max_manifest_size: u64,
    /// Refuse manifests whose blobs or children are missing from the repository.
    pub validate_references: bool,
    /// Connections served at once.
    pub max_connections: usize,
    /// Connections served at once from one client address (0: no cap).
    pub max_connections_per_address: usize,
    /// Seconds a client has for a connection's first bytes (after the TLS handshake) and for each
    /// request's headers (also the keep-alive idle limit).
    pub header_read_timeout_secs: u64,
    /// Seconds a connection may have no request in flight (HTTP/2 included), and a response may
    /// go unread, before the connection is closed.
    pub idle_timeout_secs: u64,
    /// Seconds a request body may send nothing before the request fails.
    pub body_idle_timeout_secs: u64,
    /// Seconds a manifest revision read from storage is trusted before it is read again (how soon
    /// a delete through another replica is seen); 0 disables the cache.
    pub metadata_ttl_secs: u64,
    /// Filesystem storage: stat and read small files on the request's thread (fast on local
    /// disks); `false` moves them to blocking threads (for network filesystems).
    pub fs_inline_reads: bool,
    /// An htpasswd file of bcrypt entries: every request then needs Basic credentials.
    pub htpasswd: Option<PathBuf>,
    /// A PEM certificate chain: the server speaks HTTPS (HTTP/2 and HTTP/1.1 by ALPN).
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Client certificates (the `[tls]` table; `--tls-client-ca`).
    pub tls: TlsConfig,
    /// Token authentication: the built-in issuer, or an outside token server's keys.
    pub token: Option<TokenConfig>,
    /// Groups for the access rules: group name -> user names (qualified names of other sources,
    /// such as `gitlab:alice` or `cert:build-host`, may be members too).
    pub groups: HashMap<String, Vec<String>>,
    /// Aliases between identity sources (the `[identities]` table): a qualified name -> the
    /// name it is known by (`"gitlab:alice" = "alice"`). Without one, identities of different
    /// sources never meet.
    pub identities: HashMap<String, String>,
    /// Load balancers and proxies (CIDRs) whose `X-Forwarded-For`/`Forwarded` headers, and
    /// PROXY protocol headers with `proxy_protocol`, name the client: the throttle, the
    /// per-address connection cap, the audit trail and request logs then see the client.
    pub trusted_proxies: Vec<String>,
    /// Connections from `trusted_proxies` begin with a PROXY protocol header (v1 or v2), as
    /// HAProxy's `send-proxy` sends.
    pub proxy_protocol: bool,
    /// Access rules; without any, every authenticated user may do everything.
    pub access: Vec<registry_http::auth::policy::Rule>,
    /// Refuse every write while reads go on.
    pub read_only: bool,
    /// Whether manifests, tags and blobs may be deleted at all (by those the rules let);
    /// `false` answers every delete 405 `UNSUPPORTED`, as distribution does by default.
    pub deletes: bool,
    /// The realm a Basic challenge names.
    pub realm: String,
    /// Headers added to every response (`X-Content-Type-Options = "nosniff"`).
    pub headers: std::collections::BTreeMap<String, String>,
    /// How to reach S3 when `storage` is `s3://…` (the `[s3]` table: `endpoint`, `region`,
    /// `access_key_id`, `secret_access_key`, `allow_http`, `part_size`, `parts_in_flight`,
    /// `ranged_reads`, `max_retries`, `timeout_secs`); unset keys come from the `AWS_*` variables.
    pub s3: registry_storage::S3Options,
    /// How to reach Google Cloud Storage when `storage` is `gs://…` (the `[gcs]` table:
    /// `service_account_path`, `application_credentials`, `part_size`, `parts_in_flight`,
    /// `ranged_reads`, `max_retries`, `timeout_secs`); unset keys come from the `GOOGLE_*`
    /// variables.
    pub gcs: registry_storage::GcsOptions,
    /// How to reach Azure Blob Storage when `storage` is `azure://…` (the `[azure]` table:
    /// `account`, `access_key`, `endpoint`, `use_emulator`, `allow_http`, `part_size`,
    /// `parts_in_flight`, `ranged_reads`, `max_retries`, `timeout_secs`); unset keys come from the
    /// `AZURE_*` variables.
    pub azure: registry_storage::AzureOptions,
    /// Answer blob GETs with 307 to a storage URL signed for this many seconds, so that clients
    /// download straight from S3; off by default, and without effect on storage that cannot sign.
    pub blob_redirect_secs: Option<u64>,
    /// Garbage collection (the `[gc]` table).
    pub gc: GcConfig,
    /// Purging of abandoned uploads (the `[uploads]` table).
    pub uploads: UploadsConfig,
    /// Logging (the `[log]` table).
    pub log: LogConfig,
    /// Prometheus metrics (the `[metrics]` table).
    pub metrics: MetricsConfig,
    /// Webhook notifications (the `[notifications]` table).
    pub notifications: crate::notify::NotificationsConfig,
    /// The pull-through cache (the `[mirror]` table; `--mirror URL`).
    pub mirror: MirrorSettings,
    /// Retention rules (`[[retention]]` tables), applied by every collection.
    pub retention: Vec<RetentionConfig>,
    /// Immutable tags (`[[immutable]]` tables).
    pub immutable: Vec<ImmutableConfig>,
    /// Quotas (`[[quota]]` tables).
    pub quota: Vec<QuotaConfig>,
    /// Users of an LDAP directory (the `[ldap]` table), instead of an htpasswd file.
    pub ldap: Option<LdapSettings>,
    /// OpenID Connect providers whose tokens log users in (`[[oidc]]` tables), beside the
    /// htpasswd or LDAP users.
    pub oidc: Vec<OidcSettings>,
    /// The web UI (the `[ui]` table).
    pub ui: UiConfig,
    /// Throttling of failed logins (the `[throttle]` table).
    pub throttle: ThrottleSettings,
    /// The audit trail (the `[audit]` table).
    pub audit: AuditConfig,
    /// Spans exported with OpenTelemetry (the `[tracing]` table).
    pub tracing: TracingConfig,
    /// Registries every change is copied to (`[[replication]]` tables).
    pub replication: Vec<ReplicationConfig>,
    /// Upstreams whose tags are fetched on a schedule (`[[sync]]` tables).
    pub sync: Vec<SyncSettings>,
}

/// The `[gc]` table: what `registry gc` and the server's periodic collection remove.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GcConfig {
    /// Seconds between collections inside the server; 0 (the default) never collects there. With
    /// several replicas, enable it on one. They are incremental (they read what changed).
    pub interval_secs: u64,
    /// Seconds between the server's collections that walk the whole store (an audit, which also
    /// removes what a crash left that no write recorded); 0 (the default): never, every
    /// collection is incremental. Counted from the server's start.
    pub full_interval_secs: u64,
    /// Anything written or reused more recently than this many seconds is kept.
    pub grace_secs: u64,
    /// Also remove manifests no tag reaches.
    pub delete_untagged: bool,
    /// Keep the referrers (signatures, SBOMs) of kept manifests.
    pub keep_referrers: bool,
    /// Keep manifests a tag's history names from the last this many days, so that a delete or
    /// move can be undone with `registry restore`.
    pub history_days: u64,
}

impl Default for GcConfig {
    fn default() -> Self {
        let core = registry_core::gc::GcOptions::default();
        GcConfig {
            interval_secs: 0,
            full_interval_secs: 0,
            grace_secs: core.grace.as_secs(),
            delete_untagged: core.delete_untagged,
            keep_referrers: core.keep_referrers,
            history_days: core.history.as_secs() / 86400,
        }
    }
}

/// The `[uploads]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadsConfig {
    /// Uploads that received nothing for this many seconds are removed (multipart uploads aborted).
    pub purge_after_secs: u64,
    /// Seconds between purges inside the server; 0 never purges there.
    pub purge_interval_secs: u64,
}

impl Default for UploadsConfig {
    fn default() -> Self {
        UploadsConfig {
            purge_after_secs: registry_core::gc::GcOptions::default()
                .upload_max_age
                .as_secs(),
            purge_interval_secs: 3600,
        }
    }
}

/// The `[ui]` table: the web UI at `/`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiConfig {
    /// Serve it (the API at `/v2/` is served either way).
    pub enabled: bool,
    /// Seconds a UI login lasts.
    pub session_secs: u64,
    /// The host the `podman pull` commands on the pages name (default: the one the browser used).
    pub pull_host: Option<String>,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            enabled: true,
            session_secs: 8 * 3600,
            pull_host: None,
        }
    }
}

/// The `[tracing]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracingConfig {
    /// Export request and storage spans to this OTLP/HTTP collector
    /// (`http://collector:4318`; `/v1/traces` is added when the URL has no path).
    pub otlp_endpoint: Option<String>,
    /// The `service.name` the spans carry.
    pub service_name: String,
}

impl Default for TracingConfig {
    fn default() -> Self {
        TracingConfig {
            otlp_endpoint: None,
            service_name: "registry".into(),
        }
    }
}

/// The `[log]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (the default) or `json`: one JSON object per line.
    pub format: LogFormat,
    /// What to log, as a tracing filter (`info`, `warn,registry_http=debug`); `RUST_LOG` wins.
    pub level: String,
    /// Fields added to every line (`service = "registry"`).
    pub fields: std::collections::BTreeMap<String, String>,
    /// Log one line per request.
    pub requests: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
            fields: std::collections::BTreeMap::new(),
            requests: true,
        }
    }
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, fields and span included.
    Json,
}

/// The `[metrics]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve `/metrics` (Prometheus text format, no authentication: counts and latencies by
    /// route, never repository names).
    pub enabled: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { enabled: true }
    }
}

impl Config {
    /// The lifecycle rules, compiled; see [`Lifecycle::rules`].
    pub fn lifecycle(&self) -> Result<Lifecycle, String> {
        Lifecycle::rules(&self.retention, &self.immutable, &self.quota)
    }

    /// The collection options the `[gc]`, `[uploads]`, `[[retention]]` and `[[immutable]]` tables
    /// give.
    pub fn gc_options(&self, dry_run: bool) -> Result<registry_core::gc::GcOptions, String> {
        let lifecycle = self.lifecycle()?;
        Ok(registry_core::gc::GcOptions {
            grace: Duration::from_secs(self.gc.grace_secs),
            delete_untagged: self.gc.delete_untagged,
            keep_referrers: self.gc.keep_referrers,
            upload_max_age: Duration::from_secs(self.uploads.purge_after_secs),
            dry_run,
            full: false,
            cache: (self.mirror.retention_days > 0).then(|| registry_core::gc::CacheRetention {
                prefixes: self
                    .mirror
                    .upstreams()
                    .into_iter()
                    .map(|u| u.prefix)
                    .collect(),
                unused_for: Duration::from_secs(self.mirror.retention_days * 86400),
            }),
            retention: lifecycle.retention,
            immutable: lifecycle.immutable,
            history: Duration::from_secs(self.gc.history_days * 86400),
        })
    }
}

/// The `[token]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Serve the built-in token issuer at `/token`, authenticating the htpasswd users.
    #[serde(default)]
    pub issue: bool,
    /// The URL clients get tokens from; by default this server's own `/token`.
    pub realm: Option<String>,
    /// The service tokens are for (their audience).
    #[serde(default = "default_service")]
    pub service: String,
    /// The issuer tokens name.
    #[serde(default = "default_service")]
    pub issuer: String,
    /// Lifetime of issued tokens, in seconds (at most 3600).
    #[serde(default = "default_lifetime")]
    pub lifetime_secs: u64,
    /// The issuer's signing key (PKCS#8 PEM, EC P-256); generated at start when absent.
    pub key: Option<PathBuf>,
    /// An outside token server's keys, as a JWKS file.
    pub jwks: Option<PathBuf>,
    /// An outside token server's public key, as a PEM file (RSA, EC P-256 or Ed25519).
    pub public_key: Option<PathBuf>,
    /// An outside token server's certificates, as a PEM bundle (distribution's
    /// `rootcertbundle`): their public keys verify its tokens.
    pub certificates: Option<PathBuf>,
}

fn default_service() -> String {
    "registry".to_owned()
}

fn default_lifetime() -> u64 {
    300
}

impl Default for Config {
    fn default() -> Self {
        let core = registry_core::RegistryConfig::default();
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 5000)),
            storage: StorageSpec::Filesystem(PathBuf::from("./registry-data")),
            max_manifest_size: core.max_manifest_size,
            validate_references: core.validate_references,
            max_connections: 4096,
            max_connections_per_address: 256,
            header_read_timeout_secs: 30,
            idle_timeout_secs: 60,
            body_idle_timeout_secs: 60,
            metadata_ttl_secs: core.metadata_ttl.as_secs(),
            fs_inline_reads: true,
            htpasswd: None,
            tls_cert: None,
            tls_key: None,
            tls: TlsConfig::default(),
            token: None,
            groups: HashMap::new(),
            identities: HashMap::new(),
            trusted_proxies: Vec::new(),
            proxy_protocol: false,
            access: Vec::new(),
            read_only: false,
            deletes: true,
            realm: "registry".into(),
            headers: std::collections::BTreeMap::new(),
            s3: registry_storage::S3Options::default(),
            gcs: registry_storage::GcsOptions::default(),
            azure: registry_storage::AzureOptions::default(),
            blob_redirect_secs: None,
            gc: GcConfig::default(),
            uploads: UploadsConfig::default(),
            log: LogConfig::default(),
            metrics: MetricsConfig::default(),
            notifications: crate::notify::NotificationsConfig::default(),
            mirror: MirrorSettings::default(),
            retention: Vec::new(),
            immutable: Vec::new(),
            quota: Vec::new(),
            ldap: None,
            oidc: Vec::new(),
            ui: UiConfig::default(),
            throttle: ThrottleSettings::default(),
            audit: AuditConfig::default(),
            tracing: TracingConfig::default(),
            replication: Vec::new(),
            sync: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
