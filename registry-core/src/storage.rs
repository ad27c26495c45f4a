//! The [`Storage`] trait: a plain key-to-bytes store that every backend implements, and
//! [`StorageExt`], conveniences every backend gets for free.
//!
//! Keys are `/`-separated paths built only by [`crate::paths`]; their components are never empty,
//! `.` or `..`, and never start with `.` (backends may keep private files under such names).
//!
//! Nothing here relies on conditional writes (`If-None-Match`, `If-Match`): some S3 engines ignore
//! them. The registry stays correct without them because every object it writes is either
//! content-addressed (the same key always receives the same bytes, so racing writers agree) or a
//! small record replaced whole by an atomic put (tags, upload sessions: the last writer wins and
//! every version a reader can see is complete and consistent on its own).

use std::fmt;
use std::ops::Range;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A stream of bytes flowing into or out of storage. Errors are I/O errors: a client that hung up,
/// a file that could not be read.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// Which bytes of an object to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetRange {
    /// Bytes `start..end`; `end` past the object's end is cut to the end.
    Bounded(Range<u64>),
    /// Bytes from an offset to the end.
    Offset(u64),
    /// The last `n` bytes.
    Suffix(u64),
}

impl GetRange {
    /// The concrete byte range for an object of `size` bytes, or
    /// [`Error::RangeNotSatisfiable`] when it selects nothing. Backends call this.
    pub fn resolve(&self, size: u64) -> Result<Range<u64>> {
        let r = match *self {
            GetRange::Bounded(ref r) => r.start..r.end.min(size),
            GetRange::Offset(start) => start..size,
            GetRange::Suffix(n) => size.saturating_sub(n)..size,
        };
        if r.start >= r.end {
            return Err(Error::RangeNotSatisfiable { size });
        }
        Ok(r)
    }
}

/// What a backend knows about a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The object's key.
    pub key: String,
    /// The object's size in bytes.
    pub size: u64,
    /// When the object was last written.
    pub last_modified: SystemTime,
}

/// The answer to [`Storage::get`]: the bytes asked for, as a stream.
pub struct GetResult {
    /// The object's size in bytes (the whole object, not the range).
    pub size: u64,
    /// The byte range the stream carries.
    pub range: Range<u64>,
    /// The bytes of `range`.
    pub stream: ByteStream,
}

impl fmt::Debug for GetResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GetResult")
            .field("size", &self.size)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// One level of a listing: objects directly under a prefix, and the deeper prefixes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListResult {
    /// Objects whose key is `prefix/<name>`, sorted by key.
    pub objects: Vec<ObjectMeta>,
    /// The `<name>` of every `prefix/<name>/…` holding at least one object, sorted, without duplicates.
    pub prefixes: Vec<String>,
}

/// The id of a multipart upload, as the backend chose it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MultipartId(pub String);

/// The receipt a backend gives for a stored part, to be handed back at completion.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PartId(pub String);

/// How a backend wants the parts of a multipart upload cut, for stores that hold each part in one
/// request of known length (S3 and its kin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartSize {
    /// Every part except the last must hold at least this many bytes (5 MiB on S3).
    pub min: u64,
    /// The size the registry cuts parts to: the memory one part in flight costs.
    pub target: u64,
    /// Parts of one upload stored at once (at least 1), while the next one gathers: an upload
    /// holds up to `in_flight + 1` parts in memory, and a push runs at up to `in_flight` times
    /// the speed of one part request.
    pub in_flight: usize,
}

