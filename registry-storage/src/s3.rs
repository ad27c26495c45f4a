//! [`S3Options`]: an S3-compatible bucket (AWS, Ceph RGW, MinIO, Garage) as an [`ObjectStorage`],
//! from an `s3://BUCKET[/PREFIX]` URL, the `[s3]` configuration table and the `AWS_*` variables.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use object_store::ClientConfigKey;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use registry_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::client::{as_seconds, retry, seconds, split_url};
use crate::object::{
    DEFAULT_PART_SIZE, DEFAULT_PARTS_IN_FLIGHT, DEFAULT_RANGED_READS, MIN_PART_SIZE, ObjectStorage,
};

/// Where and how to reach an S3-compatible bucket. Whatever is left `None` comes from the standard
/// `AWS_*` environment variables (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP`, …).
///
/// Deserializes from a configuration table of the same keys (`timeout_secs` for the timeout),
/// without `bucket` and `prefix`, which come from the `s3://` URL; unknown keys are refused.
#[derive(Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Options {
    /// The bucket.
    #[serde(skip)]
    pub bucket: String,
    /// A key prefix inside the bucket, so that one bucket can hold several registries.
    #[serde(skip)]
    pub prefix: String,
    /// The service's URL, for anything but AWS itself (`http://127.0.0.1:9000`).
    pub endpoint: Option<String>,
    /// The region (some engines check it).
    pub region: Option<String>,
    /// The access key id.
    pub access_key_id: Option<String>,
    /// The secret access key.
    pub secret_access_key: Option<String>,
    /// Allow plain `http://` endpoints.
    pub allow_http: Option<bool>,
    /// Bytes per multipart part, at least 5 MiB ([`DEFAULT_PART_SIZE`] when `None`). Each upload
    /// holds up to `parts_in_flight + 1` parts in memory.
    pub part_size: Option<u64>,
    /// Parts of one upload sent at once ([`DEFAULT_PARTS_IN_FLIGHT`] when `None`).
    pub parts_in_flight: Option<usize>,
    /// Ranged GETs of one blob sent at once, each of `part_size` bytes, for blobs larger than a
    /// part ([`DEFAULT_RANGED_READS`], one plain GET, when `None`). A pull holds up to one
    /// part more than this in memory.
    pub ranged_reads: Option<usize>,
    /// How many times a failed request is retried (3 when `None`).
    pub max_retries: Option<usize>,
    /// How long one S3 request may take, retries included, before the registry answers 503
    /// (120 s when `None`: completing a multipart upload of many GB takes S3 a while). An
    /// unreachable endpoint fails sooner, after a 5 s connect timeout per try.
    #[serde(
        rename = "timeout_secs",
        deserialize_with = "seconds",
        serialize_with = "as_seconds"
    )]
    pub timeout: Option<Duration>,
}

impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Options")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("part_size", &self.part_size)
            .field("parts_in_flight", &self.parts_in_flight)
            .field("ranged_reads", &self.ranged_reads)
            .finish_non_exhaustive()
    }
}

impl S3Options {
    /// Options for `s3://BUCKET[/PREFIX]`, everything else from the environment.
    pub fn from_url(url: &str) -> Result<S3Options> {
        let (bucket, prefix) = split_url(url, "s3://", "BUCKET")?;
        Ok(S3Options {
            bucket: bucket.to_owned(),
            prefix,
            ..S3Options::default()
        })
    }

    /// Connects (lazily: nothing is sent until the first request). Requests are path-style,
    /// conditional writes are off, and pulls can be redirected to signed URLs.
    pub fn build(&self) -> Result<ObjectStorage> {
        let part = self.part_size.unwrap_or(DEFAULT_PART_SIZE);
        if part < MIN_PART_SIZE {
            return Err(Error::storage(format!(
                "part size {part} is under S3's minimum of {MIN_PART_SIZE} bytes"
            )));
        }
        let timeout = self.timeout.unwrap_or(Duration::from_secs(120));
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&self.bucket)
            .with_virtual_hosted_style_request(false)
            .with_conditional_put(S3ConditionalPut::Disabled)
            .with_retry(retry(self.max_retries, timeout))
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
                format!("{}ms", timeout.as_millis()),
            )
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                "5s",
            );
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &self.region {
            builder = builder.with_region(region);
        }
        if let Some(id) = &self.access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = &self.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        if let Some(allow) = self.allow_http {
            builder = builder.with_allow_http(allow);
        }
        let s3: Arc<AmazonS3> = Arc::new(builder.build().map_err(Error::storage)?);
        Ok(ObjectStorage::new(s3.clone(), &self.prefix)
            .with_part_size(MIN_PART_SIZE, part)
            .with_parts_in_flight(self.parts_in_flight.unwrap_or(DEFAULT_PARTS_IN_FLIGHT))
            .with_ranged_reads(self.ranged_reads.unwrap_or(DEFAULT_RANGED_READS), part)
            .with_signer(s3))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls() {
        let o = S3Options::from_url("s3://bucket/some/prefix/").unwrap();
        assert_eq!(
            (o.bucket.as_str(), o.prefix.as_str()),
            ("bucket", "some/prefix")
        );
        let o = S3Options::from_url("s3://bucket").unwrap();
        assert_eq!((o.bucket.as_str(), o.prefix.as_str()), ("bucket", ""));
        assert!(S3Options::from_url("s3:///x").is_err());
        assert!(S3Options::from_url("http://bucket").is_err());
        let small = S3Options {
            part_size: Some(1024),
            ..S3Options::from_url("s3://b").unwrap()
        };
        assert!(small.build().is_err(), "parts under 5 MiB accepted");
    }
}
