//! The change feed over every backend: each committed change reaches a subscriber once it is
//! made, with who made it and from where (the API, the UI, the admin API, garbage collection,
//! retention), and nothing refused or merely read reaches it.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{push_image, repo};
use registry_core::admission::Caller;
use registry_core::feed::{Committed, Origin, Record, Subscriber};
use registry_core::gc::{self, GcOptions};
use registry_core::lifecycle::RetentionRule;
use registry_core::{Digest, Reference, Registry, RegistryConfig, Storage};

on_every_backend!(
    every_change_reaches_the_feed_with_its_origin,
    retention_and_collection_publish_what_they_remove,
);

/// Keeps every record it is handed.
#[derive(Default)]
struct Recorder(Mutex<Vec<Record>>);

#[async_trait::async_trait]
impl Subscriber for Recorder {
    async fn committed(&self, record: &Record) {
        self.0.lock().unwrap().push(record.clone());
    }
}

impl Recorder {
    /// The kinds recorded since the last call, with their origins.
    fn take(&self) -> Vec<(&'static str, Origin)> {
        self.0
            .lock()
            .unwrap()
            .drain(..)
            .map(|r| (r.change.kind(), r.caller.origin))
            .collect()
    }
}

fn caller(identity: &str, origin: Origin) -> Caller {
    Caller {
        identity: Some(identity.into()),
        origin,
        ..Caller::default()
    }
}

async fn every_change_reaches_the_feed_with_its_origin(storage: Arc<dyn Storage>) {
    let feed = Arc::new(Recorder::default());
    let r = Registry::new(storage, RegistryConfig::default()).with_subscriber(feed.clone());
    let api = r.as_caller(caller("alice", Origin::Api));
    let a = repo("team/app");
    let v1 = "v1".parse().unwrap();
    let (digest, _) = push_image(&api, &a, "v1", "one").await;
    use Origin::{Admin, Api, Ui};
    assert_eq!(
        feed.take(),
        [
            ("blob_stored", Api),
            ("blob_stored", Api),
            ("repository_created", Api),
            ("manifest_stored", Api),
            ("tag_moved", Api),
        ]
    );
    // Pushed again: stored again, but the tag does not move and the repository is not new.
    push_image(&api, &a, "v1", "one").await;
    assert_eq!(
        feed.take(),
        [
            ("blob_stored", Api),
            ("blob_stored", Api),
            ("manifest_stored", Api)
        ]
    );
    // Reads publish nothing; a refused change neither.
    api.get_manifest(&a, &Reference::Tag("v1".parse().unwrap()))
        .await
        .unwrap();
    assert!(api.delete_tag(&a, &"nope".parse().unwrap()).await.is_err());
    assert_eq!(feed.take(), []);

    r.as_caller(caller("bob (web UI)", Ui))
        .delete_tag(&a, &v1)
        .await
        .unwrap();
    r.as_caller(caller("carol", Admin))
        .restore_tag(&a, &v1, None)
        .await
        .unwrap();
    let records: Vec<Record> = feed.0.lock().unwrap().drain(..).collect();
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0].caller.identity.as_deref(), Some("bob (web UI)"));
    assert!(matches!(
        &records[0].change,
        Committed::TagDeleted { tag, digest: d, .. } if *tag == v1 && *d == digest
    ));
    assert_eq!(records[1].caller.origin, Admin);
    assert!(matches!(
        &records[1].change,
        Committed::TagMoved { restored: true, from: None, to, .. } if *to == digest
    ));

    api.delete_manifest(&a, &digest).await.unwrap();
    let records: Vec<Record> = feed.0.lock().unwrap().drain(..).collect();
    let kinds: Vec<&str> = records.iter().map(|r| r.change.kind()).collect();
    assert_eq!(
        kinds,
        ["tag_deleted", "manifest_deleted", "repository_emptied"]
    );
    assert!(matches!(
        &records[1].change,
        Committed::ManifestDeleted { media_type: Some(m), .. } if m.contains("manifest")
    ));
}

async fn retention_and_collection_publish_what_they_remove(storage: Arc<dyn Storage>) {
    let feed = Arc::new(Recorder::default());
    let r = Registry::new(storage, RegistryConfig::default()).with_subscriber(feed.clone());
    let a = repo("ci/app");
    let (old, _) = push_image(&r, &a, "old", "seed old").await;
    push_image(&r, &a, "new", "seed new").await;
    feed.take();
    let options = GcOptions {
        grace: Duration::ZERO,
        delete_untagged: true,
        history: Duration::ZERO,
        retention: vec![RetentionRule {
            repositories: vec!["ci/*".into()],
            keep_last: Some(1),
            ..Default::default()
        }],
        ..GcOptions::default()
    };
    gc::collect(&r, &options).await.unwrap();
    let records: Vec<Record> = feed.0.lock().unwrap().drain(..).collect();
    // Retention untagged `old`, then the collection removed its manifest, its layer link and
    // the blobs nothing else names.
    let untagged: Vec<&Record> = records
        .iter()
        .filter(|r| matches!(r.change, Committed::TagDeleted { .. }))
        .collect();
    assert_eq!(untagged.len(), 1, "{records:?}");
    assert_eq!(untagged[0].caller.origin, Origin::Retention);
    assert!(records.iter().any(|r| matches!(
        &r.change,
        Committed::ManifestDeleted { digest, .. } if *digest == old
    )));
    let layer = Digest::of(b"layer of seed old");
    assert!(records.iter().any(|r| matches!(
        &r.change,
        Committed::BlobUnlinked { digest, .. } if *digest == layer
    )));
    assert!(records.iter().any(|r| matches!(
        &r.change,
        Committed::BlobRemoved { digest, size } if *digest == layer && *size > 0
    )));
    for record in records
        .iter()
        .filter(|r| r.caller.origin != Origin::Retention)
    {
        assert_eq!(record.caller.origin, Origin::Gc, "{record:?}");
    }
    // A dry run publishes nothing.
    push_image(&r, &a, "newer", "seed newer").await;
    feed.take();
    let dry = GcOptions {
        dry_run: true,
        ..options
    };
    gc::collect(&r, &dry).await.unwrap();
    assert_eq!(feed.take(), []);
}
