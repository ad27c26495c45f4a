//! Reads from another registry: manifests and blobs, by `HEAD` and `GET`.

use http::Method;
use registry_core::Digest;

use super::{MANIFEST_TYPES, Upstream, UpstreamError, UpstreamManifest, digest_header};

impl Upstream {
    /// The digest a manifest reference stands for upstream (`HEAD`, which Docker Hub does not
    /// count against pull limits); `None` when the upstream does not say.
    pub async fn head_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<Digest>, UpstreamError> {
        let res = self
            .send(
                Method::HEAD,
                repo,
                &format!("manifests/{reference}"),
                Some(MANIFEST_TYPES),
            )
            .await?;
        Ok(digest_header(res.headers()))
    }

    /// A manifest, by tag or digest, refused unless its bytes hash to `expected` (when asking by
    /// digest) and to the `Docker-Content-Digest` the upstream announces (when it does).
    pub async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
        expected: Option<&Digest>,
        limit: u64,
    ) -> Result<UpstreamManifest, UpstreamError> {
        let path = format!("manifests/{reference}");
        let res = self
            .send(Method::GET, repo, &path, Some(MANIFEST_TYPES))
            .await?;
        let media_type = res
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let digest = digest_header(res.headers());
        let bytes = self.read_limited(res, limit, &path).await?;
        for claimed in expected.into_iter().chain(&digest) {
            let mut check = registry_core::Digester::new(claimed.algorithm());
            check.update(&bytes);
            if check.finish() != *claimed {
                return Err(UpstreamError::Refused(format!(
                    "upstream {} served bytes for {repo}:{reference} that are not {claimed}",
                    self.base
                )));
            }
        }
        Ok(UpstreamManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// A blob's size, without its bytes.
    pub async fn head_blob(&self, repo: &str, digest: &Digest) -> Result<u64, UpstreamError> {
        let path = format!("blobs/{digest}");
        let res = self.send(Method::HEAD, repo, &path, None).await?;
        res.headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                UpstreamError::Refused(format!("upstream {} gave no size for {path}", self.base))
            })
    }

    /// A blob's bytes (redirects to a CDN followed, without our credentials).
    pub async fn get_blob(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<reqwest::Response, UpstreamError> {
        self.send(Method::GET, repo, &format!("blobs/{digest}"), None)
            .await
    }
}
