//! Webhook notifications: each endpoint gets the events its filter lets through, in a bounded queue
//! drained by its own task, posted as distribution's JSON envelope with retries and backoff. A slow
//! or failing endpoint fills its queue; further events for it are dropped and counted, and requests
//! never wait.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use registry_http::events::{Event, EventSink};
use registry_http::metrics::Metrics;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc};

/// The content type of the posted envelope, as distribution sends it.
const ENVELOPE_TYPE: &str = "application/vnd.docker.distribution.events.v1+json";

/// Events posted in one request, at most.
const BATCH: usize = 64;

/// The `[notifications]` table.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsConfig {
    /// Where to post events (`[[notifications.endpoints]]`).
    pub endpoints: Vec<EndpointConfig>,
}

/// One webhook endpoint.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// A name for logs and metrics; the URL when absent.
    pub name: Option<String>,
    /// The URL events are posted to.
    pub url: String,
    /// Headers sent with every post (`Authorization`, …).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Actions to send: `push`, `pull`, `delete`; all when empty.
    #[serde(default)]
    pub actions: Vec<String>,
    /// Media types to send (`application/octet-stream` for blobs); all when empty.
    #[serde(default)]
    pub media_types: Vec<String>,
    /// Actions never to send (distribution's `ignore.actions`).
    #[serde(default)]
    pub ignore_actions: Vec<String>,
    /// Media types never to send (distribution's `ignore.mediatypes`).
    #[serde(default)]
    pub ignore_media_types: Vec<String>,
    /// Seconds one post may take.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Events waiting for this endpoint, at most; more are dropped.
    #[serde(default = "default_queue")]
    pub queue_size: usize,
    /// Retries of a failed post before its events are dropped.
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// Wait before the first retry, in milliseconds; doubled at each retry, at most 30 s.
    #[serde(default = "default_backoff")]
    pub backoff_ms: u64,
}

fn default_timeout() -> u64 {
    5
}

fn default_queue() -> usize {
    1024
}

fn default_retries() -> u32 {
    5
}

fn default_backoff() -> u64 {
    500
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    endpoint: String,
    reason: &'static str,
}

/// Events queued or being posted, over every endpoint, and a signal each time some are done:
/// what [`Webhooks::flush`] waits on.
#[derive(Default)]
struct Pending {
    events: AtomicUsize,
    done: Notify,
}

impl Pending {
    fn finished(&self, n: usize) {
        self.events.fetch_sub(n, Ordering::AcqRel);
        self.done.notify_waiters();
    }
}

/// Counters shared by every endpoint.
#[derive(Clone, Default)]
struct Counters {
    sent: Family<EndpointLabels, Counter>,
    retries: Family<EndpointLabels, Counter>,
    dropped: Family<DropLabels, Counter>,
}

/// An endpoint checked and ready to start.
struct Endpoint {
    name: String,
    url: reqwest::Url,
    headers: reqwest::header::HeaderMap,
    config: EndpointConfig,
}

impl Endpoint {
    fn wants(&self, event: &Event) -> bool {
        let c = &self.config;
        let action = event.action.as_str();
        let media_type = event.target.media_type.as_ref();
        let listed =
            |list: &[String], value: Option<&String>| value.is_some_and(|v| list.contains(v));
        (c.actions.is_empty() || c.actions.iter().any(|a| a == action))
            && (c.media_types.is_empty() || listed(&c.media_types, media_type))
            && !c.ignore_actions.iter().any(|a| a == action)
            && !listed(&c.ignore_media_types, media_type)
    }
}

