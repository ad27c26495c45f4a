//! `Registry` manifests, tags, the catalog and referrers on every backend, with their error paths.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{body, image_manifest, push_image, read, repo};
use registry_core::manifest::{OCI_INDEX, OCI_MANIFEST};
use registry_core::paths;
use registry_core::{Digest, Error, Reference, Registry, RegistryConfig, Storage, StorageExt};

on_every_backend!(
    manifests_by_tag_and_digest,
    manifest_errors,
    lenient_reference_checks,
    index_children_must_exist,
    deleting_a_tagged_manifest_removes_its_tags,
    delete_tag_keeps_manifest,
    tag_listing,
    catalog,
    referrers,
    concurrent_pushes_of_one_blob_and_manifest,
);

async fn manifests_by_tag_and_digest(s: Arc<dyn Storage>) {
    let r = Registry::new(s, RegistryConfig::default());
    let a = repo("library/hello");
    let (d, bytes) = push_image(&r, &a, "v1", "one").await;
    for reference in [
        Reference::Tag("v1".parse().unwrap()),
        Reference::Digest(d.clone()),
    ] {
        let got = r.get_manifest(&a, &reference).await.unwrap();
        assert_eq!(got.bytes, bytes);
        assert_eq!(got.info.digest, d);
        assert_eq!(got.info.media_type, OCI_MANIFEST);
        assert_eq!(
            r.stat_manifest(&a, &reference).await.unwrap().size,
            bytes.len() as u64
        );
    }
    let by_digest = r
        .put_manifest(
            &a,
            &Reference::Digest(d.clone()),
            None,
            Bytes::from(bytes.clone()),
        )
        .await
        .unwrap();
    assert_eq!(by_digest.digest, d);
    let (d2, _) = push_image(&r, &a, "v1", "two").await;
    assert_eq!(
        r.stat_manifest(&a, &"v1".parse().unwrap())
            .await
            .unwrap()
            .digest,
        d2
    );
    assert!(
        r.get_manifest(&a, &Reference::Digest(d)).await.is_ok(),
        "untagged manifest still there"
    );
    assert!(matches!(
        r.get_manifest(&repo("other"), &"v1".parse().unwrap()).await,
        Err(Error::ManifestUnknown { .. })
    ));
}

async fn manifest_errors(s: Arc<dyn Storage>) {
    let r = Registry::new(
        s.clone(),
        RegistryConfig {
            max_manifest_size: 2048,
            ..Default::default()
        },
    );
    let a = repo("a");
    let config = Digest::of(b"{}");
    r.put_blob(&a, &config, body(b"{}"), None).await.unwrap();
    let missing = Digest::of(b"missing layer");
    let m = image_manifest((&config, 2), &[(&missing, 13)], None);
    let err = r
        .put_manifest(
            &a,
            &"t".parse().unwrap(),
            Some(OCI_MANIFEST),
            Bytes::from(m),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::ManifestBlobUnknown { ref digest } if *digest == missing),
        "{err}"
    );
    let ok = image_manifest((&config, 2), &[], None);
    let wrong = Reference::Digest(Digest::of(b"not it"));
    let err = r
        .put_manifest(&a, &wrong, Some(OCI_MANIFEST), Bytes::from(ok.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    let mut big = ok.clone();
    big.truncate(big.len() - 1);
    big.extend_from_slice(format!(r#","annotations":{{"x":"{}"}}}}"#, "y".repeat(3000)).as_bytes());
    let err = r
        .put_manifest(
            &a,
            &"t".parse().unwrap(),
            Some(OCI_MANIFEST),
            Bytes::from(big),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::ManifestTooLarge { limit: 2048, .. }),
        "{err}"
    );
    let err = r
        .put_manifest(&a, &"t".parse().unwrap(), Some(OCI_INDEX), Bytes::from(ok))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ManifestInvalid { .. }), "{err}");
    assert!(matches!(r.list_tags(&a, None, None).await, Ok(p) if p.items.is_empty()));
    assert!(!s.exists(&paths::repository(&a)).await.unwrap());
    let none = r
        .stat_manifest(&a, &"t".parse().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(none, Error::ManifestUnknown { .. }), "{none}");
}

async fn lenient_reference_checks(s: Arc<dyn Storage>) {
    let r = Registry::new(
        s,
        RegistryConfig {
            validate_references: false,
            ..Default::default()
        },
    );
    let a = repo("a");
    let m = image_manifest(
        (&Digest::of(b"no config"), 9),
        &[(&Digest::of(b"no layer"), 8)],
        None,
    );
    r.put_manifest(
        &a,
        &"t".parse().unwrap(),
        Some(OCI_MANIFEST),
        Bytes::from(m),
    )
    .await
    .unwrap();
}

