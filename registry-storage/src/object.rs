//! [`ObjectStorage`]: any [`object_store::ObjectStore`] (S3 and its kin, GCS, Azure, in-memory) as
//! a registry backend ([`crate::S3Options`], [`crate::GcsOptions`] and [`crate::AzureOptions`]
//! build one for each cloud).
//!
//! What lives where, on an object store:
//! - every key of the registry layout is one object, under an optional prefix;
//! - multipart uploads are the store's own ([`MultipartStore`]): their id and the parts' receipts
//!   are plain strings kept in the registry's upload session, so any process holding the same
//!   bucket can add parts to an upload another one began, or complete it;
//! - parts must be at least 5 MiB (except the last) and each is sent in one request, so the backend
//!   asks the registry for parts of [`PartSize::target`] bytes ([`Capabilities::part_size`]), and the
//!   registry keeps smaller remainders in a small object until more bytes come;
//! - renaming copies bytes on object stores ([`Capabilities::rename_copies`]), so the registry never
//!   renames blobs: a streamed upload completes where it began and the blob records its location.
//!
//! Nothing relies on conditional writes ([`crate::S3Options::build`] disables them), so engines that ignore
//! `If-None-Match` or mishandle `If-Match` (Garage, rclone, Ceph RGW 16) are safe.
//!
//! Requests to S3 per blob with the default 16 MiB parts, as counted from moto's log by
//! `scripts/s3-requests.sh` (a blob of `n` parts):
//! - monolithic push (`POST ?digest=`): create the multipart at the blob's own key, `n` parts,
//!   look for the blob (bytes, then a location record: two misses; a stored blob is never
//!   written again), put the blob's in-use mark (S3 dates an assembled object from the upload's
//!   start, which garbage collection must not take for its age), complete, put the layer link:
//!   `n + 6` (9 for 40 MiB); under one part, the two lookups, one put of the bytes and the link: 4;
//! - streamed push (`POST`, `PATCH`, `PUT ?digest=`): the `POST` puts the session (1); a `PATCH`
//!   gets the session, creates the multipart on its first part, stores its parts and puts the
//!   session (`n + 3`, with one get more and a put and a delete of the tail when a remainder under
//!   5 MiB is kept); the `PUT` gets the session, completes, looks for the blob (two misses), puts
//!   the location record and the link, deletes the session (7): 14 for 40 MiB in one `PATCH`;
//! - pull: the layer link, the blob's size or location (the first time per process: a miss on
//!   its own key, then the record) and one ranged or whole GET: 4, then 2; `HEAD`: the link, then
//!   at most once per blob and ten minutes per process the in-use mark and the link again: 3,
//!   then 1;
//! - `registry gc` over 2 repositories holding 4 unreferenced blobs: 24 requests to decide
//!   (`--dry-run`), 44 to remove them (flat listings: one request per thousand keys).

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::multipart::{MultipartStore, PartId as StorePartId};
use object_store::path::Path;
#[cfg(feature = "s3")]
use object_store::signer::Signer;
use object_store::{GetOptions, ObjectStore, ObjectStoreExt, PutPayload};
#[cfg(feature = "s3")]
use registry_core::SignUrls;
use registry_core::storage::join;
use registry_core::storage::{Result, StorageError};
use registry_core::{
    ByteStream, Capabilities, GetRange, GetResult, ListResult, Multipart, MultipartId, ObjectMeta,
    PartId, PartSize, Storage,
};

use crate::ranged::RangedReads;

/// S3's smallest part (but the last).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// The default part size: 16 MiB parts allow blobs of up to 160 GB (S3 takes 10 000 parts).
pub const DEFAULT_PART_SIZE: u64 = 16 * 1024 * 1024;
/// Parts of one upload stored at once by default.
pub const DEFAULT_PARTS_IN_FLIGHT: usize = 2;
/// Ranged GETs of one blob in flight by default: one plain GET (see [`RangedReads`]).
pub const DEFAULT_RANGED_READS: usize = 1;

/// A registry backend over an object store.
#[derive(Clone)]
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    multipart: Arc<dyn MultipartStore>,
    #[cfg(feature = "s3")]
    signer: Option<Arc<dyn Signer>>,
    prefix: String,
    part_size: PartSize,
    ranged_reads: RangedReads,
    uploads_isolated: bool,
}

impl fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStorage")
            .field("store", &self.store.to_string())
            .field("prefix", &self.prefix)
            .field("part_size", &self.part_size)
            .finish_non_exhaustive()
    }
}

