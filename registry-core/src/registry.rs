//! [`Registry`]: every distribution-spec operation, written once over any [`Storage`].

use std::ops::Range;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::cache::Caches;
use crate::digest::{Digest, Digester};
use crate::error::{Error, Result};
use crate::manifest::{Descriptor, Manifest};
use crate::parts::{End, Multipart};
use crate::paths;
use crate::reference::{Reference, RepositoryName, Tag};
use crate::storage::{ByteStream, GetRange, Storage, StorageExt, join};
use crate::tap::{Tap, check, tapped};
use crate::upload::UploadLocks;

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
    pub metadata_ttl: std::time::Duration,
    /// Bytes of manifests kept in memory, by digest (they never change).
    pub manifest_cache_bytes: u64,
    /// How often a push that reuses a stored blob (found by `HEAD`, mounted, or named by a
    /// manifest) marks it in use, at most, per process. Garbage collection keeps blobs marked within
    /// its grace period, which must therefore exceed this plus the longest push. `None` never
    /// marks: for a registry that serves reads only, so that a `HEAD` never writes.
    pub touch_interval: Option<std::time::Duration>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            max_manifest_size: DEFAULT_MAX_MANIFEST_SIZE,
            validate_references: true,
            metadata_ttl: std::time::Duration::from_secs(5),
            manifest_cache_bytes: 16 * 1024 * 1024,
            touch_interval: Some(std::time::Duration::from_secs(600)),
        }
    }
}

/// Size and digest of a blob in a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's size in bytes.
    pub size: u64,
}

/// Where a blob's bytes are stored: at its own key, or where a streamed upload left them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobLocation {
    /// The storage key holding the bytes.
    pub key: String,
    /// The blob's size in bytes.
    pub size: u64,
}

/// A blob being read: its size, the range being sent and the bytes.
pub struct BlobContent {
    /// The blob's digest.
    pub digest: Digest,
    /// The whole blob's size in bytes.
    pub size: u64,
    /// The bytes carried by `stream`.
    pub range: Range<u64>,
    /// The blob's bytes in `range`.
    pub stream: ByteStream,
}

impl std::fmt::Debug for BlobContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobContent")
            .field("digest", &self.digest)
            .field("size", &self.size)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// What is known about a stored manifest without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestInfo {
    /// Digest of the stored bytes.
    pub digest: Digest,
    /// Media type to serve it with.
    pub media_type: String,
    /// Size of the stored bytes.
    pub size: u64,
    /// The manifest's subject, if it has one.
    pub subject: Option<Digest>,
}

/// A stored manifest: the exact bytes received and what describes them.
#[derive(Debug, Clone)]
pub struct ManifestContent {
    /// Digest, media type and size.
    pub info: ManifestInfo,
    /// The bytes as received at push.
    pub bytes: Bytes,
}

/// One page of a listing, and whether more follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The items, in lexical order.
    pub items: Vec<String>,
    /// True when items after the last one exist.
    pub more: bool,
}

/// The record at a manifest's revision link.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestLink {
    media_type: String,
    size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<Digest>,
}

/// A registry over any [`Storage`]: the operations of the OCI distribution spec, without HTTP.
///
/// Cheap to clone; clones share the storage.
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
#[derive(Debug, Clone)]
pub struct Registry {
    pub(crate) storage: Arc<dyn Storage>,
    config: Arc<RegistryConfig>,
    pub(crate) caches: Arc<Caches>,
    pub(crate) uploads: Arc<UploadLocks>,
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn parse_record<T: for<'de> Deserialize<'de>>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::storage(format!("corrupt record at {key}: {e}")))
}

fn parse_digest_link(key: &str, bytes: &[u8]) -> Result<Digest> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| Error::storage(format!("corrupt link at {key}")))
}

pub(crate) fn to_json(value: &impl Serialize) -> Result<Bytes> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(Error::storage)
}

fn paginate(mut items: Vec<String>, n: Option<usize>, last: Option<&str>) -> Page {
    if let Some(last) = last {
        items.retain(|i| i.as_str() > last);
    }
    let more = n.is_some_and(|n| items.len() > n);
    if let Some(n) = n {
        items.truncate(n);
    }
    Page { items, more }
}

