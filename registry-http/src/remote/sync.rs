//! Pull sync: tags of another registry fetched into local repositories on a schedule, unlike the
//! pull-through cache, which fetches when a client asks. Each [`SyncConfig`] names an upstream,
//! repositories there, tag regexes and, for indexes, the platforms kept (an index is stored with
//! its own bytes, so its digest is the upstream's, and the children of other platforms are left
//! out: pulling one of those by digest answers `MANIFEST_UNKNOWN`).
//!
//! Every round, for each repository, the upstream's tags are listed and each matching tag whose
//! digest differs from the local one (a `HEAD`, which Docker Hub does not count against its pull
//! limit) is copied with what it reaches: children, blobs (verified as they are stored), and
//! referrers. When the upstream rate-limits (429), the round stops there and the next one
//! resumes. Several replicas over one store may each sync: a copy of what is already there
//! costs a `HEAD` and is skipped.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use registry_core::error::UpstreamFailure;
use registry_core::lifecycle::TagPattern;
use registry_core::transfer::{self, CopyOptions, Destination, Origin};
use registry_core::{Error, Reference, Registry, RepositoryName};

use crate::metrics::Metrics;
use crate::remote::client::Upstream;
use crate::remote::error::MirrorError;
use crate::remote::mirror::Redirects;

/// One upstream synced from.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// The upstream's URL, `https://registry-1.docker.io`.
    pub upstream: String,
    /// Credentials for Basic authentication or the token flow; anonymous without.
    pub credentials: Option<(String, String)>,
    /// Repositories on the upstream (`library/alpine`).
    pub repositories: Vec<RepositoryName>,
    /// Stored locally as `<prefix>/<repository>`; under the same name when empty.
    pub prefix: String,
    /// Tags fetched: regexes searched in the tag's name; every tag when empty.
    pub tags: Vec<TagPattern>,
    /// Children of an index kept, `os/architecture[/variant]`; all when empty.
    pub platforms: Vec<String>,
    /// Time between rounds (the first runs at start).
    pub interval: Duration,
    /// How long an upstream request may wait to connect and between reads.
    pub timeout: Duration,
}

/// What a round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Round {
    /// Tags copied (or moved).
    pub copied: usize,
    /// Tags already at the upstream's digest.
    pub current: usize,
    /// Tags that failed.
    pub failed: usize,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
}

/// One upstream and its client.
struct Source {
    config: SyncConfig,
    upstream: Upstream,
    labels: UpstreamLabels,
}

/// Pull sync from the configured upstreams; see the module documentation.
pub struct Sync {
    sources: Vec<Source>,
    copied: Family<UpstreamLabels, Counter>,
    failures: Family<UpstreamLabels, Counter>,
}

impl std::fmt::Debug for Sync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let upstreams: Vec<&str> = self.sources.iter().map(|s| s.upstream.url()).collect();
        f.debug_struct("Sync")
            .field("upstreams", &upstreams)
            .finish_non_exhaustive()
    }
}

impl Sync {
    /// Sync as `configs` say; an unusable URL or prefix is an error.
    pub fn new(configs: Vec<SyncConfig>) -> Result<Sync, MirrorError> {
        let mut sources = Vec::new();
        for config in configs {
            let prefix = config.prefix.trim_matches('/');
            if !prefix.is_empty() && format!("{prefix}/x").parse::<RepositoryName>().is_err() {
                return Err(MirrorError::InvalidPrefix {
                    prefix: prefix.to_owned(),
                });
            }
            let upstream = Upstream::new(
                &config.upstream,
                config.credentials.clone(),
                config.timeout,
                Redirects::default(),
            )?;
            sources.push(Source {
                labels: UpstreamLabels {
                    upstream: upstream.url().to_owned(),
                },
                config,
                upstream,
            });
        }
        Ok(Sync {
            sources,
            copied: Family::default(),
            failures: Family::default(),
        })
    }

    /// Adds the sync's counters to `metrics`, labelled by upstream: tags copied, tags failed.
    pub fn register_metrics(&self, metrics: &Metrics) {
        metrics.register(
            "sync_copied",
            "Tags copied by pull sync",
            self.copied.clone(),
        );
        metrics.register(
            "sync_failures",
            "Tags pull sync failed to copy",
            self.failures.clone(),
        );
    }

