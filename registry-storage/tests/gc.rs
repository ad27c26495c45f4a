//! Garbage collection and upload purging over every backend: what goes, what stays, dry runs, and
//! the grace period that protects pushes in progress.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{body, repo};
use futures::TryStreamExt;
use registry_core::gc::{self, CacheRetention, GcOptions, Removal};
use registry_core::manifest::{OCI_INDEX, OCI_MANIFEST};
use registry_core::paths;
use registry_core::source::{Fill, SourcedBlob};
use registry_core::{
    Digest, Error, Reference, Registry, RegistryConfig, RepositoryName, Source, Storage, StorageExt,
};

on_every_backend!(
    unreferenced_blobs_and_abandoned_uploads_go,
    untagged_manifests_go_only_when_asked,
    referrers_and_index_children_are_kept,
    the_grace_period_protects_reused_blobs,
    leftovers_of_crashes_are_removed,
    purging_uploads_leaves_blobs_alone,
    cached_content_goes_once_unused,
    an_unreadable_manifest_stops_collection_before_any_blob_goes,
    a_push_never_names_a_blob_whose_removal_is_announced,
);

/// Everything collected is older than this, in a test: zero; and no tag history protects what
/// it names (`tests/lifecycle.rs` covers that).
fn now_options() -> GcOptions {
    GcOptions {
        grace: Duration::ZERO,
        upload_max_age: Duration::ZERO,
        history: Duration::ZERO,
        ..GcOptions::default()
    }
}

struct Image {
    manifest: Digest,
    /// The manifest's size.
    size: u64,
    blobs: Vec<Digest>,
    /// The blobs' sizes, in the order of `blobs`.
    sizes: Vec<u64>,
}

impl Image {
    /// The manifest naming this image's blobs again (the same bytes as pushed, without subject).
    fn manifest_bytes(&self) -> Vec<u8> {
        manifest_bytes(&self.blobs, &self.sizes, None)
    }
}

/// An image manifest of `blobs` (the config first, then the layers) with their sizes.
fn manifest_bytes(blobs: &[Digest], sizes: &[u64], subject: Option<(&Digest, u64)>) -> Vec<u8> {
    let layers: Vec<String> = blobs[1..]
        .iter()
        .zip(&sizes[1..])
        .map(|(d, n)| format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{d}","size":{n}}}"#))
        .collect();
    let subject = subject
        .map(|(s, n)| {
            format!(r#","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{s}","size":{n}}}"#)
        })
        .unwrap_or_default();
    let (config, size) = (&blobs[0], sizes[0]);
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{size}}},"layers":[{}]{subject}}}"#,
        layers.join(",")
    )
    .into_bytes()
}

/// Pushes an image of a config and two layers (the second chunked, to use the upload path), under
/// `reference`, optionally referring to `subject`.
async fn push(
    r: &Registry,
    a: &RepositoryName,
    reference: Option<&str>,
    seed: &str,
    subject: Option<&Image>,
) -> Image {
    let config = format!("{{\"seed\":\"{seed}\"}}");
    let l1 = format!("first layer of {seed}, long enough to cross parts");
    let l2 = format!("second layer of {seed}, pushed in chunks");
    let mut blobs = Vec::new();
    for data in [&config, &l1] {
        let d = Digest::of(data.as_bytes());
        r.put_blob(a, &d, body(data.as_bytes()), None)
            .await
            .unwrap();
        blobs.push(d);
    }
    let d2 = Digest::of(l2.as_bytes());
    let up = r.start_upload(a).await.unwrap();
    r.append_chunk(a, &up.id, Some(0), body(&l2.as_bytes()[..10]), None)
        .await
        .unwrap();
    r.complete_upload(a, &up.id, &d2, Some((body(&l2.as_bytes()[10..]), None)))
        .await
        .unwrap();
    blobs.push(d2);
    let sizes = [&config, &l1, &l2].map(|d| d.len() as u64).to_vec();
    let m = manifest_bytes(&blobs, &sizes, subject.map(|s| (&s.manifest, s.size)));
    let digest = Digest::of(&m);
    let size = m.len() as u64;
    let reference: Reference = match reference {
        Some(tag) => tag.parse().unwrap(),
        None => Reference::Digest(digest.clone()),
    };
    r.put_manifest(a, &reference, Some(OCI_MANIFEST), Bytes::from(m))
        .await
        .unwrap();
    Image {
        manifest: digest,
        size,
        blobs,
        sizes,
    }
}

