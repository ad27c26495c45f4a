//! [`Uploads`]: blobs sent in many requests (`POST`, `PATCH`…, `PUT`), through any process sharing
//! the storage: the session state machine, its parts and tail, and the hashing of what comes in.
//!
//! What keeps an upload's bytes honest when its requests race (a client, or an attacker, sending
//! `PATCH` and `PUT` on one upload at once):
//! - in this process, one request at a time works on an upload ([`crate::upload::UploadLocks`]);
//! - every object a session names is written once: parts are named by receipts that the backend
//!   refuses to assemble once replaced, the tail by its SHA-256 ([`UploadSession`]);
//! - the tail is hashed again when read, and completion assembles exactly the session's receipts;
//! - a blob is installed only where none is: on the filesystem by a rename that refuses to replace
//!   (the upload's data file leaves its folder while its lock is held, so no late append reaches
//!   it), on object stores by looking first and writing a location record, never the bytes.

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use crate::blobs::{BlobInfo, Blobs, parse_record, to_json};
use crate::clock::{SharedClock, unix_secs};
use crate::digest::{Algorithm, Digest, Digester};
use crate::error::{Error, Result};
use crate::parts::{End, Multipart};
use crate::paths;
use crate::reference::RepositoryName;
use crate::storage::{ByteStream, Storage, StorageExt};
use crate::tap::{Tap, check, tapped};
use crate::upload::{UploadGuard, UploadLocks, UploadSession, UploadStatus};

/// The upload store.
#[derive(Debug, Clone)]
pub(crate) struct Uploads {
    storage: Arc<dyn Storage>,
    blobs: Blobs,
    locks: Arc<UploadLocks>,
    clock: SharedClock,
}

impl Uploads {
    pub fn new(storage: Arc<dyn Storage>, blobs: Blobs, clock: SharedClock) -> Uploads {
        Uploads {
            storage,
            blobs,
            locks: Arc::default(),
            clock,
        }
    }

    /// Starts an upload session in `repo`. Storage is touched for the bytes only once they come.
    pub async fn start(&self, repo: &RepositoryName) -> Result<UploadStatus> {
        let session = UploadSession {
            id: uuid::Uuid::new_v4().simple().to_string(),
            repository: repo.clone(),
            multipart: None,
            parts: Vec::new(),
            offset: 0,
            tail: 0,
            tail_digest: None,
            hash_state: hex::encode(Digester::new(Algorithm::Sha256).state()),
            started_at: unix_secs(self.clock.now()),
        };
        self.save_session(&session).await?;
        Ok(UploadStatus::from(&session))
    }

    /// Where an upload stands.
    pub async fn status(&self, repo: &RepositoryName, id: &str) -> Result<UploadStatus> {
        Ok(UploadStatus::from(&self.load_session(repo, id).await?))
    }

    /// Appends a chunk to an upload. `offset`, when the client gave one, must equal the bytes
    /// already received ([`Error::ChunkOutOfOrder`] otherwise, with the current offset);
    /// `expected_len`, when given, must equal the bytes the body carries.
    pub async fn append(
        &self,
        repo: &RepositoryName,
        id: &str,
        offset: Option<u64>,
        data: ByteStream,
        expected_len: Option<u64>,
    ) -> Result<UploadStatus> {
        let _held = self.lock_upload(id).await?;
        let mut session = self.load_session(repo, id).await?;
        if let Some(requested) = offset
            && requested != session.offset
        {
            return Err(Error::ChunkOutOfOrder {
                requested,
                current: session.offset,
            });
        }
        self.write_part(&mut session, data, expected_len).await?;
        Ok(UploadStatus::from(&session))
    }

