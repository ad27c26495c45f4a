//! The hashing tap: a request body on its way into storage is hashed and counted as the backend
//! reads it, so that no byte is read twice, and cut off once it exceeds the length announced.

use std::sync::{Arc, Mutex};

use futures::StreamExt;

use crate::digest::{Algorithm, Digester};
use crate::error::{Error, Result};
use crate::storage::ByteStream;

/// Bytes seen by a stream on its way into storage: their count and hash, and why the body failed.
pub(crate) struct Tap {
    digester: Digester,
    len: u64,
    expected: Option<u64>,
    body_error: Option<String>,
}

/// What a tap saw of a body that was stored whole.
pub(crate) struct Tapped {
    /// The hash of the bytes before the body, then of the body.
    pub digester: Digester,
    /// The body's length.
    pub len: u64,
}

fn lock(tap: &Mutex<Tap>) -> std::sync::MutexGuard<'_, Tap> {
    tap.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Tap {
    /// A tap continuing `digester`, expecting `expected` bytes when the client announced a length.
    pub fn new(digester: Digester, expected: Option<u64>) -> Arc<Mutex<Tap>> {
        Arc::new(Mutex::new(Tap {
            digester,
            len: 0,
            expected,
            body_error: None,
        }))
    }
}

/// Hashes and counts `data` as the backend reads it, and cuts it off once it exceeds the length
/// expected.
pub(crate) fn tapped(data: ByteStream, tap: Arc<Mutex<Tap>>) -> ByteStream {
    data.map(move |item| {
        let mut t = lock(&tap);
        match item {
            Ok(chunk) => {
                t.len += chunk.len() as u64;
                if let Some(expected) = t.expected
                    && t.len > expected
                {
                    let reason = format!("body is longer than the {expected} bytes announced");
                    t.body_error = Some(reason.clone());
                    return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, reason));
                }
                t.digester.update(&chunk);
                Ok(chunk)
            }
            Err(e) => {
                t.body_error = Some(format!("request body failed: {e}"));
                Err(e)
            }
        }
    })
    .boxed()
}

/// Takes the outcome of storing a tapped body: a body failure is the client's fault, whatever the
/// backend reported; a body shorter than announced fails too.
pub(crate) fn check<T>(tap: &Mutex<Tap>, stored: Result<T>) -> Result<(T, Tapped)> {
    let mut t = lock(tap);
    if let Some(reason) = t.body_error.take() {
        return Err(Error::BlobUploadInvalid { reason });
    }
    let stored = stored?;
    if let Some(expected) = t.expected
        && t.len != expected
    {
        return Err(Error::BlobUploadInvalid {
            reason: format!("body has {} bytes, {expected} were announced", t.len),
        });
    }
    let digester = std::mem::replace(&mut t.digester, Digester::new(Algorithm::Sha256));
    Ok((
        stored,
        Tapped {
            digester,
            len: t.len,
        },
    ))
}
