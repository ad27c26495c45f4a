//! A minimal HTTP/1.1 client of the distribution API on plain hyper connections, and the
//! generated data it pushes.

use std::convert::Infallible;

use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use registry_core::manifest::OCI_MANIFEST;
use registry_core::{Algorithm, Digest, Digester};

type Body = BoxBody<Bytes, Infallible>;

const BLOCK: usize = 4 << 20;

/// Where the registry is.
#[derive(Debug, Clone)]
pub struct Base {
    /// `host:port`
    pub authority: String,
}

impl Base {
    /// Reads `http://host:port`.
    pub fn parse(url: &str) -> Result<Base, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or("only http:// URLs are supported")?;
        Ok(Base {
            authority: rest.trim_end_matches('/').to_owned(),
        })
    }
}

/// A blob made of one pseudo-random block (4 MiB, or the blob's size when smaller) repeated, with
/// its digest computed up front.
#[derive(Debug, Clone)]
pub struct Data {
    /// Size in bytes.
    pub len: u64,
    /// The blob's digest.
    pub digest: Digest,
    block: Bytes,
}

impl Data {
    /// A blob of `len` bytes whose content depends on `seed`.
    pub fn new(len: u64, seed: u64) -> Data {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let block: Vec<u8> = (0..BLOCK.min(len.max(1) as usize))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let block = Bytes::from(block);
        let mut d = Digester::new(Algorithm::Sha256);
        for chunk in Self::chunks_of(&block, 0, len) {
            d.update(&chunk);
        }
        Data {
            len,
            digest: d.finish(),
            block,
        }
    }

    fn chunks_of(block: &Bytes, start: u64, end: u64) -> impl Iterator<Item = Bytes> + use<> {
        let block = block.clone();
        let mut at = start;
        std::iter::from_fn(move || {
            if at >= end {
                return None;
            }
            let offset = (at % block.len() as u64) as usize;
            let n = ((block.len() - offset) as u64).min(end - at) as usize;
            at += n as u64;
            Some(block.slice(offset..offset + n))
        })
    }

    /// Bytes `start..end` as a streaming request body.
    fn body(&self, start: u64, end: u64) -> Body {
        let frames = futures::stream::iter(Self::chunks_of(&self.block, start, end))
            .map(|b| Ok::<_, Infallible>(Frame::data(b)));
        BodyExt::boxed(StreamBody::new(frames))
    }
}

fn empty() -> Body {
    Empty::new().boxed()
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

/// One HTTP/1.1 connection to the registry.
pub struct Conn {
    send: SendRequest<Body>,
    base: Base,
}

/// The path and query of a `Location` value, which may be an absolute URL.
fn location_path(res: &Response<Incoming>) -> Result<String, String> {
    let loc = res
        .headers()
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or("no Location header")?;
    Ok(match loc.split_once("://") {
        Some((_, rest)) => rest
            .find('/')
            .map_or("/".to_owned(), |i| rest[i..].to_owned()),
        None => loc.to_owned(),
    })
}

fn with_query(path: &str, query: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}{query}")
}

