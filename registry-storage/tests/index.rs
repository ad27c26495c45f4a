//! The listing index on every backend: the catalog and tag lists paged across deletes, tag
//! records and history, collections keeping the catalog in step, two replicas over one store,
//! and a store written before the index, read as it is and then reindexed.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{body, repo};
use registry_core::gc::{self, GcOptions};
use registry_core::manifest::OCI_MANIFEST;
use registry_core::{
    Digest, Page, Reference, Registry, RegistryConfig, RepositoryName, Storage, StorageExt, paths,
};

on_every_backend!(
    catalog_pages_across_deletes,
    tag_pages_records_and_history,
    collections_keep_the_catalog_in_step,
    two_replicas_share_the_index,
    a_store_written_before_the_index,
);

/// Pushes a one-layer image to `name` under `tags`; returns its digest.
async fn push(r: &Registry, name: &RepositoryName, tags: &[&str], seed: &str) -> Digest {
    let config = format!("{{\"seed\":\"{seed}\"}}");
    let c = Digest::of(config.as_bytes());
    r.put_blob(name, &c, body(config.as_bytes()), None)
        .await
        .unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{c}","size":{}}},"layers":[]}}"#,
        config.len()
    );
    let d = Digest::of(manifest.as_bytes());
    r.put_manifest(
        name,
        &Reference::Digest(d.clone()),
        Some(OCI_MANIFEST),
        Bytes::from(manifest.clone()),
    )
    .await
    .unwrap();
    for t in tags {
        r.put_manifest(
            name,
            &Reference::Tag(t.parse().unwrap()),
            Some(OCI_MANIFEST),
            Bytes::from(manifest.clone()),
        )
        .await
        .unwrap();
    }
    d
}

/// Every item of a listing, fetched `n` at a time.
async fn all_pages<F, Fut>(n: usize, mut page: F) -> Vec<String>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Page>,
{
    let mut items = Vec::new();
    let mut last = None;
    loop {
        let p = page(last.clone()).await;
        assert!(p.items.len() <= n);
        items.extend(p.items.iter().cloned());
        if !p.more {
            return items;
        }
        last = p.items.last().cloned();
    }
}

async fn catalog_pages_across_deletes(s: Arc<dyn Storage>) {
    let r = Registry::new(s, RegistryConfig::default());
    let mut names: Vec<String> = (0..25).map(|i| format!("team{}/app{i}", i % 4)).collect();
    names.extend(["team1".into(), "team1-x".into(), "z".into()]);
    let mut digests = Vec::new();
    for name in &names {
        digests.push(push(&r, &repo(name), &["v1"], name).await);
    }
    let listed = all_pages(4, |last| {
        let r = r.clone();
        async move { r.list_repositories(Some(4), last.as_deref()).await.unwrap() }
    })
    .await;
    let mut expected = names.clone();
    expected.sort_by(|a, b| a.split('/').cmp(b.split('/')));
    assert_eq!(listed, expected, "each once, by components");

    // Deletes between pages: a repository losing its last manifest leaves the catalog, and the
    // pages go on after it.
    let first = r.list_repositories(Some(5), None).await.unwrap();
    let next = r
        .list_repositories(Some(1), first.items.last().map(String::as_str))
        .await
        .unwrap();
    let gone = next.items[0].clone();
    let at = names.iter().position(|n| *n == gone).unwrap();
    r.delete_manifest(&repo(&gone), &digests[at]).await.unwrap();
    let rest = r
        .list_repositories(Some(100), first.items.last().map(String::as_str))
        .await
        .unwrap();
    assert!(!rest.items.contains(&gone), "{gone} still listed");
    assert_eq!(first.items.len() + rest.items.len(), names.len() - 1);
    // A `last` that names no repository (deleted meanwhile) still pages on from where it sorts.
    let after_gone = r.list_repositories(Some(100), Some(&gone)).await.unwrap();
    assert_eq!(after_gone.items, rest.items);
}

async fn tag_pages_records_and_history(s: Arc<dyn Storage>) {
    let r = Registry::new(s, RegistryConfig::default());
    let name = repo("tags/many");
    let tags: Vec<String> = (0..30).map(|i| format!("t{i:02}")).collect();
    let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    let first = push(&r, &name, &refs, "one").await;
    let listed = all_pages(7, |last| {
        let (r, name) = (r.clone(), name.clone());
        async move { r.list_tags(&name, Some(7), last.as_deref()).await.unwrap() }
    })
    .await;
    assert_eq!(listed, tags);
    // Moves and deletes between pages.
    let page = r.list_tags(&name, Some(10), None).await.unwrap();
    r.delete_tag(&name, &"t10".parse().unwrap()).await.unwrap();
    let second = push(&r, &name, &["t11"], "two").await;
    let rest = r.list_tags(&name, Some(100), Some("t09")).await.unwrap();
    assert_eq!(rest.items.first().map(String::as_str), Some("t11"));
    assert_eq!(page.items.len() + rest.items.len(), 29);
    // The record knows when the tag moved; the history, every change.
    let t11: registry_core::Tag = "t11".parse().unwrap();
    let record = r.tag(&name, &t11).await.unwrap().unwrap();
    assert_eq!(record.digest, second);
    assert!(record.moved > 0);
    let history = r.tag_history(&name, &t11).await.unwrap();
    let moves: Vec<_> = history
        .iter()
        .map(|c| (c.from.clone(), c.to.clone()))
        .collect();
    assert_eq!(
        moves,
        [
            (None, Some(first.clone())),
            (Some(first.clone()), Some(second))
        ]
    );
    let t10 = r.tag_history(&name, &"t10".parse().unwrap()).await.unwrap();
    assert_eq!(t10.last().unwrap().to, None, "the delete kept");
    // Pushing a tag where it already points moves nothing.
    push(&r, &name, &["t00"], "one").await;
    let t00 = r.tag_history(&name, &"t00".parse().unwrap()).await.unwrap();
    assert_eq!(t00.len(), 1, "{t00:?}");
}

