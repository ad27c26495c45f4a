//! Blob fetches: one per blob however many clients ask, spooled to a file that every client
//! streams from as it grows, the last byte held until the whole blob is verified and stored.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use registry_core::error::UpstreamFailure;
use registry_core::source::Fill;
use registry_core::{ByteStream, Digest, Error, RepositoryName};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::{OnceCell, watch};

use super::{Mirror, Stats, Upstream, UpstreamError, lock, upstream_error};

/// How far a blob fetch got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Progress {
    /// This many bytes are in the spool file.
    Running(u64),
    /// All of them, verified and stored.
    Done(u64),
    /// The fetch failed; the spool is incomplete.
    Failed(String),
}

/// A blob being fetched: its spool file and progress. No spool when the blob turned out to be
/// stored already (a fetch that ended just before this one began).
#[derive(Debug)]
pub(super) struct Fetch {
    pub(super) size: Option<u64>,
    pub(super) spool: Option<PathBuf>,
    pub(super) progress: watch::Receiver<Progress>,
}

pub(super) type FetchSlot = Arc<OnceCell<Arc<Fetch>>>;

impl Mirror {
    /// The fetch of `digest` into `repo`: the one in flight, or a new one.
    pub(super) async fn fetch(
        &self,
        fill: &Fill,
        up: &Arc<Upstream>,
        name: &str,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Arc<Fetch>, Error> {
        let key = (repo.clone(), digest.clone());
        let slot = lock(&self.fetches).entry(key.clone()).or_default().clone();
        let started = slot
            .get_or_try_init(|| self.start_fetch(fill, up, name, repo, digest))
            .await
            .cloned();
        // A failed start, or a blob found stored, leaves no task to take the slot away.
        if !started.as_ref().is_ok_and(|f| f.spool.is_some()) {
            let mut fetches = lock(&self.fetches);
            if fetches.get(&key).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                fetches.remove(&key);
            }
        }
        started
    }

    async fn start_fetch(
        &self,
        fill: &Fill,
        up: &Arc<Upstream>,
        name: &str,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Arc<Fetch>, Error> {
        // The previous fetch of this blob may have stored it and left between the caller's
        // local miss and this slot: then there is nothing to ask the upstream for.
        if fill.has_blob(repo, digest).await? {
            let (_, progress) = watch::channel(Progress::Done(0));
            return Ok(Arc::new(Fetch {
                size: None,
                spool: None,
                progress,
            }));
        }
        let res = up
            .get_blob(name, digest)
            .await
            .map_err(|e| self.upstream_failed(e, UpstreamFailure::BlobUnknown))?;
        let size = res.content_length();
        let spool = self
            .config
            .spool_dir
            .join(format!("registry-fetch-{}", uuid::Uuid::new_v4().simple()));
        let file = tokio::fs::File::create(&spool)
            .await
            .map_err(|e| Error::storage(format!("cannot spool to {}: {e}", spool.display())))?;
        let (progress_tx, progress) = watch::channel(Progress::Running(0));
        let fetch = Arc::new(Fetch {
            size,
            spool: Some(spool.clone()),
            progress,
        });
        let job = FetchJob {
            fill: fill.clone(),
            repo: repo.clone(),
            digest: digest.clone(),
            size,
            stats: self.stats.clone(),
            url: up.url().to_owned(),
        };
        let fetches = self.fetches.clone();
        tokio::spawn(async move {
            let outcome = job.run(res, file, &progress_tx).await;
            match &outcome {
                Ok(_) => {
                    tracing::info!(repo = %job.repo, digest = %job.digest, "fetched from upstream")
                }
                Err(e) => {
                    job.stats.upstream_errors.inc();
                    tracing::warn!(repo = %job.repo, digest = %job.digest, "fetch failed: {e}");
                }
            }
            // Readers already streaming keep their open handle to the spool.
            let _ = tokio::fs::remove_file(&spool).await;
            lock(&fetches).remove(&(job.repo.clone(), job.digest.clone()));
            let _ = progress_tx.send(match outcome {
                Ok(n) => Progress::Done(n),
                Err(e) => Progress::Failed(e),
            });
        });
        Ok(fetch)
    }
}

/// What a fetch task needs.
struct FetchJob {
    fill: Fill,
    repo: RepositoryName,
    digest: Digest,
    size: Option<u64>,
    stats: Stats,
    url: String,
}

impl FetchJob {
    /// Copies the upstream's bytes to the spool and into storage (which verifies the digest);
    /// the number of bytes, or why it failed.
    async fn run(
        &self,
        res: reqwest::Response,
        mut file: tokio::fs::File,
        progress: &watch::Sender<Progress>,
    ) -> Result<u64, String> {
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
        let body: ByteStream = tokio_stream_from(rx);
        let (fill, repo, digest, size) = (
            self.fill.clone(),
            self.repo.clone(),
            self.digest.clone(),
            self.size,
        );
        let store = tokio::spawn(async move { fill.store_blob(&repo, &digest, body, size).await });
        let mut upstream = res.bytes_stream();
        let mut written = 0u64;
        let mut failure = None;
        while let Some(chunk) = upstream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let why = format!("upstream {} failed mid-blob: {e}", self.url);
                    let _ = tx.send(Err(std::io::Error::other(why.clone()))).await;
                    failure = Some(why);
                    break;
                }
            };
            if let Err(e) = async {
                file.write_all(&chunk).await?;
                file.flush().await
            }
            .await
            {
                let why = format!("spool write failed: {e}");
                let _ = tx.send(Err(std::io::Error::other(why.clone()))).await;
                failure = Some(why);
                break;
            }
            written += chunk.len() as u64;
            self.stats.upstream_bytes.inc_by(chunk.len() as u64);
            let _ = progress.send(Progress::Running(written));
            if tx.send(Ok(chunk)).await.is_err() {
                break;
            }
        }
        drop(tx);
        let stored = store
            .await
            .map_err(|e| format!("storing task failed: {e}"))
            .and_then(|r| r.map_err(|e| e.to_string()));
        match (failure, stored) {
            (Some(why), _) => Err(why),
            (None, Err(e)) => Err(e),
            (None, Ok(_)) => Ok(written),
        }
    }
}

