//! A client of another registry: what the pull-through cache fetches from, what replication and
//! `registry copy` push to and pull from. It answers the registry's authentication: Basic
//! credentials, or the Docker token flow (anonymous or with credentials) that Docker Hub and most
//! registries use, with `pull` scope to read and `pull,push` to write.
//!
//! - `trust`: where the client follows redirects and sends credentials ([`Redirects`]).
//! - `push`: blob uploads (mounting what the target has elsewhere), manifest puts, deletes, and
//!   the referrers tag schema for a target without the referrers API.
//! - `transfer`: the client as a `registry_core::transfer` origin and destination.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, Method, StatusCode};
use registry_core::Digest;
use reqwest::header::{ACCEPT, AUTHORIZATION};

use crate::headers::CONTENT_DIGEST_HEADER;
use crate::remote::error::MirrorError;
use trust::Trust;

mod login;
mod pull;
mod push;
mod transfer;
mod trust;

pub use trust::Redirects;

/// Bearer tokens kept, by scope (one per repository pulled): the least recently used go first.
const TOKENS_KEPT: usize = 4096;
/// The longest a token from an upstream is used, whatever lifetime it announces.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// Blobs whose repository on the remote is remembered, for mounts.
const BLOBS_REMEMBERED: usize = 16 * 1024;
/// Redirects followed in a row, at most.
const MAX_REDIRECTS: usize = 5;

/// What a registry serves manifests as; asked for all at once.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// How an upstream request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    /// The upstream says the manifest or blob does not exist (404).
    NotFound(String),
    /// The upstream rate-limits us (429).
    TooManyRequests(String),
    /// The upstream refused (401, 403) or failed (5xx, unexpected answers).
    Refused(String),
    /// The upstream could not be reached, or did not answer in time.
    Unreachable(String),
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::NotFound(m)
            | UpstreamError::TooManyRequests(m)
            | UpstreamError::Refused(m)
            | UpstreamError::Unreachable(m) => f.write_str(m),
        }
    }
}

/// A manifest as the upstream served it.
#[derive(Debug, Clone)]
pub struct UpstreamManifest {
    /// Its bytes.
    pub bytes: bytes::Bytes,
    /// The `Content-Type` it came with.
    pub media_type: Option<String>,
    /// The `Docker-Content-Digest` it came with (the bytes hash to it).
    pub digest: Option<Digest>,
}

/// One upstream registry.
pub struct Upstream {
    base: reqwest::Url,
    credentials: Option<(String, String)>,
    client: reqwest::Client,
    trust: Arc<Trust>,
    /// `Authorization` values (bearer tokens, or Basic once asked for) by scope, with when they
    /// stop being used.
    tokens: quick_cache::sync::Cache<String, (String, Instant)>,
    /// Where each blob was last seen on the remote, to mount it instead of sending it again.
    seen_in: quick_cache::sync::Cache<Digest, String>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("base", &self.base.as_str())
            .field("credentials", &self.credentials.is_some())
            .finish()
    }
}

/// How a client of another registry speaks TLS.
#[derive(Debug, Clone)]
pub struct RemoteTls {
    /// Check the server's certificate (false: accept any, as `--tls-verify=false`).
    pub verify: bool,
    /// PEM CA certificates to trust besides the system's (a `certs.d` folder's `*.crt`).
    pub roots: Vec<Vec<u8>>,
    /// A PEM client certificate followed by its key (a `certs.d` folder's `client.cert` and
    /// `client.key`), for registries that ask for one.
    pub identity: Option<Vec<u8>>,
}

impl Default for RemoteTls {
    fn default() -> Self {
        RemoteTls {
            verify: true,
            roots: Vec::new(),
            identity: None,
        }
    }
}

impl Upstream {
    /// A client of the registry at `url` (`https://registry-1.docker.io`), authenticating with
    /// `credentials` (or those the URL carries, `https://user:password@host`, which are then
    /// removed from it) when it asks; requests time out after `timeout`, and follow redirects as
    /// `redirects` allows (never with credentials to another origin).
    pub fn new(
        url: &str,
        credentials: Option<(String, String)>,
        timeout: Duration,
        redirects: Redirects,
    ) -> Result<Upstream, MirrorError> {
        Upstream::with_tls(url, credentials, timeout, redirects, &RemoteTls::default())
    }

    /// As [`Upstream::new`]; with `verify_tls` false, any certificate is accepted (skopeo's
    /// `--tls-verify=false`, for a registry with a self-signed certificate).
    pub fn with_tls_verify(
        url: &str,
        credentials: Option<(String, String)>,
        timeout: Duration,
        redirects: Redirects,
        verify_tls: bool,
    ) -> Result<Upstream, MirrorError> {
        let tls = RemoteTls {
            verify: verify_tls,
            ..RemoteTls::default()
        };
        Upstream::with_tls(url, credentials, timeout, redirects, &tls)
    }