impl ObjectStorage {
    /// A backend over `store`, whose multipart uploads it uses directly. Keys live under `prefix`
    /// (empty for the store's root).
    pub fn new<S: ObjectStore + MultipartStore>(store: Arc<S>, prefix: &str) -> ObjectStorage {
        ObjectStorage {
            store: store.clone(),
            multipart: store,
            #[cfg(feature = "s3")]
            signer: None,
            prefix: prefix.trim_matches('/').to_owned(),
            part_size: PartSize {
                min: MIN_PART_SIZE,
                target: DEFAULT_PART_SIZE,
                in_flight: DEFAULT_PARTS_IN_FLIGHT,
            },
            ranged_reads: RangedReads {
                in_flight: DEFAULT_RANGED_READS,
                range: DEFAULT_PART_SIZE,
            },
            uploads_isolated: true,
        }
    }

    /// Says that completing one multipart upload of a key discards the parts of the others (Azure):
    /// see [`Capabilities::uploads_isolated`].
    pub fn with_shared_upload_parts(mut self) -> ObjectStorage {
        self.uploads_isolated = false;
        self
    }

    /// Cuts parts to `target` bytes, and holds back remainders under `min` (the store's smallest
    /// part). Tests use tiny sizes to exercise part boundaries with small blobs.
    pub fn with_part_size(mut self, min: u64, target: u64) -> ObjectStorage {
        self.part_size = PartSize {
            min,
            target: target.max(min).max(1),
            in_flight: self.part_size.in_flight,
        };
        self
    }

    /// Stores up to `n` parts of one upload at once (at least 1): an upload then holds up to
    /// `n + 1` parts in memory.
    pub fn with_parts_in_flight(mut self, n: usize) -> ObjectStorage {
        self.part_size.in_flight = n.max(1);
        self
    }

    /// Reads blobs larger than `range` bytes with up to `n` ranged GETs of `range` bytes at once
    /// (1: one plain GET): a pull then holds up to `n + 1` ranges in memory (those in flight and
    /// the one being sent).
    pub fn with_ranged_reads(mut self, n: usize, range: u64) -> ObjectStorage {
        self.ranged_reads = RangedReads {
            in_flight: n.max(1),
            range: range.max(1),
        };
        self
    }

    /// Lets [`Storage::signer`] sign URLs with `signer` (for redirecting pulls to the store).
    /// Feature `s3`: signing comes with the cloud clients.
    #[cfg(feature = "s3")]
    pub fn with_signer(mut self, signer: Arc<dyn Signer>) -> ObjectStorage {
        self.signer = Some(signer);
        self
    }

    fn path(&self, key: &str) -> Result<Path> {
        Path::parse(join(&self.prefix, key)).map_err(StorageError::backend)
    }

    /// One GET of `range` of the object (all of it without), streamed; `size` is the object's
    /// when the caller knows it.
    async fn read(
        &self,
        key: &str,
        range: Option<std::ops::Range<u64>>,
        size: Option<u64>,
    ) -> Result<GetResult> {
        let opts = GetOptions::default().with_range(range);
        let res = self
            .store
            .get_opts(&self.path(key)?, opts)
            .await
            .map_err(map_err(key))?;
        let size = size.unwrap_or(res.meta.size);
        let range = res.range.clone();
        let stream = res
            .into_stream()
            .map_err(|e| std::io::Error::other(e.to_string()))
            .boxed();
        Ok(GetResult {
            size,
            range,
            stream,
        })
    }

    /// The key of `path`, relative to the prefix.
    fn key<'a>(&self, path: &'a Path) -> &'a str {
        let full = path.as_ref();
        if self.prefix.is_empty() {
            return full;
        }
        full.strip_prefix(self.prefix.as_str())
            .and_then(|k| k.strip_prefix('/'))
            .unwrap_or(full)
    }
}

/// Maps the store's errors to the storage categories of [`StorageError`].
fn map_err(key: &str) -> impl Fn(object_store::Error) -> StorageError + '_ {
    move |e| match e {
        e if is_not_found(&e) => StorageError::NotFound {
            key: key.to_owned(),
        },
        object_store::Error::NotImplemented { .. } | object_store::Error::NotSupported { .. } => {
            StorageError::Unsupported {
                operation: "this object store call",
            }
        }
        other => StorageError::backend(other),
    }
}

/// A missing object or multipart upload (the in-memory store reports the latter as a generic
/// `UploadNotFound`).
fn is_not_found(e: &object_store::Error) -> bool {
    match e {
        object_store::Error::NotFound { .. } => true,
        object_store::Error::Generic { source, .. } => {
            format!("{source:?}").starts_with("UploadNotFound")
        }
        _ => false,
    }
}

fn meta(key: String, m: &object_store::ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        key,
        size: m.size,
        last_modified: SystemTime::from(m.last_modified),
    }
}

