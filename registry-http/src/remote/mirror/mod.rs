//! A pull-through cache: repositories under configured prefixes mirror an upstream registry.
//!
//! A pull that misses locally is fetched from the upstream, verified and stored, and every later
//! pull is served locally. Manifests by digest are cached for good; tags are checked again with a
//! `HEAD` upstream once [`MirrorConfig::tag_ttl`] has passed, and while the upstream is down or
//! refuses, what is cached is served. A missing blob is fetched once however many clients ask for
//! it at once: the fetch writes the upstream's bytes to a spool file and to storage, and every
//! client streams from the spool as it grows, so the first byte goes out before the last arrives
//! and memory stays flat; the last byte reaches them only once the whole blob is verified and
//! stored, so a client never gets a complete answer of bytes that are not the digest. Pushes and
//! deletes into mirrored repositories are refused.
//!
//! The mirror is a [`Source`]: the registry consults it on a miss (see
//! [`Registry::with_source`]), and the HTTP handlers know nothing of it.
//!
//! What the mirror trusts an upstream with (`trust`): it follows redirects to the upstream's
//! origin or to public HTTPS hosts only ([`Redirects`]), never with credentials to another
//! origin; it sends credentials to a token realm only over HTTPS or on the upstream's origin;
//! it stores and links a blob into a mirrored repository only after fetching it from that
//! upstream and verifying it (never on the word of a `HEAD`); upstream credentials never appear
//! in messages; lifetimes the upstream announces are clamped; its bookkeeping is bounded.
//!
//! ```
//! use std::sync::Arc;
//! use registry_http::remote::mirror::{Mirror, MirrorConfig, UpstreamConfig};
//!
//! let docker_hub = UpstreamConfig {
//!     prefix: "docker.io".into(), // docker.io/library/alpine is Docker Hub's library/alpine
//!     url: "https://registry-1.docker.io".into(),
//!     credentials: None,          // anonymous tokens
//! };
//! let mirror = Mirror::new(MirrorConfig { upstreams: vec![docker_hub], ..Default::default() })?;
//! let storage = Arc::new(registry_storage::MemoryStorage::new());
//! let registry = registry_core::Registry::new(storage, Default::default())
//!     .with_source(Arc::new(mirror));
//! let app = registry_http::router(registry);
//! # drop(app);
//! # Ok::<(), registry_http::remote::error::MirrorError>(())
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
#[cfg(doc)]
use registry_core::Registry;
use registry_core::error::UpstreamFailure;
use registry_core::source::{Fill, Read, SourcedBlob};
use registry_core::{Digest, Error, Reference, RepositoryName, Source, Tag};

use crate::metrics::Metrics;
use crate::remote::error::MirrorError;

mod fetch;

use fetch::{FetchSlot, read_spool, wait};

pub use crate::remote::client::{Redirects, Upstream, UpstreamError, UpstreamManifest};

/// Tags and manifests whose last check or refresh the mirror remembers: the least recently used
/// are forgotten first (which costs one more `HEAD` upstream, or one more refresh).
const REMEMBERED: usize = 64 * 1024;

/// One upstream and the repositories it serves.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Repository prefix: `docker.io` mirrors `docker.io/<name>` as the upstream's `<name>`; an
    /// empty prefix mirrors every repository under its own name.
    pub prefix: String,
    /// The upstream's URL, e.g. `https://registry-1.docker.io`.
    pub url: String,
    /// Credentials for Basic authentication or the token flow; anonymous without.
    pub credentials: Option<(String, String)>,
}

/// How the cache behaves.
#[derive(Debug, Clone)]
pub struct MirrorConfig {
    /// The upstreams; the longest matching prefix wins.
    pub upstreams: Vec<UpstreamConfig>,
    /// How long a tag fetched or checked upstream is served without asking again.
    pub tag_ttl: Duration,
    /// Where blobs being fetched are spooled for the clients streaming them.
    pub spool_dir: PathBuf,
    /// How long an upstream request may take (connect, and each read).
    pub timeout: Duration,
    /// How often a pull refreshes a cached manifest's age (for garbage collection's retention),
    /// at most, per manifest and process; `None` (no retention) never does.
    pub refresh_interval: Option<Duration>,
    /// Which redirects upstreams may send the mirror to.
    pub redirects: Redirects,
}