/// A key-to-bytes store: all a backend must implement. Every method is safe to call concurrently
/// from many tasks and, for backends that say so, from many processes sharing the same data.
#[async_trait]
pub trait Storage: fmt::Debug + Send + Sync + 'static {
    /// Streams an object, whole or a range of it.
    ///
    /// Missing key: [`Error::NotFound`]. A range that selects nothing:
    /// [`Error::RangeNotSatisfiable`] (see [`GetRange::resolve`]); without a range even an empty
    /// object reads fine. The stream reads the object as it
    /// was when `get` was called, even if it is replaced meanwhile.
    async fn get(&self, key: &str, range: Option<GetRange>) -> Result<GetResult>;

    /// [`Storage::get`] of an object that never changes once written and whose size the caller
    /// knows (a blob): a backend may then skip asking for the size and split a large read into
    /// ranged requests sent at once. The default is [`Storage::get`].
    async fn get_immutable(
        &self,
        key: &str,
        size: u64,
        range: Option<GetRange>,
    ) -> Result<GetResult> {
        let _ = size;
        self.get(key, range).await
    }

    /// Size and modification time of an object. Missing key: [`Error::NotFound`].
    async fn head(&self, key: &str) -> Result<ObjectMeta>;

    /// Writes a small object whole. Atomic: readers see the old object or the new one, never a
    /// mix; once this returns the object survives a crash. Concurrent puts of one key: one wins whole.
    async fn put(&self, key: &str, data: Bytes) -> Result<()>;

    /// Removes an object. A missing key is not an error. Readers already streaming it may finish.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Lists one level under `prefix` (a key prefix without trailing `/`; empty for the root), both
    /// sorted lexically. A missing prefix lists as empty. Objects written or removed during the call
    /// may or may not appear.
    async fn list(&self, prefix: &str) -> Result<ListResult>;

    /// Up to `limit` objects directly under `prefix` whose name (the key's last component) sorts
    /// after `after` (every name when `None`), in lexical order: one page of a folder too large
    /// to list whole (the catalog, a repository's tags). Objects deeper under `prefix` are
    /// skipped. The default lists the whole level and cuts it; backends that can start a listing
    /// at a key override it (S3's `start-after`: a request per thousand keys, whatever the size
    /// of the folder).
    async fn list_after(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ObjectMeta>> {
        let mut objects = self.list(prefix).await?.objects;
        if let Some(after) = after {
            let start = join(prefix, after);
            objects.retain(|o| o.key > start);
        }
        objects.truncate(limit);
        Ok(objects)
    }

    /// Moves an object to another key, replacing what is there. Atomic at `to`: readers see the old
    /// object or the whole new one. Missing `from`: [`Error::NotFound`]. May cost a full copy on
    /// object stores.
    async fn rename(&self, from: &str, to: &str) -> Result<()>;

    /// Moves an object to another key unless an object is there already: true when it moved,
    /// false when `to` existed (both are then left as they were). Missing `from`:
    /// [`Error::NotFound`]. The registry installs blobs with it, so that committed bytes are never
    /// replaced. The default checks, then renames, which two writers can race; backends that can
    /// refuse atomically (the filesystem's `link`, a lock in memory) override it.
    async fn rename_if_absent(&self, from: &str, to: &str) -> Result<bool> {
        if self.head(to).await.is_ok() {
            return Ok(false);
        }
        self.rename(from, to).await.map(|()| true)
    }

    /// Starts a multipart upload that will produce `key` when completed. Nothing is visible at
    /// `key` until [`Storage::complete_multipart`] returns.
    async fn create_multipart(&self, key: &str) -> Result<MultipartId>;

    /// Stores one part of an upload from a stream. `part_idx` counts from 0; putting the same index
    /// again replaces that part. Parts may come from different processes. Once this returns the part
    /// survives a crash. An unknown id: [`Error::NotFound`]. A stream error fails the call and leaves
    /// the upload as if the part had not been sent.
    async fn put_part(
        &self,
        key: &str,
        id: &MultipartId,
        part_idx: usize,
        data: ByteStream,
    ) -> Result<PartId>;

    /// Completes an upload: `key` becomes the parts' concatenation, in the order given, atomically.
    /// Zero parts make an empty object. The upload's id is then gone. An unknown id: [`Error::NotFound`].
    async fn complete_multipart(
        &self,
        key: &str,
        id: &MultipartId,
        parts: Vec<PartId>,
    ) -> Result<()>;

    /// Abandons an upload and frees its parts. An unknown id is not an error.
    async fn abort_multipart(&self, key: &str, id: &MultipartId) -> Result<()>;

    /// `None` (the default): parts may have any size and [`Storage::put_part`] streams them.
    /// `Some`: the backend buffers each part, so the registry cuts streams to
    /// [`PartSize::target`] and keeps anything under [`PartSize::min`] aside until more arrives.
    fn part_size(&self) -> Option<PartSize> {
        None
    }

    /// True when multipart uploads of one key stay apart until each completes (S3, GCS): the
    /// registry may then stream a blob of known digest straight to its final key, however many
    /// pushes of it race. False where completing one upload discards the parts of the others
    /// (Azure, whose uncommitted blocks belong to the blob, not to an upload): each push then
    /// writes a key of its own.
    fn uploads_isolated(&self) -> bool {
        true
    }

    /// True when [`Storage::rename`] copies the bytes (object stores). The registry then never
    /// renames blobs: it leaves an upload's bytes where they landed and records their location.
    fn rename_copies(&self) -> bool {
        false
    }

    /// Every object at any depth under `prefix`, in no particular order: what garbage collection
    /// and scrub walk. The default walks [`Storage::list`] level by level; object stores override
    /// it with one flat listing (a request per thousand keys instead of one per folder).
    fn list_all(&self, prefix: &str) -> BoxStream<'_, Result<ObjectMeta>> {
        self.list_recursive(prefix)
    }

    /// A URL that lets anyone holding it read `key` until `expires_in` has passed, for backends
    /// that can sign one (S3); `None` (the default) when they cannot.
    async fn signed_url(
        &self,
        key: &str,
        expires_in: std::time::Duration,
    ) -> Result<Option<String>> {
        let _ = (key, expires_in);
        Ok(None)
    }
}

