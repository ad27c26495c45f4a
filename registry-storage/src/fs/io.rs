//! Moving bytes between streams and files without copying them in user space: a blocking thread
//! writes what a stream yields (batched into vectored writes), or reads chunks straight into the
//! buffers it sends.

use std::fs::File;
use std::io::{ErrorKind, IoSlice, Read, Write};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use registry_core::ByteStream;
use tokio::sync::mpsc;

/// Chunks queued for the writing thread, and the most it writes in one call (request body chunks
/// are at most a few hundred KiB, so this bounds the bytes in flight to a few MiB).
const WRITE_QUEUE: usize = 4;
/// Size of the chunks a read stream yields.
const READ_CHUNK: u64 = 1024 * 1024;
/// Chunks read ahead of a slow consumer.
const READ_AHEAD: usize = 4;

/// What the feeding task tells the writing thread.
pub(super) enum Msg {
    /// Bytes to write.
    Data(Bytes),
    /// The stream ended well: what was written may be kept.
    End,
}

/// The receiving end of a write, for the blocking thread.
pub(super) type Incoming = mpsc::Receiver<Msg>;

/// Starts a write: returns the sender a stream is fed into with [`feed`], and the receiver that
/// [`drain`] writes from on a blocking thread.
pub(super) fn channel() -> (mpsc::Sender<Msg>, Incoming) {
    mpsc::channel(WRITE_QUEUE)
}

/// Sends `data` to the writing thread, then `End`. On a stream error no `End` is sent, so the
/// writing thread discards what it wrote; the same happens when this future is dropped.
pub(super) async fn feed(mut data: ByteStream, tx: mpsc::Sender<Msg>) -> std::io::Result<()> {
    while let Some(chunk) = data.try_next().await? {
        if !chunk.is_empty() && tx.send(Msg::Data(chunk)).await.is_err() {
            return Ok(());
        }
    }
    let _ = tx.send(Msg::End).await;
    Ok(())
}

/// Writes everything received into `file` until `End`; returns the bytes written. Fails when the
/// channel closes without `End` (the stream failed or its task was dropped).
pub(super) fn drain(rx: &mut Incoming, file: &mut File) -> std::io::Result<u64> {
    let mut batch = Vec::with_capacity(WRITE_QUEUE);
    let mut written = 0u64;
    loop {
        let mut ended = false;
        match rx.blocking_recv() {
            Some(Msg::Data(chunk)) => batch.push(chunk),
            Some(Msg::End) => ended = true,
            None => {
                return Err(std::io::Error::new(
                    ErrorKind::Interrupted,
                    "write abandoned",
                ));
            }
        }
        while !ended && batch.len() < WRITE_QUEUE {
            match rx.try_recv() {
                Ok(Msg::Data(chunk)) => batch.push(chunk),
                Ok(Msg::End) => ended = true,
                Err(_) => break,
            }
        }
        write_all_vectored(file, &batch)?;
        written += batch.iter().map(|c| c.len() as u64).sum::<u64>();
        batch.clear();
        if ended {
            return Ok(written);
        }
    }
}

fn write_all_vectored(file: &mut File, chunks: &[Bytes]) -> std::io::Result<()> {
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

/// Streams `len` bytes of an open file from its current position: a blocking thread reads chunks
/// straight into the buffers that are sent, a few ahead of the consumer.
pub(super) fn read_stream(file: File, len: u64) -> ByteStream {
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        let mut file = file;
        let mut left = len;
        while left > 0 {
            let n = left.min(READ_CHUNK);
            let mut buf = Vec::with_capacity(n as usize);
            let item = match (&mut file).take(n).read_to_end(&mut buf) {
                Ok(k) if k as u64 == n => Ok(Bytes::from(buf)),
                Ok(_) => Err(std::io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "file shrank while read",
                )),
                Err(e) => Err(e),
            };
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() || failed {
                return;
            }
            left -= n;
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed()
}
