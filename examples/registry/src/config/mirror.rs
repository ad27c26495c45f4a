//! The `[mirror]` table: the upstreams of the pull-through cache.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The `[mirror]` table: upstream registries this one caches.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MirrorSettings {
    /// Mirror the whole registry from this upstream (`--mirror URL`).
    pub url: Option<String>,
    /// Credentials for `url` (Basic, or the token flow); anonymous without.
    pub username: Option<String>,
    /// The password or token of `username`.
    pub password: Option<String>,
    /// Upstreams by repository prefix (`[[mirror.upstreams]]`).
    pub upstreams: Vec<UpstreamSettings>,
    /// Seconds a tag is served before it is checked upstream again (a `HEAD`).
    pub tag_ttl_secs: u64,
    /// Cached tags and manifests nobody pulled for this many days are removed by garbage
    /// collection (with what only they reached); 0 keeps them.
    pub retention_days: u64,
    /// Where blobs being fetched are spooled (the system's temporary folder by default).
    pub spool_dir: Option<PathBuf>,
    /// Seconds an upstream request may take to connect, and between reads.
    pub timeout_secs: u64,
    /// Redirects upstreams may send the mirror to: `public` (the upstream's origin, or HTTPS
    /// hosts on public addresses), `any`, or `none`.
    pub redirects: registry_http::remote::mirror::Redirects,
}

impl Default for MirrorSettings {
    fn default() -> Self {
        MirrorSettings {
            url: None,
            username: None,
            password: None,
            upstreams: Vec::new(),
            tag_ttl_secs: 300,
            retention_days: 0,
            spool_dir: None,
            timeout_secs: 60,
            redirects: registry_http::remote::mirror::Redirects::default(),
        }
    }
}

/// One `[[mirror.upstreams]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSettings {
    /// Repositories `<prefix>/<name>` are the upstream's `<name>`.
    pub prefix: String,
    /// The upstream's URL.
    pub url: String,
    /// Credentials; anonymous without.
    pub username: Option<String>,
    /// The password or token of `username`.
    pub password: Option<String>,
}

impl MirrorSettings {
    /// The upstreams configured: `url` for every repository, then the prefixed ones.
    pub fn upstreams(&self) -> Vec<registry_http::remote::mirror::UpstreamConfig> {
        let credentials = |u: &Option<String>, p: &Option<String>| {
            u.clone().map(|u| (u, p.clone().unwrap_or_default()))
        };
        let whole = self
            .url
            .iter()
            .map(|url| registry_http::remote::mirror::UpstreamConfig {
                prefix: String::new(),
                url: url.clone(),
                credentials: credentials(&self.username, &self.password),
            });
        let prefixed =
            self.upstreams
                .iter()
                .map(|u| registry_http::remote::mirror::UpstreamConfig {
                    prefix: u.prefix.clone(),
                    url: u.url.clone(),
                    credentials: credentials(&u.username, &u.password),
                });
        whole.chain(prefixed).collect()
    }

    /// The cache, when upstreams are configured.
    pub fn build(&self) -> Result<Option<registry_http::remote::mirror::Mirror>, String> {
        let upstreams = self.upstreams();
        if upstreams.is_empty() {
            return Ok(None);
        }
        let defaults = registry_http::remote::mirror::MirrorConfig::default();
        registry_http::remote::mirror::Mirror::new(registry_http::remote::mirror::MirrorConfig {
            upstreams,
            tag_ttl: Duration::from_secs(self.tag_ttl_secs),
            spool_dir: self.spool_dir.clone().unwrap_or(defaults.spool_dir),
            timeout: Duration::from_secs(self.timeout_secs.max(1)),
            // A 24th of the retention, at most an hour: a pull keeps content well within it.
            refresh_interval: (self.retention_days > 0).then(|| {
                Duration::from_secs(3600).min(Duration::from_secs(self.retention_days * 3600))
            }),
            redirects: self.redirects,
        })
        .map(Some)
        .map_err(|e| e.to_string())
    }
}
