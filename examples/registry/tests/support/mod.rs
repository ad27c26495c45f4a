//! What the real-client tests share: the `registry` binary started on a free port, and OCI image
//! layouts built on disk for clients to push.
#![allow(clippy::unwrap_used, dead_code)]

use std::io::{BufRead, BufReader, Write};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use registry_core::Digest;

pub mod pki;
pub mod raw;

/// The real `registry` binary, listening on 127.0.0.1 on a free port, killed when dropped.
pub struct Server {
    child: Child,
    pub addr: String,
    pub data: PathBuf,
    /// Every line the server wrote to stderr so far.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    /// Starts the server storing under `data`, with extra flags.
    pub fn start(data: &Path, extra: &[&str]) -> Server {
        let mut server = Server::start_with(&format!("fs:{}", data.display()), extra, &[]);
        server.data = data.to_owned();
        server
    }

    /// Starts the server on any `--storage`, with extra flags and environment variables.
    pub fn start_with(storage: &str, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_registry"))
            .args(["--listen", "127.0.0.1:0", "--storage", storage])
            .args(extra)
            .env("RUST_LOG", "warn,registry=info")
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the registry binary");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut early = Vec::new();
        let addr = loop {
            let line = lines
                .next()
                .expect("registry exited before listening")
                .unwrap();
            early.push(line.clone());
            if let Some(rest) = line.split("listening on ").nth(1) {
                // Text or JSON logs: the URL ends at a space or a quote.
                let url: String = rest
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '"')
                    .collect();
                break url.split_once("://").unwrap().1.to_owned();
            }
        };
        let log = std::sync::Arc::new(std::sync::Mutex::new(early));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Server {
            child,
            addr,
            data: PathBuf::new(),
            log,
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory of the server so far, in KiB (`VmHWM`).
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A deterministic pseudo-random byte generator (xorshift), so layers do not compress away.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A descriptor as JSON.
fn descriptor(media_type: &str, data: &[u8]) -> serde_json::Value {
    serde_json::json!({ "mediaType": media_type, "digest": Digest::of(data).to_string(), "size": data.len() })
}

/// An OCI image layout on disk, to which images are added by tag.
pub struct Layout {
    pub dir: PathBuf,
    index: Vec<serde_json::Value>,
}

impl Layout {
    /// An empty layout in `dir`.
    pub fn new(dir: &Path) -> Layout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let layout = Layout {
            dir: dir.to_owned(),
            index: Vec::new(),
        };
        layout.write_index();
        layout
    }

    /// Stores a blob and returns its descriptor.
    pub fn blob(&self, media_type: &str, data: &[u8]) -> serde_json::Value {
        let d = Digest::of(data);
        std::fs::write(self.dir.join("blobs/sha256").join(d.hex()), data).unwrap();
        descriptor(media_type, data)
    }

    /// Builds an image of `layers` gzip tar layers of about `layer_size` bytes each for a platform,
    /// stores it and returns its manifest's descriptor (not yet tagged).
    pub fn image(
        &self,
        seed: u64,
        layers: usize,
        layer_size: usize,
        arch: &str,
    ) -> serde_json::Value {
        let mut layer_descs = Vec::new();
        let mut diff_ids = Vec::new();
        for i in 0..layers {
            let mut tar = tar::Builder::new(Vec::new());
            let content = noise(seed * 100 + i as u64, layer_size);
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, format!("file-{seed}-{i}.bin"), &content[..])
                .unwrap();
            let tar = tar.into_inner().unwrap();
            diff_ids.push(Digest::of(&tar).to_string());
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&tar).unwrap();
            let gz = gz.finish().unwrap();
            layer_descs.push(self.blob("application/vnd.oci.image.layer.v1.tar+gzip", &gz));
        }
        let config = serde_json::json!({
            "architecture": arch, "os": "linux",
            "config": { "Env": ["PATH=/usr/bin"], "Labels": { "seed": seed.to_string() } },
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        });
        let config = serde_json::to_vec(&config).unwrap();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": self.blob("application/vnd.oci.image.config.v1+json", &config),
            "layers": layer_descs,
        });
        let mut desc = self.blob(
            "application/vnd.oci.image.manifest.v1+json",
            &serde_json::to_vec(&manifest).unwrap(),
        );
        desc["platform"] = serde_json::json!({ "architecture": arch, "os": "linux" });
        desc
    }

    /// Stores an image index over manifests and returns its descriptor.
    pub fn index(&self, manifests: Vec<serde_json::Value>) -> serde_json::Value {
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        });
        self.blob(
            "application/vnd.oci.image.index.v1+json",
            &serde_json::to_vec(&index).unwrap(),
        )
    }

    /// Tags a stored manifest or index in the layout's `index.json`.
    pub fn tag(&mut self, tag: &str, mut desc: serde_json::Value) {
        desc["annotations"] = serde_json::json!({ "org.opencontainers.image.ref.name": tag });
        self.index.push(desc);
        self.write_index();
    }

    fn write_index(&self) {
        let index = serde_json::json!({ "schemaVersion": 2, "manifests": self.index });
        std::fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
    }
}