    /// As [`Upstream::new`], with the TLS settings `tls` (CAs to trust besides the system's, a
    /// client certificate, whether to check the server's at all).
    pub fn with_tls(
        url: &str,
        credentials: Option<(String, String)>,
        timeout: Duration,
        redirects: Redirects,
        tls: &RemoteTls,
    ) -> Result<Upstream, MirrorError> {
        let mut base = reqwest::Url::parse(url).map_err(|e| MirrorError::InvalidUpstream {
            url: "(a URL that does not parse)".into(),
            reason: e.to_string(),
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(MirrorError::InvalidUpstream {
                url: redacted(&base),
                reason: "use http or https".into(),
            });
        }
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let in_url = (!base.username().is_empty()).then(|| {
            (
                decode(base.username()),
                decode(base.password().unwrap_or("")),
            )
        });
        let credentials = credentials.or(in_url);
        let _ = base.set_username("");
        let _ = base.set_password(None);
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let trust = Trust::new(&base, redirects);
        let policy = {
            let trust = trust.clone();
            reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= MAX_REDIRECTS {
                    return attempt.error("too many redirects");
                }
                match trust.may_follow(attempt.url()) {
                    Ok(()) => attempt.follow(),
                    Err(why) => attempt.error(format!("redirect refused: {why}")),
                }
            })
        };
        let invalid = |reason: String| MirrorError::InvalidUpstream {
            url: redacted(&base),
            reason,
        };
        let mut builder = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .read_timeout(timeout)
            .redirect(policy)
            .tls_danger_accept_invalid_certs(!tls.verify)
            .dns_resolver(trust.resolver());
        for pem in &tls.roots {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| invalid(format!("a CA certificate: {e}")))?;
            builder = builder.add_root_certificate(cert);
        }
        if let Some(pem) = &tls.identity {
            let identity = reqwest::Identity::from_pem(pem)
                .map_err(|e| invalid(format!("the client certificate: {e}")))?;
            builder = builder.identity(identity);
        }
        let client = builder.build().map_err(|e| invalid(e.to_string()))?;
        Ok(Upstream {
            base,
            credentials,
            client,
            trust,
            tokens: quick_cache::sync::Cache::new(TOKENS_KEPT),
            seen_in: quick_cache::sync::Cache::new(BLOBS_REMEMBERED),
        })
    }

    /// The upstream's URL, for messages.
    pub fn url(&self) -> &str {
        self.base.as_str()
    }

    /// The upstream could not be used for `what`: `e` with the errors under it (reqwest's own
    /// text, "error sending request", says nothing of a refused connection or a TLS failure).
    fn err(&self, what: &str, e: impl std::error::Error) -> UpstreamError {
        let mut text = format!("upstream {} unreachable ({what}): {e}", self.base);
        let mut source = e.source();
        while let Some(cause) = source {
            text.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        UpstreamError::Unreachable(text)
    }

    /// Sends `method` to `/v2/<repo>/<path>` to read, answering the upstream's authentication
    /// challenge once; any status but success is an error.
    async fn send(
        &self,
        method: Method,
        repo: &str,
        path: &str,
        accept: Option<&str>,
    ) -> Result<reqwest::Response, UpstreamError> {
        let url = self.url_of(repo, path)?;
        self.request(method, url, repo, Access::Pull, accept, Payload::Empty)
            .await
    }

    /// The URL of `/v2/<repo>/<path>`.
    fn url_of(&self, repo: &str, path: &str) -> Result<reqwest::Url, UpstreamError> {
        self.base
            .join(&format!("v2/{repo}/{path}"))
            .map_err(|e| self.err(path, e))
    }

    /// Sends `method` to `url` (of `repo`) with `payload`, answering an authentication challenge
    /// once (a streamed payload only goes with credentials already known: it cannot be sent
    /// twice); any status but success is an error.
    async fn request(
        &self,
        method: Method,
        url: reqwest::Url,
        repo: &str,
        access: Access,
        accept: Option<&str>,
        payload: Payload,
    ) -> Result<reqwest::Response, UpstreamError> {
        let path = url.path().to_owned();
        let scope = format!("repository:{repo}:{}", access.actions());
        let content_type = payload.content_type();
        let len = payload.len();
        let build = |auth: Option<String>, body: Option<reqwest::Body>| {
            let mut req = self.client.request(method.clone(), url.clone());
            if let Some(accept) = accept {
                req = req.header(ACCEPT, accept);
            }
            if let Some(auth) = auth {
                req = req.header(AUTHORIZATION, auth);
            }
            if let Some(content_type) = &content_type {
                req = req.header(http::header::CONTENT_TYPE, content_type);
            }
            if let Some(len) = len {
                req = req.header(http::header::CONTENT_LENGTH, len);
            }
            match body {
                Some(body) => req.body(body),
                None => req,
            }
        };
        let (first_body, replay) = payload.into_bodies();
        let first = build(self.cached_auth(&scope), first_body)
            .send()
            .await
            .map_err(|e| self.err(&path, e))?;
        let res = match (first.status() == StatusCode::UNAUTHORIZED, replay) {
            (true, Some(body)) => {
                let auth = self.answer(first.headers(), &scope).await?;
                build(Some(auth), body)
                    .send()
                    .await
                    .map_err(|e| self.err(&path, e))?
            }
            _ => first,
        };
        let status = res.status();
        if status.is_success() {
            return Ok(res);
        }
        let detail = self.error_detail(res).await;
        let what = format!(
            "upstream {} answered {status} for {method} {path}{detail}",
            self.base
        );
        Err(match status {
            StatusCode::NOT_FOUND => UpstreamError::NotFound(what),
            StatusCode::TOO_MANY_REQUESTS => UpstreamError::TooManyRequests(what),
            _ => UpstreamError::Refused(what),
        })
    }

    /// The start of an error answer's body, for messages (registries explain there): at most 300
    /// characters, read from at most 4 KiB, whatever the remote sends.
    async fn error_detail(&self, res: reqwest::Response) -> String {
        let body = self
            .read_limited(res, 4096, "an error")
            .await
            .unwrap_or_default();
        detail_of(&body)
    }

    /// A small body whole, refused past `limit` bytes however it is sent (chunked included).
    async fn read_limited(
        &self,
        res: reqwest::Response,
        limit: u64,
        what: &str,
    ) -> Result<bytes::Bytes, UpstreamError> {
        use futures::StreamExt;
        let mut body = bytes::BytesMut::new();
        let mut stream = res.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.err(what, e))?;
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(UpstreamError::Refused(format!(
                    "upstream {} sent over {limit} bytes for {what}",
                    self.base
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }
}

/// What a request may do in its repository: the scope of the token it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Pull,
    Push,
}

impl Access {
    fn actions(self) -> &'static str {
        match self {
            Access::Pull => "pull",
            Access::Push => "pull,push",
        }
    }
}