impl Conn {
    /// Connects.
    pub async fn open(base: &Base) -> Result<Conn, String> {
        let stream = tokio::net::TcpStream::connect(&base.authority)
            .await
            .map_err(|e| format!("connect {}: {e}", base.authority))?;
        let _ = stream.set_nodelay(true);
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Ok(Conn {
            send,
            base: base.clone(),
        })
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Body,
    ) -> Result<Response<Incoming>, String> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &self.base.authority);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let req = req.body(body).map_err(|e| e.to_string())?;
        self.send.ready().await.map_err(|e| e.to_string())?;
        self.send.send_request(req).await.map_err(|e| e.to_string())
    }

    async fn expect(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Body,
        status: StatusCode,
    ) -> Result<Response<Incoming>, String> {
        let res = self.send(method.clone(), path, headers, body).await?;
        if res.status() != status {
            let got = res.status();
            let text = res
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err(format!(
                "{method} {path}: {got} (wanted {status}): {}",
                String::from_utf8_lossy(&text)
            ));
        }
        Ok(res)
    }

    async fn start_upload(&mut self, repo: &str) -> Result<String, String> {
        let res = self
            .expect(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/"),
                &[],
                empty(),
                StatusCode::ACCEPTED,
            )
            .await?;
        let loc = location_path(&res)?;
        res.into_body().collect().await.map_err(|e| e.to_string())?;
        Ok(loc)
    }

    /// `POST` then one `PUT ?digest=` carrying the whole blob.
    pub async fn push_monolithic(&mut self, repo: &str, data: &Data) -> Result<(), String> {
        let loc = self.start_upload(repo).await?;
        let headers = [
            ("content-length", data.len.to_string()),
            ("content-type", "application/octet-stream".into()),
        ];
        let path = with_query(&loc, &format!("digest={}", data.digest));
        let res = self
            .expect(
                Method::PUT,
                &path,
                &headers,
                data.body(0, data.len),
                StatusCode::CREATED,
            )
            .await?;
        res.into_body().collect().await.map_err(|e| e.to_string())?;
        Ok(())
    }

    /// `POST`, one `PATCH` per chunk with `Content-Range`, then `PUT ?digest=`.
    pub async fn push_chunked(
        &mut self,
        repo: &str,
        data: &Data,
        chunk: u64,
    ) -> Result<(), String> {
        let mut loc = self.start_upload(repo).await?;
        let mut at = 0;
        while at < data.len {
            let end = (at + chunk).min(data.len);
            let headers = [
                ("content-length", (end - at).to_string()),
                ("content-range", format!("{at}-{}", end - 1)),
                ("content-type", "application/octet-stream".into()),
            ];
            let res = self
                .expect(
                    Method::PATCH,
                    &loc,
                    &headers,
                    data.body(at, end),
                    StatusCode::ACCEPTED,
                )
                .await?;
            loc = location_path(&res)?;
            res.into_body().collect().await.map_err(|e| e.to_string())?;
            at = end;
        }
        let path = with_query(&loc, &format!("digest={}", data.digest));
        let res = self
            .expect(Method::PUT, &path, &[], empty(), StatusCode::CREATED)
            .await?;
        res.into_body().collect().await.map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Streams a blob and returns how many bytes came (the pull benchmark: no hashing).
    pub async fn pull(&mut self, repo: &str, digest: &Digest) -> Result<u64, String> {
        self.read_blob(repo, digest, None).await
    }

    /// Streams a blob, hashing it, and fails unless its bytes match `digest`; returns its size.
    pub async fn pull_verified(&mut self, repo: &str, digest: &Digest) -> Result<u64, String> {
        let mut hash = Digester::new(digest.algorithm());
        let n = self.read_blob(repo, digest, Some(&mut hash)).await?;
        let got = hash.finish();
        if &got != digest {
            return Err(format!("{repo}@{digest}: the bytes served hash to {got}"));
        }
        Ok(n)
    }

    /// `GET`s a blob, feeding its bytes to `hash` if given; returns how many came.
    async fn read_blob(
        &mut self,
        repo: &str,
        digest: &Digest,
        mut hash: Option<&mut Digester>,
    ) -> Result<u64, String> {
        let res = self
            .expect(
                Method::GET,
                &format!("/v2/{repo}/blobs/{digest}"),
                &[],
                empty(),
                StatusCode::OK,
            )
            .await?;
        let mut body = res.into_body();
        let mut n = 0u64;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.map_err(|e| e.to_string())?.into_data() {
                if let Some(h) = hash.as_deref_mut() {
                    h.update(&data);
                }
                n += data.len() as u64;
            }
        }
        Ok(n)
    }

    /// Whether the repository has the blob (`HEAD` answered 200 rather than 404).
    pub async fn has_blob(&mut self, repo: &str, digest: &Digest) -> Result<bool, String> {
        let path = format!("/v2/{repo}/blobs/{digest}");
        let res = self.send(Method::HEAD, &path, &[], empty()).await?;
        let status = res.status();
        res.into_body().collect().await.map_err(|e| e.to_string())?;
        match status {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            other => Err(format!("HEAD {path}: {other}")),
        }
    }

    /// The bytes of a manifest by tag or digest; fails unless 200.
    pub async fn get_manifest(&mut self, repo: &str, reference: &str) -> Result<Bytes, String> {
        let headers = [("accept", OCI_MANIFEST.to_owned())];
        let path = format!("/v2/{repo}/manifests/{reference}");
        let res = self
            .expect(Method::GET, &path, &headers, empty(), StatusCode::OK)
            .await?;
        let body = res.into_body().collect().await.map_err(|e| e.to_string())?;
        Ok(body.to_bytes())
    }

    /// Puts manifest bytes of the OCI image media type under `reference`; fails unless 201.
    pub async fn put_manifest_bytes(
        &mut self,
        repo: &str,
        reference: &str,
        body: Bytes,
    ) -> Result<(), String> {
        let headers = [("content-type", OCI_MANIFEST.to_owned())];
        let res = self
            .expect(
                Method::PUT,
                &format!("/v2/{repo}/manifests/{reference}"),
                &headers,
                full(body),
                StatusCode::CREATED,
            )
            .await?;
        res.into_body().collect().await.map_err(|e| e.to_string())?;
        Ok(())
    }

    /// A small request whose body is read and dropped; fails unless 200.
    pub async fn small(&mut self, method: Method, path: &str) -> Result<(), String> {
        let headers = [("accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json".to_owned())];
        let res = self
            .expect(method, path, &headers, empty(), StatusCode::OK)
            .await?;
        res.into_body().collect().await.map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Pushes a config and the layers' manifest under tag `image`; returns the tag.
    pub async fn put_image_manifest(
        &mut self,
        repo: &str,
        layers: &[Data],
    ) -> Result<String, String> {
        let config = Data::new(512, 99);
        self.push_monolithic(repo, &config).await?;
        self.put_manifest(repo, "image", &config, layers).await?;
        Ok("image".into())
    }

    /// Pushes a small image tagged `bench`; returns the manifest path and a layer's blob path.
    pub async fn seed_image(&mut self, repo: &str) -> Result<(String, String), String> {
        let layer = Data::new(1024, 3);
        self.push_monolithic(repo, &layer).await?;
        let config = Data::new(512, 4);
        self.push_monolithic(repo, &config).await?;
        self.put_manifest(repo, "bench", &config, std::slice::from_ref(&layer))
            .await?;
        Ok((
            format!("/v2/{repo}/manifests/bench"),
            format!("/v2/{repo}/blobs/{}", layer.digest),
        ))
    }

    /// Puts an OCI image manifest over a config and layers under `tag`.
    async fn put_manifest(
        &mut self,
        repo: &str,
        tag: &str,
        config: &Data,
        layers: &[Data],
    ) -> Result<(), String> {
        let layers: Vec<&Data> = layers.iter().collect();
        self.put_manifest_bytes(repo, tag, image_manifest(config, &layers))
            .await
    }
}

/// The bytes of an OCI image manifest over a config and layers.
pub fn image_manifest(config: &Data, layers: &[&Data]) -> Bytes {
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": l.digest.to_string(), "size": l.len}))
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.digest.to_string(), "size": config.len},
        "layers": layers,
    });
    Bytes::from(manifest.to_string())
}

/// Pushes (or pulls) every blob, `parallel` at once, each transfer on its own connection.
pub async fn transfer_all(
    base: &Base,
    repo: &str,
    blobs: &[Data],
    parallel: usize,
    push: bool,
) -> Result<(), String> {
    let results: Vec<Result<(), String>> = futures::stream::iter(blobs.iter().cloned())
        .map(|blob| {
            let (base, repo) = (base.clone(), repo.to_owned());
            async move {
                let mut conn = Conn::open(&base).await?;
                if push {
                    conn.push_monolithic(&repo, &blob).await
                } else {
                    let n = conn.pull(&repo, &blob.digest).await?;
                    if n == blob.len {
                        Ok(())
                    } else {
                        Err(format!("pulled {n} of {} bytes", blob.len))
                    }
                }
            }
        })
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    results.into_iter().collect()
}
