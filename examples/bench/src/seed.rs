//! `seed-listing`: fills a store with many repositories and one repository of many tags, through
//! the library, for the listing benchmark (`scripts/bench-listing.sh`).

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use registry_core::manifest::OCI_MANIFEST;
use registry_core::{Digest, Reference, Registry, RegistryConfig, RepositoryName, Storage, paths};

/// Requests in flight while seeding.
const CONCURRENCY: usize = 32;

/// The repository holding the many tags.
pub const TAGGED: &str = "seed/tagged";

/// The store a `--storage` spec names: `fs:PATH`, or `s3://BUCKET[/PREFIX]` with the `AWS_*`
/// variables.
fn open(spec: &str) -> Result<Arc<dyn Storage>, String> {
    if let Some(path) = spec.strip_prefix("fs:") {
        let fs = registry_storage::FilesystemStorage::new(path).map_err(|e| e.to_string())?;
        return Ok(Arc::new(fs));
    }
    let options = registry_storage::S3Options::from_url(spec).map_err(|e| e.to_string())?;
    Ok(Arc::new(options.build().map_err(|e| e.to_string())?))
}

/// Pushes the seeding image.
struct Pusher {
    registry: Registry,
    config: Digest,
    manifest: Bytes,
}

impl Pusher {
    async fn push(&self, name: RepositoryName, tag: String) -> registry_core::Result<()> {
        if self.registry.stat_blob(&name, &self.config).await.is_err() {
            let body = futures::stream::once(async { Ok(Bytes::from_static(CONFIG)) }).boxed();
            self.registry
                .put_blob(&name, &self.config, body, None)
                .await?;
        }
        let tag = Reference::Tag(tag.parse()?);
        self.registry
            .put_manifest(&name, &tag, Some(OCI_MANIFEST), self.manifest.clone())
            .await
            .map(drop)
    }
}

/// The image config every seeded manifest names.
const CONFIG: &[u8] = b"{\"seeded\":true}";

/// The name of the `i`th seeded repository: a hundred namespaces of repositories.
pub fn repository(i: u64) -> String {
    format!("team{:02}/app{i:05}", i % 100)
}

