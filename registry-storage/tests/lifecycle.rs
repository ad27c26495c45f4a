//! Content lifecycle over every backend: retention applied by a collection (and the history it
//! leaves), manifests kept while recent history names them so that a tag can be restored,
//! pulls recorded at most once per interval (never by a read-only registry), a quota held by
//! concurrent pushes, and rules that count nothing letting pushes run side by side.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{push_image, repo};
use registry_core::admission::{Admission, Caller, Change, Refusal};
use registry_core::gc::{self, GcOptions, Removal};
use registry_core::lifecycle::{
    ImmutableRule, ImmutableTags, QuotaRule, Quotas, RetentionRule, TagPattern,
};
use registry_core::manifest::{OCI_INDEX, OCI_MANIFEST};
use registry_core::{Digest, Error, Reference, Registry, RegistryConfig, Storage};

on_every_backend!(
    recent_history_keeps_a_deleted_tags_manifest_for_restore,
    retention_untags_what_no_clause_keeps_and_says_why,
    pulls_are_recorded_once_per_interval_and_never_read_only,
    immutable_tags_keep_what_they_reach,
    a_quota_holds_under_concurrent_pushes,
    rules_that_count_nothing_let_pushes_run_side_by_side,
);

fn options(history: Duration) -> GcOptions {
    GcOptions {
        grace: Duration::ZERO,
        delete_untagged: true,
        history,
        ..GcOptions::default()
    }
}

async fn recent_history_keeps_a_deleted_tags_manifest_for_restore(storage: Arc<dyn Storage>) {
    let r = Registry::new(storage, RegistryConfig::default());
    let a = repo("team/app");
    let (digest, _) = push_image(&r, &a, "v1", "one").await;
    let v1 = "v1".parse().unwrap();
    r.delete_tag(&a, &v1).await.unwrap();

    let report = gc::collect(&r, &options(Duration::from_secs(86400)))
        .await
        .unwrap();
    assert!(report.removed.is_empty(), "{:?}", report.removed);
    let record = r.restore_tag(&a, &v1, None).await.unwrap();
    assert_eq!(record.digest, digest);
    let changes = r.tag_history(&a, &v1).await.unwrap();
    assert_eq!(changes.len(), 3, "created, deleted, restored");
    assert_eq!(changes[2].to.as_ref(), Some(&digest));

    // Once the history is older than the window, the untagged manifest goes like any other.
    r.delete_tag(&a, &v1).await.unwrap();
    let report = gc::collect(&r, &options(Duration::ZERO)).await.unwrap();
    assert!(report.removed.contains(&Removal::Manifest {
        repository: a.clone(),
        digest: digest.clone()
    }));
    match r.restore_tag(&a, &v1, None).await {
        Err(Error::ManifestUnknown { .. }) => {}
        other => panic!("restored a collected manifest: {other:?}"),
    }
}

async fn retention_untags_what_no_clause_keeps_and_says_why(storage: Arc<dyn Storage>) {
    let r = Registry::new(storage, RegistryConfig::default());
    let a = repo("ci/app");
    for (i, tag) in ["old", "middle", "new"].iter().enumerate() {
        push_image(&r, &a, tag, &format!("seed {i}")).await;
    }
    let rule = RetentionRule {
        repositories: vec!["ci/*".into()],
        keep_last: Some(1),
        ..Default::default()
    };
    let dry = GcOptions {
        retention: vec![rule.clone()],
        dry_run: true,
        ..options(Duration::ZERO)
    };
    let report = gc::collect(&r, &dry).await.unwrap();
    let untagged: Vec<&str> = report
        .retention
        .iter()
        .filter(|d| d.removed())
        .map(|d| d.tag.as_str())
        .collect();
    assert_eq!(untagged, ["middle", "old"], "newest first");
    assert_eq!(report.retention[0].tag.as_str(), "new");
    assert_eq!(report.retention[2].rank, 3);
    assert_eq!(r.list_tags(&a, None, None).await.unwrap().items.len(), 3);

    let real = GcOptions {
        dry_run: false,
        ..dry
    };
    let report = gc::collect(&r, &real).await.unwrap();
    assert_eq!(
        report
            .removed
            .iter()
            .filter(|x| matches!(x, Removal::Tag { .. }))
            .count(),
        2
    );
    assert_eq!(r.list_tags(&a, None, None).await.unwrap().items, ["new"]);
    let history = r.repository_history(&a).await.unwrap();
    let by_retention: Vec<&str> = history
        .iter()
        .filter(|c| c.to.is_none())
        .map(|c| c.identity.as_deref().unwrap())
        .collect();
    assert_eq!(by_retention, ["garbage collection (retention)"; 2]);
}