/// Pulls an image by digest and checks every blob's bytes against its digest.
async fn pulls(r: &Registry, a: &RepositoryName, image: &Image) {
    r.get_manifest(a, &Reference::Digest(image.manifest.clone()))
        .await
        .unwrap();
    for d in &image.blobs {
        let content = r.get_blob(a, d, None).await.unwrap();
        let bytes: Vec<u8> = content
            .stream
            .try_fold(Vec::new(), |mut acc, c| async move {
                acc.extend_from_slice(&c);
                Ok(acc)
            })
            .await
            .unwrap();
        assert_eq!(Digest::of(&bytes), *d, "{a}@{d}");
    }
}

async fn is_gone(r: &Registry, a: &RepositoryName, image: &Image) {
    assert!(matches!(
        r.get_manifest(a, &Reference::Digest(image.manifest.clone()))
            .await,
        Err(Error::ManifestUnknown { .. })
    ));
    for d in &image.blobs {
        assert!(matches!(
            r.stat_blob(a, d).await,
            Err(Error::BlobUnknown { .. })
        ));
    }
}

/// Every key in the store.
async fn keys(s: &Arc<dyn Storage>) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for prefix in [
        paths::BLOBS,
        paths::DATA,
        paths::UPLOADS,
        paths::REPOSITORIES,
    ] {
        let found: Vec<_> = s.list_recursive(prefix).try_collect().await.unwrap();
        all.extend(found.into_iter().map(|m| m.key));
    }
    all
}

/// Digests whose bytes are stored.
async fn stored_blobs(s: &Arc<dyn Storage>) -> BTreeSet<Digest> {
    keys(s)
        .await
        .iter()
        .filter_map(|k| paths::parse_blob_key(k))
        .filter(|(_, kind)| *kind != paths::BlobObject::Used)
        .map(|(d, _)| d)
        .collect()
}

fn digests(images: &[&Image]) -> BTreeSet<Digest> {
    images
        .iter()
        .flat_map(|i| i.blobs.iter().chain([&i.manifest]).cloned())
        .collect()
}

async fn unreferenced_blobs_and_abandoned_uploads_go(s: Arc<dyn Storage>) {
    let r = Registry::new(s.clone(), RegistryConfig::default());
    let a = repo("team/app");
    let kept = push(&r, &a, Some("v1"), "kept", None).await;
    let stray = Digest::of(b"a blob no manifest names");
    r.put_blob(&a, &stray, body(b"a blob no manifest names"), None)
        .await
        .unwrap();
    let abandoned = r.start_upload(&a).await.unwrap();
    r.append_chunk(&a, &abandoned.id, None, body(&[7; 40]), None)
        .await
        .unwrap();

    // Everything is younger than the default hour of grace: nothing goes.
    let report = gc::collect(&r, &GcOptions::default()).await.unwrap();
    assert_eq!(report.removed, vec![]);
    assert_eq!(report.manifests_kept, 1);

    // A dry run names what would go and removes nothing.
    let before = keys(&s).await;
    let dry = gc::collect(
        &r,
        &GcOptions {
            dry_run: true,
            ..now_options()
        },
    )
    .await
    .unwrap();
    assert!(dry.dry_run);
    assert_eq!(keys(&s).await, before, "a dry run removes nothing");
    let expected = [
        Removal::Link {
            repository: a.clone(),
            digest: stray.clone(),
        },
        Removal::Blob {
            digest: stray.clone(),
            bytes: 24,
        },
        Removal::Upload {
            id: abandoned.id.clone(),
            bytes: 40,
        },
    ];
    assert_eq!(dry.removed, expected);
    assert_eq!(dry.bytes_freed(), 64);

    let report = gc::collect(&r, &now_options()).await.unwrap();
    assert_eq!(report.removed, expected);
    pulls(&r, &a, &kept).await;
    assert!(matches!(
        r.stat_blob(&a, &stray).await,
        Err(Error::BlobUnknown { .. })
    ));
    assert!(matches!(
        r.upload_status(&a, &abandoned.id).await,
        Err(Error::BlobUploadUnknown { .. })
    ));
    assert_eq!(stored_blobs(&s).await, digests(&[&kept]));
    let left: Vec<String> = keys(&s)
        .await
        .into_iter()
        .filter(|k| k.starts_with(paths::UPLOADS) || k.starts_with(paths::DATA))
        .filter(|k| {
            // Streamed uploads stay at data/<id> on object stores, named by a location record.
            !(s.capabilities().rename_copies && k.starts_with(paths::DATA))
        })
        .collect();
    assert_eq!(left, Vec::<String>::new());

    // A second collection finds nothing more.
    assert_eq!(gc::collect(&r, &now_options()).await.unwrap().removed, []);
    pulls(&r, &a, &kept).await;
}