async fn index_children_must_exist(s: Arc<dyn Storage>) {
    let r = Registry::new(s, RegistryConfig::default());
    let a = repo("multi");
    let (child, bytes) = push_image(&r, &a, "amd64", "amd64").await;
    let index = |d: &Digest| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
            bytes.len()
        )
    };
    let missing = Digest::of(b"no such child");
    let err = r
        .put_manifest(
            &a,
            &"all".parse().unwrap(),
            Some(OCI_INDEX),
            Bytes::from(index(&missing)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ManifestBlobUnknown { .. }), "{err}");
    let info = r
        .put_manifest(
            &a,
            &"all".parse().unwrap(),
            Some(OCI_INDEX),
            Bytes::from(index(&child)),
        )
        .await
        .unwrap();
    assert_eq!(
        r.stat_manifest(&a, &"all".parse().unwrap())
            .await
            .unwrap()
            .media_type,
        OCI_INDEX
    );
    assert_eq!(info.digest, Digest::of(index(&child).as_bytes()));
}

async fn deleting_a_tagged_manifest_removes_its_tags(s: Arc<dyn Storage>) {
    let r = Registry::new(s, RegistryConfig::default());
    let a = repo("a");
    let (d, bytes) = push_image(&r, &a, "v1", "x").await;
    r.put_manifest(&a, &"v2".parse().unwrap(), None, Bytes::from(bytes))
        .await
        .unwrap();
    let (other, _) = push_image(&r, &a, "keep", "y").await;
    r.delete_manifest(&a, &d).await.unwrap();
    for tag in ["v1", "v2"] {
        let err = r.get_manifest(&a, &tag.parse().unwrap()).await.unwrap_err();
        assert!(matches!(err, Error::ManifestUnknown { .. }), "{tag}: {err}");
    }
    assert!(matches!(
        r.get_manifest(&a, &Reference::Digest(d.clone())).await,
        Err(Error::ManifestUnknown { .. })
    ));
    assert_eq!(r.list_tags(&a, None, None).await.unwrap().items, ["keep"]);
    assert_eq!(
        r.stat_manifest(&a, &"keep".parse().unwrap())
            .await
            .unwrap()
            .digest,
        other
    );
    assert!(matches!(
        r.delete_manifest(&a, &d).await,
        Err(Error::ManifestUnknown { .. })
    ));
    r.delete_manifest(&a, &other).await.unwrap();
    assert!(
        r.list_tags(&a, None, None).await.unwrap().items.is_empty(),
        "an emptied repository still lists"
    );
}

async fn delete_tag_keeps_manifest(s: Arc<dyn Storage>) {
    let r = Registry::new(s, RegistryConfig::default());
    let a = repo("a");
    let (d, _) = push_image(&r, &a, "v1", "x").await;
    r.delete_tag(&a, &"v1".parse().unwrap()).await.unwrap();
    assert!(r.get_manifest(&a, &"v1".parse().unwrap()).await.is_err());
    assert!(r.get_manifest(&a, &Reference::Digest(d)).await.is_ok());
    assert!(matches!(
        r.delete_tag(&a, &"v1".parse().unwrap()).await,
        Err(Error::ManifestUnknown { .. })
    ));
}