async fn pulls_are_recorded_once_per_interval_and_never_read_only(storage: Arc<dyn Storage>) {
    let r = Registry::new(storage.clone(), RegistryConfig::default());
    let a = repo("ci/app");
    let (digest, _) = push_image(&r, &a, "pulled", "one").await;
    push_image(&r, &a, "idle", "two").await;
    let pulled = "pulled".parse().unwrap();
    let idle = "idle".parse().unwrap();
    assert_eq!(r.last_pulled(&a, &pulled).await.unwrap(), None);
    r.get_manifest(&a, &Reference::Tag(pulled)).await.unwrap();
    let pulled = "pulled".parse().unwrap();
    let first = r.last_pulled(&a, &pulled).await.unwrap().unwrap();
    // Within the interval, another pull writes nothing.
    r.stat_manifest(&a, &Reference::Tag("pulled".parse().unwrap()))
        .await
        .unwrap();
    assert_eq!(r.last_pulled(&a, &pulled).await.unwrap(), Some(first));
    // By digest is no pull of a tag; and a read-only registry records nothing.
    r.get_manifest(&a, &Reference::Digest(digest))
        .await
        .unwrap();
    let read_only = Registry::new(
        storage,
        RegistryConfig {
            read_only: true,
            ..RegistryConfig::default()
        },
    );
    read_only
        .get_manifest(&a, &Reference::Tag("idle".parse().unwrap()))
        .await
        .unwrap();
    assert_eq!(r.last_pulled(&a, &idle).await.unwrap(), None);

    // Retention keeps the recently pulled tag, and only it.
    let rule = RetentionRule {
        repositories: vec!["ci/*".into()],
        keep_pulled_within: Some(Duration::from_secs(86400)),
        ..Default::default()
    };
    let report = gc::collect(
        &r,
        &GcOptions {
            retention: vec![rule],
            ..options(Duration::ZERO)
        },
    )
    .await
    .unwrap();
    let gone: Vec<&str> = report
        .retention
        .iter()
        .filter(|d| d.removed())
        .map(|d| d.tag.as_str())
        .collect();
    assert_eq!(gone, ["idle"]);
    assert_eq!(r.list_tags(&a, None, None).await.unwrap().items, ["pulled"]);
}

async fn immutable_tags_keep_what_they_reach(storage: Arc<dyn Storage>) {
    let plain = Registry::new(storage, RegistryConfig::default());
    let rule = ImmutableRule {
        repositories: vec!["prod/*".into()],
        tags: vec![TagPattern::new("^v[0-9]").unwrap()],
    };
    let r = plain
        .clone()
        .with_admission(Arc::new(ImmutableTags::new(plain.clone(), vec![rule])));
    let a = repo("prod/app");
    let (image, image_bytes) = push_image(&r, &a, "build", "amd64").await;
    let (other, _) = push_image(&r, &a, "scratch", "other").await;
    let layer = Digest::of(b"layer of amd64");
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{image}","size":{}}}]}}"#,
        image_bytes.len()
    );
    r.put_manifest(
        &a,
        &"v1".parse().unwrap(),
        Some(OCI_INDEX),
        Bytes::from(index),
    )
    .await
    .unwrap();
    // The index's child (even once its own tag is gone) and its layer stay.
    r.delete_tag(&a, &"build".parse().unwrap()).await.unwrap();
    let denied = |e: Error| match e {
        Error::Denied { reason } => assert!(reason.contains("immutable tag v1"), "{reason}"),
        other => panic!("not refused: {other:?}"),
    };
    denied(r.delete_blob(&a, &layer).await.unwrap_err());
    denied(r.delete_manifest(&a, &image).await.unwrap_err());
    assert!(r.stat_blob(&a, &layer).await.is_ok());
    // What no immutable tag reaches goes as before.
    let other_layer = Digest::of(b"layer of other");
    r.delete_blob(&a, &other_layer).await.unwrap();
    r.delete_manifest(&a, &other).await.unwrap();
    // Collection keeps everything the immutable tag reaches.
    let report = gc::collect(&r, &options(Duration::ZERO)).await.unwrap();
    assert!(
        !report.removed.iter().any(|x| matches!(x,
            Removal::Manifest { digest, .. } if *digest == image)),
        "{:?}",
        report.removed
    );
    let pulled = r
        .get_manifest(&a, &Reference::Digest(image.clone()))
        .await
        .unwrap();
    assert_eq!(pulled.bytes, image_bytes);
    assert!(r.get_blob(&a, &layer, None).await.is_ok());
}

