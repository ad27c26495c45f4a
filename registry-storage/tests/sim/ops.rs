//! The operations replicas run: pushes of images and indexes as a client makes them, and what
//! the world needs to know of each.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use registry_core::manifest::{OCI_INDEX, OCI_MANIFEST};
use registry_core::{Digest, Error, Reference, Registry, RepositoryName, Tag};

use crate::common::{body, image_manifest};

/// What an operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Op {
    /// One image, or an index of several (each a config and its layers).
    Push {
        repo: usize,
        tag: usize,
        images: Vec<(u64, Vec<u64>)>,
    },
    DeleteTag {
        repo: usize,
        tag: usize,
    },
    DeleteManifest {
        repo: usize,
        digest: Digest,
    },
    /// A collection: incremental from the candidate records, or (`full`) of the whole store.
    Collect {
        full: bool,
    },
}

impl Op {
    /// The tag a push writes, if it is one.
    pub(super) fn pushes(&self) -> Option<(usize, usize)> {
        match self {
            Op::Push { repo, tag, .. } => Some((*repo, *tag)),
            _ => None,
        }
    }

    /// Whether running it may change what the tag `(repo, tag)` names.
    pub(super) fn touches(&self, at: (usize, usize)) -> bool {
        match self {
            Op::Push { repo, tag, .. } | Op::DeleteTag { repo, tag } => (*repo, *tag) == at,
            Op::DeleteManifest { repo, .. } => *repo == at.0,
            Op::Collect { .. } => false,
        }
    }
}

/// What an acknowledged push stored: the tagged manifest, an index's children, and the blobs.
#[derive(Debug, Clone)]
pub(super) struct Pushed {
    pub(super) manifest: Digest,
    pub(super) children: Vec<Digest>,
    pub(super) blobs: Vec<Digest>,
}

pub(super) type Running = Pin<Box<dyn Future<Output = Result<Option<Pushed>, Error>>>>;

fn config_bytes(i: u64) -> Vec<u8> {
    format!("{{\"config\":{i}}}").into_bytes()
}

fn layer_bytes(i: u64) -> Vec<u8> {
    format!("layer {i}").into_bytes()
}

/// Pushes an image the way a client does: each blob it lacks is asked for (`HEAD`), mounted from
/// another repository or uploaded; then the manifest under `reference`. Its digest, size and
/// blobs.
async fn push_image(
    r: &Registry,
    repo: &RepositoryName,
    from: &RepositoryName,
    tag: Option<Tag>,
    (config, layers): (u64, Vec<u64>),
) -> Result<(Digest, u64, Vec<Digest>), Error> {
    let config = config_bytes(config);
    let layers: Vec<Vec<u8>> = layers.into_iter().map(layer_bytes).collect();
    let mut blobs = Vec::new();
    for bytes in std::iter::once(&config).chain(&layers) {
        let digest = Digest::of(bytes);
        blobs.push(digest.clone());
        match r.stat_blob(repo, &digest).await {
            Ok(_) => continue,
            Err(Error::BlobUnknown { .. }) => {}
            Err(e) => return Err(e),
        }
        match r.mount_blob(repo, &digest, Some(from)).await {
            Ok(_) => continue,
            Err(Error::BlobUnknown { .. }) => {}
            Err(e) => return Err(e),
        }
        r.put_blob(repo, &digest, body(bytes), Some(bytes.len() as u64))
            .await?;
    }
    let layer_refs: Vec<(&Digest, u64)> = blobs[1..]
        .iter()
        .zip(&layers)
        .map(|(d, b)| (d, b.len() as u64))
        .collect();
    let manifest = image_manifest((&blobs[0], config.len() as u64), &layer_refs, None);
    let (digest, size) = (Digest::of(&manifest), manifest.len() as u64);
    let reference = tag.map_or(Reference::Digest(digest.clone()), Reference::Tag);
    r.put_manifest(repo, &reference, Some(OCI_MANIFEST), Bytes::from(manifest))
        .await?;
    Ok((digest, size, blobs))
}

/// Pushes one image under the tag, or several by digest and then an index of them under it.
pub(super) async fn push(
    r: Registry,
    repo: RepositoryName,
    from: RepositoryName,
    tag: Tag,
    mut images: Vec<(u64, Vec<u64>)>,
) -> Result<Option<Pushed>, Error> {
    if images.len() == 1 {
        let image = images.remove(0);
        let (manifest, _, blobs) = push_image(&r, &repo, &from, Some(tag), image).await?;
        return Ok(Some(Pushed {
            manifest,
            children: Vec::new(),
            blobs,
        }));
    }
    let (mut children, mut blobs, mut entries) = (Vec::new(), Vec::new(), Vec::new());
    for image in images {
        let (digest, size, named) = push_image(&r, &repo, &from, None, image).await?;
        entries.push(format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{digest}","size":{size}}}"#
        ));
        children.push(digest);
        blobs.extend(named);
    }
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
        entries.join(",")
    );
    let info = r
        .put_manifest(
            &repo,
            &Reference::Tag(tag),
            Some(OCI_INDEX),
            Bytes::from(index),
        )
        .await?;
    Ok(Some(Pushed {
        manifest: info.digest,
        children,
        blobs,
    }))
}