/// Checks the `[notifications]` table: URLs, header names and values, actions.
fn check(config: &NotificationsConfig) -> Result<Vec<Endpoint>, String> {
    config
        .endpoints
        .iter()
        .map(|e| {
            let name = e.name.clone().unwrap_or_else(|| e.url.clone());
            let bad = |what: String| format!("notifications endpoint {name}: {what}");
            let url = reqwest::Url::parse(&e.url).map_err(|err| bad(format!("url: {err}")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(bad("url must be http or https".into()));
            }
            let mut headers = reqwest::header::HeaderMap::new();
            for (k, v) in &e.headers {
                let k = reqwest::header::HeaderName::try_from(k.as_str())
                    .map_err(|err| bad(format!("header {k}: {err}")))?;
                let v = reqwest::header::HeaderValue::try_from(v.as_str())
                    .map_err(|err| bad(format!("header {k}: {err}")))?;
                headers.insert(k, v);
            }
            if let Some(a) = e
                .actions
                .iter()
                .chain(&e.ignore_actions)
                .find(|a| !matches!(a.as_str(), "push" | "pull" | "delete"))
            {
                return Err(bad(format!("unknown action {a:?} (push, pull or delete)")));
            }
            if e.queue_size == 0 {
                return Err(bad("queue_size must be at least 1".into()));
            }
            Ok(Endpoint {
                name,
                url,
                headers,
                config: e.clone(),
            })
        })
        .collect()
}

/// Checks a configuration without starting anything, for `check-config`.
pub fn validate(config: &NotificationsConfig) -> Result<(), String> {
    check(config).map(drop)
}

/// The running webhooks: an [`EventSink`] that queues events for each endpoint's task.
pub struct Webhooks {
    queues: Vec<(Arc<Endpoint>, mpsc::Sender<Event>)>,
    counters: Counters,
    pending: Arc<Pending>,
}

impl Webhooks {
    /// Starts one delivery task per endpoint; `None` when there are no endpoints.
    pub fn start(
        config: &NotificationsConfig,
        metrics: &Metrics,
    ) -> Result<Option<Arc<Webhooks>>, String> {
        let endpoints = check(config)?;
        if endpoints.is_empty() {
            return Ok(None);
        }
        let counters = Counters::default();
        metrics.register(
            "notifications_sent_events",
            "Events an endpoint accepted",
            counters.sent.clone(),
        );
        metrics.register(
            "notifications_retries",
            "Posts retried after a failure",
            counters.retries.clone(),
        );
        metrics.register(
            "notifications_dropped_events",
            "Events dropped: queue full, or every retry failed",
            counters.dropped.clone(),
        );
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| format!("notifications: {e}"))?;
        let pending = Arc::new(Pending::default());
        let mut queues = Vec::new();
        for endpoint in endpoints {
            let endpoint = Arc::new(endpoint);
            let (tx, rx) = mpsc::channel(endpoint.config.queue_size);
            tokio::spawn(deliver(
                endpoint.clone(),
                rx,
                client.clone(),
                counters.clone(),
                pending.clone(),
            ));
            queues.push((endpoint, tx));
        }
        Ok(Some(Arc::new(Webhooks {
            queues,
            counters,
            pending,
        })))
    }

    /// Waits until every event sent so far was posted (or dropped after its retries), for
    /// `within` at most: what a command does before it exits. False when some were left.
    pub async fn flush(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let done = self.pending.done.notified();
            if self.pending.events.load(Ordering::Acquire) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, done).await.is_err() {
                return false;
            }
        }
    }
}

impl EventSink for Webhooks {
    fn send(&self, event: Event) {
        for (endpoint, queue) in &self.queues {
            if !endpoint.wants(&event) {
                continue;
            }
            self.pending.events.fetch_add(1, Ordering::AcqRel);
            if queue.try_send(event.clone()).is_err() {
                self.pending.finished(1);
                self.counters
                    .dropped
                    .get_or_create(&DropLabels {
                        endpoint: endpoint.name.clone(),
                        reason: "queue_full",
                    })
                    .inc();
            }
        }
    }
}

/// Posts an endpoint's events as they come, up to [`BATCH`] per post, retrying with backoff.
async fn deliver(
    endpoint: Arc<Endpoint>,
    mut queue: mpsc::Receiver<Event>,
    client: reqwest::Client,
    counters: Counters,
    pending: Arc<Pending>,
) {
    let labels = EndpointLabels {
        endpoint: endpoint.name.clone(),
    };
    let timeout = Duration::from_secs(endpoint.config.timeout_secs);
    while let Some(first) = queue.recv().await {
        let mut events = vec![first];
        while events.len() < BATCH {
            match queue.try_recv() {
                Ok(e) => events.push(e),
                Err(_) => break,
            }
        }
        let body = match serde_json::to_vec(&serde_json::json!({ "events": events })) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(endpoint = %endpoint.name, "cannot encode events: {e}");
                pending.finished(events.len());
                continue;
            }
        };
        let mut backoff = Duration::from_millis(endpoint.config.backoff_ms);
        let mut attempt = 0;
        loop {
            let sent = client
                .post(endpoint.url.clone())
                .headers(endpoint.headers.clone())
                .header(reqwest::header::CONTENT_TYPE, ENVELOPE_TYPE)
                .timeout(timeout)
                .body(body.clone())
                .send()
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| match r.status() {
                    s if s.is_success() => Ok(()),
                    s => Err(format!("answered {s}")),
                });
            match sent {
                Ok(()) => {
                    counters
                        .sent
                        .get_or_create(&labels)
                        .inc_by(events.len() as u64);
                    break;
                }
                Err(e) if attempt < endpoint.config.max_retries => {
                    tracing::debug!(endpoint = %endpoint.name, attempt, "notification failed: {e}");
                    counters.retries.get_or_create(&labels).inc();
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    attempt += 1;
                }
                Err(e) => {
                    tracing::warn!(endpoint = %endpoint.name, events = events.len(), "notification dropped: {e}");
                    counters
                        .dropped
                        .get_or_create(&DropLabels {
                            endpoint: endpoint.name.clone(),
                            reason: "failed",
                        })
                        .inc_by(events.len() as u64);
                    break;
                }
            }
        }
        pending.finished(events.len());
    }
}