fn tokio_stream_from(mut rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>) -> ByteStream {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

/// Waits for a fetch to end; its error when it failed.
pub(super) async fn wait(fetch: &Fetch) -> Result<(), Error> {
    let mut progress = fetch.progress.clone();
    loop {
        let failed = match &*progress.borrow_and_update() {
            Progress::Done(_) => return Ok(()),
            Progress::Failed(e) => Some(e.clone()),
            Progress::Running(_) => None,
        };
        let failed = match failed {
            Some(why) => Some(why),
            None => progress
                .changed()
                .await
                .err()
                .map(|_| "the fetch stopped".to_owned()),
        };
        if let Some(why) = failed {
            let e = UpstreamError::Unreachable(why);
            return Err(upstream_error(&e, UpstreamFailure::BlobUnknown));
        }
    }
}

/// The spool's bytes as they arrive, ending when the fetch is done (an error if it failed);
/// `None` when the spool is gone (the fetch just ended). The last byte is
/// held back until the fetch has verified and stored the whole blob, so a client never receives
/// all the bytes of a blob that does not match its digest.
pub(super) async fn read_spool(fetch: &Arc<Fetch>) -> Option<ByteStream> {
    let file = tokio::fs::File::open(fetch.spool.as_ref()?).await.ok()?;
    let state = (file, 0u64, fetch.progress.clone());
    let stream = futures::stream::unfold(Some(state), |state| async move {
        let (mut file, pos, mut progress) = state?;
        loop {
            let (available, done) = match &*progress.borrow_and_update() {
                Progress::Running(n) => (n.saturating_sub(1), false),
                Progress::Done(n) => (*n, true),
                Progress::Failed(e) => {
                    return Some((Err(std::io::Error::other(e.clone())), None));
                }
            };
            if pos < available {
                let want = (available - pos).min(64 * 1024) as usize;
                let mut buf = vec![0; want];
                let read = async {
                    file.seek(std::io::SeekFrom::Start(pos)).await?;
                    file.read_exact(&mut buf).await
                }
                .await;
                return match read {
                    Ok(_) => Some((
                        Ok(Bytes::from(buf)),
                        Some((file, pos + want as u64, progress)),
                    )),
                    Err(e) => Some((Err(e), None)),
                };
            }
            if done {
                return None;
            }
            if progress.changed().await.is_err() {
                let e = std::io::Error::other("the fetch stopped");
                return Some((Err(e), None));
            }
        }
    });
    Some(stream.boxed())
}
