//! A read-through source behind a registry: what a repository lacks is asked of it and stored
//! through its `Fill`, what it serves is read-only, and other repositories never see it.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::{body, repo};
use futures::{StreamExt, TryStreamExt};
use registry_core::error::UpstreamFailure;
use registry_core::manifest::OCI_MANIFEST;
use registry_core::source::{Fill, Read, SourcedBlob};
use registry_core::{
    Digest, Error, GetRange, Reference, Registry, RegistryConfig, RepositoryName, Source, Storage,
};

on_every_backend!(
    misses_are_filled_from_the_source,
    repositories_a_source_serves_refuse_writes,
    a_source_that_lies_stores_nothing,
);

/// A source serving the repositories under `up/`, from blobs and manifests held in memory, and
/// counting what it was asked.
#[derive(Default)]
struct Upstream {
    blobs: Mutex<HashMap<Digest, Bytes>>,
    manifests: Mutex<HashMap<String, Bytes>>,
    blob_asks: AtomicUsize,
    local_reads: AtomicUsize,
}

impl Upstream {
    fn add_blob(&self, data: &'static [u8]) -> Digest {
        let digest = Digest::of(data);
        let bytes = Bytes::from_static(data);
        self.blobs.lock().unwrap().insert(digest.clone(), bytes);
        digest
    }
}

#[async_trait::async_trait]
impl Source for Upstream {
    fn serves(&self, repo: &RepositoryName) -> Option<String> {
        repo.as_str()
            .starts_with("up/")
            .then(|| "a test upstream".to_owned())
    }

    async fn manifest(
        &self,
        fill: &Fill,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> registry_core::Result<()> {
        if fill.stat_manifest(repo, reference).await.is_ok() {
            return Ok(());
        }
        let bytes = self
            .manifests
            .lock()
            .unwrap()
            .get(&reference.to_string())
            .cloned();
        let Some(bytes) = bytes else {
            return Err(Error::Upstream {
                failure: UpstreamFailure::ManifestUnknown,
                detail: format!("the test upstream has no {reference}"),
            });
        };
        fill.store_manifest(repo, reference, Some(OCI_MANIFEST), bytes)
            .await
            .map(drop)
    }

    async fn blob(
        &self,
        fill: &Fill,
        repo: &RepositoryName,
        digest: &Digest,
        head: bool,
        _whole: bool,
    ) -> registry_core::Result<Option<SourcedBlob>> {
        self.blob_asks.fetch_add(1, Ordering::SeqCst);
        let data = self.blobs.lock().unwrap().get(digest).cloned();
        let Some(data) = data else {
            return Err(Error::Upstream {
                failure: UpstreamFailure::BlobUnknown,
                detail: format!("the test upstream has no {digest}"),
            });
        };
        if head {
            let size = data.len() as u64;
            let stream = futures::stream::empty().boxed();
            return Ok(Some(SourcedBlob { size, stream }));
        }
        let len = data.len() as u64;
        fill.store_blob(repo, digest, body(&data), Some(len))
            .await?;
        Ok(None)
    }

    fn served_locally(&self, read: Read) {
        assert_eq!(read, Read::Blob);
        self.local_reads.fetch_add(1, Ordering::SeqCst);
    }
}

fn registry(s: Arc<dyn Storage>, source: &Arc<Upstream>) -> Registry {
    Registry::new(s, RegistryConfig::default()).with_source(source.clone())
}

async fn read_all(r: &Registry, name: &RepositoryName, digest: &Digest) -> Vec<u8> {
    let blob = r.get_blob(name, digest, None).await.unwrap();
    let chunks: Vec<Bytes> = blob.stream.try_collect().await.unwrap();
    chunks.concat()
}

/// A blob or manifest missing from a served repository comes from the source, is stored, and is
/// then read locally; a range waits for the whole blob; what the source lacks is its error.
async fn misses_are_filled_from_the_source(s: Arc<dyn Storage>) {
    let up = Arc::new(Upstream::default());
    let r = registry(s, &up);
    let name = repo("up/app");
    let layer = up.add_blob(b"layer from the source");

    assert_eq!(r.stat_blob(&name, &layer).await.unwrap().size, 21);
    assert_eq!(up.local_reads.load(Ordering::SeqCst), 0);
    let range = r
        .get_blob(&name, &layer, Some(GetRange::Bounded(6..10)))
        .await
        .unwrap();
    let part: Vec<Bytes> = range.stream.try_collect().await.unwrap();
    assert_eq!(part.concat(), b"from");
    assert_eq!(read_all(&r, &name, &layer).await, b"layer from the source");
    assert_eq!(
        up.blob_asks.load(Ordering::SeqCst),
        2,
        "HEAD, then the fill"
    );
    assert_eq!(
        up.local_reads.load(Ordering::SeqCst),
        1,
        "the last read only"
    );

    let config = up.add_blob(b"{}");
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[]}}"#
    );
    up.manifests
        .lock()
        .unwrap()
        .insert("latest".into(), Bytes::from(manifest.clone()));
    let latest: Reference = "latest".parse().unwrap();
    let got = r.get_manifest(&name, &latest).await.unwrap();
    assert_eq!(got.bytes, manifest.as_bytes());
    let listed = r.list_repositories(None, None).await.unwrap();
    assert_eq!(listed.items, ["up/app"]);

    let missing = Digest::of(b"nowhere");
    let e = r.get_blob(&name, &missing, None).await.err().unwrap();
    assert!(
        matches!(
            e,
            Error::Upstream {
                failure: UpstreamFailure::BlobUnknown,
                ..
            }
        ),
        "{e}"
    );
    let e = r
        .stat_manifest(&name, &"v9".parse().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Upstream {
                failure: UpstreamFailure::ManifestUnknown,
                ..
            }
        ),
        "{e}"
    );

    // Another repository never reaches the source, even for a blob the source holds.
    let asks = up.blob_asks.load(Ordering::SeqCst);
    let e = r.stat_blob(&repo("local/app"), &layer).await.unwrap_err();
    assert!(matches!(e, Error::BlobUnknown { .. }), "{e}");
    assert_eq!(up.blob_asks.load(Ordering::SeqCst), asks);
}

