//! A small client of the distribution API, and the test images it pushes.
#![allow(clippy::unwrap_used, dead_code)]

use registry_core::Digest;

use super::noise;

/// A small HTTP client of the distribution API, for tests that push and pull many images.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
}

/// An image as a test pushes it: its blobs and manifest.
#[derive(Clone, Debug)]
pub struct TestImage {
    pub blobs: Vec<Vec<u8>>,
    pub manifest: Vec<u8>,
}

impl TestImage {
    /// An OCI manifest over a config made from `seed` and the given layers.
    pub fn new(seed: u64, layers: Vec<Vec<u8>>) -> TestImage {
        let config =
            format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"seed\":{seed}}}").into_bytes();
        let layer_descs: Vec<serde_json::Value> = layers
            .iter()
            .map(|l| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": Digest::of(l).to_string(), "size": l.len()}))
            .collect();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::of(&config).to_string(), "size": config.len()},
            "layers": layer_descs,
        });
        let mut blobs = vec![config];
        blobs.extend(layers);
        TestImage {
            blobs,
            manifest: serde_json::to_vec(&manifest).unwrap(),
        }
    }

    pub fn digest(&self) -> Digest {
        Digest::of(&self.manifest)
    }
}

impl Api {
    pub fn new(addr: &str) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: format!("http://{addr}"),
        }
    }

    /// A client sending `user`'s Basic credentials on every request.
    pub fn with_basic(addr: &str, user: &str, password: &str) -> Api {
        use base64::Engine;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("authorization", format!("Basic {basic}").parse().unwrap());
        Api {
            http: reqwest::Client::builder()
                .default_headers(headers)
                .build()
                .unwrap(),
            base: format!("http://{addr}"),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A monolithic push (`POST ?digest=`).
    pub async fn push_blob_monolithic(&self, repo: &str, data: &[u8]) -> Result<(), String> {
        let d = Digest::of(data);
        let r = self
            .http
            .post(self.url(&format!("/v2/{repo}/blobs/uploads/?digest={d}")))
            .body(data.to_vec())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        expect(r, 201).await.map(drop)
    }

    /// A push in two requests, as every registry takes it (distribution 2.8 included, which
    /// ignores a body on the `POST`): a `POST`, then one `PUT` of the bytes to the session's
    /// location, which may be absolute and carry a query of its own.
    pub async fn push_blob_in_put(&self, repo: &str, data: &[u8]) -> Result<(), String> {
        let r = self
            .http
            .post(self.url(&format!("/v2/{repo}/blobs/uploads/")))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let r = expect(r, 202).await?;
        let location = r.headers()["location"].to_str().unwrap().to_owned();
        let mut url = reqwest::Url::parse(&self.base)
            .unwrap()
            .join(&location)
            .unwrap();
        url.query_pairs_mut()
            .append_pair("digest", &Digest::of(data).to_string());
        let r = self
            .http
            .put(url)
            .body(data.to_vec())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        expect(r, 201).await.map(drop)
    }

    /// Starts an upload and returns its location path.
    pub async fn start_upload(&self, repo: &str) -> Result<String, String> {
        let r = self
            .http
            .post(self.url(&format!("/v2/{repo}/blobs/uploads/")))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let r = expect(r, 202).await?;
        Ok(r.headers()
            .get("location")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned())
    }

    /// Sends a chunk at an offset; returns the new offset.
    pub async fn patch(&self, location: &str, offset: u64, chunk: &[u8]) -> Result<u64, String> {
        let range = format!("{offset}-{}", offset + chunk.len() as u64 - 1);
        let r = self
            .http
            .patch(self.url(location))
            .header("content-range", range)
            .body(chunk.to_vec())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let r = expect(r, 202).await?;
        let range = r.headers().get("range").unwrap().to_str().unwrap();
        Ok(range.split('-').nth(1).unwrap().parse::<u64>().unwrap() + 1)
    }

    /// Where an upload stands: `Some(offset)`, or `None` when the registry does not know it.
    pub async fn upload_offset(&self, location: &str) -> Result<Option<u64>, String> {
        let r = self
            .http
            .get(self.url(location))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status() == 404 {
            return Ok(None);
        }
        let r = expect(r, 204).await?;
        let range = r.headers().get("range").unwrap().to_str().unwrap();
        let end: u64 = range.split('-').nth(1).unwrap().parse().unwrap();
        Ok(Some(if range == "0-0" { 0 } else { end + 1 }))
    }

    /// Completes an upload with its digest.
    pub async fn complete(&self, location: &str, digest: &Digest) -> Result<(), String> {
        let r = self
            .http
            .put(self.url(&format!("{location}?digest={digest}")))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        expect(r, 201).await.map(drop)
    }

    /// A chunked push in two chunks.
    pub async fn push_blob_chunked(&self, repo: &str, data: &[u8]) -> Result<(), String> {
        let loc = self.start_upload(repo).await?;
        let (a, b) = data.split_at(data.len() / 2);
        let offset = self.patch(&loc, 0, a).await?;
        let offset = self.patch(&loc, offset, b).await?;
        assert_eq!(offset, data.len() as u64);
        self.complete(&loc, &Digest::of(data)).await
    }

    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        manifest: &[u8],
    ) -> Result<(), String> {
        let r = self
            .http
            .put(self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.to_vec())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        expect(r, 201).await.map(drop)
    }

    /// Pushes every blob (alternating monolithic and chunked) and the manifest under `tag`.
    pub async fn push_image(&self, repo: &str, tag: &str, image: &TestImage) -> Result<(), String> {
        for (i, blob) in image.blobs.iter().enumerate() {
            if i % 2 == 0 {
                self.push_blob_monolithic(repo, blob).await?;
            } else {
                self.push_blob_chunked(repo, blob).await?;
            }
        }
        self.put_manifest(repo, tag, &image.manifest).await
    }

    /// Pushes as real clients do: `HEAD` every blob, upload only the missing ones (monolithic and
    /// chunked in turn), then put the manifest under `tag`.
    pub async fn push_like_a_client(
        &self,
        repo: &str,
        tag: &str,
        image: &TestImage,
    ) -> Result<(), String> {
        for (i, blob) in image.blobs.iter().enumerate() {
            let url = self.url(&format!("/v2/{repo}/blobs/{}", Digest::of(blob)));
            let head = self
                .http
                .head(url)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            match head.status().as_u16() {
                200 => continue,
                404 => {}
                s => return Err(format!("HEAD answered {s}")),
            }
            if i % 2 == 0 {
                self.push_blob_monolithic(repo, blob).await?;
            } else {
                self.push_blob_chunked(repo, blob).await?;
            }
        }
        self.put_manifest(repo, tag, &image.manifest).await
    }

    /// Clients pushing for `duration` against `addr`, each moving its own tag `t<n>` at every push
    /// of an image made of a layer from a small shared pool and one of its own, in one of three
    /// repositories. Every push must succeed; returns the pushes made and the image each tag ends
    /// on, as (repository, image).
    pub async fn push_soak(
        addr: &str,
        clients: u64,
        duration: std::time::Duration,
    ) -> (u64, Vec<(String, TestImage)>) {
        let pool: std::sync::Arc<Vec<Vec<u8>>> =
            std::sync::Arc::new((0..6).map(|i| noise(500 + i, 20_000)).collect());
        let started = std::time::Instant::now();
        let pushers: Vec<_> = (0..clients)
            .map(|p| {
                let (api, pool) = (Api::new(addr), pool.clone());
                tokio::spawn(async move {
                    let mut round = 0u64;
                    let mut last = None;
                    let mut errors = Vec::new();
                    while started.elapsed() < duration {
                        round += 1;
                        let seed = p * 1_000_000 + round;
                        let shared = pool[((p + round) % pool.len() as u64) as usize].clone();
                        let image = TestImage::new(seed, vec![shared, noise(seed, 5_000)]);
                        let repo = format!("soak/p{}", p % 3);
                        let tag = format!("t{p}");
                        if let Err(e) = api.push_like_a_client(&repo, &tag, &image).await {
                            errors.push(e);
                        }
                        last = Some((repo, image));
                    }
                    (round, last, errors)
                })
            })
            .collect();
        let mut tagged = Vec::new();
        let mut pushes = 0;
        for p in pushers {
            let (rounds, last, errors) = p.await.unwrap();
            assert_eq!(errors, Vec::<String>::new());
            pushes += rounds;
            tagged.push(last.unwrap());
        }
        (pushes, tagged)
    }

    /// A GET's status and body text, whatever the status.
    pub async fn answer(&self, path: &str) -> (u16, String) {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    }

    pub async fn get(&self, path: &str) -> Result<reqwest::Response, String> {
        let r = self
            .http
            .get(self.url(path))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        expect(r, 200).await
    }

    /// An upload started here, continued by `PATCH` through `other` (after it reports the same
    /// offset), completed here; then both must serve the blob's exact bytes.
    pub async fn upload_across(&self, other: &Api, repo: &str, data: &[u8], split: usize) {
        let location = self.start_upload(repo).await.unwrap();
        let mid = self.patch(&location, 0, &data[..split]).await.unwrap();
        assert_eq!(other.upload_offset(&location).await.unwrap(), Some(mid));
        let end = other.patch(&location, mid, &data[split..]).await.unwrap();
        assert_eq!(end, data.len() as u64);
        let digest = Digest::of(data);
        self.complete(&location, &digest).await.unwrap();
        for api in [self, other] {
            let got = api
                .get(&format!("/v2/{repo}/blobs/{digest}"))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            assert!(got == data, "{} served other bytes", api.base);
        }
    }

    /// Pulls a manifest and all its blobs, verifying every digest; returns the manifest's digest.
    pub async fn pull_verified(&self, repo: &str, reference: &str) -> Result<Digest, String> {
        let r = self
            .get(&format!("/v2/{repo}/manifests/{reference}"))
            .await?;
        let header = r
            .headers()
            .get("docker-content-digest")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let bytes = r.bytes().await.map_err(|e| e.to_string())?;
        let digest = Digest::of(&bytes);
        if digest.to_string() != header {
            return Err(format!(
                "manifest {reference} served with digest {header} but hashes to {digest}"
            ));
        }
        let m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let mut refs = vec![m["config"]["digest"].as_str().unwrap().to_owned()];
        refs.extend(
            m["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["digest"].as_str().unwrap().to_owned()),
        );
        for d in refs {
            let blob = self
                .get(&format!("/v2/{repo}/blobs/{d}"))
                .await?
                .bytes()
                .await
                .map_err(|e| e.to_string())?;
            if Digest::of(&blob).to_string() != d {
                return Err(format!("blob {d} served with other content"));
            }
        }
        Ok(digest)
    }
}

async fn expect(r: reqwest::Response, status: u16) -> Result<reqwest::Response, String> {
    if r.status().as_u16() == status {
        Ok(r)
    } else {
        let (s, path) = (r.status(), r.url().path().to_owned());
        Err(format!(
            "{path} {s}: {}",
            r.text().await.unwrap_or_default()
        ))
    }
}
