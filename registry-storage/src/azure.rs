//! Azure Blob Storage through `object_store`: [`AzureOptions`] for `azure://CONTAINER[/PREFIX]`,
//! which builds an [`ObjectStorage`], so replicas share a container as they do on S3.
//!
//! Credentials and endpoints come from the standard variables, read by `object_store`
//! (`AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`, `AZURE_STORAGE_USE_EMULATOR`, …),
//! and from the keys of the `[azure]` table, which win over them.
//!
//! Multipart uploads: Azure's blocks may be any size, but they belong to the blob, not to an
//! upload: committing one upload's block list discards the uncommitted blocks of every other
//! upload of that key, and a block staged after a commit is accepted (and dropped by Azure a week
//! later) where S3 answers `NoSuchUpload`. So each push writes a key of its own
//! ([`ObjectStorage::with_shared_upload_parts`]). Pulls are not redirected to signed URLs.

use std::sync::Arc;
use std::time::Duration;

use object_store::ClientConfigKey;
use object_store::azure::{AzureConfigKey, MicrosoftAzure, MicrosoftAzureBuilder};
use registry_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::client::{as_seconds, retry, seconds, split_url};
use crate::object::{
    DEFAULT_PART_SIZE, DEFAULT_PARTS_IN_FLIGHT, DEFAULT_RANGED_READS, ObjectStorage,
};

/// How to reach an Azure Blob Storage container: the `[azure]` table (`container` and `prefix`
/// come from the `azure://` URL); unset keys come from the `AZURE_*` variables.
#[derive(Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AzureOptions {
    /// The container.
    #[serde(skip)]
    pub container: String,
    /// A key prefix inside it.
    #[serde(skip)]
    pub prefix: String,
    /// The storage account (`AZURE_STORAGE_ACCOUNT_NAME`).
    pub account: Option<String>,
    /// Its access key (`AZURE_STORAGE_ACCOUNT_KEY`).
    pub access_key: Option<String>,
    /// The blob service's URL, for anything but Azure itself (`http://127.0.0.1:10000/account`).
    pub endpoint: Option<String>,
    /// Talk to Azurite with its well-known development account (`AZURE_STORAGE_USE_EMULATOR`).
    pub use_emulator: Option<bool>,
    /// Allow plain `http://` endpoints.
    pub allow_http: Option<bool>,
    /// Bytes per block of a multipart upload ([`DEFAULT_PART_SIZE`] when `None`).
    pub part_size: Option<u64>,
    /// Blocks of one upload sent at once ([`DEFAULT_PARTS_IN_FLIGHT`] when `None`).
    pub parts_in_flight: Option<usize>,
    /// Ranged GETs of one blob sent at once, each of `part_size` bytes, for blobs larger than a
    /// part ([`DEFAULT_RANGED_READS`], one plain GET, when `None`). A pull holds up to one
    /// part more than this in memory.
    pub ranged_reads: Option<usize>,
    /// How many times a failed request is retried (3 when `None`).
    pub max_retries: Option<usize>,
    /// How long one request may take, retries included (120 s when `None`).
    #[serde(
        rename = "timeout_secs",
        deserialize_with = "seconds",
        serialize_with = "as_seconds"
    )]
    pub timeout: Option<Duration>,
}

impl std::fmt::Debug for AzureOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureOptions")
            .field("container", &self.container)
            .field("prefix", &self.prefix)
            .field("account", &self.account)
            .field("endpoint", &self.endpoint)
            .field("part_size", &self.part_size)
            .finish_non_exhaustive()
    }
}

impl AzureOptions {
    /// Options for `azure://CONTAINER[/PREFIX]`, everything else from the environment.
    pub fn from_url(url: &str) -> Result<AzureOptions> {
        let (container, prefix) = split_url(url, "azure://", "CONTAINER")?;
        Ok(AzureOptions {
            container: container.to_owned(),
            prefix,
            ..AzureOptions::default()
        })
    }

