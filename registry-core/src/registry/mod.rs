//! [`Registry`]: every distribution-spec operation, written once over any [`Storage`], as a thin
//! façade over parts that each own one concern: blobs (`blobs`), uploads (`uploads`), manifests
//! and referrers (`manifests`), tags (`tags`) and the catalog (`catalog`). It consults the
//! admission hook before a change, a read-through [`Source`](source::Source) on a miss in a repository it serves,
//! tells the parts who asks, and hands every committed change to the feed's subscribers. Blob and
//! upload calls are in `blob_ops`, manifest and tag calls in `manifest_ops`, tag history and
//! restore in `history`.

use std::sync::Arc;
use std::time::Duration;

use crate::admission::{Admission, Caller, Change};
use crate::blobs::Blobs;
use crate::cache::Caches;
use crate::catalog::Catalog;
use crate::clock::{SharedClock, SystemClock};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::feed::{Committed, Record, Subscriber};
use crate::index::IndexState;
use crate::manifest::Descriptor;
use crate::manifests::Manifests;
use crate::reference::{RepositoryName, Tag};
use crate::storage::Storage;
use crate::tags::{Page, Tags};
use crate::uploads::Uploads;

mod blob_ops;
mod groups;
mod history;
mod manifest_ops;
pub mod source;

use source::SharedSource;

/// Default manifest size limit: 4 MiB, as distribution.
pub const DEFAULT_MAX_MANIFEST_SIZE: u64 = 4 * 1024 * 1024;

/// How a [`Registry`] checks what it is given.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Manifests larger than this many bytes are refused.
    pub max_manifest_size: u64,
    /// Refuse manifests whose config, layers or index children are not in the repository.
    pub validate_references: bool,
    /// How long a repository's manifest revision read from storage is trusted without reading it
    /// again. A delete through this process is seen at once; one through another process sharing
    /// the storage within this time. Zero disables the cache.
    pub metadata_ttl: Duration,
    /// Bytes of manifests kept in memory, by digest (they never change).
    pub manifest_cache_bytes: u64,
    /// How often a push that reuses a stored blob (found by `HEAD`, mounted, or named by a
    /// manifest) marks it in use, at most, per process. Garbage collection keeps blobs marked within
    /// its grace period, which must therefore exceed this plus the longest push. `None` never
    /// marks: for a registry that serves reads only, so that a `HEAD` never writes.
    pub touch_interval: Option<Duration>,
    /// The registry only reads: it writes nothing of its own accord (in-use marks aside, which
    /// [`RegistryConfig::touch_interval`] governs), not even the index version of a fresh store.
    pub read_only: bool,
    /// How often, at most, a pull of a tag is recorded (one empty object per tag, per process),
    /// for retention's `keep_pulled_within`. `None` records nothing (a read-only registry).
    pub pull_record_interval: Option<Duration>,
    /// The clock garbage collection, retention, tag history and upload ages read: the system's,
    /// or an [`crate::clock::OffsetClock`] in tests that jump past a grace period.
    pub clock: SharedClock,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            max_manifest_size: DEFAULT_MAX_MANIFEST_SIZE,
            validate_references: true,
            metadata_ttl: Duration::from_secs(5),
            manifest_cache_bytes: 16 * 1024 * 1024,
            touch_interval: Some(Duration::from_secs(600)),
            read_only: false,
            pull_record_interval: Some(Duration::from_secs(3600)),
            clock: Arc::new(SystemClock),
        }
    }
}