/// Seeds `repos` repositories (each with a manifest tagged `v1`) and `tags` tags on one more.
/// With `index_only`, writes only what listings read (catalog entries and tag records, beside
/// one real manifest), as a store of that size would hold it: quicker on slow S3 imitations.
pub async fn seed(spec: &str, repos: u64, tags: u64, index_only: bool) -> Result<(), String> {
    let storage = open(spec)?;
    let registry = Registry::new(storage.clone(), RegistryConfig::default());
    let config = CONFIG;
    let c = Digest::of(config);
    let manifest = Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{c}","size":{}}},"layers":[]}}"#,
        config.len()
    ));
    let pusher = Pusher {
        registry,
        config: c.clone(),
        manifest: manifest.clone(),
    };
    let push = |name, tag| pusher.push(name, tag);
    let tagged: RepositoryName = TAGGED.parse().map_err(|e| format!("{e}"))?;
    push(tagged.clone(), "t00000".into())
        .await
        .map_err(|e| e.to_string())?;
    let record = Bytes::from(format!(
        "{{\"digest\":\"{}\",\"moved\":0}}",
        Digest::of(&manifest)
    ));
    let started = std::time::Instant::now();
    futures::stream::iter(0..repos)
        .map(|i| {
            let storage = storage.clone();
            async move {
                let name: RepositoryName = repository(i).parse()?;
                if index_only {
                    Ok(storage
                        .put(&paths::catalog_entry(&name), Bytes::new())
                        .await?)
                } else {
                    push(name, "v1".into()).await
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<()>()
        .await
        .map_err(|e| e.to_string())?;
    eprintln!("seeded {repos} repositories in {:?}", started.elapsed());
    let started = std::time::Instant::now();
    futures::stream::iter(1..tags)
        .map(|i| {
            let (storage, tagged, record) = (storage.clone(), tagged.clone(), record.clone());
            async move {
                let tag = format!("t{i:05}");
                if index_only {
                    Ok(storage
                        .put(&paths::tag(&tagged, &tag.parse()?), record)
                        .await?)
                } else {
                    push(tagged, tag).await
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<()>()
        .await
        .map_err(|e| e.to_string())?;
    eprintln!("seeded {tags} tags in {:?}", started.elapsed());
    Ok(())
}

/// Seeds about `blobs` blobs for the usage benchmark (`scripts/bench-usage.sh`): images of a
/// config, six layers of their own and three from a pool of a thousand shared ones, ten images
/// (two tags each) per repository.
pub async fn seed_usage(spec: &str, blobs: u64) -> Result<(), String> {
    const POOL: u64 = 1000;
    let storage = open(spec)?;
    let registry = Registry::new(storage, RegistryConfig::default());
    let images = blobs.saturating_sub(POOL) / 7;
    let started = std::time::Instant::now();
    let blob = |i: u64, what: &str| Bytes::from(format!("{what} {i:012} of the usage benchmark"));
    futures::stream::iter(0..images)
        .map(|i| {
            let registry = registry.clone();
            async move {
                let name: RepositoryName = format!("usage{:03}/app{:04}", i % 100, i / 10).parse()?;
                let mut descriptors = Vec::new();
                let own = (0..6).map(|l| blob(i * 6 + l, "layer"));
                let shared = (0..3).map(|l| blob((i * 3 + l) % POOL, "pooled layer"));
                for data in std::iter::once(blob(i, "config")).chain(own).chain(shared) {
                    let digest = Digest::of(&data);
                    let len = data.len();
                    let body = futures::stream::once(async move { Ok(data) }).boxed();
                    registry.put_blob(&name, &digest, body, None).await?;
                    descriptors.push(format!(
                        r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{digest}","size":{len}}}"#
                    ));
                }
                let config = descriptors.remove(0).replace(
                    "application/vnd.oci.image.layer.v1.tar",
                    "application/vnd.oci.image.config.v1+json",
                );
                let manifest = Bytes::from(format!(
                    r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{config},"layers":[{}]}}"#,
                    descriptors.join(",")
                ));
                for tag in [format!("build-{i}"), "latest".to_owned()] {
                    let tag = Reference::Tag(tag.parse()?);
                    registry
                        .put_manifest(&name, &tag, Some(OCI_MANIFEST), manifest.clone())
                        .await?;
                }
                Ok::<_, registry_core::Error>(())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<()>()
        .await
        .map_err(|e| e.to_string())?;
    eprintln!(
        "seeded {images} images ({} blobs and manifests) in {:?}",
        images * 8 + POOL.min(images * 3),
        started.elapsed()
    );
    Ok(())
}

/// Deletes the manifest the first tag of each of the first `count` repositories of the catalog
/// names (with the tags naming it): on a store `seed-usage` or `seed-listing` filled.
pub async fn delete_manifests(spec: &str, count: u64) -> Result<(), String> {
    let storage = open(spec)?;
    let registry = Registry::new(storage, RegistryConfig::default());
    let started = std::time::Instant::now();
    let repos = registry
        .list_repositories(Some(count as usize), None)
        .await
        .map_err(|e| e.to_string())?
        .items;
    let mut deleted = 0;
    for repo in &repos {
        let name: RepositoryName = repo.parse().map_err(|e| format!("{e}"))?;
        let tags = registry
            .list_tags(&name, Some(1), None)
            .await
            .map_err(|e| e.to_string())?
            .items;
        let Some(tag) = tags.first() else {
            continue;
        };
        let tag = tag.parse().map_err(|e| format!("{e}"))?;
        if let Some(record) = registry.tag(&name, &tag).await.map_err(|e| e.to_string())? {
            registry
                .delete_manifest(&name, &record.digest)
                .await
                .map_err(|e| e.to_string())?;
            deleted += 1;
        }
    }
    eprintln!("deleted {deleted} manifests in {:?}", started.elapsed());
    Ok(())
}