impl Default for MirrorConfig {
    fn default() -> Self {
        MirrorConfig {
            upstreams: Vec::new(),
            tag_ttl: Duration::from_secs(300),
            spool_dir: std::env::temp_dir(),
            timeout: Duration::from_secs(60),
            refresh_interval: None,
            redirects: Redirects::default(),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Default)]
struct Stats {
    hits: Family<KindLabels, Counter>,
    misses: Family<KindLabels, Counter>,
    upstream_bytes: Counter,
    upstream_errors: Counter,
}

/// The pull-through cache; see the module documentation.
pub struct Mirror {
    upstreams: Vec<(String, Arc<Upstream>)>,
    config: MirrorConfig,
    /// When each `(repository, tag)` was last fetched or checked upstream.
    checked: quick_cache::sync::Cache<(RepositoryName, String), Instant>,
    /// When each cached manifest's age was last refreshed.
    refreshed: quick_cache::sync::Cache<(RepositoryName, Digest), Instant>,
    fetches: Arc<Mutex<HashMap<(RepositoryName, Digest), FetchSlot>>>,
    stats: Stats,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("upstreams", &self.upstreams)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Mirror {
    /// A cache of the configured upstreams; an unusable URL is an error naming it.
    pub fn new(config: MirrorConfig) -> Result<Mirror, MirrorError> {
        let mut upstreams = Vec::new();
        for u in &config.upstreams {
            let prefix = u.prefix.trim_matches('/').to_owned();
            if !prefix.is_empty() && format!("{prefix}/x").parse::<RepositoryName>().is_err() {
                return Err(MirrorError::InvalidPrefix { prefix });
            }
            let upstream = Upstream::new(
                &u.url,
                u.credentials.clone(),
                config.timeout,
                config.redirects,
            )?;
            upstreams.push((prefix, Arc::new(upstream)));
        }
        upstreams.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        Ok(Mirror {
            upstreams,
            config,
            checked: quick_cache::sync::Cache::new(REMEMBERED),
            refreshed: quick_cache::sync::Cache::new(REMEMBERED),
            fetches: Arc::new(Mutex::new(HashMap::new())),
            stats: Stats::default(),
        })
    }

    /// Adds the cache's counters to `metrics`: hits and misses by kind (`manifest`, `blob`),
    /// bytes fetched upstream, upstream failures.
    pub fn register_metrics(&self, metrics: &Metrics) {
        let s = &self.stats;
        metrics.register("mirror_hits", "Pulls served from the cache", s.hits.clone());
        metrics.register(
            "mirror_misses",
            "Pulls fetched from the upstream",
            s.misses.clone(),
        );
        metrics.register(
            "mirror_upstream_bytes",
            "Blob bytes fetched from upstreams",
            s.upstream_bytes.clone(),
        );
        metrics.register(
            "mirror_upstream_errors",
            "Upstream requests that failed",
            s.upstream_errors.clone(),
        );
    }

    /// The repository prefixes mirrored (empty: every repository).
    pub fn prefixes(&self) -> Vec<String> {
        self.upstreams.iter().map(|(p, _)| p.clone()).collect()
    }

    /// The upstream serving `repo`, and the repository's name there.
    pub fn upstream_for(&self, repo: &RepositoryName) -> Option<(&Arc<Upstream>, String)> {
        self.upstreams.iter().find_map(|(prefix, up)| {
            if prefix.is_empty() {
                return Some((up, repo.to_string()));
            }
            let rest = repo.as_str().strip_prefix(prefix.as_str())?;
            Some((up, rest.strip_prefix('/')?.to_owned()))
        })
    }

    fn count(&self, hit: bool, kind: &'static str) {
        let family = if hit {
            &self.stats.hits
        } else {
            &self.stats.misses
        };
        family.get_or_create(&KindLabels { kind }).inc();
    }

    fn upstream_failed(&self, e: UpstreamError, missing: UpstreamFailure) -> Error {
        self.stats.upstream_errors.inc();
        upstream_error(&e, missing)
    }

    /// Makes sure the manifest `reference` names in a mirrored `repo` is stored locally and
    /// current (fetching or checking it upstream), so that the normal read serves it.
    async fn ensure_manifest(
        &self,
        fill: &Fill,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<(), Error> {
        let Some((up, name)) = self.upstream_for(repo) else {
            return Ok(());
        };
        let limit = fill.config().max_manifest_size;
        match reference {
            Reference::Digest(digest) => {
                if fill.stat_manifest(repo, reference).await.is_ok() {
                    self.count(true, "manifest");
                    return self.refresh(fill, repo, reference, digest).await;
                }
                self.count(false, "manifest");
                let m = up
                    .get_manifest(&name, &digest.to_string(), Some(digest), limit)
                    .await
                    .map_err(|e| self.upstream_failed(e, UpstreamFailure::ManifestUnknown))?;
                fill.store_manifest(repo, reference, m.media_type.as_deref(), m.bytes)
                    .await?;
                Ok(())
            }
            Reference::Tag(tag) => {
                let key = (repo.clone(), tag.to_string());
                let local = fill.stat_manifest(repo, reference).await.ok();
                let checked = self.checked.get(&key);
                if local.is_some() && checked.is_some_and(|t| t.elapsed() < self.config.tag_ttl) {
                    self.count(true, "manifest");
                    return Ok(());
                }
                let upstream_digest = match up.head_manifest(&name, tag.as_str()).await {
                    Ok(d) => d,
                    Err(e) => return self.cached_or_failed(local.is_some(), e, repo, tag),
                };
                if let (Some(local), Some(current)) = (&local, &upstream_digest)
                    && local.digest == *current
                {
                    self.count(true, "manifest");
                    self.checked.insert(key, Instant::now());
                    return self.refresh(fill, repo, reference, current).await;
                }
                self.count(false, "manifest");
                let m = match up.get_manifest(&name, tag.as_str(), None, limit).await {
                    Ok(m) => m,
                    Err(e) => return self.cached_or_failed(local.is_some(), e, repo, tag),
                };
                let info = fill
                    .store_manifest(repo, reference, m.media_type.as_deref(), m.bytes)
                    .await?;
                self.checked.insert(key, Instant::now());
                self.refreshed
                    .insert((repo.clone(), info.digest), Instant::now());
                Ok(())
            }
        }
    }

    /// What a failed check of a tag upstream gives: with the tag cached, the cache is served
    /// (unless the upstream says the tag is gone); without, the upstream's failure.
    fn cached_or_failed(
        &self,
        cached: bool,
        e: UpstreamError,
        repo: &RepositoryName,
        tag: &Tag,
    ) -> Result<(), Error> {
        if !cached || matches!(e, UpstreamError::NotFound(_)) {
            return Err(self.upstream_failed(e, UpstreamFailure::ManifestUnknown));
        }
        tracing::warn!(%repo, %tag, "serving the cached tag: {e}");
        self.stats.upstream_errors.inc();
        Ok(())
    }

    /// Stores a cached manifest again (same bytes) when its age was last refreshed longer than
    /// [`MirrorConfig::refresh_interval`] ago, so that retention counts from this pull.
    async fn refresh(
        &self,
        fill: &Fill,
        repo: &RepositoryName,
        reference: &Reference,
        digest: &Digest,
    ) -> Result<(), Error> {
        let Some(interval) = self.config.refresh_interval else {
            return Ok(());
        };
        let key = (repo.clone(), digest.clone());
        let last = self.refreshed.get(&key);
        if last.is_some_and(|t| t.elapsed() < interval) {
            return Ok(());
        }
        let content = fill
            .get_manifest(repo, &Reference::Digest(digest.clone()))
            .await?;
        fill.store_manifest(
            repo,
            reference,
            Some(&content.info.media_type),
            content.bytes,
        )
        .await?;
        self.refreshed.insert(key, Instant::now());
        Ok(())
    }
}

#[async_trait::async_trait]
impl Source for Mirror {
    fn serves(&self, repo: &RepositoryName) -> Option<String> {
        let (up, _) = self.upstream_for(repo)?;
        Some(format!("a pull-through cache of {}", up.url()))
    }

    async fn manifest(
        &self,
        fill: &Fill,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<(), Error> {
        self.ensure_manifest(fill, repo, reference).await
    }

    /// A blob a mirrored `repo` lacks: `None` once it is fetched and stored locally, or its size
    /// and bytes while it is being fetched. A blob stored for another repository is fetched all
    /// the same: only the upstream's bytes, verified, make it part of this repository (a `HEAD`
    /// upstream answering 200 proves nothing, and would let anyone who may pull the mirror read
    /// another repository's blobs).
    async fn blob(
        &self,
        fill: &Fill,
        repo: &RepositoryName,
        digest: &Digest,
        head: bool,
        whole: bool,
    ) -> Result<Option<SourcedBlob>, Error> {
        let Some((up, name)) = self.upstream_for(repo) else {
            return Ok(None);
        };
        self.count(false, "blob");
        if head {
            let size = up
                .head_blob(&name, digest)
                .await
                .map_err(|e| self.upstream_failed(e, UpstreamFailure::BlobUnknown))?;
            let stream = futures::stream::empty().boxed();
            return Ok(Some(SourcedBlob { size, stream }));
        }
        let fetch = self.fetch(fill, up, &name, repo, digest).await?;
        if whole
            && let Some(size) = fetch.size
            && let Some(stream) = read_spool(&fetch).await
        {
            return Ok(Some(SourcedBlob { size, stream }));
        }
        wait(&fetch).await?;
        Ok(None)
    }

    fn served_locally(&self, read: Read) {
        self.count(
            true,
            match read {
                Read::Manifest => "manifest",
                Read::Blob => "blob",
            },
        );
    }
}

/// The core's error for an upstream's failure: a 404 upstream keeps the kind of what was missing
/// (`missing`), a rate limit stays one, anything else makes the upstream unavailable.
fn upstream_error(e: &UpstreamError, missing: UpstreamFailure) -> Error {
    e.clone().into_error(missing)
}
