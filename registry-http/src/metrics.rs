//! Prometheus metrics: requests, latencies, bytes, uploads in flight and storage operations,
//! served at `/metrics` in the OpenMetrics text format when [`crate::api::HttpOptions::metrics`] is set.
//!
//! Labels are route kinds (`manifest`, `blob`, `upload`…), methods, statuses and storage
//! operations, never repository names or digests: the endpoint is safe to leave unauthenticated
//! and its series stay few. Embedders add their own metrics with [`Metrics::register`].
//!
//! ```
//! use std::sync::Arc;
//! use registry_core::{Registry, RegistryConfig};
//! use registry_http::metrics::{MeteredStorage, Metrics};
//!
//! let metrics = Arc::new(Metrics::new());
//! let storage = MeteredStorage::new(Arc::new(registry_storage::MemoryStorage::new()), metrics.clone());
//! let registry = Registry::new(Arc::new(storage), RegistryConfig::default());
//! let options = registry_http::HttpOptions { metrics: Some(metrics), ..Default::default() };
//! let app = registry_http::router_with(registry, options);
//! # drop(app);
//! ```

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry as Collector};
use registry_core::feed::{Record, Subscriber};
use registry_core::storage::Result;
use registry_core::{
    ByteStream, Capabilities, GetRange, GetResult, ListResult, Multipart, MultipartId, ObjectMeta,
    PartId, SignUrls, Storage, StorageError,
};

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChangeLabels {
    kind: &'static str,
    origin: &'static str,
}