async fn tag_listing(s: Arc<dyn Storage>) {
    let r = Registry::new(s, RegistryConfig::default());
    let a = repo("tags");
    for t in ["b", "a", "C", "c", "a1"] {
        push_image(&r, &a, t, "same").await;
    }
    let all = r.list_tags(&a, None, None).await.unwrap();
    assert_eq!(all.items, ["C", "a", "a1", "b", "c"]);
    assert!(!all.more);
    let p = r.list_tags(&a, Some(2), None).await.unwrap();
    assert_eq!(
        (p.items.as_slice(), p.more),
        (&["C".to_string(), "a".into()][..], true)
    );
    let p = r.list_tags(&a, Some(2), Some("a")).await.unwrap();
    assert_eq!(
        (p.items.as_slice(), p.more),
        (&["a1".to_string(), "b".into()][..], true)
    );
    let p = r.list_tags(&a, Some(2), Some("b")).await.unwrap();
    assert_eq!(
        (p.items.as_slice(), p.more),
        (&["c".to_string()][..], false)
    );
    assert!(
        r.list_tags(&a, Some(0), None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let err = r.list_tags(&repo("nobody"), None, None).await.unwrap_err();
    assert!(matches!(err, Error::NameUnknown { .. }), "{err}");
}

async fn catalog(s: Arc<dyn Storage>) {
    let r = Registry::new(s, RegistryConfig::default());
    for name in ["b", "a/b/c", "a-c", "a", "x/blobs", "x/manifests/tags"] {
        push_image(&r, &repo(name), "t", name).await;
    }
    r.put_blob(&repo("only/blobs"), &Digest::of(b"z"), body(b"z"), None)
        .await
        .unwrap();
    // In the lexical order of the names' components, as distribution's walk lists them.
    let all = r.list_repositories(None, None).await.unwrap();
    assert_eq!(
        all.items,
        ["a", "a/b/c", "a-c", "b", "x/blobs", "x/manifests/tags"]
    );
    let p = r.list_repositories(Some(2), Some("a/b/c")).await.unwrap();
    assert_eq!(p.items, ["a-c", "b"]);
    assert!(p.more);
    let p = r.list_repositories(Some(2), Some("b")).await.unwrap();
    assert_eq!(p.items, ["x/blobs", "x/manifests/tags"]);
    assert!(!p.more);
}

async fn referrers(s: Arc<dyn Storage>) {
    let r = Registry::new(s, RegistryConfig::default());
    let a = repo("a");
    let (subject, subject_bytes) = push_image(&r, &a, "v1", "base").await;
    let config = Digest::of(b"{}");
    r.put_blob(&a, &config, body(b"{}"), None).await.unwrap();
    let sig = image_manifest(
        (&config, 2),
        &[],
        Some((&subject, subject_bytes.len() as u64)),
    );
    let sig_info = r
        .put_manifest(
            &a,
            &Reference::Digest(Digest::of(&sig)),
            Some(OCI_MANIFEST),
            Bytes::from(sig),
        )
        .await
        .unwrap();
    assert_eq!(sig_info.subject.as_ref(), Some(&subject));
    let dangling = Digest::of(b"not pushed yet");
    let early = image_manifest((&config, 2), &[], Some((&dangling, 1)));
    r.put_manifest(&a, &"early".parse().unwrap(), None, Bytes::from(early))
        .await
        .unwrap();
    let list = r.list_referrers(&a, &subject, None).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].digest, sig_info.digest);
    assert_eq!(
        list[0].artifact_type.as_deref(),
        Some("application/vnd.example.sig")
    );
    assert_eq!(
        r.list_referrers(&a, &subject, Some("application/vnd.example.sig"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        r.list_referrers(&a, &subject, Some("other/type"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        r.list_referrers(&a, &dangling, None).await.unwrap().len(),
        1
    );
    assert!(
        r.list_referrers(&a, &Digest::of(b"unknown"), None)
            .await
            .unwrap()
            .is_empty()
    );
    r.delete_manifest(&a, &sig_info.digest).await.unwrap();
    assert!(
        r.list_referrers(&a, &subject, None)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn concurrent_pushes_of_one_blob_and_manifest(s: Arc<dyn Storage>) {
    let r = Registry::new(s, RegistryConfig::default());
    let a = repo("busy");
    let layer: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let ld = Digest::of(&layer);
    let config = b"{\"c\":1}";
    let cd = Digest::of(config);
    let tasks = (0..16).map(|i| {
        let (r, a, layer, ld, cd) = (r.clone(), a.clone(), layer.clone(), ld.clone(), cd.clone());
        tokio::spawn(async move {
            if i % 2 == 0 {
                r.put_blob(&a, &ld, body(&layer), None).await?;
            } else {
                let up = r.start_upload(&a).await?;
                r.append_chunk(&a, &up.id, Some(0), body(&layer[..1000]), None)
                    .await?;
                r.append_chunk(&a, &up.id, Some(1000), body(&layer[1000..]), None)
                    .await?;
                r.complete_upload(&a, &up.id, &ld, None).await?;
            }
            r.put_blob(&a, &cd, body(config), None).await?;
            let m = manifest_of(&cd, config, &ld, &layer);
            r.put_manifest(
                &a,
                &"latest".parse().unwrap(),
                Some(OCI_MANIFEST),
                Bytes::from(m),
            )
            .await
        })
    });
    let results = futures::future::join_all(tasks).await;
    for res in results {
        res.unwrap().unwrap();
    }
    assert_eq!(read(r.get_blob(&a, &ld, None).await.unwrap()).await, layer);
    let m = r
        .get_manifest(&a, &"latest".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(
        m.info.digest,
        Digest::of(&manifest_of(&cd, config, &ld, &layer))
    );
}

/// The manifest of an image of one config and one layer, with their true sizes.
fn manifest_of(
    config: &Digest,
    config_bytes: &[u8],
    layer: &Digest,
    layer_bytes: &[u8],
) -> Vec<u8> {
    image_manifest(
        (config, config_bytes.len() as u64),
        &[(layer, layer_bytes.len() as u64)],
        None,
    )
}
