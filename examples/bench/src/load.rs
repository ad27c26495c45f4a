//! `load` and `verify`, for `scripts/scale.sh`: clients that push images of their own and pull a
//! shared image and each other's through one URL for a fixed time, recording every push the
//! registry acknowledged; then a check that each acknowledged push reads back whole.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use registry_core::Digest;

use crate::client::{Base, Conn, Data, image_manifest};
use crate::figures::Figure;

/// What a load run does.
#[derive(Debug, Clone)]
pub struct Load {
    /// Clients, each on its own connection, each doing one operation after another.
    pub clients: usize,
    /// How long the run lasts.
    pub seconds: u64,
    /// Size of each layer in KiB.
    pub layer_kib: u64,
    /// Repositories are `PREFIX/shared` and `PREFIX/c<client>`.
    pub prefix: String,
}

/// A manifest the registry answered 201 for: `repo:tag` must name `digest` from then on.
#[derive(Debug, Clone)]
struct Acked {
    repo: String,
    tag: String,
    digest: Digest,
}

/// The operations a client cycles through.
const KINDS: [&str; 3] = ["push_image", "pull_shared_image", "pull_other_image"];

/// What one client measured for one kind of operation.
#[derive(Debug, Default)]
struct Tally {
    latencies: Vec<Duration>,
    bytes: u64,
    errors: u64,
}

/// What the clients share.
struct Run {
    base: Base,
    load: Load,
    deadline: Instant,
    /// The layer every image starts with (so pushes also meet blobs the store already has).
    base_layer: Data,
    shared: Acked,
    acked: Mutex<Vec<Acked>>,
    first_errors: Mutex<Vec<String>>,
}

/// Pushes any blob the repository lacks, then the manifest of `config` and `layers`; returns the
/// manifest's digest and the bytes sent.
async fn push_image(
    conn: &mut Conn,
    repo: &str,
    tag: &str,
    config: &Data,
    layers: &[&Data],
) -> Result<(Digest, u64), String> {
    let mut sent = 0;
    for blob in std::iter::once(config).chain(layers.iter().copied()) {
        if !conn.has_blob(repo, &blob.digest).await? {
            conn.push_monolithic(repo, blob).await?;
            sent += blob.len;
        }
    }
    let body = image_manifest(config, layers);
    let digest = Digest::of(&body);
    conn.put_manifest_bytes(repo, tag, body).await?;
    Ok((digest, sent))
}

/// Pulls `acked` by tag, checks the manifest is the acknowledged one and every blob it names
/// hashes to its digest; returns the bytes read.
async fn pull_image(conn: &mut Conn, acked: &Acked) -> Result<u64, String> {
    let body = conn.get_manifest(&acked.repo, &acked.tag).await?;
    let got = Digest::of(&body);
    if got != acked.digest {
        return Err(format!(
            "{}:{} is {got}, acknowledged as {}",
            acked.repo, acked.tag, acked.digest
        ));
    }
    let manifest: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let blobs = std::iter::once(&manifest["config"]).chain(
        manifest["layers"]
            .as_array()
            .map(|l| l.as_slice())
            .unwrap_or_default(),
    );
    let mut n = body.len() as u64;
    for blob in blobs {
        let digest: Digest = blob["digest"]
            .as_str()
            .ok_or("a descriptor without a digest")?
            .parse()
            .map_err(|e: registry_core::digest::InvalidDigest| e.to_string())?;
        n += conn.pull_verified(&acked.repo, &digest).await?;
    }
    Ok(n)
}

impl Run {
    /// One operation of client `client`, its `n`th: returns which kind it was and its bytes.
    async fn step(&self, conn: &mut Conn, client: usize, n: u64) -> (usize, Result<u64, String>) {
        match n % 3 {
            0 => {
                let seed = ((client as u64) << 32) + n;
                let layer = Data::new(self.load.layer_kib << 10, seed + 1_000);
                let config = Data::new(256, seed + 2_000);
                let repo = format!("{}/c{client}", self.load.prefix);
                let tag = format!("t{n}");
                let pushed =
                    push_image(conn, &repo, &tag, &config, &[&self.base_layer, &layer]).await;
                (
                    0,
                    pushed.map(|(digest, sent)| {
                        let mut acked = self.acked.lock().unwrap_or_else(|e| e.into_inner());
                        acked.push(Acked { repo, tag, digest });
                        sent
                    }),
                )
            }
            2 => match self.another_push(client, n) {
                Some(other) => (2, pull_image(conn, &other).await),
                None => (1, pull_image(conn, &self.shared).await),
            },
            _ => (1, pull_image(conn, &self.shared).await),
        }
    }

    /// An acknowledged push to pull, spread over all of them by client and step.
    fn another_push(&self, client: usize, n: u64) -> Option<Acked> {
        let acked = self.acked.lock().unwrap_or_else(|e| e.into_inner());
        (!acked.is_empty()).then(|| acked[(n as usize * 7919 + client) % acked.len()].clone())
    }