    /// Connects (lazily: nothing is sent until the first request).
    pub fn build(&self) -> Result<ObjectStorage> {
        let part = self.part_size.unwrap_or(DEFAULT_PART_SIZE).max(1);
        let timeout = self.timeout.unwrap_or(Duration::from_secs(120));
        let mut builder = MicrosoftAzureBuilder::from_env()
            .with_container_name(&self.container)
            .with_retry(retry(self.max_retries, timeout))
            .with_config(
                AzureConfigKey::Client(ClientConfigKey::Timeout),
                format!("{}ms", timeout.as_millis()),
            )
            .with_config(
                AzureConfigKey::Client(ClientConfigKey::ConnectTimeout),
                "5s",
            );
        if let Some(account) = &self.account {
            builder = builder.with_account(account);
        }
        if let Some(key) = &self.access_key {
            builder = builder.with_access_key(key);
        }
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint.clone());
        }
        if let Some(emulator) = self.use_emulator {
            builder = builder.with_use_emulator(emulator);
        }
        if let Some(allow) = self.allow_http {
            builder = builder.with_allow_http(allow);
        }
        let azure: Arc<MicrosoftAzure> = Arc::new(builder.build().map_err(Error::storage)?);
        Ok(ObjectStorage::new(azure, &self.prefix)
            .with_part_size(1, part)
            .with_parts_in_flight(self.parts_in_flight.unwrap_or(DEFAULT_PARTS_IN_FLIGHT))
            .with_ranged_reads(self.ranged_reads.unwrap_or(DEFAULT_RANGED_READS), part)
            .with_shared_upload_parts())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, OnceLock};

    use registry_core::Storage;

    use super::*;
    use crate::testing::Azurite;

    fn azurite() -> &'static Azurite {
        static AZURITE: OnceLock<Azurite> = OnceLock::new();
        AZURITE.get_or_init(Azurite::start)
    }

    pub(crate) fn azure_container() -> Arc<dyn Storage> {
        let name = format!("suite-{}", uuid::Uuid::new_v4().simple());
        let options = AzureOptions {
            prefix: "registry".into(),
            part_size: Some(1024 * 1024),
            ..azurite().container(&name)
        };
        Arc::new(options.build().expect("azure options"))
    }

    /// Why pushes on Azure write keys of their own: two multipart uploads of one key, and the
    /// first commit leaves the second nothing to commit (S3 keeps them apart).
    #[cfg_attr(
        not(has_azurite),
        ignore = "skipped: azurite is not installed (npm install azurite)"
    )]
    #[tokio::test]
    async fn azure_commits_drop_the_blocks_of_other_uploads() {
        use futures::StreamExt;
        use registry_core::StorageExt;
        let s = azure_container();
        assert!(!s.capabilities().uploads_isolated);
        let part = |data: &'static [u8]| {
            futures::stream::once(async move { Ok(bytes::Bytes::from_static(data)) }).boxed()
        };
        let first = s.create_multipart("k").await.unwrap();
        let second = s.create_multipart("k").await.unwrap();
        let p1 = s.put_part("k", &first, 0, part(b"first")).await.unwrap();
        let p2 = s.put_part("k", &second, 0, part(b"other")).await.unwrap();
        s.complete_multipart("k", &first, vec![p1]).await.unwrap();
        assert!(s.complete_multipart("k", &second, vec![p2]).await.is_err());
        assert_eq!(s.get_bytes("k").await.unwrap(), "first");
    }

    /// Against Azurite over HTTP. All cases but three that assume S3's upload ids, which Azure
    /// lacks (see the module documentation): `multipart_complete` and `multipart_abort` (a late
    /// block is accepted, and never becomes part of the blob), and `multipart_racing_uploads`
    /// (the first commit discards the others' blocks: the registry gives each push its own key
    /// there, which `azure_pushes_of_one_blob_race_without_loss` checks).
    mod azure {
        registry_core::storage_testsuite!(@cases
            [#[cfg_attr(not(has_azurite), ignore = "skipped: azurite is not installed (npm install azurite)")]]
            {
            let store = super::azure_container();
            move || store.clone()
        };
            put_get_head_delete, ranges, immutable_reads, empty_objects, listing, pages, rename, rename_if_absent,
            concurrent_puts, multipart_zero_parts, multipart_resumed_by_new_instance,
            multipart_invisible_until_complete, multipart_failed_part_retried,
            multipart_receipts_name_their_bytes, streams_large_objects);
    }

    #[test]
    fn urls_name_a_container_and_a_prefix() {
        let a = AzureOptions::from_url("azure://box/some/prefix").unwrap();
        assert_eq!(
            (a.container.as_str(), a.prefix.as_str()),
            ("box", "some/prefix")
        );
        let a = AzureOptions::from_url("azure://box").unwrap();
        assert_eq!((a.container.as_str(), a.prefix.as_str()), ("box", ""));
        assert!(AzureOptions::from_url("azure:///x").is_err());
        assert!(AzureOptions::from_url("s3://x").is_err());
    }
}
