//! The Rust `oci-client` crate (a real client) against the real `registry` binary over TCP: push,
//! pull, cross-repository mount, tags and referrers.
#![allow(clippy::unwrap_used)]

mod support;

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use registry_core::Digest;
use support::{Server, noise};

const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";

#[tokio::test]
async fn push_pull_mount_and_referrers() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &[]);
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let anon = RegistryAuth::Anonymous;
    let image: Reference = format!("{}/oci/app:v1", server.addr).parse().unwrap();

    let layers = vec![
        ImageLayer::new(noise(7, 3 << 20), LAYER.into(), None),
        ImageLayer::new(noise(8, 1000), LAYER.into(), None),
    ];
    let config = Config::new(
        br#"{"architecture":"amd64","os":"linux"}"#.to_vec(),
        CONFIG.into(),
        None,
    );
    client
        .push(&image, &layers, config, &anon, None)
        .await
        .unwrap();

    let pulled = client.pull(&image, &anon, vec![LAYER]).await.unwrap();
    // oci-client returns layers in the order their downloads finish.
    let mut got: Vec<&[u8]> = pulled.layers.iter().map(|l| &l.data[..]).collect();
    let mut sent: Vec<&[u8]> = layers.iter().map(|l| &l.data[..]).collect();
    got.sort();
    sent.sort();
    assert!(got == sent, "pulled layers differ from those pushed");
    let manifest_digest = pulled.digest.clone().unwrap();
    let tags = client.list_tags(&image, &anon, None, None).await.unwrap();
    assert_eq!(tags.tags, ["v1"]);

    let layer_digest = Digest::of(&layers[0].data).to_string();
    let other: Reference = format!("{}/oci/other:v1", server.addr).parse().unwrap();
    assert!(!client.blob_exists(&other, &layer_digest).await.unwrap());
    client
        .mount_blob(&other, &image, &layer_digest)
        .await
        .unwrap();
    assert!(client.blob_exists(&other, &layer_digest).await.unwrap());

    let empty = b"{}";
    let empty_digest = Digest::of(empty).to_string();
    client
        .push_blob(&image, empty.to_vec(), &empty_digest)
        .await
        .unwrap();
    let subject_size = client
        .pull_manifest_raw(
            &image,
            &anon,
            &["application/vnd.oci.image.manifest.v1+json"],
        )
        .await
        .unwrap()
        .0
        .len();
    let signature = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.signature",
        "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": empty_digest, "size": 2 },
        "layers": [],
        "subject": { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": subject_size },
    });
    let signature = serde_json::to_vec(&signature).unwrap();
    let sig_digest = Digest::of(&signature).to_string();
    let sig_ref = Reference::with_digest(
        image.registry().into(),
        image.repository().into(),
        sig_digest.clone(),
    );
    client
        .push_manifest_raw(
            &sig_ref,
            signature,
            "application/vnd.oci.image.manifest.v1+json"
                .parse()
                .unwrap(),
        )
        .await
        .unwrap();

    let subject = Reference::with_digest(
        image.registry().into(),
        image.repository().into(),
        manifest_digest,
    );
    let referrers = client.pull_referrers(&subject, None).await.unwrap();
    assert_eq!(referrers.manifests.len(), 1);
    assert_eq!(referrers.manifests[0].digest, sig_digest);
    assert_eq!(
        referrers.manifests[0].artifact_type.as_deref(),
        Some("application/vnd.example.signature")
    );
    let filtered = client
        .pull_referrers(&subject, Some("application/vnd.other"))
        .await
        .unwrap();
    assert!(filtered.manifests.is_empty());
}

#[tokio::test]
async fn in_process_test_registry() {
    let registry = registry_http::testing::TestRegistry::start().await.unwrap();
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let image: Reference = format!("{}/embedded/app:v1", registry.host())
        .parse()
        .unwrap();
    let layers = vec![ImageLayer::new(noise(1, 5000), LAYER.into(), None)];
    let config = Config::new(b"{}".to_vec(), CONFIG.into(), None);
    client
        .push(&image, &layers, config, &RegistryAuth::Anonymous, None)
        .await
        .unwrap();
    let repo = "embedded/app".parse().unwrap();
    let tags = registry
        .registry()
        .list_tags(&repo, None, None)
        .await
        .unwrap();
    assert_eq!(tags.items, ["v1"]);
    let pulled = client
        .pull(&image, &RegistryAuth::Anonymous, vec![LAYER])
        .await
        .unwrap();
    assert_eq!(pulled.layers[0].data, layers[0].data);
}
