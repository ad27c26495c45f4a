//! Run with: `cargo run --release -p registry-bench -- --url http://127.0.0.1:5000 all`
//!
//! Drives any registry over HTTP/1.1 and prints one line per figure (JSON lines with `--json`):
//! monolithic and chunked blob push, blob pull, manifest GET by tag and blob HEAD rates with
//! latency percentiles at a given concurrency, image push and pull with parallel transfers, and the
//! loopback TCP rate as a limit; `load` and `verify` drive many clients for a fixed time and pull
//! back what was acknowledged (`scripts/scale.sh`). Each connection is a plain hyper HTTP/1.1
//! connection, so the client costs little next to the server.

use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

mod client;
mod figures;
mod load;
mod seed;

use client::{Conn, Data};
use figures::Figure;

/// Flags common to every benchmark.
#[derive(Debug, Parser)]
#[command(name = "registry-bench", about = "Benchmark an OCI registry over HTTP")]
struct Args {
    /// Base URL of the registry, e.g. http://127.0.0.1:5000
    #[arg(long, default_value = "http://127.0.0.1:5000")]
    url: String,
    /// Print JSON lines instead of text
    #[arg(long)]
    json: bool,
    /// Repository the benchmark writes to
    #[arg(long, default_value = "bench/data")]
    repo: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Monolithic push (`POST ?digest=`) of one blob.
    Push {
        /// Blob size in MiB
        #[arg(long, default_value_t = 1024)]
        mib: u64,
    },
    /// Chunked push (`POST`, `PATCH` with Content-Range per chunk, `PUT ?digest=`).
    PushChunked {
        /// Blob size in MiB
        #[arg(long, default_value_t = 1024)]
        mib: u64,
        /// Chunk size in MiB
        #[arg(long, default_value_t = 8)]
        chunk_mib: u64,
    },
    /// Pull of one blob (pushed first).
    Pull {
        /// Blob size in MiB
        #[arg(long, default_value_t = 1024)]
        mib: u64,
    },
    /// Manifest GET by tag: requests per second and latency percentiles.
    ManifestGet {
        /// Connections, each sending requests one after another
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Seconds to run
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Blob HEAD: requests per second and latency percentiles.
    BlobHead {
        /// Connections, each sending requests one after another
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Seconds to run
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Push then pull an image of N layers with C parallel transfers.
    Image {
        /// Layers
        #[arg(long, default_value_t = 4)]
        layers: u64,
        /// Layer size in MiB
        #[arg(long, default_value_t = 32)]
        layer_mib: u64,
        /// Parallel transfers
        #[arg(long, default_value_t = 4)]
        parallel: usize,
    },
    /// Manifest pushes: each client pushes new manifests (over blobs it pushed once) into a
    /// repository of its own, `PREFIX-N`, each under a tag of its own: pushes per second.
    ManifestPush {
        /// Clients, each on its own connection and repository
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Seconds to run
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// The clients' repositories are PREFIX-0, PREFIX-1, …
        #[arg(long, default_value = "bench/push")]
        prefix: String,
    },
    /// Loopback TCP rate (no registry involved): the transfer limit of this machine.
    Loopback {
        /// Bytes to send, in MiB
        #[arg(long, default_value_t = 1024)]
        mib: u64,
    },
    /// Fills a store, through the library, with many repositories and one of many tags (for
    /// `scripts/bench-listing.sh`); `--url` is not used.
    SeedListing {
        /// The store: `fs:PATH` or `s3://BUCKET[/PREFIX]` (with the `AWS_*` variables)
        #[arg(long)]
        storage: String,
        /// Repositories, each holding a manifest tagged v1
        #[arg(long, default_value_t = 20_000)]
        repos: u64,
        /// Tags of the repository seed/tagged
        #[arg(long, default_value_t = 20_000)]
        tags: u64,
        /// Write only what listings read: catalog entries and tag records
        #[arg(long)]
        index_only: bool,
    },
    /// Fills a store, through the library, with about N blobs in images that share some layers
    /// (for `scripts/bench-usage.sh`); `--url` is not used.
    SeedUsage {
        /// The store: `fs:PATH` or `s3://BUCKET[/PREFIX]` (with the `AWS_*` variables)
        #[arg(long)]
        storage: String,
        /// Blobs to store, roughly
        #[arg(long, default_value_t = 100_000)]
        blobs: u64,
    },
    /// Deletes the manifest the first tag of each of N repositories names, through the library
    /// (for `scripts/bench-gc.sh` and `scripts/bench-large.sh`); `--url` is not used.
    DeleteManifests {
        /// The store: `fs:PATH` or `s3://BUCKET[/PREFIX]` (with the `AWS_*` variables)
        #[arg(long)]
        storage: String,
        /// Manifests to delete
        #[arg(long, default_value_t = 300)]
        count: u64,
    },
    /// Clients pushing images of their own and pulling a shared image and each other's for a
    /// fixed time (for `scripts/scale.sh`): rate, throughput, latency and errors per operation;
    /// the acknowledged pushes are written to `--acked`.
    Load {
        /// Clients, each on its own connection
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// Seconds to run
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Size of each layer in KiB (an image is a config, a layer every image shares and one
        /// of its own)
        #[arg(long, default_value_t = 256)]
        layer_kib: u64,
        /// Repositories are PREFIX/shared and PREFIX/c<client>
        #[arg(long, default_value = "load")]
        prefix: String,
        /// Where to write the acknowledged pushes (`repo tag digest` lines)
        #[arg(long)]
        acked: std::path::PathBuf,
    },
    /// Pulls back every push a `load` run acknowledged and checks every byte; fails if one is
    /// missing or differs.
    Verify {
        /// The file `load --acked` wrote
        #[arg(long)]
        acked: std::path::PathBuf,
        /// Images checked at once
        #[arg(long, default_value_t = 16)]
        parallel: usize,
    },
    /// Every figure with its default settings.
    All,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args).await {
        eprintln!("registry-bench: {e}");
        std::process::exit(1);
    }
}

async fn run(args: &Args) -> Result<(), String> {
    if let Command::SeedListing {
        storage,
        repos,
        tags,
        index_only,
    } = &args.command
    {
        return seed::seed(storage, *repos, *tags, *index_only).await;
    }
    if let Command::SeedUsage { storage, blobs } = &args.command {
        return seed::seed_usage(storage, *blobs).await;
    }
    if let Command::DeleteManifests { storage, count } = &args.command {
        return seed::delete_manifests(storage, *count).await;
    }
    let base = client::Base::parse(&args.url)?;
    let print = |f: Figure| f.print(args.json);
    match &args.command {
        Command::Push { mib } => print(push(&base, &args.repo, *mib, None).await?),
        Command::PushChunked { mib, chunk_mib } => {
            print(push(&base, &args.repo, *mib, Some(*chunk_mib)).await?)
        }
        Command::Pull { mib } => print(pull(&base, &args.repo, *mib).await?),
        Command::ManifestGet {
            concurrency,
            seconds,
        } => print(rate(&base, &args.repo, Target::Manifest, *concurrency, *seconds).await?),
        Command::BlobHead {
            concurrency,
            seconds,
        } => print(rate(&base, &args.repo, Target::BlobHead, *concurrency, *seconds).await?),
        Command::Image {
            layers,
            layer_mib,
            parallel,
        } => {
            for f in image(&base, &args.repo, *layers, *layer_mib, *parallel).await? {
                print(f);
            }
        }
        Command::Loopback { mib } => print(figures::loopback(*mib).await?),
        Command::ManifestPush {
            concurrency,
            seconds,
            prefix,
        } => print(manifest_push(&base, prefix, *concurrency, *seconds).await?),
        Command::Load {
            clients,
            seconds,
            layer_kib,
            prefix,
            acked,
        } => {
            let load = load::Load {
                clients: *clients,
                seconds: *seconds,
                layer_kib: *layer_kib,
                prefix: prefix.clone(),
            };
            for f in load::load(&base, load, acked).await? {
                print(f);
            }
        }
        Command::Verify { acked, parallel } => print(load::verify(&base, acked, *parallel).await?),
        // Seeding needs no registry: it returned above.
        Command::SeedListing { .. }
        | Command::SeedUsage { .. }
        | Command::DeleteManifests { .. } => {}
        Command::All => {
            print(figures::loopback(1024).await?);
            print(push(&base, &args.repo, 1024, None).await?);
            print(push(&base, &args.repo, 1024, Some(8)).await?);
            print(pull(&base, &args.repo, 1024).await?);
            print(rate(&base, &args.repo, Target::Manifest, 64, 10).await?);
            print(rate(&base, &args.repo, Target::BlobHead, 64, 10).await?);
            for f in image(&base, &args.repo, 4, 32, 4).await? {
                print(f);
            }
        }
    }
    Ok(())
}

const MIB: u64 = 1 << 20;

/// Pushes a blob of `mib` MiB, monolithic or in chunks of `chunk_mib`.
async fn push(
    base: &client::Base,
    repo: &str,
    mib: u64,
    chunk_mib: Option<u64>,
) -> Result<Figure, String> {
    let data = Data::new(mib * MIB, 1 + mib + chunk_mib.unwrap_or(0));
    let mut conn = Conn::open(base).await?;
    let started = Instant::now();
    match chunk_mib {
        None => conn.push_monolithic(repo, &data).await?,
        Some(c) => conn.push_chunked(repo, &data, c * MIB).await?,
    }
    let secs = started.elapsed().as_secs_f64();
    let name = match chunk_mib {
        None => format!("push_monolithic_{mib}MiB"),
        Some(c) => format!("push_chunked_{mib}MiB_{c}MiB_chunks"),
    };
    Ok(Figure::throughput(&name, data.len, secs))
}

/// Pulls a blob of `mib` MiB, pushing it first.
async fn pull(base: &client::Base, repo: &str, mib: u64) -> Result<Figure, String> {
    let data = Data::new(mib * MIB, 7 + mib);
    let mut conn = Conn::open(base).await?;
    conn.push_monolithic(repo, &data).await?;
    let started = Instant::now();
    let got = conn.pull(repo, &data.digest).await?;
    let secs = started.elapsed().as_secs_f64();
    if got != data.len {
        return Err(format!("pulled {got} bytes of {}", data.len));
    }
    Ok(Figure::throughput(
        &format!("pull_{mib}MiB"),
        data.len,
        secs,
    ))
}

/// What a rate benchmark asks for.
#[derive(Debug, Clone, Copy)]
enum Target {
    Manifest,
    BlobHead,
}

/// Requests per second and latency percentiles of one kind of small request.
async fn rate(
    base: &client::Base,
    repo: &str,
    target: Target,
    concurrency: usize,
    seconds: u64,
) -> Result<Figure, String> {
    let mut conn = Conn::open(base).await?;
    let (manifest_path, blob_path) = conn.seed_image(repo).await?;
    let (name, method, path) = match target {
        Target::Manifest => ("manifest_get_by_tag", http::Method::GET, manifest_path),
        Target::BlobHead => ("blob_head", http::Method::HEAD, blob_path),
    };
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let workers = (0..concurrency).map(|_| {
        let (base, method, path) = (base.clone(), method.clone(), path.clone());
        tokio::spawn(async move {
            let mut conn = Conn::open(&base).await?;
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                conn.small(method.clone(), &path).await?;
                latencies.push(t.elapsed());
            }
            Ok::<_, String>(latencies)
        })
    });
    let started = Instant::now();
    let mut all = Vec::new();
    for w in futures::future::join_all(workers).await {
        all.extend(w.map_err(|e| e.to_string())??);
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(Figure::rate(&format!("{name}_c{concurrency}"), all, secs))
}

/// Manifest pushes per second from `concurrency` clients, each into a repository of its own.
async fn manifest_push(
    base: &client::Base,
    prefix: &str,
    concurrency: usize,
    seconds: u64,
) -> Result<Figure, String> {
    let mut ready = Vec::new();
    for n in 0..concurrency {
        let repo = format!("{prefix}-{n}");
        let mut conn = Conn::open(base).await?;
        let layer = Data::new(1024, 10 + n as u64);
        let config = Data::new(512, 1000 + n as u64);
        conn.push_monolithic(&repo, &layer).await?;
        conn.push_monolithic(&repo, &config).await?;
        ready.push((conn, repo, client::image_manifest(&config, &[&layer])));
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let workers = ready.into_iter().map(|(mut conn, repo, manifest)| {
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            // Each push a new manifest: the same image with an annotation of its own.
            let mut manifest: serde_json::Value =
                serde_json::from_slice(&manifest).map_err(|e| e.to_string())?;
            let run = uuid_like(&repo);
            for i in 0u64.. {
                if Instant::now() >= deadline {
                    break;
                }
                manifest["annotations"] = serde_json::json!({ "bench.push": format!("{run}-{i}") });
                let body = bytes::Bytes::from(manifest.to_string());
                let t = Instant::now();
                conn.put_manifest_bytes(&repo, &format!("p{i}"), body)
                    .await?;
                latencies.push(t.elapsed());
            }
            Ok::<_, String>(latencies)
        })
    });
    let started = Instant::now();
    let mut all = Vec::new();
    for w in futures::future::join_all(workers).await {
        all.extend(w.map_err(|e| e.to_string())??);
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(Figure::rate(
        &format!("manifest_push_c{concurrency}"),
        all,
        secs,
    ))
}

/// A word that differs between runs against the same store, so that each run's manifests are
/// new: the repository and the time.
fn uuid_like(repo: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{repo}-{nanos}")
}

/// Pushes then pulls an image of `layers` layers with `parallel` transfers at once.
async fn image(
    base: &client::Base,
    repo: &str,
    layers: u64,
    layer_mib: u64,
    parallel: usize,
) -> Result<Vec<Figure>, String> {
    let blobs: Vec<Data> = (0..layers)
        .map(|i| Data::new(layer_mib * MIB, 1000 + i))
        .collect();
    let total = blobs.iter().map(|b| b.len).sum::<u64>();
    let started = Instant::now();
    client::transfer_all(base, repo, &blobs, parallel, true).await?;
    let mut conn = Conn::open(base).await?;
    let tag = conn.put_image_manifest(repo, &blobs).await?;
    let push_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    conn.small(http::Method::GET, &format!("/v2/{repo}/manifests/{tag}"))
        .await?;
    client::transfer_all(base, repo, &blobs, parallel, false).await?;
    let pull_secs = started.elapsed().as_secs_f64();
    let name = format!("image_{layers}x{layer_mib}MiB_p{parallel}");
    Ok(vec![
        Figure::throughput(&format!("{name}_push"), total, push_secs),
        Figure::throughput(&format!("{name}_pull"), total, pull_secs),
    ])
}
