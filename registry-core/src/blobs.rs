//! [`Blobs`]: where blob bytes are, which repository links them, their in-use marks, and how a
//! verified blob is installed without ever replacing committed bytes.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cache::Caches;
use crate::candidates::Candidates;
use crate::clock::SharedClock;
use crate::digest::{Digest, Digester};
use crate::error::{Error, Result};
use crate::index::IndexState;
use crate::parts::{End, Multipart};
use crate::paths;
use crate::reference::RepositoryName;
use crate::storage::{ByteStream, GetRange, Storage, StorageError, StorageExt};
use crate::stored::BlobLocation;
use crate::tap::{Tap, check, tapped};

/// Size and digest of a blob in a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// The blob's digest.
    pub digest: Digest,
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

/// The blob store: bytes once per digest, shared by the repositories that link them.
#[derive(Debug, Clone)]
pub(crate) struct Blobs {
    storage: Arc<dyn Storage>,
    caches: Arc<Caches>,
    index: Arc<IndexState>,
    /// See [`crate::RegistryConfig::touch_interval`].
    touch_interval: Option<Duration>,
    clock: SharedClock,
    /// What links and unlinks record for garbage collection.
    pub(crate) candidates: Arc<Candidates>,
}

/// How long a collection's announcement that it removes a blob ([`paths::blob_collecting`])
/// holds: a collection takes a few storage requests from it to the removal; one older than
/// this was left by a collection that stopped, and pushes ignore it (the next collection removes
/// it). A collection must therefore never pause this long between the two.
pub(crate) const COLLECTING_FOR: Duration = Duration::from_secs(300);

impl Blobs {
    pub fn new(
        storage: Arc<dyn Storage>,
        caches: Arc<Caches>,
        index: Arc<IndexState>,
        touch_interval: Option<Duration>,
        clock: SharedClock,
    ) -> Blobs {
        let candidates = Arc::new(Candidates::new(
            storage.clone(),
            clock.clone(),
            touch_interval,
        ));
        Blobs {
            storage,
            caches,
            index,
            touch_interval,
            clock,
            candidates,
        }
    }

    /// Whether a collection announced, less than [`COLLECTING_FOR`] ago, that it removes the
    /// blob: a push must not reference it then. One listing of the blob's folder.
    pub async fn being_collected(&self, digest: &Digest) -> Result<bool> {
        let now = self.clock.now();
        let listed = self.storage.list(&paths::blob_folder(digest)).await?;
        Ok(listed.objects.iter().any(|o| {
            matches!(
                paths::parse_blob_key(&o.key),
                Some((_, paths::BlobObject::Collecting))
            ) && now
                .duration_since(o.last_modified)
                .map_or(true, |age| age < COLLECTING_FOR)
        }))
    }