    /// Runs a round of each upstream now and then at its interval, for as long as the process
    /// runs (spawn it).
    pub async fn run(self: Arc<Self>, registry: Registry) {
        // What the change feed, tag history and admission rules see of what a sync copies.
        let registry = registry.as_caller(registry_core::Caller {
            identity: Some("sync".into()),
            origin: registry_core::feed::Origin::Sync,
            ..registry_core::Caller::default()
        });
        let loops = (0..self.sources.len()).map(|n| {
            let (sync, registry) = (self.clone(), registry.clone());
            async move {
                loop {
                    let source = &sync.sources[n];
                    let round = sync.round_of(source, &registry).await;
                    tracing::info!(
                        upstream = %source.upstream.url(),
                        copied = round.copied,
                        current = round.current,
                        failed = round.failed,
                        "sync round done"
                    );
                    tokio::time::sleep(source.config.interval).await;
                }
            }
        });
        futures::future::join_all(loops).await;
    }

    /// One round of every upstream: each matching tag brought to the upstream's digest.
    pub async fn round(&self, registry: &Registry) -> Round {
        let mut total = Round::default();
        for source in &self.sources {
            let round = self.round_of(source, registry).await;
            total.copied += round.copied;
            total.current += round.current;
            total.failed += round.failed;
        }
        total
    }

    async fn round_of(&self, source: &Source, registry: &Registry) -> Round {
        let mut round = Round::default();
        for repo in &source.config.repositories {
            if let Err(e) = self.repository(source, registry, repo, &mut round).await {
                round.failed += 1;
                self.failures.get_or_create(&source.labels).inc();
                tracing::warn!(upstream = %source.upstream.url(), repository = %repo, "sync failed: {e}");
                if matches!(
                    e,
                    Error::Upstream {
                        failure: UpstreamFailure::RateLimited,
                        ..
                    }
                ) {
                    tracing::warn!("the upstream rate-limits: the next round resumes");
                    break;
                }
            }
        }
        round
    }

    fn local_name(source: &Source, repo: &RepositoryName) -> Result<RepositoryName, Error> {
        match source.config.prefix.trim_matches('/') {
            "" => Ok(repo.clone()),
            prefix => format!("{prefix}/{repo}").parse(),
        }
    }

    async fn repository(
        &self,
        source: &Source,
        registry: &Registry,
        repo: &RepositoryName,
        round: &mut Round,
    ) -> Result<(), Error> {
        let local = Sync::local_name(source, repo)?;
        let config = &source.config;
        let upstream = &source.upstream;
        let options = CopyOptions {
            platforms: config.platforms.clone(),
            referrers: true,
        };
        let tags = Origin::tags(upstream, repo).await?;
        for tag in tags {
            if !config.tags.is_empty() && !config.tags.iter().any(|p| p.matches(tag.as_str())) {
                continue;
            }
            let reference = Reference::Tag(tag);
            let there = upstream.manifest_digest(repo, &reference).await?;
            let here = registry.manifest_digest(&local, &reference).await?;
            if there.is_some() && there == here {
                round.current += 1;
                continue;
            }
            match transfer::copy(
                upstream, repo, &reference, registry, &local, &reference, &options,
            )
            .await
            {
                Ok(copied) => {
                    round.copied += 1;
                    self.copied.get_or_create(&source.labels).inc();
                    tracing::info!(
                        repository = %local,
                        tag = %reference,
                        digest = ?copied.digest,
                        blobs = copied.blobs,
                        bytes = copied.bytes,
                        "synced"
                    );
                }
                Err(
                    e @ Error::Upstream {
                        failure: UpstreamFailure::RateLimited,
                        ..
                    },
                ) => return Err(e),
                Err(e) => {
                    round.failed += 1;
                    self.failures.get_or_create(&source.labels).inc();
                    tracing::warn!(repository = %local, tag = %reference, "sync failed: {e}");
                }
            }
        }
        Ok(())
    }
}