#[async_trait]
impl Storage for ObjectStorage {
    async fn get(&self, key: &str, range: Option<GetRange>) -> Result<GetResult> {
        // A range is checked against the size first: stores differ in how they refuse bad ones.
        match range {
            Some(r) => {
                let size = self.head(key).await?.size;
                self.read(key, Some(r.resolve(size)?), Some(size)).await
            }
            None => self.read(key, None, None).await,
        }
    }

    /// The size is known, so a range needs no `HEAD` first; a large read is split into ranged
    /// GETs sent at once when [`ObjectStorage::with_ranged_reads`] asks for it.
    async fn get_immutable(
        &self,
        key: &str,
        size: u64,
        range: Option<GetRange>,
    ) -> Result<GetResult> {
        let bytes = match &range {
            Some(r) => r.resolve(size)?,
            None => 0..size,
        };
        if !self.ranged_reads.applies(bytes.end - bytes.start) {
            return self.read(key, range.map(|_| bytes), Some(size)).await;
        }
        let stream = self
            .ranged_reads
            .stream(self.store.clone(), self.path(key)?, bytes.clone());
        Ok(GetResult {
            size,
            range: bytes,
            stream,
        })
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let m = self
            .store
            .head(&self.path(key)?)
            .await
            .map_err(map_err(key))?;
        Ok(meta(key.to_owned(), &m))
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        self.store
            .put(&self.path(key)?, PutPayload::from(data))
            .await
            .map_err(map_err(key))?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        match self.store.delete(&self.path(key)?).await {
            Err(e) if !is_not_found(&e) => Err(map_err(key)(e)),
            _ => Ok(()),
        }
    }

    async fn list(&self, prefix: &str) -> Result<ListResult> {
        let full = join(&self.prefix, prefix);
        let path = if full.is_empty() {
            None
        } else {
            Some(Path::parse(&full).map_err(StorageError::backend)?)
        };
        let res = self
            .store
            .list_with_delimiter(path.as_ref())
            .await
            .map_err(map_err(prefix))?;
        let name_of = |p: &Path| {
            self.key(p)
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned()
        };
        let mut objects: Vec<ObjectMeta> = res
            .objects
            .iter()
            .map(|m| meta(join(prefix, &name_of(&m.location)), m))
            .collect();
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        let mut prefixes: Vec<String> = res.common_prefixes.iter().map(name_of).collect();
        prefixes.sort();
        prefixes.dedup();
        Ok(ListResult { objects, prefixes })
    }

    /// One listing from the offset (S3's `start-after`), read only as far as the page needs.
    async fn list_after(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ObjectMeta>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let folder = self.path(prefix)?;
        let offset = match after {
            Some(after) => Some(self.path(&join(prefix, after))?),
            None => None,
        };
        let listing = match &offset {
            Some(offset) => self.store.list_with_offset(Some(&folder), offset),
            None => self.store.list(Some(&folder)),
        };
        let depth = folder.parts().count() + 1;
        listing
            .map_err(map_err(prefix))
            // Also here: a service that ignores the offset (Azurite, before `startFrom`) lists
            // from the start, which then costs time but gives the right page.
            .try_filter(move |m| {
                let after = offset
                    .as_ref()
                    .is_none_or(|o| m.location.as_ref() > o.as_ref());
                futures::future::ready(after && m.location.parts().count() == depth)
            })
            .map_ok(|m| meta(self.key(&m.location).to_owned(), &m))
            .take(limit)
            .try_collect()
            .await
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let (src, dst) = (self.path(from)?, self.path(to)?);
        self.store.copy(&src, &dst).await.map_err(map_err(from))?;
        self.delete(from).await
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            part_size: Some(self.part_size),
            uploads_isolated: self.uploads_isolated,
            rename_copies: true,
        }
    }

    fn list_all(&self, prefix: &str) -> BoxStream<'_, Result<ObjectMeta>> {
        let full = join(&self.prefix, prefix);
        let path = match Path::parse(&full) {
            Ok(p) => p,
            Err(e) => {
                return futures::stream::once(async { Err(StorageError::backend(e)) }).boxed();
            }
        };
        let prefix = prefix.to_owned();
        self.store
            .list(Some(&path))
            .map(move |item| match item {
                Ok(m) => Ok(meta(self.key(&m.location).to_owned(), &m)),
                Err(e) => Err(map_err(&prefix)(e)),
            })
            .boxed()
    }

    #[cfg(feature = "s3")]
    fn signer(&self) -> Option<&dyn SignUrls> {
        self.signer.as_ref().map(|_| self as &dyn SignUrls)
    }
}

