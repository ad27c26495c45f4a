//! Logging to stderr (written in batches by a thread of its own: [`crate::logwriter`]) and, with
//! `[tracing] otlp_endpoint`, spans exported with OpenTelemetry's OTLP exporter (HTTP, protobuf):
//! each request's span (`request`, with its id, method, path, route and repository) and, under it,
//! one span per storage call (`storage`, with the operation), so that a slow request can be
//! followed into its S3 calls.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Config, LogFormat};

/// Log lines are written and spans exported while this lives; dropping it flushes both.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    _log_writer: crate::logwriter::Guard,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("registry: flushing traces failed: {e}");
        }
    }
}

/// Installs logging as `[log]` says (filtered by `RUST_LOG`, else `[log] level`) and, when
/// `[tracing] otlp_endpoint` is set, the span exporter. An exporter that cannot be built is
/// reported and left out; logging goes on.
pub fn init(config: &Config) -> Telemetry {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if !config.log.requests
        && let Ok(directive) = format!("{}=off", registry_http::REQUEST_LOG_TARGET).parse()
    {
        filter = filter.add_directive(directive);
    }
    // A request never waits for the write (a pipe read slowly, a terminal) nor wakes a thread.
    let (writer, log_writer) = crate::logwriter::spawn(std::io::stderr());
    let fields: Vec<(String, String)> = config.log.fields.clone().into_iter().collect();
    let writer = writer.with_fields(&fields, config.log.format == LogFormat::Json);
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    let fmt = match config.log.format {
        LogFormat::Json => fmt
            .json()
            .with_current_span(true)
            .with_filter(filter)
            .boxed(),
        LogFormat::Text => fmt
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(filter)
            .boxed(),
    };
    let (otel, provider, failure) = match exporter(config) {
        Ok(Some(provider)) => {
            let tracer = provider.tracer("registry");
            // Requests and the rest at info; storage calls are debug spans, exported only here.
            let spans = tracing_subscriber::filter::Targets::new()
                .with_default(tracing::Level::INFO)
                .with_target("registry_http::storage", tracing::Level::DEBUG);
            let layer = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(spans);
            (Some(layer), Some(provider), None)
        }
        Ok(None) => (None, None, None),
        Err(e) => (None, None, Some(e)),
    };
    tracing_subscriber::registry().with(fmt).with(otel).init();
    if let Some(e) = failure {
        tracing::error!("traces are not exported: {e}");
    } else if let Some(endpoint) = &config.tracing.otlp_endpoint {
        tracing::info!(%endpoint, "exporting traces with OTLP");
    }
    Telemetry {
        provider,
        _log_writer: log_writer,
    }
}

/// The tracer provider exporting to `[tracing] otlp_endpoint` (`/v1/traces` added when the URL
/// has no path), or `None` without one.
fn exporter(config: &Config) -> Result<Option<SdkTracerProvider>, String> {
    let Some(endpoint) = &config.tracing.otlp_endpoint else {
        return Ok(None);
    };
    let mut url = reqwest::Url::parse(endpoint)
        .map_err(|e| format!("[tracing] otlp_endpoint {endpoint:?}: {e}"))?;
    if url.path() == "/" {
        url.set_path("/v1/traces");
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(url.as_str())
        .build()
        .map_err(|e| format!("[tracing] otlp_endpoint {endpoint}: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(config.tracing.service_name.clone())
        .build();
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build(),
    ))
}
