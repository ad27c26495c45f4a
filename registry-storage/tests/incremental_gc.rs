//! Incremental garbage collection over every backend: it reads only the repositories and blobs
//! the candidate records name, leaves nothing a full collection would remove, and a store written
//! before the records gains them by reindexing.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use registry_core::clock::OffsetClock;
use registry_core::gc::{self, GcOptions, GcReport, Removal};
use registry_core::{Digest, Registry, RegistryConfig, Storage, paths, reindex};

use common::{body, push_image, repo};

on_every_backend!(
    incremental_collections_leave_nothing_for_a_full_one,
    a_store_from_before_the_records_is_walked_until_reindexed,
);

const GRACE: Duration = Duration::from_secs(60);

fn options(full: bool, dry_run: bool) -> GcOptions {
    GcOptions {
        grace: GRACE,
        delete_untagged: true,
        history: Duration::ZERO,
        full,
        dry_run,
        ..GcOptions::default()
    }
}

/// A registry whose clock the test moves past the grace period, which exceeds its touch
/// interval as it must (records of one process within that interval cover each other).
fn registry(s: &Arc<dyn Storage>, clock: &OffsetClock) -> Registry {
    Registry::new(
        s.clone(),
        RegistryConfig {
            clock: Arc::new(clock.clone()),
            touch_interval: Some(GRACE / 6),
            ..RegistryConfig::default()
        },
    )
}

async fn collect(r: &Registry, full: bool, dry_run: bool) -> GcReport {
    gc::collect(r, &options(full, dry_run)).await.unwrap()
}

fn blobs_removed(report: &GcReport) -> BTreeSet<Digest> {
    report
        .removed
        .iter()
        .filter_map(|r| match r {
            Removal::Blob { digest, .. } => Some(digest.clone()),
            _ => None,
        })
        .collect()
}

async fn keys(s: &Arc<dyn Storage>, prefix: &str) -> Vec<String> {
    s.list_all(prefix)
        .map_ok(|m| m.key)
        .try_collect()
        .await
        .unwrap()
}

/// Ten repositories, changes in two: an incremental collection visits those two, removes what
/// the changes left (a deleted manifest, a moved tag's old manifest, a blob uploaded for a push
/// that never came), and a full dry run afterwards finds nothing left to remove.
async fn incremental_collections_leave_nothing_for_a_full_one(s: Arc<dyn Storage>) {
    let clock = OffsetClock::default();
    let r = registry(&s, &clock);
    let mut kept = Vec::new();
    for i in 0..10 {
        kept.push(push_image(&r, &repo(&format!("team/app{i}")), "v1", &format!("app{i}")).await);
    }
    // The first collection of a store walks it whole (no full one ran under these settings).
    clock.advance(GRACE * 2);
    // It settles the records the pushes left: the next finds nothing to look at.
    assert!(collect(&r, false, false).await.full);
    let next = collect(&r, false, false).await;
    assert!(!next.full);
    assert_eq!((next.repositories, next.blobs_examined), (0, 0));

    // A manifest pushed again (as CI pushes `latest` unchanged) writes a `linked/` record each
    // time; a collection keeps one per repository.
    let app0 = repo("team/app0");
    for _ in 0..2 {
        r.put_manifest(
            &app0,
            &"v1".parse().unwrap(),
            Some(registry_core::manifest::OCI_MANIFEST),
            bytes::Bytes::from(kept[0].1.clone()),
        )
        .await
        .unwrap();
    }
    let linked = |d: &Digest| format!("{}/linked", paths::blob_folder(d));
    assert_eq!(keys(&s, &linked(&kept[0].0)).await.len(), 3);
    let (a, b) = (repo("team/app1"), repo("team/app2"));
    let (moved_from, _) = push_image(&r, &a, "v2", "app1-old").await;
    push_image(&r, &a, "v2", "app1-new").await;
    r.delete_manifest(&b, &kept[2].0).await.unwrap();
    let stray = Digest::of(b"uploaded for a push that never came");
    r.put_blob(
        &b,
        &stray,
        body(b"uploaded for a push that never came"),
        None,
    )
    .await
    .unwrap();

    // (The stores date objects by the system's clock, which the registry's is ahead of: what was
    // just written is past the grace period already. tests/gc.rs covers the grace period.)
    let report = collect(&r, false, false).await;
    assert!(!report.full);
    assert_eq!(report.repositories, 3, "only the repositories that changed");
    assert_eq!(keys(&s, &linked(&kept[0].0)).await.len(), 1);
    let removed = blobs_removed(&report);
    for gone in [&moved_from, &kept[2].0, &stray] {
        assert!(
            removed.contains(gone),
            "{gone} stayed: {:?}",
            report.removed
        );
    }
    // What stays is readable, and a full collection would remove nothing more.
    for (i, (digest, _)) in kept.iter().enumerate().filter(|(i, _)| *i != 2) {
        let name = repo(&format!("team/app{i}"));
        r.get_manifest(&name, &registry_core::Reference::Digest(digest.clone()))
            .await
            .unwrap();
    }
    collect(&r, false, false).await;
    let audit = collect(&r, true, true).await;
    assert!(audit.full);
    assert!(audit.removed.is_empty(), "{:?}", audit.removed);
    // Settled: no record is left.
    assert_eq!(keys(&s, paths::COLLECTION).await, Vec::<String>::new());
}

/// A store whose writer kept no records (as before them): collections walk it whole until
/// reindexing writes a record for every link; then an incremental one removes what a delete
/// left, and the manifests still tagged keep every blob.
async fn a_store_from_before_the_records_is_walked_until_reindexed(s: Arc<dyn Storage>) {
    let clock = OffsetClock::default();
    let writer = registry(&s, &clock);
    let (a, b) = (repo("old/a"), repo("old/b"));
    let (first, _) = push_image(&writer, &a, "v1", "shared").await;
    let (second, _) = push_image(&writer, &b, "v1", "shared").await;
    assert_eq!(first, second);
    let (gone, _) = push_image(&writer, &a, "v2", "gone").await;
    // What the code before the records left: none of them.
    for prefix in [paths::COLLECTION, paths::BLOBS] {
        for key in keys(&s, prefix).await {
            if prefix == paths::COLLECTION || key.contains("/linked/") {
                s.delete(&key).await.unwrap();
            }
        }
    }
    s.delete(paths::COLLECTION_RECORDS).await.unwrap();

    let r = registry(&s, &clock);
    assert!(reindex::needed(&r).await.unwrap());
    clock.advance(GRACE * 2);
    assert!(collect(&r, false, false).await.full);
    let report = reindex::reindex(&r).await.unwrap();
    assert!(report.links_recorded >= 7, "{report:?}");
    assert!(!reindex::needed(&r).await.unwrap());

    r.delete_manifest(&a, &first).await.unwrap();
    r.delete_manifest(&a, &gone).await.unwrap();
    clock.advance(GRACE * 2);
    let incremental = collect(&r, false, false).await;
    assert!(!incremental.full);
    let removed = blobs_removed(&incremental);
    assert!(removed.contains(&gone), "{:?}", incremental.removed);
    assert!(!removed.contains(&first), "old/b still tags it");
    r.get_manifest(&b, &registry_core::Reference::Digest(first.clone()))
        .await
        .unwrap();
    let audit = collect(&r, true, true).await;
    assert!(audit.removed.is_empty(), "{:?}", audit.removed);
}