/// Every blob file of a layout hashes to its name; returns how many there are.
pub fn verify_layout_blobs(dir: &Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir.join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let data = std::fs::read(entry.path()).unwrap();
        assert_eq!(
            Digest::of(&data).hex(),
            entry.file_name().to_str().unwrap(),
            "corrupt blob pulled"
        );
        n += 1;
    }
    n
}

/// Runs skopeo with its own blob-info cache (bind-mounted under a private mount namespace when
/// the machine allows it), so that no other run's cache makes it skip or mount blobs.
pub fn skopeo(cache: &Path, args: &[&str]) -> Result<String, String> {
    let isolated = Command::new("unshare")
        .args(["-m", "true"])
        .status()
        .is_ok_and(|s| s.success());
    let mut cmd = if isolated {
        std::fs::create_dir_all("/var/lib/containers/cache").unwrap();
        let mut c = Command::new("unshare");
        c.args([
            "-m",
            "sh",
            "-c",
            "mount --bind \"$1\" /var/lib/containers/cache && shift && exec skopeo \"$@\"",
            "_",
        ]);
        c.arg(cache);
        c
    } else {
        Command::new("skopeo")
    };
    cmd.arg("--insecure-policy").args(args);
    cmd.env("REGISTRY_AUTH_FILE", cache.join("auth.json"));
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run skopeo (apt-get install skopeo): {e}"));
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "skopeo {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl Server {
    /// Kills the server with SIGKILL and waits for it to die.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

/// Runs podman with the vfs driver, its storage and auth file under `root` (podman works so on
/// machines without overlay or systemd).
pub fn podman(root: &Path, args: &[&str]) -> std::process::Output {
    let auth = root.join("podman-auth.json");
    if !auth.exists() {
        std::fs::write(&auth, r#"{"auths":{}}"#).unwrap();
    }
    Command::new("podman")
        .args([
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            "--root",
        ])
        .arg(root.join("podman-root"))
        .arg("--runroot")
        .arg(root.join("podman-runroot"))
        .args(args)
        .env("REGISTRY_AUTH_FILE", auth)
        .output()
        .unwrap_or_else(|e| panic!("cannot run podman (apt-get install podman): {e}"))
}

/// Pushes `size` bytes of noise to `repo` as one chunked-transfer `PATCH` streamed from curl's
/// stdin (the server never sees a length), then the digest on `PUT`; returns the digest.
pub fn push_streamed(base: &str, repo: &str, size: usize, seed: u64) -> Digest {
    const CHUNK: usize = 1 << 20;
    let out = Command::new("curl")
        .args(["-sS", "-f", "-o", "/dev/null", "-D", "-", "-X", "POST"])
        .arg(format!("{base}/v2/{repo}/blobs/uploads/"))
        .output()
        .unwrap();
    let headers = String::from_utf8(out.stdout).unwrap();
    let location = headers
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("location"))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no location in {headers}"));
    let mut patch = Command::new("curl")
        .args([
            "-sS",
            "-f",
            "-o",
            "/dev/null",
            "-X",
            "PATCH",
            "-H",
            "Expect:",
            "-T",
            "-",
        ])
        .arg(format!("{base}{location}"))
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = patch.stdin.take().unwrap();
    let mut block = noise(seed, CHUNK);
    let mut digester = registry_core::Digester::new(registry_core::Algorithm::Sha256);
    for i in 0..size / CHUNK {
        block[..8].copy_from_slice(&(i as u64).to_le_bytes());
        digester.update(&block);
        stdin.write_all(&block).unwrap();
    }
    drop(stdin);
    assert!(patch.wait().unwrap().success(), "PATCH failed");
    let digest = digester.finish();
    let done = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
        .arg(format!("{base}{location}?digest={digest}"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&done.stdout), "201", "PUT failed");
    digest
}