/// Every push and delete into a served repository is refused naming the source, and changes
/// nothing; a repository the source does not serve takes them.
async fn repositories_a_source_serves_refuse_writes(s: Arc<dyn Storage>) {
    let up = Arc::new(Upstream::default());
    let r = registry(s, &up);
    let (served, local) = (repo("up/app"), repo("local/app"));
    let data = b"pushed bytes";
    let digest = Digest::of(data);
    r.put_blob(&local, &digest, body(data), None).await.unwrap();

    let refused = |e: Error| {
        assert!(
            matches!(&e, Error::Sourced { name, .. } if name == "up/app"),
            "{e}"
        );
        assert!(e.to_string().contains("a test upstream"), "{e}");
    };
    refused(
        r.put_blob(&served, &digest, body(data), None)
            .await
            .unwrap_err(),
    );
    refused(
        r.mount_blob(&served, &digest, Some(&local))
            .await
            .unwrap_err(),
    );
    refused(r.start_upload(&served).await.unwrap_err());
    refused(r.delete_blob(&served, &digest).await.unwrap_err());
    let manifest = Bytes::from_static(b"{}");
    let tag: Reference = "v1".parse().unwrap();
    refused(
        r.put_manifest(&served, &tag, Some(OCI_MANIFEST), manifest)
            .await
            .unwrap_err(),
    );
    refused(r.delete_manifest(&served, &digest).await.unwrap_err());
    refused(
        r.delete_tag(&served, &"v1".parse().unwrap())
            .await
            .unwrap_err(),
    );
    assert!(matches!(
        r.stat_blob(&served, &digest).await,
        Err(Error::Upstream { .. })
    ));

    // Mounting out of a served repository is a read of it: allowed.
    r.mount_blob(&local, &digest, None).await.unwrap();
    r.start_upload(&local).await.unwrap();
}

/// Bytes a source stores through its fill are verified like any push: a source that hands over
/// the wrong bytes stores nothing, and the read fails.
async fn a_source_that_lies_stores_nothing(s: Arc<dyn Storage>) {
    let up = Arc::new(Upstream::default());
    let r = registry(s.clone(), &up);
    let name = repo("up/app");
    let claimed = Digest::of(b"what was asked");
    up.blobs
        .lock()
        .unwrap()
        .insert(claimed.clone(), Bytes::from_static(b"something else"));

    let e = r.get_blob(&name, &claimed, None).await.err().unwrap();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
    let plain = Registry::new(s, RegistryConfig::default());
    assert!(matches!(
        plain.stat_blob(&name, &claimed).await,
        Err(Error::BlobUnknown { .. })
    ));
}