fn latency_histogram() -> Histogram {
    // 1 ms to about 65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// The registry's metrics, and the collector they are registered in.
pub struct Metrics {
    collector: Mutex<Collector>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    received: Counter,
    sent: Counter,
    uploads_in_flight: Gauge,
    storage_latency: Family<OperationLabels, Histogram, fn() -> Histogram>,
    storage_errors: Family<OperationLabels, Counter>,
    changes: Family<ChangeLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of metrics, all named `registry_…`.
    pub fn new() -> Metrics {
        let requests = Family::default();
        let latency = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        let (received, sent) = (Counter::default(), Counter::default());
        let uploads_in_flight = Gauge::default();
        let storage_latency = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        let storage_errors = Family::default();
        let changes = Family::default();
        let mut c = Collector::with_prefix("registry");
        c.register(
            "http_requests",
            "HTTP requests answered, by route, method and status",
            requests.clone(),
        );
        c.register(
            "http_request_duration_seconds",
            "Time to answer a request (to the response head), by route and method",
            latency.clone(),
        );
        c.register(
            "http_received_bytes",
            "Request body bytes received",
            received.clone(),
        );
        c.register(
            "http_sent_bytes",
            "Response body bytes sent, as announced by Content-Length",
            sent.clone(),
        );
        c.register(
            "uploads_in_flight",
            "Upload requests (POST, PATCH, PUT) being served",
            uploads_in_flight.clone(),
        );
        c.register(
            "storage_operation_duration_seconds",
            "Time storage operations take, by operation",
            storage_latency.clone(),
        );
        c.register(
            "storage_errors",
            "Storage operations that failed (a missing key is not a failure), by operation",
            storage_errors.clone(),
        );
        c.register(
            "changes",
            "Changes committed to the store, by kind and origin (api, ui, admin, cli, gc, \
             retention, sync, mirror), counted by the subscriber Metrics::feed gives",
            changes.clone(),
        );
        Metrics {
            collector: Mutex::new(c),
            requests,
            latency,
            received,
            sent,
            uploads_in_flight,
            storage_latency,
            storage_errors,
            changes,
        }
    }

    /// A subscriber of the registry's change feed counting each committed change in
    /// `registry_changes_total{kind,origin}`; attach it with `Registry::with_subscriber`.
    pub fn feed(self: &Arc<Self>) -> Arc<dyn Subscriber> {
        Arc::new(FeedCounter(self.clone()))
    }

    /// Adds a metric of the embedder's (or of a part of the server: notifications, collection);
    /// it is named `registry_<name>`.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.lock().register(name, help, metric);
    }

    /// Every metric, in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.lock());
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Collector> {
        self.collector
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn request(
        &self,
        route: &'static str,
        method: &http::Method,
        status: u16,
        elapsed: Duration,
    ) {
        let method = method.as_str().to_owned();
        self.latency
            .get_or_create(&RouteLabels {
                route,
                method: method.clone(),
            })
            .observe(elapsed.as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
    }

    pub(crate) fn received(&self, bytes: u64) {
        self.received.inc_by(bytes);
    }

    pub(crate) fn sent(&self, bytes: u64) {
        self.sent.inc_by(bytes);
    }

    /// Counts an upload request until the guard drops.
    pub(crate) fn upload_started(self: &Arc<Self>) -> UploadGuard {
        self.uploads_in_flight.inc();
        UploadGuard(self.clone())
    }

    fn storage_op<T>(&self, operation: &'static str, started: Instant, result: &Result<T>) {
        let labels = OperationLabels { operation };
        self.storage_latency
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        if let Err(e) = result
            && !e.is_not_found()
        {
            self.storage_errors.get_or_create(&labels).inc();
        }
    }
}

/// Keeps an upload counted in flight.
pub(crate) struct UploadGuard(Arc<Metrics>);

impl Drop for UploadGuard {
    fn drop(&mut self) {
        self.0.uploads_in_flight.dec();
    }
}

/// A [`Storage`] that times every operation of the one it wraps and counts its failures, each in
/// a `storage` span (target `registry_http::storage`, level debug, field `operation`) under the
/// request's, for tracing.
#[derive(Debug)]
pub struct MeteredStorage {
    inner: Arc<dyn Storage>,
    metrics: Arc<Metrics>,
}

impl MeteredStorage {
    /// Wraps `inner`, recording into `metrics`.
    pub fn new(inner: Arc<dyn Storage>, metrics: Arc<Metrics>) -> MeteredStorage {
        MeteredStorage { inner, metrics }
    }

    async fn timed<T>(
        &self,
        operation: &'static str,
        op: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let span = tracing::debug_span!(target: "registry_http::storage", "storage", operation);
        let started = Instant::now();
        let result = tracing::Instrument::instrument(op, span).await;
        self.metrics.storage_op(operation, started, &result);
        result
    }
}

// A wrapper must forward every method: a provided one left out falls back to its default
// (a whole listing instead of a page, a check-then-rename instead of an atomic one).
#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl Storage for MeteredStorage {
    async fn get(&self, key: &str, range: Option<GetRange>) -> Result<GetResult> {
        self.timed("get", self.inner.get(key, range)).await
    }

    async fn get_immutable(
        &self,
        key: &str,
        size: u64,
        range: Option<GetRange>,
    ) -> Result<GetResult> {
        self.timed("get", self.inner.get_immutable(key, size, range))
            .await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.timed("head", self.inner.head(key)).await
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        self.timed("put", self.inner.put(key, data)).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.timed("delete", self.inner.delete(key)).await
    }

    async fn list(&self, prefix: &str) -> Result<ListResult> {
        self.timed("list", self.inner.list(prefix)).await
    }

    async fn list_after(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ObjectMeta>> {
        self.timed("list", self.inner.list_after(prefix, after, limit))
            .await
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.timed("rename", self.inner.rename(from, to)).await
    }

    async fn rename_if_absent(&self, from: &str, to: &str) -> Result<bool> {
        self.timed("rename", self.inner.rename_if_absent(from, to))
            .await
    }

    fn list_all(&self, prefix: &str) -> futures::stream::BoxStream<'_, Result<ObjectMeta>> {
        self.inner.list_all(prefix)
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn signer(&self) -> Option<&dyn SignUrls> {
        self.inner.signer().map(|_| self as &dyn SignUrls)
    }
}

#[async_trait]
impl SignUrls for MeteredStorage {
    async fn signed_url(&self, key: &str, expires_in: Duration) -> Result<String> {
        let signer = self.inner.signer().ok_or(StorageError::Unsupported {
            operation: "signed URLs",
        })?;
        self.timed("signed_url", signer.signed_url(key, expires_in))
            .await
    }
}

#[async_trait]
impl Multipart for MeteredStorage {
    async fn create_multipart(&self, key: &str) -> Result<MultipartId> {
        self.timed("create_multipart", self.inner.create_multipart(key))
            .await
    }

    async fn put_part(
        &self,
        key: &str,
        id: &MultipartId,
        part_idx: usize,
        data: ByteStream,
    ) -> Result<PartId> {
        self.timed("put_part", self.inner.put_part(key, id, part_idx, data))
            .await
    }

    async fn complete_multipart(
        &self,
        key: &str,
        id: &MultipartId,
        parts: Vec<PartId>,
    ) -> Result<()> {
        self.timed(
            "complete_multipart",
            self.inner.complete_multipart(key, id, parts),
        )
        .await
    }

    async fn abort_multipart(&self, key: &str, id: &MultipartId) -> Result<()> {
        self.timed("abort_multipart", self.inner.abort_multipart(key, id))
            .await
    }
}

/// Counts committed changes; see [`Metrics::feed`].
struct FeedCounter(Arc<Metrics>);

#[async_trait]
impl Subscriber for FeedCounter {
    async fn committed(&self, record: &Record) {
        self.0
            .changes
            .get_or_create(&ChangeLabels {
                kind: record.change.kind(),
                origin: record.caller.origin.as_str(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    /// The backend suite through the wrapper, over the in-memory store.
    mod metered {
        registry_core::storage_testsuite!({
            let store = registry_storage::MemoryStorage::new();
            let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
            move || {
                let inner = std::sync::Arc::new(store.clone());
                let metered = crate::metrics::MeteredStorage::new(inner, metrics.clone());
                std::sync::Arc::new(metered) as std::sync::Arc<dyn registry_core::Storage>
            }
        });
    }
}
