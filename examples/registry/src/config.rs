//! The server's configuration: defaults, then the TOML file, then flags and environment.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

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
            Some(("fs", path)) if !path.is_empty() => Ok(StorageSpec::Filesystem(path.into())),
            _ => Err(format!(
                "unknown storage {s:?}: use fs:PATH, s3://BUCKET[/PREFIX] or memory"
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
        }
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
#[derive(Debug, Clone, Deserialize)]
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
    /// Seconds a client has to send request headers (also the keep-alive idle limit).
    pub header_read_timeout_secs: u64,
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
    /// Token authentication: the built-in issuer, or an outside token server's keys.
    pub token: Option<TokenConfig>,
    /// Groups for the access rules: group name -> user names.
    pub groups: HashMap<String, Vec<String>>,
    /// Access rules; without any, every authenticated user may do everything.
    pub access: Vec<registry_http::policy::Rule>,
    /// Refuse every write while reads go on.
    pub read_only: bool,
    /// How to reach S3 when `storage` is `s3://…` (the `[s3]` table: `endpoint`, `region`,
    /// `access_key_id`, `secret_access_key`, `allow_http`, `part_size`, `max_retries`,
    /// `timeout_secs`); unset keys come from the `AWS_*` variables.
    pub s3: registry_storage::S3Options,
    /// Answer blob GETs with 307 to a storage URL signed for this many seconds, so that clients
    /// download straight from S3; off by default, and without effect on storage that cannot sign.
    pub blob_redirect_secs: Option<u64>,
}

/// The `[token]` table.
#[derive(Debug, Clone, Deserialize)]
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
            header_read_timeout_secs: 30,
            body_idle_timeout_secs: 60,
            metadata_ttl_secs: core.metadata_ttl.as_secs(),
            fs_inline_reads: true,
            htpasswd: None,
            tls_cert: None,
            tls_key: None,
            token: None,
            groups: HashMap::new(),
            access: Vec::new(),
            read_only: false,
            s3: registry_storage::S3Options::default(),
            blob_redirect_secs: None,
        }
    }
}

impl Config {
    /// Reads a TOML file; an unknown key or a bad value is an error naming it.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("invalid config {}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_specs() {
        assert_eq!(
            "memory".parse::<StorageSpec>().unwrap(),
            StorageSpec::Memory
        );
        assert_eq!(
            "fs:/var/lib/r".parse::<StorageSpec>().unwrap(),
            StorageSpec::Filesystem("/var/lib/r".into())
        );
        assert_eq!(
            "s3://bucket/a/b".parse::<StorageSpec>().unwrap(),
            StorageSpec::S3 {
                bucket: "bucket".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(
            "s3://bucket/a/b"
                .parse::<StorageSpec>()
                .unwrap()
                .to_string(),
            "s3://bucket/a/b"
        );
        for bad in ["", "fs:", "s4://x", "disk", "s3://", "s3:bucket"] {
            assert!(bad.parse::<StorageSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn config_file() {
        let c: Config = toml::from_str(
            "listen = \"0.0.0.0:8080\"\nstorage = \"memory\"\nmax_manifest_size = 10",
        )
        .unwrap();
        assert_eq!(c.listen.port(), 8080);
        assert_eq!(c.storage, StorageSpec::Memory);
        assert_eq!(c.max_manifest_size, 10);
        assert!(c.validate_references);
        let err = toml::from_str::<Config>("listn = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("listn"), "{err}");
        assert!(toml::from_str::<Config>("storage = \"disk\"").is_err());
        let c: Config = toml::from_str("[s3]\npart_size = 8388608\ntimeout_secs = 7").unwrap();
        assert_eq!(c.s3.part_size, Some(8 << 20));
        assert_eq!(c.s3.timeout, Some(std::time::Duration::from_secs(7)));
        let err = toml::from_str::<Config>("[s3]\nbucket = \"b\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bucket"),
            "the bucket comes from --storage: {err}"
        );
    }

    #[test]
    fn the_example_file_is_valid() {
        let c: Config = toml::from_str(include_str!("../registry.example.toml")).unwrap();
        assert!(c.token.unwrap().issue);
        assert_eq!(c.access.len(), 3);
        assert_eq!(c.groups["admins"], ["alice"]);
    }
}
