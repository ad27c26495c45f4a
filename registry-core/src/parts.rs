//! Cutting a stream into the parts of a multipart upload, as the backend wants them cut
//! ([`Capabilities::part_size`](crate::Capabilities::part_size)).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::future::{BoxFuture, Either};
use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt, TryStreamExt};

use crate::error::{Error, Result};
use crate::storage::{ByteStream, MultipartId, PartId, PartSize, Storage};

/// A multipart upload being written: the key it will produce, its id once created, and the
/// receipts of the parts stored so far.
#[derive(Debug)]
pub(crate) struct Multipart<'a> {
    pub storage: &'a Arc<dyn Storage>,
    pub key: &'a str,
    pub id: &'a mut Option<MultipartId>,
    pub parts: &'a mut Vec<PartId>,
}

/// Whether more bytes may follow the ones being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// More may follow: bytes too few to be a part are handed back, to be kept aside.
    Open,
    /// These are the last bytes: they all become parts, except that when no part was ever
    /// needed (the whole object is smaller than a part) they are handed back, unwritten, for the
    /// caller to store with one put.
    Last,
}

impl Multipart<'_> {
    async fn id(&mut self) -> Result<MultipartId> {
        if let Some(id) = self.id.as_ref() {
            return Ok(id.clone());
        }
        let id = self.storage.create_multipart(self.key).await?;
        *self.id = Some(id.clone());
        Ok(id)
    }

    /// Writes `head` then `data`. Returns the bytes handed back (see [`End`]); always empty on
    /// backends that take parts of any size, where `head` must be empty and `data` becomes one part
    /// (none when it is empty). Parts are recorded only once stored.
    pub async fn write(&mut self, head: Bytes, data: ByteStream, end: End) -> Result<Bytes> {
        match self.storage.capabilities().part_size {
            None => {
                debug_assert!(head.is_empty());
                self.write_streamed(data).await?;
                Ok(Bytes::new())
            }
            Some(size) => self.write_cut(size, head, data, end).await,
        }
    }

    async fn write_streamed(&mut self, data: ByteStream) -> Result<()> {
        let mut data = data.peekable();
        if std::pin::Pin::new(&mut data).peek().await.is_none() {
            return Ok(());
        }
        let id = self.id().await?;
        let part = self
            .storage
            .put_part(self.key, &id, self.parts.len(), data.boxed())
            .await?;
        self.parts.push(part);
        Ok(())
    }

    /// Gathers `target` bytes at a time, as the chunks received (no copy, and no large
    /// allocation for the allocator to keep). Up to `in_flight` parts are stored at once while
    /// the next one gathers, so at most `in_flight + 1` parts are in memory; receipts are recorded
    /// in part order.
    async fn write_cut(
        &mut self,
        size: PartSize,
        head: Bytes,
        mut data: ByteStream,
        end: End,
    ) -> Result<Bytes> {
        let target = usize::try_from(size.target.max(1)).unwrap_or(usize::MAX);
        let min = usize::try_from(size.min).unwrap_or(usize::MAX);
        let mut part = Gathered::default();
        part.push(head);
        let mut in_flight = FuturesOrdered::new();
        let filled: Result<()> = async {
            loop {
                let Some(mut chunk) = next_chunk(&mut data, &mut in_flight, self.parts).await?
                else {
                    return Ok(());
                };
                while !chunk.is_empty() {
                    let take = chunk.len().min(target - part.len);
                    part.push(chunk.split_to(take));
                    if part.len == target {
                        let full = std::mem::take(&mut part);
                        self.start_part(full.chunks, &mut in_flight, size.in_flight)
                            .await?;
                    }
                }
            }
        }
        .await;
        let drained = drain(&mut in_flight, self.parts).await;
        filled?;
        drained?;
        let keep = match end {
            End::Open => part.len < min,
            End::Last => self.id.is_none(),
        };
        if keep || part.len == 0 {
            return Ok(part.concat());
        }
        self.start_part(part.chunks, &mut in_flight, 1).await?;
        drain(&mut in_flight, self.parts).await?;
        Ok(Bytes::new())
    }

    /// Starts storing a part once fewer than `limit` are being stored.
    async fn start_part(
        &mut self,
        chunks: Vec<Bytes>,
        in_flight: &mut InFlight,
        limit: usize,
    ) -> Result<()> {
        while in_flight.len() >= limit.max(1) {
            if let Some(stored) = in_flight.next().await {
                self.parts.push(stored?);
            }
        }
        let id = self.id().await?;
        let idx = self.parts.len() + in_flight.len();
        let (storage, key) = (self.storage.clone(), self.key.to_owned());
        in_flight.push_back(
            async move {
                let body = futures::stream::iter(chunks.into_iter().map(Ok)).boxed();
                Ok(storage.put_part(&key, &id, idx, body).await?)
            }
            .boxed(),
        );
        Ok(())
    }
}

/// Chunks making up a part, and their total length.
#[derive(Debug, Default)]
struct Gathered {
    chunks: Vec<Bytes>,
    len: usize,
}

impl Gathered {
    fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.len += chunk.len();
            self.chunks.push(chunk);
        }
    }

    fn concat(self) -> Bytes {
        match <[Bytes; 1]>::try_from(self.chunks) {
            Ok([one]) => one,
            Err(chunks) => {
                let mut all = BytesMut::with_capacity(self.len);
                chunks.iter().for_each(|c| all.extend_from_slice(c));
                all.freeze()
            }
        }
    }
}

type InFlight = FuturesOrdered<BoxFuture<'static, Result<PartId>>>;

/// The next chunk of `data`, while the parts in flight make progress.
async fn next_chunk(
    data: &mut ByteStream,
    in_flight: &mut InFlight,
    parts: &mut Vec<PartId>,
) -> Result<Option<Bytes>> {
    loop {
        if in_flight.is_empty() {
            return data.try_next().await.map_err(Error::storage);
        }
        match futures::future::select(data.try_next(), in_flight.next()).await {
            Either::Left((chunk, _)) => return chunk.map_err(Error::storage),
            Either::Right((Some(stored), _)) => parts.push(stored?),
            Either::Right((None, _)) => {}
        }
    }
}

/// Waits for the parts in flight and records them.
async fn drain(in_flight: &mut InFlight, parts: &mut Vec<PartId>) -> Result<()> {
    while let Some(stored) = in_flight.next().await {
        parts.push(stored?);
    }
    Ok(())
}
