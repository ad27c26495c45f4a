//! What a backend implements, in the manner of `object_store`: a small required core and
//! capabilities beside it.
//!
//! - [`Storage`]: six required methods (`get`, `head`, `put`, `delete`, `list`, `rename`) and
//!   provided ones a backend overrides when it does better (ranged reads of immutable objects, a
//!   paged or flat listing, an atomic `rename_if_absent`: the one conditional operation the
//!   registry uses);
//! - [`Multipart`] (`multipart`): assembling an object from parts, which every upload uses, so a
//!   supertrait of `Storage` that every backend implements, beside the core rather than in it;
//! - [`Capabilities`]: what the registry asks of a backend to choose its strategy (part sizes,
//!   whether renames copy, whether concurrent uploads of one key stay apart);
//! - [`SignUrls`]: URLs that let a client read an object straight from the store, for backends
//!   that can sign them ([`Storage::signer`]);
//! - [`StorageError`] (`error`): the four ways a backend fails;
//! - [`StorageExt`]: conveniences every backend gets for free.
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

mod error;
mod multipart;

pub use error::StorageError;
pub use multipart::{Multipart, MultipartId, PartId, PartSize};

/// The result of a storage operation.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

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
    /// [`StorageError::RangeNotSatisfiable`] when it selects nothing. Backends call this.
    pub fn resolve(&self, size: u64) -> Result<Range<u64>> {
        let r = match *self {
            GetRange::Bounded(ref r) => r.start..r.end.min(size),
            GetRange::Offset(start) => start..size,
            GetRange::Suffix(n) => size.saturating_sub(n)..size,
        };
        if r.start >= r.end {
            return Err(StorageError::RangeNotSatisfiable { size });
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

/// What the registry asks of a backend to choose how it stores uploads and blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// `None`: parts may have any size and [`Multipart::put_part`] streams them. `Some`: the
    /// backend buffers each part, so the registry cuts streams to [`PartSize::target`] and keeps
    /// anything under [`PartSize::min`] aside until more arrives.
    pub part_size: Option<PartSize>,
    /// True when multipart uploads of one key stay apart until each completes (S3, GCS): the
    /// registry may then stream a blob of known digest straight to its final key, however many
    /// pushes of it race. False where completing one upload discards the parts of the others
    /// (Azure, whose uncommitted blocks belong to the blob, not to an upload): each push then
    /// writes a key of its own.
    pub uploads_isolated: bool,
    /// True when [`Storage::rename`] copies the bytes (object stores). The registry then never
    /// renames blobs: it leaves an upload's bytes where they landed and records their location.
    pub rename_copies: bool,
}

impl Default for Capabilities {
    /// A local store: parts of any size, isolated uploads, cheap renames.
    fn default() -> Self {
        Capabilities {
            part_size: None,
            uploads_isolated: true,
            rename_copies: false,
        }
    }
}

/// Signing URLs that let anyone holding one read an object until it expires (S3 presigned URLs),
/// so that pulls can be redirected to the store.
#[async_trait]
pub trait SignUrls: Send + Sync {
    /// A URL reading `key` until `expires_in` has passed.
    async fn signed_url(&self, key: &str, expires_in: std::time::Duration) -> Result<String>;
}

/// A key-to-bytes store: the core every backend implements, with [`Multipart`] beside it. Every
/// method is safe to call concurrently from many tasks and, for backends that say so, from many
/// processes sharing the same data.
#[async_trait]
pub trait Storage: Multipart + fmt::Debug + Send + Sync + 'static {
    /// Streams an object, whole or a range of it.
    ///
    /// Missing key: [`StorageError::NotFound`]. A range that selects nothing:
    /// [`StorageError::RangeNotSatisfiable`] (see [`GetRange::resolve`]); without a range even an empty
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

    /// Size and modification time of an object. Missing key: [`StorageError::NotFound`].
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
    /// object or the whole new one. Missing `from`: [`StorageError::NotFound`]. May cost a full copy on
    /// object stores.
    async fn rename(&self, from: &str, to: &str) -> Result<()>;

    /// Moves an object to another key unless an object is there already: true when it moved,
    /// false when `to` existed (both are then left as they were). Missing `from`:
    /// [`StorageError::NotFound`]. The registry installs blobs with it, so that committed bytes are never
    /// replaced. The default checks, then renames, which two writers can race; backends that can
    /// refuse atomically (the filesystem's `link`, a lock in memory) override it.
    async fn rename_if_absent(&self, from: &str, to: &str) -> Result<bool> {
        if self.head(to).await.is_ok() {
            return Ok(false);
        }
        self.rename(from, to).await.map(|()| true)
    }

    /// Every object at any depth under `prefix`, in no particular order: what garbage collection
    /// and scrub walk. The default walks [`Storage::list`] level by level; object stores override
    /// it with one flat listing (a request per thousand keys instead of one per folder).
    fn list_all(&self, prefix: &str) -> BoxStream<'_, Result<ObjectMeta>> {
        self.list_recursive(prefix)
    }

    /// What the registry may rely on; see [`Capabilities`]. The default is a local store's.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    /// The backend's URL signer, when it can sign URLs (S3); `None` (the default) otherwise.
    fn signer(&self) -> Option<&dyn SignUrls> {
        None
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
        while let Some(chunk) = stream.try_next().await.map_err(StorageError::backend)? {
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
            Ok::<_, StorageError>(objects.chain(deeper))
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
                Err(StorageError::RangeNotSatisfiable { size: 10 })
            ));
        }
        assert!(GetRange::Offset(0).resolve(0).is_err());
    }
}
