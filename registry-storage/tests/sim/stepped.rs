//! The storage every simulated replica sees: the shared in-memory store, with a yield point
//! before and after every call so that the simulator chooses which replica goes on at each one
//! (and a replica dropped while waiting there crashed before or after that call), and the bug a
//! test plants to show that the simulator finds one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use registry_core::paths::{self, BlobObject};
use registry_core::storage::Result;
use registry_core::{
    ByteStream, Capabilities, GetRange, GetResult, ListResult, Multipart, MultipartId, ObjectMeta,
    PartId, SignUrls, Storage,
};

/// A bug planted in what garbage collection reads, for the simulator to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planted {
    /// None: the store as it is.
    Nothing,
    /// A blob folder lists without the collections' announcements (`blobs/…/collecting-ID`):
    /// a manifest push that never looks whether the blob it references is being removed.
    IgnoreAnnouncements,
}

/// Returns `Pending` once (waking its task at once), then `Ready`: the point where the simulator's
/// executor may switch to another replica.
struct YieldPoint(bool);

impl Future for YieldPoint {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

fn yield_point() -> YieldPoint {
    YieldPoint(false)
}

/// The shared store as one replica sees it.
#[derive(Debug)]
pub struct Stepped {
    pub inner: Arc<dyn Storage>,
    pub planted: Planted,
    /// Which replica this is, for traces.
    pub replica: usize,
}

impl Stepped {
    fn hidden(&self, key: &str) -> bool {
        self.planted == Planted::IgnoreAnnouncements
            && matches!(
                paths::parse_blob_key(key),
                Some((_, BlobObject::Collecting))
            )
    }

    /// Prints a write of a key holding `SIM_KEY` (a digest's first characters, say), to follow
    /// one blob through a replayed seed.
    fn traced(&self, what: &str, key: &str) {
        if std::env::var("SIM_KEY").is_ok_and(|k| key.contains(&k)) {
            eprintln!("        replica {} {what} {key}", self.replica);
        }
    }

    async fn around<T>(&self, op: impl Future<Output = Result<T>>) -> Result<T> {
        yield_point().await;
        let result = op.await;
        yield_point().await;
        result
    }
}

#[async_trait]
impl Storage for Stepped {
    async fn get(&self, key: &str, range: Option<GetRange>) -> Result<GetResult> {
        self.around(self.inner.get(key, range)).await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.around(self.inner.head(key)).await
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        self.traced("put", key);
        self.around(self.inner.put(key, data)).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.traced("delete", key);
        self.around(self.inner.delete(key)).await
    }

    async fn list(&self, prefix: &str) -> Result<ListResult> {
        let mut listed = self.around(self.inner.list(prefix)).await?;
        listed.objects.retain(|o| !self.hidden(&o.key));
        Ok(listed)
    }

    async fn list_after(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ObjectMeta>> {
        self.around(self.inner.list_after(prefix, after, limit))
            .await
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.around(self.inner.rename(from, to)).await
    }

    async fn rename_if_absent(&self, from: &str, to: &str) -> Result<bool> {
        self.around(self.inner.rename_if_absent(from, to)).await
    }

    fn list_all(&self, prefix: &str) -> BoxStream<'_, Result<ObjectMeta>> {
        let prefix = prefix.to_owned();
        futures::stream::once(async move {
            let all: Vec<Result<ObjectMeta>> = self
                .around(async { Ok(self.inner.list_all(&prefix).collect().await) })
                .await
                .unwrap_or_default();
            futures::stream::iter(all)
        })
        .flatten()
        .boxed()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn signer(&self) -> Option<&dyn SignUrls> {
        None
    }
}

#[async_trait]
impl Multipart for Stepped {
    async fn create_multipart(&self, key: &str) -> Result<MultipartId> {
        self.around(self.inner.create_multipart(key)).await
    }

    async fn put_part(
        &self,
        key: &str,
        id: &MultipartId,
        part_idx: usize,
        data: ByteStream,
    ) -> Result<PartId> {
        self.around(self.inner.put_part(key, id, part_idx, data))
            .await
    }

    async fn complete_multipart(
        &self,
        key: &str,
        id: &MultipartId,
        parts: Vec<PartId>,
    ) -> Result<()> {
        self.around(self.inner.complete_multipart(key, id, parts))
            .await
    }

    async fn abort_multipart(&self, key: &str, id: &MultipartId) -> Result<()> {
        self.around(self.inner.abort_multipart(key, id)).await
    }
}
