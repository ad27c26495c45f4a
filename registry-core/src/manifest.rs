//! Manifest kinds and their validation. The registry stores the exact bytes a client sent; this
//! module parses them only to check them and to learn what they reference. Nothing is re-serialized.
//!
//! Kinds accepted: OCI image manifest, OCI image index, Docker schema2 manifest, Docker manifest
//! list, and OCI artifacts (an image manifest or index with `artifactType`, a `subject`, an empty
//! config). Docker schema1 is refused.
//!
//! The `oci-spec` crate was evaluated for these types: its builders and getters suit producing
//! manifests, but its strict typed fields would reject some Docker manifests this module has to
//! accept, and it brings a dozen dependencies for the handful of fields validation reads. The small
//! serde structs below read exactly those fields.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result};

/// `application/vnd.oci.image.manifest.v1+json`
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// `application/vnd.oci.image.index.v1+json`
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// `application/vnd.docker.distribution.manifest.v2+json`
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// `application/vnd.docker.distribution.manifest.list.v2+json`
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// `application/vnd.oci.empty.v1+json`, the config of artifacts that have none.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
const DOCKER_SCHEMA1: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// A content descriptor: what a manifest says about a blob or another manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size in bytes of the referenced content.
    pub size: u64,
    /// Artifact type, on referrers and index entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Annotations of the referenced content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Places a non-distributable layer can be fetched from instead of this registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// The platform of an index entry, kept as received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<serde_json::Value>,
}

/// Whether a manifest lists blobs (image) or other manifests (index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    /// OCI image manifest or Docker schema2 manifest: a config and layers.
    Image,
    /// OCI image index or Docker manifest list: child manifests.
    Index,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<u64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    annotations: Option<BTreeMap<String, String>>,
    fs_layers: Option<serde::de::IgnoredAny>,
}

/// What validation learned from a manifest's bytes.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The effective media type: the body's `mediaType`, else the request's Content-Type.
    pub media_type: String,
    /// Image or index.
    pub kind: ManifestKind,
    /// The config blob of an image manifest.
    pub config: Option<Descriptor>,
    /// The layers of an image manifest (empty for an index).
    pub layers: Vec<Descriptor>,
    /// The children of an index (empty for an image manifest).
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to, for the referrers API.
    pub subject: Option<Descriptor>,
    /// The manifest's `artifactType`.
    pub artifact_type: Option<String>,
    /// The manifest's annotations.
    pub annotations: Option<BTreeMap<String, String>>,
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::ManifestInvalid {
        reason: reason.into(),
    }
}

