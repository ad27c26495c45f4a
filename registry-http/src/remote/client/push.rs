//! Writing to a remote registry: blob uploads (a mount when the remote already holds the blob in
//! another repository), manifest puts and deletes, tag listings, and the referrers of a manifest,
//! through the referrers API or, on a registry without it (distribution 2.8), the OCI tag schema
//! (`sha256-<hex>`: an index of the referrers, which the pushing client keeps up to date).

use futures::StreamExt;
use http::{Method, StatusCode};
use registry_core::manifest::Descriptor;
use registry_core::{ByteStream, Digest};
use serde_json::{Value, json};

use super::{Access, Payload, Upstream, UpstreamError};
use crate::headers::OCI_SUBJECT_HEADER;

/// Manifests (and referrer indexes) read from a remote are refused past this size.
pub(super) const MANIFEST_LIMIT: u64 = 4 * 1024 * 1024;
/// Tags asked for per page of a listing.
const TAGS_PAGE: usize = 1000;
const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// How an upload began.
enum Started {
    /// The remote mounted the blob from another repository: nothing to send.
    Mounted,
    /// Send the bytes to this session.
    Session(reqwest::Url),
}

impl Upstream {
    /// Asks `/v2/`: whether the registry answers at all (any answer, a challenge included).
    pub async fn ping(&self) -> Result<(), UpstreamError> {
        let url = self.base.join("v2/").map_err(|e| self.err("/v2/", e))?;
        self.client
            .get(url)
            .send()
            .await
            .map(drop)
            .map_err(|e| self.err("/v2/", e))
    }

    /// Whether the repository holds the blob (`HEAD`).
    pub async fn has_blob(&self, repo: &str, digest: &Digest) -> Result<bool, UpstreamError> {
        let url = self.url_of(repo, &format!("blobs/{digest}"))?;
        match self
            .request(Method::HEAD, url, repo, Access::Push, None, Payload::Empty)
            .await
        {
            Ok(_) => {
                self.seen_in.insert(digest.clone(), repo.to_owned());
                Ok(true)
            }
            Err(UpstreamError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Mounts the blob into `repo` from the repository it was last seen in on this remote;
    /// false when none is known or the remote would not mount it.
    pub async fn mount_blob(&self, repo: &str, digest: &Digest) -> Result<bool, UpstreamError> {
        let Some(from) = self.seen_in.get(digest).filter(|from| from != repo) else {
            return Ok(false);
        };
        match self.start_upload(repo, Some((digest, &from))).await? {
            Started::Mounted => {
                self.seen_in.insert(digest.clone(), repo.to_owned());
                Ok(true)
            }
            Started::Session(session) => {
                let _ = self
                    .request(
                        Method::DELETE,
                        session,
                        repo,
                        Access::Push,
                        None,
                        Payload::Empty,
                    )
                    .await;
                Ok(false)
            }
        }
    }

    async fn start_upload(
        &self,
        repo: &str,
        mount: Option<(&Digest, &str)>,
    ) -> Result<Started, UpstreamError> {
        let mut url = self.url_of(repo, "blobs/uploads/")?;
        if let Some((digest, from)) = mount {
            url.query_pairs_mut()
                .append_pair("mount", &digest.to_string())
                .append_pair("from", from);
        }
        let res = self
            .request(Method::POST, url, repo, Access::Push, None, Payload::Empty)
            .await?;
        if res.status() == StatusCode::CREATED && mount.is_some() {
            return Ok(Started::Mounted);
        }
        let location = res
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                UpstreamError::Refused(format!(
                    "upstream {} started an upload without a Location",
                    self.base
                ))
            })?;
        let session = self
            .base
            .join(location)
            .map_err(|e| self.err("upload", e))?;
        Ok(Started::Session(session))
    }

    /// Uploads a blob of `size` bytes in one request, streamed; the remote verifies the digest.
    pub async fn put_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        data: ByteStream,
    ) -> Result<(), UpstreamError> {
        let Started::Session(mut session) = self.start_upload(repo, None).await? else {
            return Ok(());
        };
        session
            .query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let body = reqwest::Body::wrap_stream(data);
        self.request(
            Method::PUT,
            session,
            repo,
            Access::Push,
            None,
            Payload::Stream(body, size),
        )
        .await?;
        self.seen_in.insert(digest.clone(), repo.to_owned());
        Ok(())
    }

