//! The `registry` binary over Azure Blob Storage (`--storage azure://CONTAINER/PREFIX`, the
//! `[azure]` table set by `REGISTRY_AZURE_*` variables) against Azurite: a skopeo round trip with
//! layers under and over a block, and two replicas sharing the container: an upload begun on one
//! finished through the other, and eight clients pushing images that share a layer through both
//! at once, every image then pulled through the other replica with verified digests. (On Azure one
//! upload's commit drops the blocks of any other upload of that key, so each push writes a key of
//! its own; `registry_storage::azure`'s tests show the hazard at the storage level, where it is
//! not left to timing.)
//!
//! Needs `azurite-blob` (npm `azurite`) and skopeo; `./scripts/test.sh` installs both.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::OnceLock;

use registry_storage::testing::{AZURITE_ACCOUNT, AZURITE_KEY, Azurite};
use support::{Api, Server, TestImage, noise};

fn azurite() -> &'static Azurite {
    static AZURITE: OnceLock<Azurite> = OnceLock::new();
    AZURITE.get_or_init(Azurite::start)
}

/// A server over a fresh container.
fn start(container: &str) -> Server {
    let endpoint = azurite().endpoint();
    let env = [
        ("REGISTRY_AZURE_ENDPOINT", endpoint.as_str()),
        ("REGISTRY_AZURE_ACCOUNT", AZURITE_ACCOUNT),
        ("REGISTRY_AZURE_ACCESS_KEY", AZURITE_KEY),
        ("REGISTRY_AZURE_ALLOW_HTTP", "true"),
        ("REGISTRY_AZURE_PART_SIZE", "5242880"),
    ];
    Server::start_with(&format!("azure://{container}/registry"), &[], &env)
}

fn container() -> String {
    let name = format!("reg-{}", uuid::Uuid::new_v4().simple());
    azurite().container(&name);
    name
}

#[cfg_attr(
    not(all(has_azurite, has_skopeo)),
    ignore = "skipped: azurite and skopeo are not installed (npm install azurite; apt-get install skopeo)"
)]
#[test]
fn skopeo_round_trip() {
    let server = start(&container());
    let tmp = tempfile::tempdir().unwrap();
    // Layers under a block, over one, and over two (5 MiB blocks).
    support::skopeo_round_trip(&server.addr, tmp.path(), 6 << 20);
}

#[cfg_attr(
    not(has_azurite),
    ignore = "skipped: azurite is not installed (npm install azurite)"
)]
#[tokio::test(flavor = "multi_thread")]
async fn replicas_share_a_container_and_racing_pushes_of_one_layer_all_land() {
    let name = container();
    let (a, b) = (start(&name), start(&name));
    let (api_a, api_b) = (Api::new(&a.addr), Api::new(&b.addr));
    api_a
        .upload_across(&api_b, "shared/x", &noise(3, 11 << 20), 6 << 20)
        .await;
    // Eight clients push images sharing a 7 MiB layer, through both replicas at once.
    let shared = noise(40, 7 << 20);
    let pushes = (0..8u64).map(|n| {
        let api = if n % 2 == 0 { &api_a } else { &api_b };
        let image = TestImage::new(50 + n, vec![shared.clone(), noise(60 + n, 1000)]);
        async move {
            api.push_image(&format!("race/app{n}"), "v1", &image)
                .await
                .map(|()| image.digest())
        }
    });
    let pushed = futures::future::join_all(pushes).await;
    for (n, digest) in pushed.into_iter().enumerate() {
        let digest = digest.unwrap();
        let other = if n % 2 == 0 { &api_b } else { &api_a };
        assert_eq!(
            other
                .pull_verified(&format!("race/app{n}"), "v1")
                .await
                .unwrap(),
            digest
        );
    }
}
