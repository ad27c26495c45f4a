//! `registry_core::transfer::copy` between registries on every backend and an OCI layout: an
//! index with some platforms then all, referrers following their subject, the same digests after
//! a round trip through a layout, and an origin serving wrong bytes storing nothing.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use common::{body, repo};
use registry_core::manifest::{Descriptor, OCI_INDEX, OCI_MANIFEST};
use registry_core::transfer::{self, CopyOptions, Destination, Fetched, Origin};
use registry_core::{
    ByteStream, Digest, Error, Reference, Registry, RegistryConfig, RepositoryName, Storage, Tag,
};
use registry_storage::{MemoryStorage, OciLayout};

on_every_backend!(
    an_index_is_copied_a_platform_at_a_time_with_its_referrers,
    a_layout_round_trip_keeps_every_digest,
    an_origin_serving_wrong_bytes_stores_nothing,
);

fn registry(storage: Arc<dyn Storage>) -> Registry {
    Registry::new(storage, RegistryConfig::default())
}

async fn blob(r: &Registry, at: &RepositoryName, data: &[u8]) -> serde_json::Value {
    let d = Digest::of(data);
    r.put_blob(at, &d, body(data), None).await.unwrap();
    serde_json::json!({"mediaType": "application/octet-stream", "digest": d.to_string(), "size": data.len()})
}

async fn manifest(
    r: &Registry,
    at: &RepositoryName,
    reference: &str,
    m: serde_json::Value,
    media_type: &str,
) -> serde_json::Value {
    let bytes = serde_json::to_vec(&m).unwrap();
    let reference: Reference = reference.parse().unwrap();
    let info = r
        .put_manifest(at, &reference, Some(media_type), Bytes::from(bytes.clone()))
        .await
        .unwrap();
    serde_json::json!({"mediaType": media_type, "digest": info.digest.to_string(), "size": bytes.len()})
}

/// An index of an amd64 and an arm64 image tagged `v1` in `app`, and a signature of it; the
/// digests of the index, the amd64 and arm64 children, and the signature.
async fn seed(r: &Registry) -> [Digest; 4] {
    let app = repo("app");
    let mut children = Vec::new();
    for arch in ["amd64", "arm64"] {
        let config = blob(
            r,
            &app,
            format!("{{\"architecture\":\"{arch}\"}}").as_bytes(),
        )
        .await;
        let layer = blob(r, &app, format!("layer for {arch}").as_bytes()).await;
        let image = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config["digest"], "size": config["size"]},
            "layers": [layer]});
        let digest = Digest::of(&serde_json::to_vec(&image).unwrap());
        let mut d = manifest(r, &app, &digest.to_string(), image, OCI_MANIFEST).await;
        d["platform"] = serde_json::json!({"os": "linux", "architecture": arch});
        children.push(d);
    }
    let index =
        serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children});
    let index = manifest(r, &app, "v1", index, OCI_INDEX).await;
    let empty = blob(r, &app, b"{}").await;
    let payload = blob(r, &app, b"signed").await;
    let signature = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sig",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty["digest"], "size": 2},
        "layers": [payload], "subject": index});
    let digest = Digest::of(&serde_json::to_vec(&signature).unwrap());
    let signature = manifest(r, &app, &digest.to_string(), signature, OCI_MANIFEST).await;
    let d = |v: &serde_json::Value| v["digest"].as_str().unwrap().parse().unwrap();
    [d(&index), d(&children[0]), d(&children[1]), d(&signature)]
}

async fn holds(r: &Registry, at: &RepositoryName, digest: &Digest) -> bool {
    Destination::manifest_digest(r, at, &Reference::Digest(digest.clone()))
        .await
        .unwrap()
        .is_some()
}