    /// Stores a manifest under `reference`; true when the remote answered with `OCI-Subject`
    /// (it indexes referrers itself).
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: bytes::Bytes,
    ) -> Result<bool, UpstreamError> {
        let url = self.url_of(repo, &format!("manifests/{reference}"))?;
        let payload = Payload::Bytes(bytes, media_type.to_owned());
        let res = self
            .request(Method::PUT, url, repo, Access::Push, None, payload)
            .await?;
        Ok(res.headers().contains_key(OCI_SUBJECT_HEADER))
    }

    /// Deletes a manifest (by digest) or a tag; false when the remote had none.
    pub async fn delete_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<bool, UpstreamError> {
        let url = self.url_of(repo, &format!("manifests/{reference}"))?;
        match self
            .request(
                Method::DELETE,
                url,
                repo,
                Access::Push,
                None,
                Payload::Empty,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(UpstreamError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every tag of a repository (empty when the remote has no such repository).
    pub async fn tags(&self, repo: &str) -> Result<Vec<String>, UpstreamError> {
        let mut tags: Vec<String> = Vec::new();
        loop {
            let mut url = self.url_of(repo, "tags/list")?;
            url.query_pairs_mut()
                .append_pair("n", &TAGS_PAGE.to_string());
            if let Some(last) = tags.last() {
                url.query_pairs_mut().append_pair("last", last);
            }
            let res = match self
                .request(Method::GET, url, repo, Access::Pull, None, Payload::Empty)
                .await
            {
                Ok(res) => res,
                Err(UpstreamError::NotFound(_)) => return Ok(tags),
                Err(e) => return Err(e),
            };
            let more = res.headers().contains_key(http::header::LINK);
            let body = self.read_limited(res, MANIFEST_LIMIT, "tags/list").await?;
            let page: Value = serde_json::from_slice(&body).map_err(|e| {
                UpstreamError::Refused(format!("upstream {} sent unreadable tags: {e}", self.base))
            })?;
            let before = tags.len();
            tags.extend(
                page["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.as_str().map(str::to_owned)),
            );
            if !more || tags.len() == before {
                return Ok(tags);
            }
        }
    }

    /// The manifests whose subject is `subject`: from the referrers API, else from the tag
    /// schema's index.
    pub async fn referrers(
        &self,
        repo: &str,
        subject: &Digest,
    ) -> Result<Vec<Descriptor>, UpstreamError> {
        let path = format!("referrers/{subject}");
        let url = self.url_of(repo, &path)?;
        let index = match self
            .request(
                Method::GET,
                url,
                repo,
                Access::Pull,
                Some(INDEX_MEDIA_TYPE),
                Payload::Empty,
            )
            .await
        {
            Ok(res) => self.read_limited(res, MANIFEST_LIMIT, &path).await?,
            Err(UpstreamError::NotFound(_)) => match self.fallback_index(repo, subject).await? {
                Some(index) => index.bytes,
                None => return Ok(Vec::new()),
            },
            Err(e) => return Err(e),
        };
        let index: Value = serde_json::from_slice(&index).map_err(|e| {
            UpstreamError::Refused(format!(
                "upstream {} sent unreadable referrers: {e}",
                self.base
            ))
        })?;
        Ok(serde_json::from_value(index["manifests"].clone()).unwrap_or_default())
    }

    /// The index at the tag schema's tag for `subject`, if the remote has one.
    async fn fallback_index(
        &self,
        repo: &str,
        subject: &Digest,
    ) -> Result<Option<super::UpstreamManifest>, UpstreamError> {
        match self
            .get_manifest(repo, &fallback_tag(subject), None, MANIFEST_LIMIT)
            .await
        {
            Ok(index) => Ok(Some(index)),
            Err(UpstreamError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Adds `referrer` to the tag schema's index of `subject` on a remote without the referrers
    /// API. Two writers racing may drop one entry; the next copy of that referrer puts it back.
    pub async fn add_fallback_referrer(
        &self,
        repo: &str,
        subject: &Digest,
        referrer: Descriptor,
    ) -> Result<(), UpstreamError> {
        let mut manifests: Vec<Descriptor> = match self.fallback_index(repo, subject).await? {
            Some(index) => serde_json::from_slice::<Value>(&index.bytes)
                .ok()
                .and_then(|v| serde_json::from_value(v["manifests"].clone()).ok())
                .unwrap_or_default(),
            None => Vec::new(),
        };
        if manifests.iter().any(|d| d.digest == referrer.digest) {
            return Ok(());
        }
        manifests.push(referrer);
        let index = json!({
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": manifests,
        });
        let bytes = serde_json::to_vec(&index)
            .map(bytes::Bytes::from)
            .map_err(|e| UpstreamError::Refused(e.to_string()))?;
        self.put_manifest(repo, &fallback_tag(subject), INDEX_MEDIA_TYPE, bytes)
            .await
            .map(drop)
    }

    /// The blob's bytes as a stream of I/O results.
    pub async fn blob_stream(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<ByteStream, UpstreamError> {
        let res = self.get_blob(repo, digest).await?;
        Ok(res
            .bytes_stream()
            .map(|chunk| chunk.map_err(std::io::Error::other))
            .boxed())
    }
}

/// The tag under which the OCI tag schema keeps the referrers of `subject`: `<alg>-<hex>`.
pub fn fallback_tag(subject: &Digest) -> String {
    format!("{}-{}", subject.algorithm().as_str(), subject.hex())
}
