//! Manifest parsing and validation: any bytes with any Content-Type either parse into a manifest
//! whose kind matches its media type, or fail with MANIFEST_INVALID; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use registry_core::manifest::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
use registry_core::{Error, Manifest, ManifestKind};

fuzz_target!(|data: &[u8]| {
    let (selector, body) = data.split_first().map_or((0, data), |(s, b)| (*s, b));
    let content_type = [None, Some(OCI_MANIFEST), Some(OCI_INDEX), Some(DOCKER_MANIFEST), Some(DOCKER_MANIFEST_LIST), Some("application/json")]
        [usize::from(selector) % 6];
    match Manifest::parse(body, content_type) {
        Ok(m) => {
            let image = matches!(m.media_type.as_str(), OCI_MANIFEST | DOCKER_MANIFEST);
            assert_eq!(m.kind == ManifestKind::Image, image);
            assert_eq!(m.config.is_some(), image);
            if image {
                assert!(m.manifests.is_empty());
            } else {
                assert!(m.layers.is_empty());
            }
            let _ = m.blob_references().count();
            let _ = m.referrer_artifact_type();
        }
        Err(Error::ManifestInvalid { .. }) => {}
        Err(e) => panic!("unexpected error kind: {e}"),
    }
});
