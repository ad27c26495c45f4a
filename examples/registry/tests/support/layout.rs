//! OCI image layouts built on disk for clients to push, and checks of what they pulled.
#![allow(clippy::unwrap_used, dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use registry_core::Digest;

use super::noise;

/// A descriptor as JSON.
fn descriptor(media_type: &str, data: &[u8]) -> serde_json::Value {
    serde_json::json!({ "mediaType": media_type, "digest": Digest::of(data).to_string(), "size": data.len() })
}

/// An OCI image layout on disk, to which images are added by tag.
pub struct Layout {
    pub dir: PathBuf,
    index: Vec<serde_json::Value>,
}

impl Layout {
    /// An empty layout in `dir`.
    pub fn new(dir: &Path) -> Layout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let layout = Layout {
            dir: dir.to_owned(),
            index: Vec::new(),
        };
        layout.write_index();
        layout
    }

    /// Stores a blob and returns its descriptor.
    pub fn blob(&self, media_type: &str, data: &[u8]) -> serde_json::Value {
        let d = Digest::of(data);
        std::fs::write(self.dir.join("blobs/sha256").join(d.hex()), data).unwrap();
        descriptor(media_type, data)
    }

    /// Builds an image of `layers` gzip tar layers of about `layer_size` bytes each for a platform,
    /// stores it and returns its manifest's descriptor (not yet tagged).
    pub fn image(
        &self,
        seed: u64,
        layers: usize,
        layer_size: usize,
        arch: &str,
    ) -> serde_json::Value {
        let mut layer_descs = Vec::new();
        let mut diff_ids = Vec::new();
        for i in 0..layers {
            let mut tar = tar::Builder::new(Vec::new());
            let content = noise(seed * 100 + i as u64, layer_size);
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, format!("file-{seed}-{i}.bin"), &content[..])
                .unwrap();
            let tar = tar.into_inner().unwrap();
            diff_ids.push(Digest::of(&tar).to_string());
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&tar).unwrap();
            let gz = gz.finish().unwrap();
            layer_descs.push(self.blob("application/vnd.oci.image.layer.v1.tar+gzip", &gz));
        }
        let config = serde_json::json!({
            "architecture": arch, "os": "linux",
            "config": { "Env": ["PATH=/usr/bin"], "Labels": { "seed": seed.to_string() } },
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        });
        let config = serde_json::to_vec(&config).unwrap();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": self.blob("application/vnd.oci.image.config.v1+json", &config),
            "layers": layer_descs,
        });
        let mut desc = self.blob(
            "application/vnd.oci.image.manifest.v1+json",
            &serde_json::to_vec(&manifest).unwrap(),
        );
        desc["platform"] = serde_json::json!({ "architecture": arch, "os": "linux" });
        desc
    }

    /// Stores an image index over manifests and returns its descriptor.
    pub fn index(&self, manifests: Vec<serde_json::Value>) -> serde_json::Value {
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        });
        self.blob(
            "application/vnd.oci.image.index.v1+json",
            &serde_json::to_vec(&index).unwrap(),
        )
    }

    /// Tags a stored manifest or index in the layout's `index.json`.
    pub fn tag(&mut self, tag: &str, mut desc: serde_json::Value) {
        desc["annotations"] = serde_json::json!({ "org.opencontainers.image.ref.name": tag });
        self.index.push(desc);
        self.write_index();
    }

    fn write_index(&self) {
        let index = serde_json::json!({ "schemaVersion": 2, "manifests": self.index });
        std::fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
    }
}

/// Every blob file of a layout hashes to its name; returns how many there are.
pub fn verify_layout_blobs(dir: &Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir.join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let data = std::fs::read(entry.path()).unwrap();
        assert_eq!(
            Digest::of(&data).hex(),
            entry.file_name().to_str().unwrap(),
            "corrupt blob pulled"
        );
        n += 1;
    }
    n
}
