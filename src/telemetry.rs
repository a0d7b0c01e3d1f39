//! Traces over OTLP when `[telemetry] otlp_endpoint` is set: the spans the server already
//! records (a request's span with its `request_id`, the room's span with the journal `seq`
//! its event got, the journal's batch span) go to an OpenTelemetry collector as well as to
//! the log.
//!
//! The exporter speaks OTLP/HTTP with JSON bodies to `<otlp_endpoint>/v1/traces`, from the
//! SDK's own batch thread with a blocking client: no request waits for it, and a collector
//! that is down costs dropped spans (the batch queue is bounded), never a slower booking.

use std::time::Duration;

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::{LevelFilter, Targets};

use crate::config::TelemetrySection;

/// Longest one export may take before the batch is dropped.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest shutdown waits to send the spans still queued.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(3);

/// The running exporter; [`Exporter::shutdown`] sends what is still queued.
#[derive(Debug)]
pub struct Exporter {
    /// The SDK's provider, which owns the batch thread.
    provider: SdkTracerProvider,
}

impl Exporter {
    /// Sends the queued spans (up to [`FLUSH_TIMEOUT`]) and stops the batch thread.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown_with_timeout(FLUSH_TIMEOUT) {
            tracing::warn!(error = %e, "OTLP exporter did not shut down cleanly");
        }
    }
}

/// The span layer for `telemetry`, and the exporter behind it; `None` when no endpoint is
/// configured. Spans of the innkeep crates at debug level and above are exported (the
/// room and journal spans are debug), whatever the log filter says.
pub fn layer<S>(
    telemetry: &TelemetrySection,
) -> anyhow::Result<Option<(impl tracing_subscriber::Layer<S>, Exporter)>>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let Some(endpoint) = &telemetry.otlp_endpoint else {
        return Ok(None);
    };
    let traces = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(traces)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .context("config key `telemetry.otlp_endpoint`: cannot build the OTLP exporter")?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder_empty()
                .with_service_name(telemetry.service_name.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer("innkeep");
    let ours = Targets::new()
        .with_target("innkeep", LevelFilter::DEBUG)
        .with_target("innkeep_http", LevelFilter::DEBUG)
        .with_target("innkeep_actors", LevelFilter::DEBUG)
        .with_target("innkeep_persistence", LevelFilter::DEBUG);
    let layer = tracing_subscriber::Layer::with_filter(
        tracing_opentelemetry::layer().with_tracer(tracer),
        ours,
    );
    Ok(Some((layer, Exporter { provider })))
}