/// A tagged manifest that cannot be read stops the collection with an error naming it, and no
/// blob goes: not even one nothing names, whose repository may be swept already.
async fn an_unreadable_manifest_stops_collection_before_any_blob_goes(s: Arc<dyn Storage>) {
    let r = Registry::new(s.clone(), RegistryConfig::default());
    let a = repo("team/app");
    push(&r, &a, Some("v1"), "kept", None).await;
    let stray = Digest::of(b"a blob no manifest names");
    r.put_blob(&a, &stray, body(b"a blob no manifest names"), None)
        .await
        .unwrap();
    let z = repo("zz/broken");
    let broken = push(&r, &z, Some("v1"), "broken", None).await;
    let key = paths::blob_data(&broken.manifest);
    if s.exists(&key).await.unwrap() {
        s.put(&key, Bytes::from_static(b"not a manifest"))
            .await
            .unwrap();
    } else {
        // On object stores a manifest may sit where its location record points.
        let record = s.get_bytes(&paths::blob_location(&broken.manifest)).await;
        let record: serde_json::Value = serde_json::from_slice(&record.unwrap()).unwrap();
        let at = record["key"].as_str().unwrap();
        s.put(at, Bytes::from_static(b"not a manifest"))
            .await
            .unwrap();
    }
    // A fresh process: nothing cached.
    let fresh = Registry::new(s.clone(), RegistryConfig::default());
    let err = gc::collect(&fresh, &now_options()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("zz/broken@{}", broken.manifest)),
        "{err}"
    );
    assert!(
        stored_blobs(&s).await.contains(&stray),
        "a blob went before the collection stopped"
    );
}

async fn untagged_manifests_go_only_when_asked(s: Arc<dyn Storage>) {
    let r = Registry::new(s.clone(), RegistryConfig::default());
    let a = repo("a");
    let old = push(&r, &a, Some("latest"), "old", None).await;
    let new = push(&r, &a, Some("latest"), "new", None).await;
    let by_digest = push(&r, &a, None, "by-digest", None).await;

    gc::collect(&r, &now_options()).await.unwrap();
    for image in [&old, &new, &by_digest] {
        pulls(&r, &a, image).await;
    }

    let report = gc::collect(
        &r,
        &GcOptions {
            delete_untagged: true,
            ..now_options()
        },
    )
    .await
    .unwrap();
    assert_eq!(report.manifests_kept, 1);
    pulls(&r, &a, &new).await;
    is_gone(&r, &a, &old).await;
    is_gone(&r, &a, &by_digest).await;
    assert_eq!(stored_blobs(&s).await, digests(&[&new]));
    let manifests = report
        .removed
        .iter()
        .filter(|x| matches!(x, Removal::Manifest { .. }))
        .count();
    assert_eq!(manifests, 2);
    assert_eq!(
        r.list_tags(&a, None, None).await.unwrap().items,
        vec!["latest"]
    );
}