impl Registry {
    /// A registry over `storage`.
    pub fn new(storage: Arc<dyn Storage>, config: RegistryConfig) -> Registry {
        Registry {
            storage,
            caches: Arc::new(Caches::new(
                config.manifest_cache_bytes,
                config.metadata_ttl,
            )),
            config: Arc::new(config),
            uploads: Arc::default(),
        }
    }

    /// The storage underneath, for tools that walk it (garbage collection, scrub).
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The configuration in force.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    // ---- blobs ----

    /// Size of a blob in the repository. [`Error::BlobUnknown`] when the repository lacks it.
    pub async fn stat_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<BlobInfo> {
        self.require_layer(repo, digest).await?;
        let size = self.locate_blob(digest).await?.size;
        // A push that finds the blob here will reference it: keep garbage collection off it, and
        // make sure the link outlived a collection that had already chosen to remove it (which
        // then puts it back, seeing the mark). A read must not fail for the mark (read-only
        // storage); the manifest PUT marks it again.
        match self.touch_blob(digest).await {
            Ok(true) => self.require_layer(repo, digest).await?,
            Ok(false) => {}
            Err(_) => self.caches.put_touched(digest),
        }
        Ok(BlobInfo {
            digest: digest.clone(),
            size,
        })
    }

    /// Streams a blob, or a range of it.
    pub async fn get_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        range: Option<GetRange>,
    ) -> Result<BlobContent> {
        self.require_layer(repo, digest).await?;
        let location = self.locate_blob(digest).await?;
        let res = match self.storage.get(&location.key, range).await {
            Ok(res) => res,
            Err(e) => {
                if e.is_not_found() {
                    // Collected since it was cached.
                    self.caches.forget_blob(digest);
                }
                return Err(self.blob_error(e, digest));
            }
        };
        Ok(BlobContent {
            digest: digest.clone(),
            size: res.size,
            range: res.range,
            stream: res.stream,
        })
    }

    /// A URL from which the blob can be read directly from storage for `expires_in`, when the
    /// backend can sign one; `None` otherwise. [`Error::BlobUnknown`] when the repository lacks it.
    pub async fn blob_url(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        expires_in: std::time::Duration,
    ) -> Result<Option<String>> {
        self.require_layer(repo, digest).await?;
        let location = self.locate_blob(digest).await?;
        self.storage.signed_url(&location.key, expires_in).await
    }

    /// Where a blob's bytes are, in any repository. [`Error::BlobUnknown`] when nowhere.
    ///
    /// Cached by digest: content-addressed bytes never change.
    pub async fn locate_blob(&self, digest: &Digest) -> Result<BlobLocation> {
        match self.caches.blob_location(digest) {
            Some(location) => Ok(location),
            None => self.locate_blob_in_storage(digest).await,
        }
    }

    /// [`Registry::locate_blob`] asking storage, not the cache: for writes that rely on the
    /// bytes being there now (garbage collection in another process may have removed them).
    pub(crate) async fn locate_blob_in_storage(&self, digest: &Digest) -> Result<BlobLocation> {
        let key = paths::blob_data(digest);
        let location = match self.storage.head(&key).await {
            Ok(meta) => BlobLocation {
                key,
                size: meta.size,
            },
            Err(e) if e.is_not_found() && self.storage.rename_copies() => {
                let key = paths::blob_location(digest);
                match self.storage.get_opt(&key).await? {
                    Some(bytes) => parse_record(&key, &bytes)?,
                    None => return Err(self.blob_error(e, digest)),
                }
            }
            Err(e) => return Err(self.blob_error(e, digest)),
        };
        self.caches.put_blob_location(digest, &location);
        Ok(location)
    }

    /// Removes a blob from a repository. Its bytes stay for other repositories (and for garbage
    /// collection to reclaim when nothing links them).
    pub async fn delete_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<()> {
        self.require_layer(repo, digest).await?;
        self.storage.delete(&paths::layer_link(repo, digest)).await
    }

    /// Stores a whole blob in one go, when its digest is known up front (a monolithic push).
    ///
    /// The bytes are hashed as they stream into a multipart upload of this request's own, which
    /// is completed only once the digest (and `expected_len`, if given) matched: at the blob's
    /// final key on object stores (unless the blob is stored already), else at a key of its own
    /// that is then renamed into place unless a blob is there. A blob smaller than a part on
    /// backends that cut parts is written with one put instead. Stored bytes are never replaced.
    pub async fn put_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        data: ByteStream,
        expected_len: Option<u64>,
    ) -> Result<BlobInfo> {
        let in_place = self.storage.rename_copies();
        let key = if in_place {
            paths::blob_data(digest)
        } else {
            paths::upload_data(&uuid::Uuid::new_v4().simple().to_string())
        };
        let (mut id, mut parts) = (None, Vec::new());
        let tap = Tap::new(Digester::new(digest.algorithm()), expected_len);
        let stored = Multipart {
            storage: &self.storage,
            key: &key,
            id: &mut id,
            parts: &mut parts,
        }
        .write(Bytes::new(), tapped(data, tap.clone()), End::Last)
        .await;
        let checked = check(&tap, stored).and_then(|(small, seen)| {
            let actual = seen.digester.finish();
            if actual != *digest {
                return Err(Error::DigestMismatch {
                    expected: digest.clone(),
                    actual,
                });
            }
            Ok((small, seen.len))
        });
        let (small, len) = match (checked, &id) {
            (Ok(ok), _) => ok,
            (Err(e), Some(id)) => {
                self.storage.abort_multipart(&key, id).await?;
                return Err(e);
            }
            (Err(e), None) => return Err(e),
        };
        match id {
            None => self.install_bytes(digest, small).await?,
            Some(id) if in_place => {
                if self.locate_blob_in_storage(digest).await.is_ok() {
                    self.storage.abort_multipart(&key, &id).await?;
                    self.touch_blob(digest).await?;
                } else {
                    self.mark_assembled(digest).await?;
                    self.storage.complete_multipart(&key, &id, parts).await?;
                }
            }
            Some(id) => {
                self.storage.complete_multipart(&key, &id, parts).await?;
                self.install_object(digest, &key).await?;
            }
        }
        self.link_layer(repo, digest).await?;
        self.caches.put_touched(digest);
        Ok(BlobInfo {
            digest: digest.clone(),
            size: len,
        })
    }

    /// Stores a verified blob's bytes at their place, unless the blob is stored already (then
    /// marked in use instead): committed bytes are never replaced.
    pub(crate) async fn install_bytes(&self, digest: &Digest, bytes: Bytes) -> Result<()> {
        if self.locate_blob_in_storage(digest).await.is_ok() {
            self.touch_blob(digest).await?;
            return Ok(());
        }
        self.storage.put(&paths::blob_data(digest), bytes).await?;
        self.caches.put_touched(digest);
        Ok(())
    }

    /// Moves a verified blob's bytes from `from`, a key only this upload writes, to their place
    /// unless a blob is there already (then `from` goes, and the stored blob is marked in use).
    pub(crate) async fn install_object(&self, digest: &Digest, from: &str) -> Result<()> {
        if self
            .storage
            .rename_if_absent(from, &paths::blob_data(digest))
            .await?
        {
            self.caches.put_touched(digest);
        } else {
            self.touch_blob(digest).await?;
            self.storage.delete(from).await?;
        }
        Ok(())
    }

    /// Links a blob into `repo` from `from`, or from anywhere in the store when `from` is `None`,
    /// without copying bytes. [`Error::BlobUnknown`] when the source lacks it.
    pub async fn mount_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        from: Option<&RepositoryName>,
    ) -> Result<BlobInfo> {
        if let Some(from) = from {
            self.require_layer(from, digest).await?;
        }
        let size = self.locate_blob_in_storage(digest).await?.size;
        self.touch_blob(digest).await?;
        self.link_layer(repo, digest).await?;
        Ok(BlobInfo {
            digest: digest.clone(),
            size,
        })
    }

    // ---- manifests ----

    /// Stores a manifest's exact bytes under a tag or its digest, after validating them.
    ///
    /// Order of writes (each atomic): the bytes, the revision link, the referrers entry, the tag.
    /// A crash between two leaves at worst unreferenced data, never a tag pointing at nothing.
    pub async fn put_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: Bytes,
    ) -> Result<ManifestInfo> {
        let validate = self.config.validate_references;
        self.store_manifest(repo, reference, content_type, bytes, validate)
            .await
    }

    /// Stores a manifest fetched from an upstream registry, as [`Registry::put_manifest`] does
    /// but without requiring its blobs and children in the repository: a pull-through cache
    /// fetches those when they are asked for. Storing it again refreshes its links' age, which
    /// tells garbage collection the cached manifest is still in use.
    pub async fn cache_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: Bytes,
    ) -> Result<ManifestInfo> {
        self.store_manifest(repo, reference, content_type, bytes, false)
            .await
    }

    async fn store_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: Bytes,
        validate: bool,
    ) -> Result<ManifestInfo> {
        let limit = self.config.max_manifest_size;
        if bytes.len() as u64 > limit {
            return Err(Error::ManifestTooLarge {
                size: bytes.len() as u64,
                limit,
            });
        }
        let manifest = Manifest::parse(&bytes, content_type)?;
        let digest = match reference {
            Reference::Digest(expected) => {
                let mut d = Digester::new(expected.algorithm());
                d.update(&bytes);
                let actual = d.finish();
                if actual != *expected {
                    return Err(Error::DigestMismatch {
                        expected: expected.clone(),
                        actual,
                    });
                }
                actual
            }
            Reference::Tag(_) => Digest::of(&bytes),
        };
        if validate {
            self.check_references(repo, &manifest).await?;
        }
        let info = ManifestInfo {
            digest: digest.clone(),
            media_type: manifest.media_type.clone(),
            size: bytes.len() as u64,
            subject: manifest.subject.as_ref().map(|s| s.digest.clone()),
        };
        self.storage
            .put(&paths::blob_data(&digest), bytes.clone())
            .await?;
        let link = ManifestLink {
            media_type: info.media_type.clone(),
            size: info.size,
            subject: info.subject.clone(),
        };
        self.storage
            .put(&paths::manifest_link(repo, &digest), to_json(&link)?)
            .await?;
        if let Some(subject) = &info.subject {
            let entry = Descriptor {
                media_type: info.media_type.clone(),
                digest: digest.clone(),
                size: info.size,
                artifact_type: manifest.referrer_artifact_type(),
                annotations: manifest.annotations.clone(),
                urls: None,
                platform: None,
            };
            self.storage
                .put(&paths::referrer(repo, subject, &digest), to_json(&entry)?)
                .await?;
        }
        if let Reference::Tag(tag) = reference {
            self.storage
                .put(&paths::tag_link(repo, tag), Bytes::from(digest.to_string()))
                .await?;
        }
        self.caches.put_manifest_bytes(&digest, &bytes);
        self.caches.put_revision(repo, &info);
        Ok(info)
    }

    /// Digest, media type and size of a manifest, by tag or digest.
    pub async fn stat_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<ManifestInfo> {
        let digest = match reference {
            Reference::Digest(d) => d.clone(),
            Reference::Tag(t) => self.resolve_tag(repo, t).await?,
        };
        if let Some(info) = self.caches.revision(repo, &digest) {
            return Ok(info);
        }
        let key = paths::manifest_link(repo, &digest);
        let bytes = self
            .storage
            .get_opt(&key)
            .await?
            .ok_or_else(|| Error::ManifestUnknown {
                reference: reference.to_string(),
            })?;
        let link: ManifestLink = parse_record(&key, &bytes)?;
        let info = ManifestInfo {
            digest,
            media_type: link.media_type,
            size: link.size,
            subject: link.subject,
        };
        self.caches.put_revision(repo, &info);
        Ok(info)
    }

    /// A manifest's bytes as received, by tag or digest.
    pub async fn get_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<ManifestContent> {
        let info = self.stat_manifest(repo, reference).await?;
        if let Some(bytes) = self.caches.manifest_bytes(&info.digest) {
            return Ok(ManifestContent { info, bytes });
        }
        let bytes = self
            .storage
            .get_opt(&paths::blob_data(&info.digest))
            .await?
            .ok_or_else(|| Error::ManifestUnknown {
                reference: reference.to_string(),
            })?;
        let mut check = Digester::new(info.digest.algorithm());
        check.update(&bytes);
        if check.finish() != info.digest {
            return Err(Error::storage(format!(
                "stored manifest {} does not match its digest",
                info.digest
            )));
        }
        self.caches.put_manifest_bytes(&info.digest, &bytes);
        Ok(ManifestContent { info, bytes })
    }

    /// Deletes a manifest from a repository, with every tag pointing at it and its referrers entry.
    pub async fn delete_manifest(&self, repo: &RepositoryName, digest: &Digest) -> Result<()> {
        self.stat_manifest(repo, &Reference::Digest(digest.clone()))
            .await?;
        for tag in self.storage.list(&paths::tags(repo)).await?.prefixes {
            let Ok(tag) = tag.parse::<Tag>() else {
                continue;
            };
            let key = paths::tag_link(repo, &tag);
            if let Some(bytes) = self.storage.get_opt(&key).await?
                && parse_digest_link(&key, &bytes)? == *digest
            {
                self.storage.delete(&key).await?;
            }
        }
        self.remove_revision(repo, digest).await
    }

    /// Removes a manifest that no tag names (for garbage collection): its referrers entry, then
    /// its revision link. Unlike [`Registry::delete_manifest`], tags are not looked at.
    pub(crate) async fn remove_revision(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<()> {
        let info = self
            .stat_manifest(repo, &Reference::Digest(digest.clone()))
            .await?;
        if let Some(subject) = &info.subject {
            self.storage
                .delete(&paths::referrer(repo, subject, digest))
                .await?;
        }
        self.caches.forget_revision(repo, digest);
        self.storage
            .delete(&paths::manifest_link(repo, digest))
            .await
    }

    /// Removes a tag; the manifest it pointed at stays.
    pub async fn delete_tag(&self, repo: &RepositoryName, tag: &Tag) -> Result<()> {
        self.resolve_tag(repo, tag).await?;
        self.storage.delete(&paths::tag_link(repo, tag)).await
    }

    // ---- listings ----

    /// Tags of a repository in lexical order, at most `n` after `last`.
    /// [`Error::NameUnknown`] when the name is no repository: it holds neither manifests nor
    /// blobs of its own (a name that is only the namespace of other repositories included). A
    /// repository whose manifests were all deleted still lists, empty, as with distribution:
    /// clients such as `skopeo list-tags` take 404 for an error.
    pub async fn list_tags(
        &self,
        repo: &RepositoryName,
        n: Option<usize>,
        last: Option<&str>,
    ) -> Result<Page> {
        let tags = self.storage.list(&paths::tags(repo)).await?.prefixes;
        if tags.is_empty() {
            let own = self.storage.list(&paths::repository(repo)).await?.prefixes;
            if !own.iter().any(|p| paths::is_repository_entry(p)) {
                return Err(Error::NameUnknown {
                    name: repo.to_string(),
                });
            }
        }
        Ok(paginate(tags, n, last))
    }

    /// Repositories holding at least one manifest, in lexical order, at most `n` after `last`.
    pub async fn list_repositories(&self, n: Option<usize>, last: Option<&str>) -> Result<Page> {
        let mut names = Vec::new();
        let mut pending = vec![(paths::REPOSITORIES.to_owned(), String::new())];
        while let Some((key, name)) = pending.pop() {
            for p in self.storage.list(&key).await?.prefixes {
                if p == paths::MANIFESTS_DIR {
                    names.push(name.clone());
                } else if !p.starts_with('_') {
                    pending.push((join(&key, &p), join(&name, &p)));
                }
            }
        }
        names.sort();
        Ok(paginate(names, n, last))
    }

    /// Descriptors of the manifests in `repo` whose subject is `subject`, optionally only those of
    /// one artifact type. Read from an index kept at manifest push: no scan.
    pub async fn list_referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        let entries = self.storage.list(&paths::referrers(repo, subject)).await?;
        let storage = self.storage.clone();
        let descriptors: Vec<Option<Descriptor>> = futures::stream::iter(entries.objects)
            .map(move |o| {
                let storage = storage.clone();
                async move {
                    match storage.get_opt(&o.key).await? {
                        Some(bytes) => parse_record(&o.key, &bytes).map(Some),
                        None => Ok(None),
                    }
                }
            })
            .buffered(16)
            .try_collect()
            .await?;
        Ok(descriptors
            .into_iter()
            .flatten()
            .filter(|d| artifact_type.is_none_or(|t| d.artifact_type.as_deref() == Some(t)))
            .collect())
    }

    // ---- helpers ----

    async fn require_layer(&self, repo: &RepositoryName, digest: &Digest) -> Result<()> {
        if self
            .storage
            .exists(&paths::layer_link(repo, digest))
            .await?
        {
            Ok(())
        } else {
            Err(Error::BlobUnknown {
                digest: digest.clone(),
            })
        }
    }

    pub(crate) async fn link_layer(&self, repo: &RepositoryName, digest: &Digest) -> Result<()> {
        self.storage
            .put(
                &paths::layer_link(repo, digest),
                Bytes::from(digest.to_string()),
            )
            .await
    }

    /// Marks a stored blob as in use by a push ([`paths::blob_used`]), at most once per
    /// [`RegistryConfig::touch_interval`] per process; true when it wrote the mark.
    pub(crate) async fn touch_blob(&self, digest: &Digest) -> Result<bool> {
        let Some(interval) = self.config.touch_interval else {
            return Ok(false);
        };
        if self.caches.touched_within(digest, interval) {
            return Ok(false);
        }
        self.storage
            .put(&paths::blob_used(digest), Bytes::new())
            .await?;
        self.caches.put_touched(digest);
        Ok(true)
    }

    /// Marks a blob in use just before a multipart upload assembles it, on stores that date such
    /// an object from the upload's start (S3): a long upload would otherwise look old to garbage
    /// collection until its repository links it.
    async fn mark_assembled(&self, digest: &Digest) -> Result<()> {
        if self.storage.part_size().is_none() {
            return Ok(());
        }
        self.storage
            .put(&paths::blob_used(digest), Bytes::new())
            .await?;
        self.caches.put_touched(digest);
        Ok(())
    }

    /// Drops what this process remembers about a blob that garbage collection removed.
    pub(crate) fn forget_blob(&self, digest: &Digest) {
        self.caches.forget_blob(digest);
    }

    fn blob_error(&self, e: Error, digest: &Digest) -> Error {
        if e.is_not_found() {
            Error::BlobUnknown {
                digest: digest.clone(),
            }
        } else {
            e
        }
    }

    async fn resolve_tag(&self, repo: &RepositoryName, tag: &Tag) -> Result<Digest> {
        let key = paths::tag_link(repo, tag);
        let bytes = self
            .storage
            .get_opt(&key)
            .await?
            .ok_or_else(|| Error::ManifestUnknown {
                reference: tag.to_string(),
            })?;
        parse_digest_link(&key, &bytes)
    }

    async fn check_references(&self, repo: &RepositoryName, manifest: &Manifest) -> Result<()> {
        let blobs = manifest
            .blob_references()
            .map(|d| (paths::layer_link(repo, &d.digest), d.digest.clone()));
        let children = manifest
            .manifests
            .iter()
            .map(|d| (paths::manifest_link(repo, &d.digest), d.digest.clone()));
        let checks: Vec<_> = blobs.chain(children).collect();
        futures::stream::iter(checks)
            .map(move |(key, digest)| async move {
                if self.storage.exists(&key).await? {
                    // Keep garbage collection off what this manifest is about to reference.
                    self.touch_blob(&digest).await.map(drop)
                } else {
                    Err(Error::ManifestBlobUnknown { digest })
                }
            })
            .buffer_unordered(16)
            .try_collect::<()>()
            .await
    }
}