/// Strips parameters such as `; charset=utf-8` from a Content-Type value.
fn essence(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

impl Manifest {
    /// Parses and checks manifest bytes as received with the request's Content-Type (if any).
    ///
    /// Refuses schema1, unknown media types, a body `mediaType` that contradicts the Content-Type,
    /// and a body that lacks what its kind requires.
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Manifest> {
        let raw: RawManifest =
            serde_json::from_slice(bytes).map_err(|e| invalid(format!("not a manifest: {e}")))?;
        let header = content_type.map(essence).filter(|c| !c.is_empty());
        if raw.fs_layers.is_some()
            || raw.schema_version == Some(1)
            || [raw.media_type.as_deref(), header]
                .iter()
                .flatten()
                .any(|m| DOCKER_SCHEMA1.contains(m))
        {
            return Err(invalid(
                "Docker schema1 manifests are not supported; push with a client that writes schema2 or OCI",
            ));
        }
        if raw.schema_version != Some(2) {
            return Err(invalid("schemaVersion must be 2"));
        }
        if let (Some(body), Some(header)) = (raw.media_type.as_deref(), header)
            && body != header
        {
            return Err(invalid(format!(
                "mediaType {body:?} in the body does not match Content-Type {header:?}"
            )));
        }
        let media_type = match (raw.media_type, header) {
            (Some(m), _) => m,
            (None, Some(h)) if h != "application/json" => h.to_owned(),
            (None, _) if raw.manifests.is_some() => OCI_INDEX.to_owned(),
            (None, _) => OCI_MANIFEST.to_owned(),
        };
        let kind = match media_type.as_str() {
            OCI_MANIFEST | DOCKER_MANIFEST => ManifestKind::Image,
            OCI_INDEX | DOCKER_MANIFEST_LIST => ManifestKind::Index,
            other => {
                return Err(invalid(format!(
                    "unsupported manifest media type {other:?}"
                )));
            }
        };
        let (config, layers, manifests) = match kind {
            ManifestKind::Image => {
                if raw.manifests.is_some() {
                    return Err(invalid("an image manifest cannot have \"manifests\""));
                }
                let config = raw.config.ok_or_else(|| invalid("missing \"config\""))?;
                let layers = raw.layers.ok_or_else(|| invalid("missing \"layers\""))?;
                (Some(config), layers, Vec::new())
            }
            ManifestKind::Index => {
                if raw.config.is_some() || raw.layers.is_some() {
                    return Err(invalid("an index cannot have \"config\" or \"layers\""));
                }
                let manifests = raw
                    .manifests
                    .ok_or_else(|| invalid("missing \"manifests\""))?;
                (None, Vec::new(), manifests)
            }
        };
        Ok(Manifest {
            media_type,
            kind,
            config,
            layers,
            manifests,
            subject: raw.subject,
            artifact_type: raw.artifact_type,
            annotations: raw.annotations,
        })
    }

    /// Blobs this manifest needs in the repository: config and layers, except non-distributable
    /// layers that carry their own `urls`.
    pub fn blob_references(&self) -> impl Iterator<Item = &Descriptor> {
        self.config.iter().chain(
            self.layers
                .iter()
                .filter(|l| l.urls.as_ref().is_none_or(|u| u.is_empty())),
        )
    }

    /// The artifact type a referrers listing shows: `artifactType`, else the config's media type.
    pub fn referrer_artifact_type(&self) -> Option<String> {
        self.artifact_type
            .clone()
            .or_else(|| self.config.as_ref().map(|c| c.media_type.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> String {
        format!("sha256:{}", hex::encode([n; 32]))
    }

    fn image(media_type: Option<&str>) -> String {
        let mt = media_type
            .map(|m| format!(r#""mediaType":"{m}","#))
            .unwrap_or_default();
        format!(
            r#"{{"schemaVersion":2,{mt}"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":3}}]}}"#,
            d(1),
            d(2)
        )
    }

    #[test]
    fn accepts_the_four_kinds() {
        let m = Manifest::parse(image(Some(OCI_MANIFEST)).as_bytes(), Some(OCI_MANIFEST)).unwrap();
        assert_eq!(m.kind, ManifestKind::Image);
        assert_eq!(m.blob_references().count(), 2);
        let m = Manifest::parse(image(Some(DOCKER_MANIFEST)).as_bytes(), None).unwrap();
        assert_eq!(m.media_type, DOCKER_MANIFEST);
        for mt in [OCI_INDEX, DOCKER_MANIFEST_LIST] {
            let body = format!(
                r#"{{"schemaVersion":2,"mediaType":"{mt}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":5,"platform":{{"os":"linux","architecture":"arm64"}}}}]}}"#,
                d(3)
            );
            let m = Manifest::parse(body.as_bytes(), Some(mt)).unwrap();
            assert_eq!(m.kind, ManifestKind::Index);
            assert_eq!(m.manifests.len(), 1);
        }
    }

    #[test]
    fn media_type_comes_from_header_when_body_has_none() {
        let m = Manifest::parse(image(None).as_bytes(), Some(DOCKER_MANIFEST)).unwrap();
        assert_eq!(m.media_type, DOCKER_MANIFEST);
        let m = Manifest::parse(image(None).as_bytes(), None).unwrap();
        assert_eq!(m.media_type, OCI_MANIFEST);
        let m = Manifest::parse(
            image(Some(OCI_MANIFEST)).as_bytes(),
            Some("application/vnd.oci.image.manifest.v1+json; charset=utf-8"),
        )
        .unwrap();
        assert_eq!(m.media_type, OCI_MANIFEST);
    }

    #[test]
    fn artifact_with_subject_and_empty_config() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"application/vnd.example.sbom","config":{{"mediaType":"{OCI_EMPTY}","digest":"{}","size":2}},"layers":[],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":7}},"annotations":{{"a":"b"}}}}"#,
            d(4),
            d(5)
        );
        let m = Manifest::parse(body.as_bytes(), Some(OCI_MANIFEST)).unwrap();
        assert_eq!(m.subject.as_ref().unwrap().digest.to_string(), d(5));
        assert_eq!(
            m.referrer_artifact_type().as_deref(),
            Some("application/vnd.example.sbom")
        );
    }

    #[test]
    fn refuses_what_it_must() {
        let cases: Vec<(String, Option<&str>, &str)> = vec![
            (
                image(Some(OCI_MANIFEST)),
                Some(DOCKER_MANIFEST),
                "does not match",
            ),
            (
                r#"{"schemaVersion":1,"fsLayers":[]}"#.into(),
                None,
                "schema1",
            ),
            (image(None), Some(DOCKER_SCHEMA1[1]), "schema1"),
            (
                image(Some(OCI_MANIFEST)).replace("\"schemaVersion\":2", "\"schemaVersion\":3"),
                None,
                "schemaVersion",
            ),
            (
                image(Some("application/vnd.example+json")),
                None,
                "unsupported",
            ),
            (
                format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","layers":[]}}"#),
                None,
                "config",
            ),
            (
                format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}"}}"#),
                None,
                "manifests",
            ),
            (
                image(Some(OCI_MANIFEST)).replace(&d(2), "sha256:abc"),
                None,
                "not a manifest",
            ),
            (
                r#"{"schemaVersion":2,"schemaVersion":2}"#.into(),
                None,
                "duplicate",
            ),
            ("[".repeat(10_000), None, "not a manifest"),
            ("not json".into(), None, "not a manifest"),
            (
                image(Some(OCI_MANIFEST)).replace("\"size\":3", "\"size\":-3"),
                None,
                "not a manifest",
            ),
        ];
        for (body, ct, want) in cases {
            let err = Manifest::parse(body.as_bytes(), ct)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(want),
                "{body:.80} gave {err:?}, wanted {want:?}"
            );
        }
    }

    #[test]
    fn foreign_layers_are_not_required() {
        let body = image(Some(DOCKER_MANIFEST)).replace(
            "\"size\":3",
            "\"size\":3,\"urls\":[\"https://example.com/l\"]",
        );
        let m = Manifest::parse(body.as_bytes(), None).unwrap();
        assert_eq!(m.blob_references().count(), 1);
    }
}