async fn referrers_and_index_children_are_kept(s: Arc<dyn Storage>) {
    let r = Registry::new(s.clone(), RegistryConfig::default());
    let a = repo("multi");
    let amd64 = push(&r, &a, None, "amd64", None).await;
    let arm64 = push(&r, &a, None, "arm64", None).await;
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{}}},{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{}}}]}}"#,
        amd64.manifest, amd64.size, arm64.manifest, arm64.size
    );
    r.put_manifest(
        &a,
        &"v1".parse().unwrap(),
        Some(OCI_INDEX),
        Bytes::from(index),
    )
    .await
    .unwrap();
    let signature = push(&r, &a, None, "signature", Some(&amd64)).await;
    let loose = push(&r, &a, None, "loose", None).await;
    let options = GcOptions {
        delete_untagged: true,
        ..now_options()
    };
    gc::collect(&r, &options).await.unwrap();
    for image in [&amd64, &arm64, &signature] {
        pulls(&r, &a, image).await;
    }
    is_gone(&r, &a, &loose).await;
    assert_eq!(
        r.list_referrers(&a, &amd64.manifest, None)
            .await
            .unwrap()
            .len(),
        1
    );

    gc::collect(
        &r,
        &GcOptions {
            keep_referrers: false,
            ..options
        },
    )
    .await
    .unwrap();
    is_gone(&r, &a, &signature).await;
    pulls(&r, &a, &amd64).await;
    assert!(
        r.list_referrers(&a, &amd64.manifest, None)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A blob left unreferenced long ago is about to be reused by a push that found it with `HEAD`
/// (through another process): it must survive collections until the grace period has passed since.
async fn the_grace_period_protects_reused_blobs(s: Arc<dyn Storage>) {
    let grace = Duration::from_secs(3);
    let options = GcOptions {
        grace,
        delete_untagged: true,
        history: Duration::ZERO,
        ..GcOptions::default()
    };
    // The collector's clock: moved forward past the grace period at the end, where nothing
    // fresh must survive. The first wait is real: the marks must be newer than the old bytes by
    // the backend's own clock (moto dates objects to the second).
    let clock = registry_core::clock::OffsetClock::default();
    let pusher = Registry::new(
        s.clone(),
        RegistryConfig {
            clock: Arc::new(clock.clone()),
            ..RegistryConfig::default()
        },
    );
    let a = repo("a");
    let old = push(&pusher, &a, Some("v1"), "old", None).await;
    pusher.delete_tag(&a, &"v1".parse().unwrap()).await.unwrap();
    tokio::time::sleep(grace + Duration::from_millis(1100)).await;

    // Another process's HEAD, as a client checking what it must upload.
    let other = Registry::new(s.clone(), RegistryConfig::default());
    for d in &old.blobs {
        other.stat_blob(&a, d).await.unwrap();
    }
    let report = gc::collect(&pusher, &options).await.unwrap();
    assert_eq!(
        report
            .removed
            .iter()
            .filter(|x| matches!(x, Removal::Blob { .. } | Removal::Link { .. }))
            .count(),
        1,
        "only the old manifest's own bytes go: {:?}",
        report.removed
    );
    // The push goes on: its manifest names the blobs it found.
    let m = old.manifest_bytes();
    other
        .put_manifest(
            &a,
            &"v2".parse().unwrap(),
            Some(OCI_MANIFEST),
            Bytes::from(m),
        )
        .await
        .unwrap();
    gc::collect(&pusher, &options).await.unwrap();
    for d in &old.blobs {
        other.stat_blob(&a, d).await.unwrap();
    }

    // Once nothing names them and the grace period has passed, they go.
    other.delete_tag(&a, &"v2".parse().unwrap()).await.unwrap();
    clock.advance(grace + Duration::from_millis(1100));
    gc::collect(&pusher, &options).await.unwrap();
    assert_eq!(stored_blobs(&s).await, BTreeSet::new());
    for d in &old.blobs {
        assert!(matches!(
            other.stat_blob(&a, d).await,
            Err(Error::BlobUnknown { .. })
        ));
    }
}

/// What a crash can leave: bytes of an upload that never got a location or session, a tail no
/// session names, a `used` marker of a blob that never arrived.
async fn leftovers_of_crashes_are_removed(s: Arc<dyn Storage>) {
    let r = Registry::new(s.clone(), RegistryConfig::default());
    let a = repo("a");
    let kept = push(&r, &a, Some("v1"), "kept", None).await;
    let id = "0123456789abcdef0123456789abcdef";
    let live = r.start_upload(&a).await.unwrap();
    r.append_chunk(&a, &live.id, None, body(b"abc"), None)
        .await
        .unwrap();
    let leftovers = [
        paths::upload_data(id),
        paths::upload_tail(id, 5, Some(&Digest::of(b"x"))),
        paths::upload_tail(&live.id, 1, Some(&Digest::of(b"x"))),
        paths::blob_used(&Digest::of(b"never arrived")),
    ];
    for key in &leftovers {
        s.put(key, Bytes::from_static(b"x")).await.unwrap();
    }
    let report = gc::collect(
        &r,
        &GcOptions {
            upload_max_age: Duration::from_secs(3600),
            ..now_options()
        },
    )
    .await
    .unwrap();
    let mut orphans: Vec<String> = report
        .removed
        .iter()
        .map(|x| match x {
            Removal::Orphan { key, .. } => key.clone(),
            other => panic!("unexpected removal {other}"),
        })
        .collect();
    orphans.sort();
    let mut expected = leftovers.to_vec();
    expected.sort();
    assert_eq!(orphans, expected);
    for key in &leftovers {
        assert!(!s.exists(key).await.unwrap(), "{key}");
    }
    // The live upload goes on and completes.
    let d = Digest::of(b"abcdef");
    r.complete_upload(&a, &live.id, &d, Some((body(b"def"), None)))
        .await
        .unwrap();
    r.stat_blob(&a, &d).await.unwrap();
    pulls(&r, &a, &kept).await;
}

async fn purging_uploads_leaves_blobs_alone(s: Arc<dyn Storage>) {
    let r = Registry::new(s.clone(), RegistryConfig::default());
    let a = repo("a");
    let stray = Digest::of(b"stray");
    r.put_blob(&a, &stray, body(b"stray"), None).await.unwrap();
    let idle = r.start_upload(&a).await.unwrap();
    r.append_chunk(&a, &idle.id, None, body(&[1; 20]), None)
        .await
        .unwrap();
    let young = GcOptions {
        upload_max_age: Duration::from_secs(3600),
        ..now_options()
    };
    assert_eq!(gc::purge_uploads(&r, &young).await.unwrap().removed, []);
    r.upload_status(&a, &idle.id).await.unwrap();
    let report = gc::purge_uploads(&r, &now_options()).await.unwrap();
    assert_eq!(
        report.removed,
        [Removal::Upload {
            id: idle.id.clone(),
            bytes: 20
        }]
    );
    assert!(matches!(
        r.upload_status(&a, &idle.id).await,
        Err(Error::BlobUploadUnknown { .. })
    ));
    r.stat_blob(&a, &stray).await.unwrap();
}

/// In a pull-through cache's repositories, tags and manifests nobody used for the retention go
/// with what only they reached; other repositories keep theirs.
async fn cached_content_goes_once_unused(s: Arc<dyn Storage>) {
    let r = Registry::new(s.clone(), RegistryConfig::default());
    let (cached, local) = (repo("docker.io/library/app"), repo("local/app"));
    let old = push(&r, &cached, Some("v1"), "cached", None).await;
    let by_digest = push(&r, &cached, None, "cached by digest", None).await;
    let mine = push(&r, &local, Some("v1"), "mine", None).await;
    let retention = |unused_for| GcOptions {
        cache: Some(CacheRetention {
            prefixes: vec!["docker.io".into()],
            unused_for,
        }),
        ..now_options()
    };
    let report = gc::collect(&r, &retention(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert_eq!(report.removed, []);
    // Used again (refreshed by a pull) just now: it stays however short the retention.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    r.clone()
        .with_source(Arc::new(Refreshing))
        .get_manifest(&cached, &"v1".parse().unwrap())
        .await
        .unwrap();
    // (Two seconds: moto dates objects to the second.)
    let report = gc::collect(&r, &retention(Duration::from_secs(2)))
        .await
        .unwrap();
    assert!(
        report.removed.iter().any(
            |x| matches!(x, Removal::Manifest { digest, .. } if *digest == by_digest.manifest)
        ),
        "{:?}",
        report.removed
    );
    pulls(&r, &cached, &old).await;
    is_gone(&r, &cached, &by_digest).await;
    let report = gc::collect(&r, &retention(Duration::ZERO)).await.unwrap();
    assert!(report.removed.contains(&Removal::Tag {
        repository: cached.clone(),
        tag: "v1".parse().unwrap()
    }));
    is_gone(&r, &cached, &old).await;
    pulls(&r, &local, &mine).await;
    assert_eq!(stored_blobs(&s).await, digests(&[&mine]));
}

/// A source that stores every manifest read again, as a pull-through cache's refresh does.
struct Refreshing;

#[async_trait::async_trait]
impl Source for Refreshing {
    fn serves(&self, _: &RepositoryName) -> Option<String> {
        Some("a refreshing cache".into())
    }

    async fn manifest(
        &self,
        fill: &Fill,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> registry_core::Result<()> {
        let m = fill.get_manifest(repo, reference).await?;
        let media_type = Some(m.info.media_type.as_str());
        fill.store_manifest(repo, reference, media_type, m.bytes)
            .await
            .map(drop)
    }

    async fn blob(
        &self,
        _: &Fill,
        _: &RepositoryName,
        _: &Digest,
        _: bool,
        _: bool,
    ) -> registry_core::Result<Option<SourcedBlob>> {
        Ok(None)
    }
}

/// While a collection's announcement that it removes a blob is young, a manifest naming the blob
/// is refused (the push uploads it again) and one whose own bytes are announced fails to be
/// pushed again later; an announcement past five minutes, left by a collection that stopped, is
/// ignored by pushes and removed by the next collection (the simulation covers the races).
async fn a_push_never_names_a_blob_whose_removal_is_announced(s: Arc<dyn Storage>) {
    let clock = registry_core::clock::OffsetClock::default();
    let r = Registry::new(
        s.clone(),
        RegistryConfig {
            clock: Arc::new(clock.clone()),
            ..RegistryConfig::default()
        },
    );
    let a = repo("a");
    let image = push(&r, &a, Some("v1"), "announced", None).await;
    let layer = &image.blobs[1];
    let announcement = paths::blob_collecting(layer, "stopped0collection");
    s.put(&announcement, Bytes::new()).await.unwrap();
    let v2: Reference = "v2".parse().unwrap();
    let again = async || {
        let bytes = Bytes::from(image.manifest_bytes());
        r.put_manifest(&a, &v2, Some(OCI_MANIFEST), bytes).await
    };
    assert!(
        matches!(again().await, Err(Error::ManifestBlobUnknown { digest }) if digest == *layer),
        "a manifest naming a blob being removed was accepted"
    );
    // Nor may a restore point a tag back at it.
    let v1: registry_core::Tag = "v1".parse().unwrap();
    r.delete_tag(&a, &v1).await.unwrap();
    assert!(
        matches!(
            r.restore_tag(&a, &v1, None).await,
            Err(Error::ManifestBlobUnknown { .. })
        ),
        "a tag was restored to a manifest whose blob is being removed"
    );
    s.put(&paths::blob_collecting(&image.manifest, "x1"), Bytes::new())
        .await
        .unwrap();
    s.delete(&announcement).await.unwrap();
    assert!(matches!(
        again().await,
        Err(Error::BeingCollected { digest }) if digest == image.manifest
    ));
    // Past five minutes the announcements are a stopped collection's: pushes go on, and a
    // collection of what stays removes them.
    clock.advance(Duration::from_secs(301));
    s.put(&announcement, Bytes::new()).await.unwrap();
    clock.advance(Duration::from_secs(301));
    again().await.unwrap();
    r.restore_tag(&a, &v1, None).await.unwrap();
    let options = GcOptions {
        grace: Duration::from_secs(3600),
        ..now_options()
    };
    gc::collect(&r, &options).await.unwrap();
    let left: Vec<String> = s
        .list_all(paths::BLOBS)
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .filter(|k| k.contains("collecting-"))
        .collect();
    assert_eq!(left, Vec::<String>::new());
    pulls(&r, &a, &image).await;
}