/// Conveniences over [`Storage`], implemented for every backend.
#[async_trait]
pub trait StorageExt: Storage {
    /// Reads a small object whole into memory. Use only for records, never for blobs.
    async fn get_bytes(&self, key: &str) -> Result<Bytes> {
        let res = self.get(key, None).await?;
        let mut buf = BytesMut::with_capacity(usize::try_from(res.size).unwrap_or(0));
        let mut stream = res.stream;
        while let Some(chunk) = stream.try_next().await.map_err(Error::storage)? {
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }

    /// Like [`StorageExt::get_bytes`], with a missing key as `None`.
    async fn get_opt(&self, key: &str) -> Result<Option<Bytes>> {
        match self.get_bytes(key).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// True when an object exists at `key`.
    async fn exists(&self, key: &str) -> Result<bool> {
        match self.head(key).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every object at any depth under `prefix`, in lexical order of its path components.
    fn list_recursive(&self, prefix: &str) -> BoxStream<'_, Result<ObjectMeta>> {
        let prefix = prefix.to_owned();
        futures::stream::once(async move {
            let level = self.list(&prefix).await?;
            let objects = futures::stream::iter(level.objects.into_iter().map(Ok));
            let deeper = futures::stream::iter(level.prefixes)
                .map(move |p| self.list_recursive(&join(&prefix, &p)))
                .flatten();
            Ok::<_, Error>(objects.chain(deeper))
        })
        .try_flatten()
        .boxed()
    }
}

impl<S: Storage + ?Sized> StorageExt for S {}

/// Joins a prefix and a name with `/` (the root prefix is empty).
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_against_size() {
        assert_eq!(GetRange::Bounded(2..5).resolve(10).unwrap(), 2..5);
        assert_eq!(GetRange::Bounded(2..50).resolve(10).unwrap(), 2..10);
        assert_eq!(GetRange::Offset(3).resolve(10).unwrap(), 3..10);
        assert_eq!(GetRange::Suffix(4).resolve(10).unwrap(), 6..10);
        assert_eq!(GetRange::Suffix(40).resolve(10).unwrap(), 0..10);
        for bad in [
            GetRange::Bounded(10..12),
            GetRange::Offset(10),
            GetRange::Suffix(0),
            GetRange::Bounded(5..5),
        ] {
            assert!(matches!(
                bad.resolve(10),
                Err(Error::RangeNotSatisfiable { size: 10 })
            ));
        }
        assert!(GetRange::Offset(0).resolve(0).is_err());
    }
}