/// Signing with the signer [`ObjectStorage::with_signer`] gave (S3's presigned URLs).
#[cfg(feature = "s3")]
#[async_trait]
impl SignUrls for ObjectStorage {
    async fn signed_url(&self, key: &str, expires_in: std::time::Duration) -> Result<String> {
        let Some(signer) = &self.signer else {
            return Err(StorageError::Unsupported {
                operation: "signed URLs",
            });
        };
        let url = signer
            .signed_url(http::Method::GET, &self.path(key)?, expires_in)
            .await
            .map_err(map_err(key))?;
        Ok(url.to_string())
    }
}

#[async_trait]
impl Multipart for ObjectStorage {
    async fn create_multipart(&self, key: &str) -> Result<MultipartId> {
        let id = self
            .multipart
            .create_multipart(&self.path(key)?)
            .await
            .map_err(map_err(key))?;
        Ok(MultipartId(id))
    }

    async fn put_part(
        &self,
        key: &str,
        id: &MultipartId,
        part_idx: usize,
        data: ByteStream,
    ) -> Result<PartId> {
        let chunks: Vec<Bytes> = data.try_collect().await.map_err(StorageError::backend)?;
        let payload: PutPayload = chunks.into_iter().collect();
        let part = self
            .multipart
            .put_part(&self.path(key)?, &id.0, part_idx, payload)
            .await
            .map_err(map_err(key))?;
        Ok(PartId(part.content_id))
    }

    async fn complete_multipart(
        &self,
        key: &str,
        id: &MultipartId,
        parts: Vec<PartId>,
    ) -> Result<()> {
        let parts = parts
            .into_iter()
            .map(|p| StorePartId { content_id: p.0 })
            .collect();
        self.multipart
            .complete_multipart(&self.path(key)?, &id.0, parts)
            .await
            .map_err(map_err(key))?;
        Ok(())
    }

    async fn abort_multipart(&self, key: &str, id: &MultipartId) -> Result<()> {
        match self
            .multipart
            .abort_multipart(&self.path(key)?, &id.0)
            .await
        {
            Err(e) if !is_not_found(&e) => Err(map_err(key)(e)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, OnceLock};

    use registry_core::Storage;

    use super::*;
    use crate::S3Options;

    /// Over object_store's in-memory store, with parts of 4 to 8 bytes so that small objects
    /// cross part boundaries, and reads split into ranges of 7 KiB, three in flight. All cases but `multipart_receipts_name_their_bytes`: that store
    /// assembles whatever parts it holds, whatever receipts it is given (it lives in one process,
    /// where the registry's upload lock keeps two requests off one upload).
    mod in_memory {
        registry_core::storage_testsuite!(@cases [] {
            let store = std::sync::Arc::new(object_store::memory::InMemory::new());
            move || {
                let s = super::ObjectStorage::new(store.clone(), "pre/fix")
                    .with_part_size(4, 8)
                    .with_ranged_reads(3, 7 * 1024);
                std::sync::Arc::new(s) as std::sync::Arc<dyn registry_core::Storage>
            }
        };
            put_get_head_delete, ranges, immutable_reads, empty_objects, listing, pages, rename, rename_if_absent,
            concurrent_puts, multipart_complete, multipart_zero_parts, multipart_abort,
            multipart_resumed_by_new_instance, multipart_invisible_until_complete,
            multipart_failed_part_retried, multipart_racing_uploads, streams_large_objects);
    }

    /// One moto server for the whole test binary; a bucket per test.
    fn moto() -> &'static crate::testing::MotoServer {
        static MOTO: OnceLock<crate::testing::MotoServer> = OnceLock::new();
        MOTO.get_or_init(crate::testing::MotoServer::start)
    }

    pub(super) fn moto_bucket() -> Arc<dyn Storage> {
        let name = format!("suite-{}", uuid::Uuid::new_v4().simple());
        let options = S3Options {
            prefix: "registry".into(),
            ..moto().bucket(&name)
        };
        Arc::new(options.build().expect("s3 options"))
    }

    /// Against moto over HTTP: real S3 requests, the 5 MiB part minimum enforced. All cases but
    /// `multipart_complete` and `multipart_abort`, whose late parts for a finished upload moto
    /// answers with 500 (an internal error) where S3 says `NoSuchUpload`; Ceph runs them.
    mod moto {
        registry_core::storage_testsuite!(@cases
            [#[cfg_attr(not(has_moto), ignore = "skipped: moto_server is not installed (pip install 'moto[server]')")]]
            {
            let store = super::moto_bucket();
            move || store.clone()
        };
            put_get_head_delete, ranges, immutable_reads, empty_objects, listing, pages, rename, rename_if_absent,
            concurrent_puts, multipart_zero_parts, multipart_resumed_by_new_instance,
            multipart_invisible_until_complete, multipart_failed_part_retried,
            multipart_racing_uploads, multipart_receipts_name_their_bytes,
            streams_large_objects);
    }
}
