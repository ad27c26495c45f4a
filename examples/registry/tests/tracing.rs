//! `[tracing] otlp_endpoint` through the real binary: a collector started here receives the spans
//! over OTLP/HTTP; a manifest push's `request` span is there with its method and path, and the
//! `storage` spans of that request are its children in the same trace.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use support::wait::until;
use support::{Api, Server, TestImage, noise};

/// Every span received so far.
type Received = Arc<Mutex<Vec<Span>>>;

/// An OTLP/HTTP collector on a free loopback port, keeping the spans it receives.
async fn collector() -> (String, Received) {
    let received: Received = Arc::default();
    let keep = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let keep = keep.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).unwrap();
                let spans = request
                    .resource_spans
                    .into_iter()
                    .flat_map(|r| r.scope_spans)
                    .flat_map(|s| s.spans);
                keep.lock().unwrap().extend(spans);
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), received)
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| {
        match a.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn request_and_storage_spans_reach_an_otlp_collector() {
    let (endpoint, received) = collector().await;
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("tracing.toml");
    std::fs::write(
        &config,
        format!("[tracing]\notlp_endpoint = \"{endpoint}\"\nservice_name = \"registry-test\"\n"),
    )
    .unwrap();
    let server = Server::start_with(
        &format!("fs:{}", tmp.path().join("data").display()),
        &["--config", &config.to_string_lossy()],
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    );
    let image = TestImage::new(1, vec![noise(1, 1000)]);
    Api::new(&server.addr)
        .push_image("team/app", "v1", &image)
        .await
        .unwrap();

    until(
        "a request span with storage children",
        Duration::from_secs(60),
        async || {
            {
                let spans = received.lock().unwrap();
                let push = spans.iter().find(|s| {
                    s.name == "request"
                        && attribute(s, "method") == Some("PUT")
                        && attribute(s, "path") == Some("/v2/team/app/manifests/v1")
                });
                if let Some(push) = push {
                    let storage: Vec<&Span> = spans
                        .iter()
                        .filter(|s| s.name == "storage" && s.parent_span_id == push.span_id)
                        .collect();
                    if storage
                        .iter()
                        .any(|s| attribute(s, "operation") == Some("put"))
                    {
                        assert!(storage.iter().all(|s| s.trace_id == push.trace_id));
                        assert_eq!(attribute(push, "route"), Some("manifest"));
                        assert_eq!(attribute(push, "repository"), Some("team/app"));
                        return true;
                    }
                }
            }
            false
        },
    )
    .await;
}