    /// Ends an upload: stores an optional last chunk, checks the digest of everything received,
    /// and only then makes the blob visible in the repository. On a digest mismatch nothing is
    /// stored and the session ends.
    ///
    /// Every step can be repeated: a client retrying after a crash at any point gets the blob.
    pub async fn complete(
        &self,
        repo: &RepositoryName,
        id: &str,
        digest: &Digest,
        last_chunk: Option<(ByteStream, Option<u64>)>,
    ) -> Result<BlobInfo> {
        let _held = self.lock_upload(id).await?;
        let mut session = self.load_session(repo, id).await?;
        if let Some((data, expected_len)) = last_chunk {
            self.write_part(&mut session, data, expected_len).await?;
        }
        let sha256 = session_digester(&session)?.finish();
        let verify = |actual: Digest| {
            if actual == *digest {
                Ok(())
            } else {
                Err(Error::DigestMismatch {
                    expected: digest.clone(),
                    actual,
                })
            }
        };
        if digest.algorithm() == sha256.algorithm()
            && let Err(e) = verify(sha256.clone())
        {
            self.end_session(&session).await?;
            return Err(e);
        }
        let tail = self.read_tail(&session).await?;
        let data_key = paths::upload_data(&session.id);
        let info = BlobInfo {
            digest: digest.clone(),
            size: session.offset,
        };
        let Some(multipart) = session.multipart.clone() else {
            // Every byte is in the tail: the digest is known, so they go straight to their place.
            if digest.algorithm() != sha256.algorithm() {
                let mut digester = Digester::new(digest.algorithm());
                digester.update(&tail);
                if let Err(e) = verify(digester.finish()) {
                    self.end_session(&session).await?;
                    return Err(e);
                }
            }
            self.blobs.install_bytes(digest, tail).await?;
            self.blobs.link(repo, digest).await?;
            self.forget_session(&session).await?;
            return Ok(info);
        };
        let mut parts = session.parts.clone();
        let mut multipart_id = Some(multipart.clone());
        let completed = async {
            Multipart {
                storage: &self.storage,
                key: &data_key,
                id: &mut multipart_id,
                parts: &mut parts,
            }
            .write(tail, futures::stream::empty().boxed(), End::Last)
            .await?;
            self.storage
                .complete_multipart(&data_key, &multipart, parts)
                .await?;
            Ok::<_, Error>(())
        }
        .await;
        match completed {
            Ok(()) => {}
            // A crash after an earlier completion, before the session ended: finish its work.
            Err(e) if e.is_not_found() && !self.storage.exists(&data_key).await? => {
                let done = sha256 == *digest && self.blobs.locate(digest).await.is_ok();
                if !done {
                    self.storage.delete(&paths::upload_session(id)).await?;
                    return Err(Error::BlobUploadUnknown { id: id.to_owned() });
                }
                self.blobs.link(repo, digest).await?;
                self.forget_session(&session).await?;
                return Ok(info);
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        if digest.algorithm() != sha256.algorithm()
            && let Err(e) = verify(self.hash_object(&data_key, digest.algorithm()).await?)
        {
            self.end_session(&session).await?;
            return Err(e);
        }
        if self.storage.capabilities().rename_copies {
            self.blobs
                .install_location(digest, &data_key, session.offset)
                .await?;
        } else {
            self.blobs.install_object(digest, &data_key).await?;
        }
        self.blobs.link(repo, digest).await?;
        self.blobs.touched(digest);
        self.forget_session(&session).await?;
        Ok(info)
    }

    /// Abandons an upload and frees what it stored.
    pub async fn cancel(&self, repo: &RepositoryName, id: &str) -> Result<()> {
        let _held = self.lock_upload(id).await?;
        let session = self.load_session(repo, id).await?;
        self.end_session(&session).await
    }

    /// Waits until no other request of this process works on upload `id`.
    /// [`Error::BlobUploadUnknown`] for an id this registry never hands out.
    async fn lock_upload(&self, id: &str) -> Result<UploadGuard> {
        check_id(id)?;
        Ok(self.locks.lock(id).await)
    }

    async fn load_session(&self, repo: &RepositoryName, id: &str) -> Result<UploadSession> {
        check_id(id)?;
        let key = paths::upload_session(id);
        let bytes = (self.storage.get_opt(&key).await?).ok_or_else(|| unknown(id))?;
        let session: UploadSession = parse_record(&key, &bytes)?;
        if session.repository != *repo || session.id != id {
            return Err(unknown(id));
        }
        Ok(session)
    }

    async fn save_session(&self, session: &UploadSession) -> Result<()> {
        Ok(self
            .storage
            .put(&paths::upload_session(&session.id), to_json(session)?)
            .await?)
    }

    /// Frees everything an unfinished upload stored.
    pub(crate) async fn end_session(&self, session: &UploadSession) -> Result<()> {
        let data_key = paths::upload_data(&session.id);
        if let Some(multipart) = &session.multipart {
            self.storage.abort_multipart(&data_key, multipart).await?;
        }
        self.storage.delete(&data_key).await?;
        self.forget_session(session).await
    }

    /// Removes an upload's session and tail, leaving its data (a completed blob's).
    async fn forget_session(&self, session: &UploadSession) -> Result<()> {
        if let Some(tail) = session.tail_key() {
            self.storage.delete(&tail).await?;
        }
        Ok(self
            .storage
            .delete(&paths::upload_session(&session.id))
            .await?)
    }

    /// The session's tail, refused unless it still hashes to what the session recorded.
    async fn read_tail(&self, session: &UploadSession) -> Result<Bytes> {
        let Some(key) = session.tail_key() else {
            return Ok(Bytes::new());
        };
        let tail = self.storage.get_bytes(&key).await?;
        let intact = tail.len() as u64 == session.tail
            && session
                .tail_digest
                .as_ref()
                .is_none_or(|d| *d == Digest::of(&tail));
        if !intact {
            return Err(Error::storage(format!(
                "{key} does not hold the bytes its upload received"
            )));
        }
        Ok(tail)
    }

    /// Stores a chunk after what the session holds and saves the session. Nothing changes in the
    /// session when it fails; parts stored meanwhile are replaced by the next attempt's.
    async fn write_part(
        &self,
        session: &mut UploadSession,
        data: ByteStream,
        expected_len: Option<u64>,
    ) -> Result<()> {
        let tap = Tap::new(session_digester(session)?, expected_len);
        let head = self.read_tail(session).await?;
        let (mut id, mut parts) = (session.multipart.clone(), session.parts.clone());
        let stored = Multipart {
            storage: &self.storage,
            key: &paths::upload_data(&session.id),
            id: &mut id,
            parts: &mut parts,
        }
        .write(head, tapped(data, tap.clone()), End::Open)
        .await
        .map_err(|e| upload_error(e, &session.id));
        let (tail, seen) = check(&tap, stored)?;
        if seen.len == 0 {
            return Ok(());
        }
        let old_tail = session.tail_key();
        let next = UploadSession {
            multipart: id,
            parts,
            offset: session.offset + seen.len,
            tail: tail.len() as u64,
            tail_digest: (!tail.is_empty()).then(|| Digest::of(&tail)),
            hash_state: hex::encode(seen.digester.state()),
            ..session.clone()
        };
        if let Some(key) = next.tail_key() {
            self.storage.put(&key, tail).await?;
        }
        self.save_session(&next).await?;
        *session = next;
        if let Some(old) = old_tail {
            self.storage.delete(&old).await?;
        }
        Ok(())
    }

    async fn hash_object(&self, key: &str, algorithm: Algorithm) -> Result<Digest> {
        let mut digester = Digester::new(algorithm);
        let mut stream = self.storage.get(key, None).await?.stream;
        while let Some(chunk) = stream.try_next().await.map_err(Error::storage)? {
            digester.update(&chunk);
        }
        Ok(digester.finish())
    }
}

/// Upload ids are 32 lowercase hex digits; anything else is unknown without asking storage.
fn check_id(id: &str) -> Result<()> {
    let well_formed = id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if well_formed {
        Ok(())
    } else {
        Err(unknown(id))
    }
}

fn unknown(id: &str) -> Error {
    Error::BlobUploadUnknown {
        id: id.chars().take(100).collect(),
    }
}

fn upload_error(e: Error, id: &str) -> Error {
    if e.is_not_found() {
        Error::BlobUploadUnknown { id: id.to_owned() }
    } else {
        e
    }
}

fn session_digester(session: &UploadSession) -> Result<Digester> {
    hex::decode(&session.hash_state)
        .ok()
        .and_then(|state| Digester::resume(&state))
        .ok_or_else(|| Error::storage("corrupt digest state in upload session"))
}
