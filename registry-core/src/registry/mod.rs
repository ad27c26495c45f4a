//! [`Registry`]: every distribution-spec operation, written once over any [`Storage`], as a thin
//! façade over parts that each own one concern: blobs (`blobs`), uploads (`uploads`), manifests
//! and referrers (`manifests`), tags (`tags`) and the catalog (`catalog`). It consults the
//! admission hook before a change, a read-through [`Source`] on a miss in a repository it serves,
//! and tells the parts who asks.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::admission::{Admission, Caller, Change};
use crate::blobs::{BlobContent, BlobInfo, Blobs};
use crate::cache::Caches;
use crate::catalog::Catalog;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::index::IndexState;
use crate::manifest::Descriptor;
use crate::manifests::{ManifestContent, Manifests, References};
use crate::reference::{Reference, RepositoryName, Tag};
use crate::storage::{ByteStream, GetRange, Storage};
use crate::stored::ManifestInfo;
use crate::tags::{Page, TagRecord, Tags};
use crate::upload::UploadStatus;
use crate::uploads::Uploads;

mod groups;
mod history;
pub mod source;

use source::{Read, SharedSource};

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
    pub(crate) reports: Arc<crate::lifecycle::usage::Reports>,
    source: SharedSource,
    caller: Caller,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("storage", &self.storage)
            .field("config", &self.config)
            .field("admission", &self.admission.is_some())
            .field("source", &self.source.is_some())
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
        ));
        let index = Arc::new(IndexState::new(!config.read_only));
        let blobs = Blobs::new(
            storage.clone(),
            caches.clone(),
            index.clone(),
            config.touch_interval,
        );
        Registry {
            uploads: Uploads::new(storage.clone(), blobs.clone()),
            manifests: Manifests::new(
                storage.clone(),
                caches,
                blobs.clone(),
                config.max_manifest_size,
            ),
            tags: Tags::new(storage.clone(), index.clone()),
            catalog: Catalog::new(storage.clone(), index.clone()),
            blobs,
            index,
            storage,
            config: Arc::new(config),
            admission: None,
            groups: Arc::default(),
            pulls: Arc::new(quick_cache::sync::Cache::new(64 * 1024)),
            reports: Arc::new(crate::lifecycle::usage::Reports::new()),
            source: None,
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

    /// A handle on the same registry whose changes are made for `caller`: what admission rules
    /// and tag history see. The HTTP layer takes one per request.
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
        self.storage.list("").await.map(drop)
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

    // ---- blobs ----

    /// Size of a blob in the repository. [`Error::BlobUnknown`] when the repository lacks it.
    pub async fn stat_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<BlobInfo> {
        let local = self.blobs.stat(repo, digest).await;
        self.served_locally(repo, Read::Blob, &local);
        let source = match (&local, self.source_for(repo)) {
            (Err(Error::BlobUnknown { .. }), Some(source)) => source,
            _ => return local,
        };
        match source.blob(&self.fill(), repo, digest, true, false).await? {
            Some(sourced) => Ok(BlobInfo {
                digest: digest.clone(),
                size: sourced.size,
            }),
            None => self.blobs.stat(repo, digest).await,
        }
    }

    /// Streams a blob, or a range of it.
    pub async fn get_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        range: Option<GetRange>,
    ) -> Result<BlobContent> {
        let local = self.blobs.get(repo, digest, range.clone()).await;
        self.served_locally(repo, Read::Blob, &local);
        let source = match (&local, self.source_for(repo)) {
            (Err(Error::BlobUnknown { .. }), Some(source)) => source,
            _ => return local,
        };
        let whole = range.is_none();
        match source
            .blob(&self.fill(), repo, digest, false, whole)
            .await?
        {
            Some(sourced) => Ok(BlobContent {
                digest: digest.clone(),
                size: sourced.size,
                range: 0..sourced.size,
                stream: sourced.stream,
            }),
            None => self.blobs.get(repo, digest, range).await,
        }
    }

    /// A URL from which the blob can be read directly from storage for `expires_in`, when the
    /// backend can sign one; `None` otherwise, and when the blob is still to come from the source
    /// serving the repository. [`Error::BlobUnknown`] when the repository lacks it.
    pub async fn blob_url(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        expires_in: Duration,
    ) -> Result<Option<String>> {
        match self.blobs.url(repo, digest, expires_in).await {
            Err(Error::BlobUnknown { .. }) if self.source_for(repo).is_some() => Ok(None),
            Ok(Some(url)) => {
                self.served_locally(repo, Read::Blob, &Ok(()));
                Ok(Some(url))
            }
            answer => answer,
        }
    }

    /// Removes a blob from a repository. Its bytes stay for other repositories (and for garbage
    /// collection to reclaim when nothing links them).
    pub async fn delete_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<()> {
        self.writable(repo)?;
        self.admit(Change::DeleteBlob {
            repository: repo,
            digest,
        })
        .await?;
        self.blobs.unlink(repo, digest).await
    }

    /// Stores a whole blob in one go, when its digest is known up front (a monolithic push):
    /// hashed as it streams, visible only once the digest (and `expected_len`, if given)
    /// matched. Stored bytes are never replaced.
    pub async fn put_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        data: ByteStream,
        expected_len: Option<u64>,
    ) -> Result<BlobInfo> {
        self.writable(repo)?;
        self.blobs.put(repo, digest, data, expected_len).await
    }

    /// Links a blob into `repo` from `from`, or from anywhere in the store when `from` is `None`,
    /// without copying bytes. [`Error::BlobUnknown`] when the source lacks it.
    pub async fn mount_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        from: Option<&RepositoryName>,
    ) -> Result<BlobInfo> {
        self.writable(repo)?;
        self.blobs.mount(repo, digest, from).await
    }

    // ---- uploads ----

    /// Starts an upload session in `repo`. Storage is touched for the bytes only once they come.
    pub async fn start_upload(&self, repo: &RepositoryName) -> Result<UploadStatus> {
        self.writable(repo)?;
        self.uploads.start(repo).await
    }

    /// Where an upload stands.
    pub async fn upload_status(&self, repo: &RepositoryName, id: &str) -> Result<UploadStatus> {
        self.uploads.status(repo, id).await
    }

    /// Appends a chunk to an upload. `offset`, when the client gave one, must equal the bytes
    /// already received ([`Error::ChunkOutOfOrder`] otherwise, with the current offset);
    /// `expected_len`, when given, must equal the bytes the body carries.
    pub async fn append_chunk(
        &self,
        repo: &RepositoryName,
        id: &str,
        offset: Option<u64>,
        data: ByteStream,
        expected_len: Option<u64>,
    ) -> Result<UploadStatus> {
        self.writable(repo)?;
        self.uploads
            .append(repo, id, offset, data, expected_len)
            .await
    }

    /// Ends an upload: stores an optional last chunk, checks the digest of everything received,
    /// and only then makes the blob visible in the repository. On a digest mismatch nothing is
    /// stored and the session ends. Every step can be repeated: a client retrying after a crash at
    /// any point gets the blob.
    pub async fn complete_upload(
        &self,
        repo: &RepositoryName,
        id: &str,
        digest: &Digest,
        last_chunk: Option<(ByteStream, Option<u64>)>,
    ) -> Result<BlobInfo> {
        self.writable(repo)?;
        self.uploads.complete(repo, id, digest, last_chunk).await
    }

    /// Abandons an upload and frees what it stored.
    pub async fn cancel_upload(&self, repo: &RepositoryName, id: &str) -> Result<()> {
        self.writable(repo)?;
        self.uploads.cancel(repo, id).await
    }

    // ---- manifests and tags ----

    /// Stores a manifest's exact bytes under a tag or its digest, after validating them and
    /// asking the admission hook.
    ///
    /// Order of writes (each atomic): the bytes, the revision link, the referrers entry, the
    /// catalog entry, the tag's history, the tag. A crash between two leaves at worst
    /// unreferenced data, never a tag pointing at nothing.
    pub async fn put_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: Bytes,
    ) -> Result<ManifestInfo> {
        self.writable(repo)?;
        let references = match self.config.validate_references {
            true => References::All,
            false => References::Present,
        };
        self.store_manifest(repo, reference, content_type, bytes, references, true)
            .await
    }

    /// Stores an index of which only some children are here, as a sync that keeps some
    /// platforms does: as [`Registry::put_manifest`] (the admission hook asked, every blob
    /// required), but the children it names may be missing, and a pull of one of those is
    /// `MANIFEST_UNKNOWN`. The index keeps its bytes, so its digest is the upstream's.
    pub async fn put_partial_index(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: Bytes,
    ) -> Result<ManifestInfo> {
        self.writable(repo)?;
        self.store_manifest(
            repo,
            reference,
            content_type,
            bytes,
            References::Blobs,
            true,
        )
        .await
    }

    /// Stores a manifest a source fetched, as [`Registry::put_manifest`] does but without
    /// requiring its blobs and children in the repository (the source fetches those when they
    /// are asked for) and without the admission hook (the upstream's content is not a user's
    /// change). Storing it again refreshes its links' age, which tells garbage collection the
    /// cached manifest is still in use.
    pub(crate) async fn cache_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: Bytes,
    ) -> Result<ManifestInfo> {
        self.store_manifest(
            repo,
            reference,
            content_type,
            bytes,
            References::Unchecked,
            false,
        )
        .await
    }

    async fn store_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: Bytes,
        references: References,
        admit: bool,
    ) -> Result<ManifestInfo> {
        let m = self
            .manifests
            .validate(repo, reference, content_type, bytes, references)
            .await?;
        let digest = &m.info.digest;
        let _one_at_a_time = match (&self.admission, admit) {
            (Some(rules), true) => self.groups.hold(rules.serial_groups(repo)).await,
            _ => Vec::new(),
        };
        let (tag, previous) = match reference {
            Reference::Tag(t) => (Some(t), self.tags.get(repo, t).await?),
            Reference::Digest(_) => (None, None),
        };
        if admit {
            self.admit(Change::PutManifest {
                repository: repo,
                digest,
                manifest: &m.manifest,
                size: m.info.size,
                tag,
            })
            .await?;
            if let Some(tag) = tag {
                self.admit(Change::MoveTag {
                    repository: repo,
                    tag,
                    from: previous.as_ref().map(|p| &p.digest),
                    to: digest,
                })
                .await?;
            }
        }
        self.manifests.store(repo, &m).await?;
        self.catalog.add(repo).await?;
        if let Some(tag) = tag {
            self.tags
                .set(repo, tag, digest, previous.as_ref(), &self.caller, false)
                .await?;
        }
        Ok(m.info)
    }

    /// Digest, media type and size of a manifest, by tag or digest.
    pub async fn stat_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<ManifestInfo> {
        self.refresh_from_source(repo, reference).await?;
        let digest = self.resolve(repo, reference).await?;
        let info = self.manifests.stat(repo, &digest, reference).await?;
        self.note_pull(repo, reference).await;
        Ok(info)
    }

    /// A manifest's bytes as received, by tag or digest.
    pub async fn get_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<ManifestContent> {
        self.refresh_from_source(repo, reference).await?;
        let digest = self.resolve(repo, reference).await?;
        let content = self.manifests.get(repo, &digest, reference).await?;
        self.note_pull(repo, reference).await;
        Ok(content)
    }

    /// A manifest as [`Registry::get_manifest`] reads it, without recording a pull: for pages
    /// that show manifests to people (a look is not a pull, and retention must not count it).
    pub async fn peek_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<ManifestContent> {
        let digest = self.resolve(repo, reference).await?;
        self.manifests.get(repo, &digest, reference).await
    }

    /// Every tag of a repository with when it was last pushed or moved: one listing of its tag
    /// folder, whatever the number of tags (for pages that sort tags by push).
    pub async fn tag_times(
        &self,
        repo: &RepositoryName,
    ) -> Result<Vec<(Tag, std::time::SystemTime)>> {
        self.tags.times(repo).await
    }

    async fn resolve(&self, repo: &RepositoryName, reference: &Reference) -> Result<Digest> {
        match reference {
            Reference::Digest(d) => Ok(d.clone()),
            Reference::Tag(t) => self.tags.resolve(repo, t).await,
        }
    }

    /// Deletes a manifest from a repository, with every tag pointing at it (each change kept in
    /// the tag's history) and its referrers entry, once the admission hook allows it.
    pub async fn delete_manifest(&self, repo: &RepositoryName, digest: &Digest) -> Result<()> {
        self.writable(repo)?;
        self.manifests
            .stat(repo, digest, &Reference::Digest(digest.clone()))
            .await?;
        let tags: Vec<Tag> = self
            .tags
            .all(repo)
            .await?
            .into_iter()
            .filter(|(_, record)| record.digest == *digest)
            .map(|(tag, _)| tag)
            .collect();
        self.admit(Change::DeleteManifest {
            repository: repo,
            digest,
            tags: &tags,
        })
        .await?;
        for tag in &tags {
            self.tags.delete(repo, tag, digest, &self.caller).await?;
        }
        self.manifests.remove(repo, digest).await?;
        self.catalog.remove_if_empty(repo, &self.manifests).await
    }

    /// Removes a tag, keeping the change in its history; the manifest it pointed at stays.
    pub async fn delete_tag(&self, repo: &RepositoryName, tag: &Tag) -> Result<()> {
        self.writable(repo)?;
        let digest = self.tags.resolve(repo, tag).await?;
        self.admit(Change::DeleteTag {
            repository: repo,
            tag,
            digest: &digest,
        })
        .await?;
        self.tags.delete(repo, tag, &digest, &self.caller).await
    }

    /// A tag's record: the manifest it points at and when it last moved. `None` when the
    /// repository has no such tag.
    pub async fn tag(&self, repo: &RepositoryName, tag: &Tag) -> Result<Option<TagRecord>> {
        self.tags.get(repo, tag).await
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