async fn an_index_is_copied_a_platform_at_a_time_with_its_referrers(storage: Arc<dyn Storage>) {
    let from = registry(Arc::new(MemoryStorage::new()));
    let [index, amd, arm, signature] = seed(&from).await;
    let to = registry(storage);
    let (app, copy) = (repo("app"), repo("copy/app"));
    let v1 = Reference::Tag("v1".parse().unwrap());
    let arm_only = CopyOptions {
        platforms: vec!["linux/arm64".into()],
        referrers: true,
    };
    let first = transfer::copy(&from, &app, &v1, &to, &copy, &v1, &arm_only)
        .await
        .unwrap();
    assert_eq!(first.digest.as_ref(), Some(&index));
    assert_eq!((first.manifests, first.blobs), (3, 4), "{first:?}");
    assert_eq!(
        to.tag(&copy, &"v1".parse().unwrap())
            .await
            .unwrap()
            .unwrap()
            .digest,
        index
    );
    assert!(holds(&to, &copy, &arm).await && holds(&to, &copy, &signature).await);
    assert!(
        !holds(&to, &copy, &amd).await,
        "a platform left out was copied"
    );
    let referrers = to.list_referrers(&copy, &index, None).await.unwrap();
    assert_eq!(referrers.len(), 1);
    assert_eq!(referrers[0].digest, signature);

    let rest = transfer::copy(&from, &app, &v1, &to, &copy, &v1, &CopyOptions::default())
        .await
        .unwrap();
    assert_eq!((rest.manifests, rest.blobs), (1, 2), "{rest:?}");
    assert!(holds(&to, &copy, &amd).await);
    let again = transfer::copy(&from, &app, &v1, &to, &copy, &v1, &CopyOptions::default())
        .await
        .unwrap();
    assert_eq!((again.manifests, again.blobs), (0, 0), "{again:?}");
    let missing = transfer::copy(
        &from,
        &app,
        &Reference::Tag("nope".parse().unwrap()),
        &to,
        &copy,
        &v1,
        &CopyOptions::default(),
    )
    .await;
    assert!(
        matches!(missing, Err(Error::ManifestUnknown { .. })),
        "{missing:?}"
    );
}

async fn a_layout_round_trip_keeps_every_digest(storage: Arc<dyn Storage>) {
    let from = registry(Arc::new(MemoryStorage::new()));
    let [index, amd, _, signature] = seed(&from).await;
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(dir.path().join("layout")).await.unwrap();
    let (app, back) = (repo("app"), repo("back/app"));
    let v1 = Reference::Tag("v1".parse().unwrap());
    transfer::copy(
        &from,
        &app,
        &v1,
        &layout,
        &app,
        &v1,
        &CopyOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        Origin::tags(&layout, &app).await.unwrap(),
        vec!["v1".parse::<Tag>().unwrap()]
    );
    let to = registry(storage);
    let copied = transfer::copy(&layout, &app, &v1, &to, &back, &v1, &CopyOptions::default())
        .await
        .unwrap();
    assert_eq!(copied.digest, Some(index.clone()));
    assert!(holds(&to, &back, &amd).await && holds(&to, &back, &signature).await);
    // A layout written again over itself changes nothing.
    let again = transfer::copy(
        &from,
        &app,
        &v1,
        &layout,
        &app,
        &v1,
        &CopyOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!((again.manifests, again.blobs), (0, 0));
}

/// An origin that serves another registry's manifests but wrong bytes for every blob.
struct Lying(Registry);

#[async_trait]
impl Origin for Lying {
    async fn manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> registry_core::Result<Option<Fetched>> {
        Origin::manifest(&self.0, repo, reference).await
    }
    async fn blob(&self, _: &RepositoryName, _: &Digest) -> registry_core::Result<ByteStream> {
        Ok(body(b"not what the manifest says"))
    }
    async fn referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
    ) -> registry_core::Result<Vec<Descriptor>> {
        Origin::referrers(&self.0, repo, subject).await
    }
    async fn tags(&self, repo: &RepositoryName) -> registry_core::Result<Vec<Tag>> {
        Origin::tags(&self.0, repo).await
    }
}

async fn an_origin_serving_wrong_bytes_stores_nothing(storage: Arc<dyn Storage>) {
    let from = registry(Arc::new(MemoryStorage::new()));
    let [index, amd, ..] = seed(&from).await;
    let lying = Lying(from);
    let to = registry(storage);
    let (app, copy) = (repo("app"), repo("copy/app"));
    let v1 = Reference::Tag("v1".parse().unwrap());
    let err = transfer::copy(&lying, &app, &v1, &to, &copy, &v1, &CopyOptions::default()).await;
    assert!(err.is_err(), "wrong bytes were taken");
    assert!(!holds(&to, &copy, &index).await && !holds(&to, &copy, &amd).await);
    assert!(
        to.tag(&copy, &"v1".parse().unwrap())
            .await
            .unwrap()
            .is_none()
    );
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(dir.path()).await.unwrap();
    let err = transfer::copy(
        &lying,
        &app,
        &v1,
        &layout,
        &app,
        &v1,
        &CopyOptions::default(),
    )
    .await;
    assert!(matches!(err, Err(Error::DigestMismatch { .. })), "{err:?}");
    let stored = std::fs::read_dir(dir.path().join("blobs/sha256"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(stored, 0, "a blob that is not its digest was kept");
    assert!(Origin::tags(&layout, &app).await.unwrap().is_empty());
}
