//! What one connection is held to: [`Guarded`] IO that fails when the protocol is not known in
//! time or a write stalls, and [`Activity`], the requests in flight that tell when a connection
//! is idle.

use std::future::Future;
use std::io::ErrorKind;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

/// What an HTTP/2 client sends first; until it has arrived, or a byte differs from it (HTTP/1),
/// the server does not know what the client speaks.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The preface must be followed by a SETTINGS frame, whose header is this long: an HTTP/2 client
/// has until the first-bytes deadline for both.
const H2_FIRST_FRAME_HEADER: usize = 9;

/// A connection's stream, held to two deadlines: the client's first bytes (a first byte that is
/// not the HTTP/2 preface's, or the preface and its first frame header) must arrive before
/// `first_bytes`, so that a client that sends nothing, or stops inside the preface, is dropped;
/// and a write that cannot proceed for `stall` (a client that no longer reads) fails.
pub(super) struct Guarded<T> {
    inner: T,
    /// HTTP/2 bytes seen so far, until the first bytes are in.
    preface: Option<usize>,
    first_bytes: Pin<Box<Sleep>>,
    stall: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> Guarded<T> {
    pub fn new(inner: T, first_bytes: Duration, stall: Duration) -> Guarded<T> {
        Guarded {
            inner,
            preface: Some(0),
            first_bytes: Box::pin(tokio::time::sleep(first_bytes)),
            stall,
            stalled: None,
        }
    }

    /// Follows the first bytes over bytes just read.
    fn saw(&mut self, bytes: &[u8]) {
        let Some(seen) = self.preface else {
            return;
        };
        let rest = &H2_PREFACE[seen.min(H2_PREFACE.len())..];
        let n = bytes.len().min(rest.len());
        let total = seen + bytes.len();
        self.preface =
            if bytes[..n] != rest[..n] || total >= H2_PREFACE.len() + H2_FIRST_FRAME_HEADER {
                None
            } else {
                Some(total)
            };
    }

    /// A write that is pending: an error once it has been so for `stall`.
    fn pending_write<R>(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<R>> {
        let stall = self.stall;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                ErrorKind::TimedOut,
                "the client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn wrote<R>(&mut self, done: std::io::Result<R>) -> Poll<std::io::Result<R>> {
        self.stalled = None;
        Poll::Ready(done)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.saw(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if this.preface.is_some() && this.first_bytes.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(std::io::Error::new(
                        ErrorKind::TimedOut,
                        "no request in time",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write(cx, data) {
            Poll::Ready(done) => this.wrote(done),
            Poll::Pending => this.pending_write(cx),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write_vectored(cx, data) {
            Poll::Ready(done) => this.wrote(done),
            Poll::Pending => this.pending_write(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Ready(done) => this.wrote(done),
            Poll::Pending => this.pending_write(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The requests in flight on one connection, and since when none is.
#[derive(Clone)]
pub(super) struct Activity {
    state: Arc<watch::Sender<(usize, Instant)>>,
}

/// One request in flight, until dropped (with its response body).
pub(super) struct InFlight(Activity);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.state.send_modify(|(n, since)| {
            *n -= 1;
            if *n == 0 {
                *since = Instant::now();
            }
        });
    }
}

impl Activity {
    pub fn new() -> Activity {
        Activity {
            state: Arc::new(watch::Sender::new((0, Instant::now()))),
        }
    }

    /// Counts a request until the guard is dropped.
    pub fn start(&self) -> InFlight {
        self.state.send_modify(|(n, _)| *n += 1);
        InFlight(self.clone())
    }

    /// Resolves once no request has been in flight for `idle`.
    pub async fn idle_for(&self, idle: Duration) {
        let mut state = self.state.subscribe();
        loop {
            let (n, since) = *state.borrow_and_update();
            if n == 0 {
                tokio::select! {
                    () = tokio::time::sleep_until(since + idle) => return,
                    changed = state.changed() => if changed.is_err() { return },
                }
            } else if state.changed().await.is_err() {
                return;
            }
        }
    }
}

/// A response whose body keeps `guard` until it is sent (or dropped).
pub(super) fn hold_until_sent(res: http::Response<Body>, guard: InFlight) -> http::Response<Body> {
    res.map(|body| {
        Body::new(body.map_frame(move |frame| {
            let _held = &guard;
            frame
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_bytes_in(chunks: &[&[u8]]) -> bool {
        let mut g = Guarded::new((), Duration::from_secs(1), Duration::from_secs(1));
        chunks.iter().for_each(|c| g.saw(c));
        g.preface.is_none()
    }

    #[tokio::test]
    async fn the_first_bytes_are_in_once_the_protocol_and_its_first_frame_are() {
        assert!(first_bytes_in(&[b"G"]), "HTTP/1 from its first byte");
        assert!(first_bytes_in(&[b"PRI * HTTP/1.1"]), "not the preface");
        assert!(!first_bytes_in(&[b"PRI * HTTP/2.0\r\n"]));
        assert!(!first_bytes_in(&[H2_PREFACE]), "a preface without a frame");
        assert!(!first_bytes_in(&[H2_PREFACE, &[0; 8]]));
        assert!(first_bytes_in(&[H2_PREFACE, &[0; 9]]));
        assert!(first_bytes_in(&[
            &H2_PREFACE[..5],
            &H2_PREFACE[5..],
            &[4; 20]
        ]));
        assert!(!first_bytes_in(&[]));
    }
}