/// A request's body.
enum Payload {
    Empty,
    /// Bytes in memory (a manifest), with their media type: sent again after a challenge.
    Bytes(bytes::Bytes, String),
    /// A blob's bytes as they come, of a known length: sent once.
    Stream(reqwest::Body, u64),
}

impl Payload {
    fn content_type(&self) -> Option<String> {
        match self {
            Payload::Bytes(_, media_type) => Some(media_type.clone()),
            Payload::Stream(..) => Some("application/octet-stream".to_owned()),
            Payload::Empty => None,
        }
    }

    fn len(&self) -> Option<u64> {
        match self {
            Payload::Bytes(b, _) => Some(b.len() as u64),
            Payload::Stream(_, len) => Some(*len),
            Payload::Empty => None,
        }
    }

    /// The body of the first attempt, and of the one after a challenge (`None`: no second).
    #[allow(clippy::type_complexity)]
    fn into_bodies(self) -> (Option<reqwest::Body>, Option<Option<reqwest::Body>>) {
        match self {
            Payload::Empty => (None, Some(None)),
            Payload::Bytes(b, _) => (Some(b.clone().into()), Some(Some(b.into()))),
            Payload::Stream(body, _) => (Some(body), None),
        }
    }
}

/// `: <the first 300 characters of body>`, or nothing for an empty body.
fn detail_of(body: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(body)
        .trim()
        .chars()
        .take(300)
        .collect();
    match text.is_empty() {
        true => String::new(),
        false => format!(": {text}"),
    }
}

/// A URL for messages: without credentials, query or fragment.
fn redacted(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

fn digest_header(headers: &HeaderMap) -> Option<Digest> {
    headers
        .get(CONTENT_DIGEST_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_details_are_cut_on_characters() {
        let long = "é".repeat(400);
        assert_eq!(detail_of(long.as_bytes()).chars().count(), 2 + 300);
        assert_eq!(detail_of(b"  \n"), "");
        assert_eq!(detail_of(b"\xff oops\n"), ": \u{fffd} oops");
    }
}