    /// Whether `repo` links the blob.
    pub async fn linked(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool> {
        Ok(self
            .storage
            .exists(&paths::layer_link(repo, digest))
            .await?)
    }

    /// [`Error::BlobUnknown`] unless `repo` links the blob.
    pub async fn require_link(&self, repo: &RepositoryName, digest: &Digest) -> Result<()> {
        if self.linked(repo, digest).await? {
            Ok(())
        } else {
            Err(Error::BlobUnknown {
                digest: digest.clone(),
            })
        }
    }

    /// Makes the blob part of `repo`.
    pub async fn link(&self, repo: &RepositoryName, digest: &Digest) -> Result<()> {
        // Whether the store keeps the index is settled before its first repository is written.
        self.index.legacy(&*self.storage).await?;
        self.candidates.linking(repo, digest).await?;
        Ok(self
            .storage
            .put(
                &paths::layer_link(repo, digest),
                Bytes::from(digest.to_string()),
            )
            .await?)
    }

    /// Size of a blob in the repository. [`Error::BlobUnknown`] when the repository lacks it.
    pub async fn stat(&self, repo: &RepositoryName, digest: &Digest) -> Result<BlobInfo> {
        self.require_link(repo, digest).await?;
        let size = self.locate(digest).await?.size;
        // A push that finds the blob here will reference it: keep garbage collection off it, and
        // make sure the link outlived a collection that had already chosen to remove it (which
        // then puts it back, seeing the mark). A read must not fail for the mark (read-only
        // storage); the manifest PUT marks it again.
        match self.touch(digest).await {
            Ok(true) => self.require_link(repo, digest).await?,
            Ok(false) => {}
            Err(_) => self.caches.put_touched(digest),
        }
        Ok(BlobInfo {
            digest: digest.clone(),
            size,
        })
    }

    /// Streams a blob of the repository, or a range of it.
    pub async fn get(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        range: Option<GetRange>,
    ) -> Result<BlobContent> {
        self.require_link(repo, digest).await?;
        let location = self.locate(digest).await?;
        let got = self
            .storage
            .get_immutable(&location.key, location.size, range)
            .await;
        let res = match got {
            Ok(res) => res,
            Err(e) => {
                if e.is_not_found() {
                    // Collected since it was cached.
                    self.caches.forget_blob(digest);
                }
                return Err(unknown(e, digest));
            }
        };
        Ok(BlobContent {
            digest: digest.clone(),
            size: res.size,
            range: res.range,
            stream: res.stream,
        })
    }

    /// A signed URL reading the blob straight from storage, when the backend can sign one.
    pub async fn url(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        expires_in: Duration,
    ) -> Result<Option<String>> {
        self.require_link(repo, digest).await?;
        let location = self.locate(digest).await?;
        match self.storage.signer() {
            Some(signer) => Ok(Some(signer.signed_url(&location.key, expires_in).await?)),
            None => Ok(None),
        }
    }

    /// Where a blob's bytes are, in any repository. [`Error::BlobUnknown`] when nowhere.
    ///
    /// Cached by digest: content-addressed bytes never change.
    pub async fn locate(&self, digest: &Digest) -> Result<BlobLocation> {
        match self.caches.blob_location(digest) {
            Some(location) => Ok(location),
            None => self.locate_in_storage(digest).await,
        }
    }

    /// [`Blobs::locate`] asking storage, not the cache: for writes that rely on the bytes being
    /// there now (garbage collection in another process may have removed them).
    pub async fn locate_in_storage(&self, digest: &Digest) -> Result<BlobLocation> {
        let key = paths::blob_data(digest);
        let location = match self.storage.head(&key).await {
            Ok(meta) => BlobLocation {
                key,
                size: meta.size,
            },
            Err(e) if e.is_not_found() && self.storage.capabilities().rename_copies => {
                let key = paths::blob_location(digest);
                match self.storage.get_opt(&key).await? {
                    Some(bytes) => parse_record(&key, &bytes)?,
                    None => return Err(unknown(e, digest)),
                }
            }
            Err(e) => return Err(unknown(e, digest)),
        };
        self.caches.put_blob_location(digest, &location);
        Ok(location)
    }

    /// Removes a blob from a repository. Its bytes stay for other repositories (and for garbage
    /// collection to reclaim when nothing links them).
    pub async fn unlink(&self, repo: &RepositoryName, digest: &Digest) -> Result<()> {
        self.require_link(repo, digest).await?;
        self.candidates.blob(digest).await?;
        Ok(self
            .storage
            .delete(&paths::layer_link(repo, digest))
            .await?)
    }

    /// Stores a whole blob in one go, when its digest is known up front (a monolithic push).
    ///
    /// The bytes are hashed as they stream into a multipart upload of this request's own, which
    /// is completed only once the digest (and `expected_len`, if given) matched: at the blob's
    /// final key on object stores (unless the blob is stored already), else at a key of its own
    /// that is then renamed into place unless a blob is there. A blob smaller than a part on
    /// backends that cut parts is written with one put instead. Stored bytes are never replaced.
    pub async fn put(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        data: ByteStream,
        expected_len: Option<u64>,
    ) -> Result<BlobInfo> {
        let in_place = self.storage.capabilities().rename_copies
            && self.storage.capabilities().uploads_isolated;
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
                if self.locate_in_storage(digest).await.is_ok() {
                    self.storage.abort_multipart(&key, &id).await?;
                    self.touch(digest).await?;
                } else {
                    self.mark_assembled(digest).await?;
                    self.candidates.blob(digest).await?;
                    self.storage.complete_multipart(&key, &id, parts).await?;
                }
            }
            Some(id) => {
                self.storage.complete_multipart(&key, &id, parts).await?;
                self.install_object(digest, &key).await?;
            }
        }
        self.link(repo, digest).await?;
        self.caches.put_touched(digest);
        Ok(BlobInfo {
            digest: digest.clone(),
            size: len,
        })
    }

    /// Links a blob into `repo` from `from`, or from anywhere in the store when `from` is `None`,
    /// without copying bytes. [`Error::BlobUnknown`] when the source lacks it.
    pub async fn mount(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        from: Option<&RepositoryName>,
    ) -> Result<BlobInfo> {
        if let Some(from) = from {
            self.require_link(from, digest).await?;
        }
        let size = self.locate_in_storage(digest).await?.size;
        self.touch(digest).await?;
        self.link(repo, digest).await?;
        Ok(BlobInfo {
            digest: digest.clone(),
            size,
        })
    }

    /// Writes a manifest's bytes at their place (the same bytes for the same digest), and makes
    /// sure no collection removes them: one that read them as old before this write and
    /// announced their removal makes the push fail (to be tried again), and bytes removed
    /// meanwhile are written again.
    pub async fn put_held(&self, digest: &Digest, bytes: Bytes) -> Result<()> {
        let key = paths::blob_data(digest);
        self.candidates.blob(digest).await?;
        for _ in 0..3 {
            self.storage.put(&key, bytes.clone()).await?;
            if self.being_collected(digest).await? {
                break;
            }
            if self.storage.exists(&key).await? {
                self.caches.put_touched(digest);
                return Ok(());
            }
        }
        Err(Error::BeingCollected {
            digest: digest.clone(),
        })
    }

    /// Stores a verified blob's bytes at their place, unless the blob is stored already (then
    /// marked in use instead): committed bytes are never replaced.
    pub async fn install_bytes(&self, digest: &Digest, bytes: Bytes) -> Result<()> {
        if self.locate_in_storage(digest).await.is_ok() {
            self.touch(digest).await?;
            return Ok(());
        }
        self.candidates.blob(digest).await?;
        self.storage.put(&paths::blob_data(digest), bytes).await?;
        self.caches.put_touched(digest);
        Ok(())
    }

    /// Moves a verified blob's bytes from `from`, a key only one upload writes, to their place
    /// unless a blob is there already (then `from` goes, and the stored blob is marked in use).
    pub async fn install_object(&self, digest: &Digest, from: &str) -> Result<()> {
        self.candidates.blob(digest).await?;
        if self
            .storage
            .rename_if_absent(from, &paths::blob_data(digest))
            .await?
        {
            self.caches.put_touched(digest);
        } else {
            self.touch(digest).await?;
            self.storage.delete(from).await?;
        }
        Ok(())
    }

    /// Makes the bytes of a completed upload, left at `data_key` on an object store, the blob's:
    /// by a location record unless the blob is stored already (then they go).
    pub async fn install_location(&self, digest: &Digest, data_key: &str, size: u64) -> Result<()> {
        match self.locate_in_storage(digest).await {
            // Already stored (maybe by this very upload, before a crash).
            Ok(found) if found.key == data_key => Ok(()),
            Ok(_) => {
                self.touch(digest).await?;
                Ok(self.storage.delete(data_key).await?)
            }
            Err(Error::BlobUnknown { .. }) => {
                self.candidates.blob(digest).await?;
                let location = BlobLocation {
                    key: data_key.to_owned(),
                    size,
                };
                Ok(self
                    .storage
                    .put(&paths::blob_location(digest), to_json(&location)?)
                    .await?)
            }
            Err(e) => Err(e),
        }
    }

    /// Marks a stored blob as in use by a push ([`paths::blob_used`]), at most once per
    /// [`crate::RegistryConfig::touch_interval`] per process; true when it wrote the mark.
    pub async fn touch(&self, digest: &Digest) -> Result<bool> {
        let Some(interval) = self.touch_interval else {
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

    /// Remembers that this process just wrote or reused the blob.
    pub fn touched(&self, digest: &Digest) {
        self.caches.put_touched(digest);
    }

    /// Marks a blob in use just before a multipart upload assembles it, on stores that date such
    /// an object from the upload's start (S3): a long upload would otherwise look old to garbage
    /// collection until its repository links it.
    async fn mark_assembled(&self, digest: &Digest) -> Result<()> {
        if self.storage.capabilities().part_size.is_none() {
            return Ok(());
        }
        self.storage
            .put(&paths::blob_used(digest), Bytes::new())
            .await?;
        self.caches.put_touched(digest);
        Ok(())
    }

    /// Drops what this process remembers about a blob that garbage collection removed.
    pub fn forget(&self, digest: &Digest) {
        self.caches.forget_blob(digest);
    }
}

/// A missing key as the blob it stood for.
fn unknown(e: StorageError, digest: &Digest) -> Error {
    if e.is_not_found() {
        Error::BlobUnknown {
            digest: digest.clone(),
        }
    } else {
        e.into()
    }
}

/// A JSON record read from `key`; a record that does not parse is a storage failure.
pub(crate) fn parse_record<T: for<'de> Deserialize<'de>>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::storage(format!("corrupt record at {key}: {e}")))
}

/// A record as JSON.
pub(crate) fn to_json(value: &impl Serialize) -> Result<Bytes> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(Error::storage)
}