/// A registry over any [`Storage`]: the operations of the OCI distribution spec, without HTTP.
///
/// Cheap to clone; clones share the storage and the caches.
///
/// ```
/// # use std::sync::Arc;
/// # use registry_core::{Registry, RegistryConfig, Storage};
/// # async fn demo(storage: Arc<dyn Storage>) -> registry_core::Result<()> {
/// let registry = Registry::new(storage, RegistryConfig::default());
/// let repo = "library/hello".parse()?;
/// let data = bytes::Bytes::from_static(b"layer bytes");
/// let digest = registry_core::Digest::of(&data);
/// let body = futures::stream::once(async move { Ok(data) }).boxed();
/// # use futures::StreamExt;
/// registry.put_blob(&repo, &digest, body, None).await?;
/// assert_eq!(registry.stat_blob(&repo, &digest).await?.size, 11);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Registry {
    pub(crate) storage: Arc<dyn Storage>,
    config: Arc<RegistryConfig>,
    pub(crate) blobs: Blobs,
    pub(crate) uploads: Uploads,
    pub(crate) manifests: Manifests,
    pub(crate) tags: Tags,
    pub(crate) catalog: Catalog,
    pub(crate) index: Arc<IndexState>,
    admission: Option<Arc<dyn Admission>>,
    /// The groups rules name ([`Admission::serial_groups`]), each held from a manifest push's
    /// admission to its tag write, so that a rule that counts (a quota) sees every earlier push
    /// into its group made by this process.
    groups: Arc<groups::GroupLocks>,
    /// When this process last recorded a pull of each tag.
    pulls: Arc<quick_cache::sync::Cache<(RepositoryName, Tag), std::time::Instant>>,
    /// What bounds the cost of usage reports.
    pub(crate) reports: Arc<crate::accounting::Reports>,
    source: SharedSource,
    /// What every committed change is handed to.
    subscribers: Arc<Vec<Arc<dyn Subscriber>>>,
    caller: Caller,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("storage", &self.storage)
            .field("config", &self.config)
            .field("admission", &self.admission.is_some())
            .field("source", &self.source.is_some())
            .field("subscribers", &self.subscribers.len())
            .field("caller", &self.caller)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// A registry over `storage`.
    pub fn new(storage: Arc<dyn Storage>, config: RegistryConfig) -> Registry {
        let caches = Arc::new(Caches::new(
            config.manifest_cache_bytes,
            config.metadata_ttl,
            config.clock.clone(),
        ));
        let index = Arc::new(IndexState::new(!config.read_only));
        let blobs = Blobs::new(
            storage.clone(),
            caches.clone(),
            index.clone(),
            config.touch_interval,
            config.clock.clone(),
        );
        Registry {
            uploads: Uploads::new(storage.clone(), blobs.clone(), config.clock.clone()),
            manifests: Manifests::new(
                storage.clone(),
                caches,
                blobs.clone(),
                config.max_manifest_size,
            ),
            tags: Tags::new(
                storage.clone(),
                index.clone(),
                config.clock.clone(),
                blobs.candidates.clone(),
            ),
            catalog: Catalog::new(storage.clone(), index.clone()),
            blobs,
            index,
            storage,
            config: Arc::new(config),
            admission: None,
            groups: Arc::default(),
            pulls: Arc::new(quick_cache::sync::Cache::new(64 * 1024)),
            reports: Arc::new(crate::accounting::Reports::new()),
            source: None,
            subscribers: Arc::default(),
            caller: Caller::default(),
        }
    }

    /// The same registry, consulting `admission` before every change to a manifest or tag (use
    /// [`crate::admission::AllOf`] for several rules). Manifest pushes into a group a rule names
    /// ([`Admission::serial_groups`]) are admitted and made one at a time in this process, so
    /// that the rule sees every push into its group it admitted before; others run side by side.
    pub fn with_admission(mut self, admission: Arc<dyn Admission>) -> Registry {
        self.admission = Some(admission);
        self
    }

    /// The same registry, handing every change committed through it (or through a registry
    /// derived from it afterwards) to `subscriber` too: see [`crate::feed`].
    pub fn with_subscriber(mut self, subscriber: Arc<dyn Subscriber>) -> Registry {
        let mut all = self.subscribers.as_ref().clone();
        all.push(subscriber);
        self.subscribers = Arc::new(all);
        self
    }

    /// Hands a committed change, made for this handle's caller, to every subscriber.
    pub(crate) async fn publish(&self, change: Committed) {
        if self.subscribers.is_empty() {
            return;
        }
        let record = Record {
            change,
            caller: self.caller.clone(),
            at: self.config.clock.now(),
        };
        for subscriber in self.subscribers.iter() {
            subscriber.committed(&record).await;
        }
    }

    /// A handle on the same registry whose changes are made for `caller`: what admission rules,
    /// tag history and the change feed see. The HTTP layer takes one per request.
    pub fn as_caller(&self, caller: Caller) -> Registry {
        Registry {
            caller,
            ..self.clone()
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// The storage underneath, for the walks of garbage collection, scrub and reindexing.
    pub(crate) fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Succeeds when the storage answers (one listing): what a readiness probe asks.
    pub async fn check_storage(&self) -> Result<()> {
        self.storage.list("").await?;
        Ok(())
    }

    async fn admit(&self, change: Change<'_>) -> Result<()> {
        match &self.admission {
            Some(rules) => {
                rules.admit(&change, &self.caller).await.map_err(|refusal| {
                    match refusal.unavailable {
                        true => Error::storage(refusal.message),
                        false => Error::Denied {
                            reason: refusal.message,
                        },
                    }
                })
            }
            None => Ok(()),
        }
    }

    // ---- listings ----

    /// Tags of a repository in lexical order, at most `n` after `last`: one listing from the
    /// offset, whatever the number of tags. [`Error::NameUnknown`] when the name is no
    /// repository: it holds neither manifests nor blobs of its own (a name that is only the
    /// namespace of other repositories included). A repository whose manifests were all deleted
    /// still lists, empty, as with distribution: clients such as `skopeo list-tags` take 404
    /// for an error.
    pub async fn list_tags(
        &self,
        repo: &RepositoryName,
        n: Option<usize>,
        last: Option<&str>,
    ) -> Result<Page> {
        let page = self.tags.page(repo, n, last).await?;
        if page.items.is_empty() && last.is_none() {
            let own = self
                .storage
                .list(&crate::paths::repository(repo))
                .await?
                .prefixes;
            if !own.iter().any(|p| crate::paths::is_repository_entry(p)) {
                return Err(Error::NameUnknown {
                    name: repo.to_string(),
                });
            }
        }
        Ok(page)
    }

    /// Repositories holding at least one manifest, in the lexical order of their names'
    /// components (`a`, `a/b`, `a-b`), at most `n` after `last`: one listing of the catalog from
    /// the offset, whatever the number of repositories.
    pub async fn list_repositories(&self, n: Option<usize>, last: Option<&str>) -> Result<Page> {
        self.catalog.page(n, last).await
    }

    /// Descriptors of the manifests in `repo` whose subject is `subject`, optionally only those of
    /// one artifact type. Read from an index kept at manifest push: no scan.
    pub async fn list_referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        self.manifests.referrers(repo, subject, artifact_type).await
    }
}