/// Stores the blobs of an image of one `layer`-byte layer (`seed` varies it) in `repository`;
/// the manifest's bytes, to push.
async fn image_blobs(r: &Registry, repository: &str, seed: u64, layer: usize) -> Bytes {
    let a = repo(repository);
    let config = format!("{{\"seed\":{seed}}}");
    let layer: Vec<u8> = (0..layer).map(|i| (i as u64 * 31 + seed) as u8).collect();
    let (cd, ld) = (Digest::of(config.as_bytes()), Digest::of(&layer));
    r.put_blob(&a, &cd, common::body(config.as_bytes()), None)
        .await
        .unwrap();
    r.put_blob(&a, &ld, common::body(&layer), None)
        .await
        .unwrap();
    Bytes::from(common::image_manifest(
        (&cd, config.len() as u64),
        &[(&ld, layer.len() as u64)],
        None,
    ))
}

async fn a_quota_holds_under_concurrent_pushes(storage: Arc<dyn Storage>) {
    let plain = Registry::new(storage, RegistryConfig::default());
    // Room for three images of 10,000-byte layers (and their few hundred bytes of manifest
    // and config), not four.
    let rule = QuotaRule {
        repositories: vec!["team/*".into()],
        max_bytes: 35_000,
        unit: None,
    };
    let r = plain
        .clone()
        .with_admission(Arc::new(Quotas::new(plain.clone(), vec![rule])));
    let mut manifests = Vec::new();
    for i in 0..8 {
        manifests.push(image_blobs(&r, &format!("team/r{i}"), i, 10_000).await);
    }
    let pushes = manifests.into_iter().enumerate().map(|(i, m)| {
        let r = r.clone();
        async move {
            r.put_manifest(
                &repo(&format!("team/r{i}")),
                &"v1".parse().unwrap(),
                Some(OCI_MANIFEST),
                m,
            )
            .await
        }
    });
    let results = futures::future::join_all(pushes).await;
    let admitted = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(admitted, 3, "{results:?}");
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            matches!(refused, Error::Denied { reason } if reason.contains("quota exceeded")),
            "{refused:?}"
        );
    }
}

/// Makes every manifest push wait, at its admission, until `n` pushes wait there together (a
/// minute at most): only pushes admitted side by side get through.
struct MeetAtAdmission(tokio::sync::Barrier);

#[async_trait::async_trait]
impl Admission for MeetAtAdmission {
    async fn admit(&self, change: &Change<'_>, _caller: &Caller) -> Result<(), Refusal> {
        if !matches!(change, Change::PutManifest { .. }) {
            return Ok(());
        }
        tokio::time::timeout(Duration::from_secs(60), self.0.wait())
            .await
            .map(drop)
            .map_err(|_| Refusal::new("pushes were admitted one at a time"))
    }
}

async fn rules_that_count_nothing_let_pushes_run_side_by_side(storage: Arc<dyn Storage>) {
    let plain = Registry::new(storage, RegistryConfig::default());
    let immutable = ImmutableTags::new(
        plain.clone(),
        vec![ImmutableRule {
            repositories: vec!["prod/*".into()],
            tags: vec![TagPattern::new(".*").unwrap()],
        }],
    );
    let rules = registry_core::admission::AllOf(vec![
        Arc::new(immutable),
        Arc::new(MeetAtAdmission(tokio::sync::Barrier::new(2))),
    ]);
    let r = plain.clone().with_admission(Arc::new(rules));
    let first = image_blobs(&r, "dev/one", 1, 100).await;
    let second = image_blobs(&r, "dev/two", 2, 100).await;
    let push = |name: &'static str, m: Bytes| {
        let r = r.clone();
        async move {
            r.put_manifest(&repo(name), &"v1".parse().unwrap(), Some(OCI_MANIFEST), m)
                .await
        }
    };
    let (one, two) = tokio::join!(push("dev/one", first), push("dev/two", second));
    one.unwrap();
    two.unwrap();
}