async fn collections_keep_the_catalog_in_step(s: Arc<dyn Storage>) {
    let r = Registry::new(s.clone(), RegistryConfig::default());
    push(&r, &repo("kept"), &["v1"], "kept").await;
    push(&r, &repo("dropped"), &[], "untagged").await;
    // A stale entry and a missing one, as a racing push and delete could leave them.
    s.put(&paths::catalog_entry(&repo("ghost")), Bytes::new())
        .await
        .unwrap();
    s.delete(&paths::catalog_entry(&repo("kept")))
        .await
        .unwrap();
    let options = GcOptions {
        grace: Duration::ZERO,
        delete_untagged: true,
        ..GcOptions::default()
    };
    let report = gc::collect(&r, &options).await.unwrap();
    assert_eq!(
        report.catalog_changes, 3,
        "kept back, ghost and dropped out"
    );
    let listed = r.list_repositories(None, None).await.unwrap();
    assert_eq!(listed.items, ["kept"]);
    let clean = registry_core::scrub::scrub(&r).await.unwrap();
    assert!(clean.problems.is_empty(), "{:?}", clean.problems);
}

async fn two_replicas_share_the_index(s: Arc<dyn Storage>) {
    let a = Registry::new(s.clone(), RegistryConfig::default());
    let b = Registry::new(s, RegistryConfig::default());
    let name = repo("shared/app");
    let d = push(&a, &name, &["v1", "v2"], "shared").await;
    assert_eq!(
        b.list_repositories(None, None).await.unwrap().items,
        ["shared/app"]
    );
    assert_eq!(
        b.list_tags(&name, None, None).await.unwrap().items,
        ["v1", "v2"]
    );
    b.delete_tag(&name, &"v1".parse().unwrap()).await.unwrap();
    assert_eq!(a.list_tags(&name, None, None).await.unwrap().items, ["v2"]);
    b.delete_manifest(&name, &d).await.unwrap();
    assert!(
        a.list_repositories(None, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // A pushes again: listed again, though it listed the repository lately itself.
    push(&a, &name, &["v3"], "again").await;
    assert_eq!(
        b.list_repositories(None, None).await.unwrap().items,
        ["shared/app"]
    );
}

async fn a_store_written_before_the_index(s: Arc<dyn Storage>) {
    // The layout before the index: tags as legacy links, no catalog, no version.
    {
        let r = Registry::new(s.clone(), RegistryConfig::default());
        for (name, tags) in [("old/one", &["a", "b"][..]), ("old/two", &["c"][..])] {
            let d = push(&r, &repo(name), &[], name).await;
            for t in tags {
                let tag: registry_core::Tag = t.parse().unwrap();
                s.put(
                    &paths::legacy_tag_link(&repo(name), &tag),
                    Bytes::from(d.to_string()),
                )
                .await
                .unwrap();
            }
            s.delete(&paths::catalog_entry(&repo(name))).await.unwrap();
        }
        s.delete(paths::INDEX_VERSION).await.unwrap();
    }
    let r = Registry::new(s.clone(), RegistryConfig::default());
    assert!(registry_core::reindex::needed(&r).await.unwrap());
    // Read as it is.
    assert_eq!(
        r.list_repositories(None, None).await.unwrap().items,
        ["old/one", "old/two"]
    );
    let one = repo("old/one");
    assert_eq!(
        r.list_tags(&one, None, None).await.unwrap().items,
        ["a", "b"]
    );
    r.get_manifest(&one, &Reference::Tag("a".parse().unwrap()))
        .await
        .unwrap();
    // Reindexed: the same listings, from the index; the legacy links are gone.
    let report = registry_core::reindex::reindex(&r).await.unwrap();
    assert_eq!((report.repositories, report.tags_moved), (2, 3));
    let fresh = Registry::new(s.clone(), RegistryConfig::default());
    assert!(!registry_core::reindex::needed(&fresh).await.unwrap());
    assert_eq!(
        fresh.list_repositories(None, None).await.unwrap().items,
        ["old/one", "old/two"]
    );
    assert_eq!(
        fresh.list_tags(&one, None, None).await.unwrap().items,
        ["a", "b"]
    );
    let tag: registry_core::Tag = "a".parse().unwrap();
    assert!(!s.exists(&paths::legacy_tag_link(&one, &tag)).await.unwrap());
    assert!(fresh.tag(&one, &tag).await.unwrap().unwrap().moved > 0);
    let again = registry_core::reindex::reindex(&fresh).await.unwrap();
    assert_eq!((again.tags_moved, again.catalog_changes), (0, 0));
    let clean = registry_core::scrub::scrub(&fresh).await.unwrap();
    assert!(clean.problems.is_empty(), "{:?}", clean.problems);
}
