//! Parallel ranged reads: a large immutable object read as consecutive ranges, several requested
//! at once and yielded in order. One connection to S3 (or GCS, Azure) reads far slower than the
//! service and the network allow; a few ranged GETs at once read at several times that rate.

use std::io;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

/// How reads of immutable objects are split: `in_flight` ranges of `range` bytes at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangedReads {
    /// Ranged requests in flight (1: a read is one plain request).
    pub in_flight: usize,
    /// Bytes per ranged request.
    pub range: u64,
}

impl RangedReads {
    /// Whether a read of `len` bytes is split: more than one request in flight, and more than
    /// one range to read.
    pub fn applies(&self, len: u64) -> bool {
        self.in_flight > 1 && len > self.range
    }

    /// The bytes `bytes` of the object at `path`, fetched a range at a time with up to
    /// `in_flight` ranges requested at once, each by a task of its own (so later ranges arrive
    /// while earlier ones are being sent on), and yielded in order. A read holds at most
    /// `in_flight + 1` ranges in memory (those in flight and the one being sent); dropping the
    /// stream cancels the requests in flight.
    pub fn stream(
        &self,
        store: Arc<dyn ObjectStore>,
        path: Path,
        bytes: Range<u64>,
    ) -> BoxStream<'static, io::Result<Bytes>> {
        let step = self.range.max(1);
        let end = bytes.end;
        let starts = bytes.step_by(usize::try_from(step).unwrap_or(usize::MAX));
        futures::stream::iter(starts)
            .map(move |start| {
                let (store, path) = (store.clone(), path.clone());
                let range = start..(start + step).min(end);
                let (fetch, handle) =
                    async move { store.get_range(&path, range).await }.remote_handle();
                tokio::spawn(fetch);
                handle
            })
            .buffered(self.in_flight.max(1))
            .map_err(|e| io::Error::other(e.to_string()))
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use object_store::PutPayload;
    use object_store::memory::InMemory;

    use super::*;

    async fn read(reads: RangedReads, store: Arc<dyn ObjectStore>, bytes: Range<u64>) -> Vec<u8> {
        let chunks: Vec<Bytes> = reads
            .stream(store, Path::from("o"), bytes)
            .try_collect()
            .await
            .expect("read");
        chunks.concat()
    }

    #[tokio::test]
    async fn ranges_come_back_in_order_whatever_their_boundaries() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        store
            .put(&Path::from("o"), PutPayload::from(data.clone()))
            .await
            .expect("put");
        for (in_flight, range) in [(1, 10_000), (2, 1000), (3, 999), (8, 1), (4, 20_000)] {
            let reads = RangedReads { in_flight, range };
            for bytes in [0..10_000, 1..9_999, 999..1001, 5000..5000] {
                let got = read(reads, store.clone(), bytes.clone()).await;
                assert_eq!(
                    got,
                    &data[bytes.start as usize..bytes.end as usize],
                    "{reads:?} {bytes:?}"
                );
            }
        }
        assert!(
            RangedReads {
                in_flight: 2,
                range: 1000
            }
            .applies(1001)
        );
        assert!(
            !RangedReads {
                in_flight: 2,
                range: 1000
            }
            .applies(1000)
        );
        assert!(
            !RangedReads {
                in_flight: 1,
                range: 1000
            }
            .applies(1_000_000)
        );
    }

    #[tokio::test]
    async fn a_missing_object_fails_the_stream() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let reads = RangedReads {
            in_flight: 2,
            range: 10,
        };
        let got: io::Result<Vec<Bytes>> = reads
            .stream(store, Path::from("o"), 0..100)
            .try_collect()
            .await;
        assert!(got.is_err());
    }
}