    /// Client `client` until the deadline; an error drops the connection and the client goes on.
    async fn client(self: Arc<Self>, client: usize) -> [Tally; 3] {
        let mut tallies: [Tally; 3] = Default::default();
        let mut conn: Option<Conn> = None;
        let mut n = 0u64;
        while Instant::now() < self.deadline {
            let started = Instant::now();
            let (kind, result) = match conn.as_mut() {
                Some(c) => self.step(c, client, n).await,
                None => match Conn::open(&self.base).await {
                    Ok(c) => {
                        conn = Some(c);
                        continue;
                    }
                    Err(e) => (n as usize % 3, Err(e)),
                },
            };
            match result {
                Ok(bytes) => {
                    tallies[kind].latencies.push(started.elapsed());
                    tallies[kind].bytes += bytes;
                }
                Err(e) => {
                    tallies[kind].errors += 1;
                    {
                        let mut first = self.first_errors.lock().unwrap_or_else(|e| e.into_inner());
                        if first.len() < 20 {
                            first.push(format!("client {client}, {}: {e}", KINDS[kind]));
                        }
                    }
                    conn = None;
                    // A failed connection is retried after a pause, as a real client backs off.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            n += 1;
        }
        tallies
    }
}

/// Runs the load; writes the acknowledged pushes to `acked_path` (`repo tag digest` lines) and
/// returns a figure per kind of operation and one for all of them.
pub async fn load(base: &Base, load: Load, acked_path: &Path) -> Result<Vec<Figure>, String> {
    let layer_len = load.layer_kib << 10;
    let base_layer = Data::new(layer_len, 1);
    let mut conn = Conn::open(base).await?;
    let shared_repo = format!("{}/shared", load.prefix);
    let (digest, _) = push_image(
        &mut conn,
        &shared_repo,
        "v1",
        &Data::new(256, 2),
        &[&base_layer, &Data::new(layer_len, 3)],
    )
    .await?;
    let shared = Acked {
        repo: shared_repo,
        tag: "v1".into(),
        digest,
    };
    let run = Arc::new(Run {
        base: base.clone(),
        deadline: Instant::now() + Duration::from_secs(load.seconds),
        load: load.clone(),
        base_layer,
        shared: shared.clone(),
        acked: Mutex::new(vec![]),
        first_errors: Mutex::new(vec![]),
    });
    let started = Instant::now();
    let clients = (0..load.clients).map(|c| tokio::spawn(run.clone().client(c)));
    let mut tallies: [Tally; 3] = Default::default();
    for done in futures::future::join_all(clients).await {
        for (all, one) in tallies.iter_mut().zip(done.map_err(|e| e.to_string())?) {
            all.latencies.extend(one.latencies);
            all.bytes += one.bytes;
            all.errors += one.errors;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    for e in run
        .first_errors
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        eprintln!("load: {e}");
    }
    let mut acked = std::mem::take(&mut *run.acked.lock().unwrap_or_else(|e| e.into_inner()));
    acked.push(shared);
    let lines: String = acked
        .iter()
        .map(|a| format!("{} {} {}\n", a.repo, a.tag, a.digest))
        .collect();
    std::fs::write(acked_path, lines).map_err(|e| format!("{}: {e}", acked_path.display()))?;
    let figure = |name: &str, t: &Tally| {
        Figure::rate(name, t.latencies.clone(), secs)
            .with("MB_per_s", t.bytes as f64 / secs / 1e6)
            .with("errors", t.errors as f64)
    };
    let mut figures: Vec<Figure> = KINDS
        .iter()
        .zip(&tallies)
        .map(|(name, t)| figure(&format!("load_{name}"), t))
        .collect();
    let all = Tally {
        latencies: tallies.iter().flat_map(|t| t.latencies.clone()).collect(),
        bytes: tallies.iter().map(|t| t.bytes).sum(),
        errors: tallies.iter().map(|t| t.errors).sum(),
    };
    figures.push(figure("load_all", &all).with("acked_pushes", acked.len() as f64));
    Ok(figures)
}

/// Pulls back every push listed in `acked_path` with `parallel` connections, checking manifests
/// and blobs; fails naming each one that is missing or differs.
pub async fn verify(base: &Base, acked_path: &Path, parallel: usize) -> Result<Figure, String> {
    let text = std::fs::read_to_string(acked_path)
        .map_err(|e| format!("{}: {e}", acked_path.display()))?;
    let acked: Vec<Acked> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut f = line.split_whitespace();
            let (Some(repo), Some(tag), Some(digest)) = (f.next(), f.next(), f.next()) else {
                return Err(format!("not `repo tag digest`: {line}"));
            };
            Ok(Acked {
                repo: repo.to_owned(),
                tag: tag.to_owned(),
                digest: digest
                    .parse()
                    .map_err(|e: registry_core::digest::InvalidDigest| e.to_string())?,
            })
        })
        .collect::<Result<_, String>>()?;
    let started = Instant::now();
    let results: Vec<Result<u64, String>> = futures::stream::iter(acked.iter())
        .map(|a| async move {
            let mut conn = Conn::open(base).await?;
            pull_image(&mut conn, a).await
        })
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    let secs = started.elapsed().as_secs_f64();
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("verify: {f}");
        }
        return Err(format!(
            "{} of {} acknowledged pushes are missing or differ",
            failures.len(),
            acked.len()
        ));
    }
    let bytes = results.iter().filter_map(|r| r.as_ref().ok()).sum();
    Ok(Figure::throughput("verify_acked_pushes", bytes, secs).with("images", acked.len() as f64))
}
