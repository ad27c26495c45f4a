//! Moving bytes between streams and files without holding a thread while the network is slow:
//! every write and every read is one short blocking call, and no blocking thread ever waits for a
//! client. Written chunks are batched into vectored writes (no user-space copy); reads go straight
//! into the buffers that are sent.

use std::fs::File;
use std::io::{ErrorKind, IoSlice, Read as _, Seek, SeekFrom, Write};
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use registry_core::ByteStream;
use tokio::task::JoinHandle;

/// Bytes gathered for one write call, at most: with one batch being written and one gathering,
/// an upload holds at most twice this in memory, whatever its size.
const BATCH_BYTES: usize = 1024 * 1024;
/// Chunks in one vectored write, at most (well under the system's `IOV_MAX`).
const BATCH_CHUNKS: usize = 64;
/// Size of the chunks a read stream yields.
const READ_CHUNK: u64 = 1024 * 1024;

/// Runs a blocking call on tokio's blocking pool.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(std::io::Error::other)?
}

/// Chunks received, waiting for their write call.
#[derive(Default)]
struct Batch {
    chunks: Vec<Bytes>,
    len: usize,
}

impl Batch {
    fn full(&self) -> bool {
        self.len >= BATCH_BYTES || self.chunks.len() >= BATCH_CHUNKS
    }
}

/// Writes everything `data` yields to `file` from its current position and returns how many
/// bytes: while one batch is being written by a blocking call, the next one gathers from the
/// stream. Fails with the stream's error, or the file's.
pub(super) async fn write_stream(file: &Arc<File>, mut data: ByteStream) -> std::io::Result<u64> {
    let mut batch = Batch::default();
    let mut writing: Option<JoinHandle<std::io::Result<()>>> = None;
    let mut ended = false;
    let mut written = 0u64;
    loop {
        if let Some(write) = writing.as_mut() {
            if ended || batch.full() {
                write.await.map_err(std::io::Error::other)??;
                writing = None;
                continue;
            }
            tokio::select! {
                done = write => {
                    done.map_err(std::io::Error::other)??;
                    writing = None;
                }
                chunk = data.try_next() => match chunk? {
                    Some(c) => push(&mut batch, c),
                    None => ended = true,
                },
            }
            continue;
        }
        if batch.len > 0 {
            let chunks = std::mem::take(&mut batch).chunks;
            written += chunks.iter().map(|c| c.len() as u64).sum::<u64>();
            let file = file.clone();
            writing = Some(tokio::task::spawn_blocking(move || {
                write_all_vectored(&file, &chunks)
            }));
            continue;
        }
        if ended {
            return Ok(written);
        }
        match data.try_next().await? {
            Some(c) => push(&mut batch, c),
            None => ended = true,
        }
    }
}

fn push(batch: &mut Batch, chunk: Bytes) {
    if !chunk.is_empty() {
        batch.len += chunk.len();
        batch.chunks.push(chunk);
    }
}

fn write_all_vectored(mut file: &File, chunks: &[Bytes]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = chunks.iter().map(|c| IoSlice::new(c)).collect();
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        let n = file.write_vectored(slices)?;
        if n == 0 {
            return Err(ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}

/// Streams `range` of an open file: each chunk is one read on a blocking thread, started as soon as
/// the previous chunk is handed on, so that one chunk is read ahead of a slow consumer and no
/// thread waits for it. Buffers are allocated here, on the runtime's threads (without being
/// zeroed first): allocated on whichever blocking thread ran the read, they would be kept by as
/// many allocator arenas after use.
pub(super) fn read_stream(file: File, range: std::ops::Range<u64>) -> ByteStream {
    type Read = JoinHandle<std::io::Result<(File, Vec<u8>)>>;
    fn start(file: File, at: u64, n: u64) -> Read {
        let mut buf = Vec::with_capacity(n as usize);
        tokio::task::spawn_blocking(move || {
            let mut f = file;
            f.seek(SeekFrom::Start(at))?;
            let got = (&mut f).take(n).read_to_end(&mut buf)?;
            if got as u64 != n {
                return Err(std::io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "file shrank while read",
                ));
            }
            Ok((f, buf))
        })
    }
    let first = (range.start < range.end)
        .then(|| start(file, range.start, (range.end - range.start).min(READ_CHUNK)));
    let next = range.start + (range.end - range.start).min(READ_CHUNK);
    futures::stream::unfold(
        (first, next, range.end),
        |(reading, next, end)| async move {
            let read = reading?.await;
            let (file, buf) = match read.map_err(std::io::Error::other).and_then(|r| r) {
                Ok(done) => done,
                Err(e) => return Some((Err(e), (None, end, end))),
            };
            let ahead = (next < end).then(|| start(file, next, (end - next).min(READ_CHUNK)));
            let next = next + (end - next).min(READ_CHUNK);
            Some((Ok(Bytes::from(buf)), (ahead, next, end)))
        },
    )
    .boxed()
}
