//! Logging and tracing: one `tracing` subscriber for the whole process, with an OpenTelemetry
//! layer that exports spans over OTLP (Jaeger locally) through a bounded batch processor.
//!
//! Telemetry never blocks the pipeline: the batch queue is bounded, spans beyond it or in a
//! failed export are dropped and counted in `smsflow_trace_spans_dropped_total`.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter,
};
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

use serde::{Deserialize, Serialize};

use crate::validation::{ensure, InvalidSetting};

/// `[telemetry]`: logging and tracing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// `tracing` filter directive, e.g. `info,smsflow=debug`. `RUST_LOG` wins when set.
    pub log_filter: String,
    /// `text` or `json`.
    pub log_format: String,
    /// Export spans over OTLP (`OTEL_EXPORTER_OTLP_ENDPOINT`, default 127.0.0.1:4317).
    /// `OTEL_SDK_DISABLED=true` also turns export off.
    pub traces: bool,
    /// Most finished spans queued for export; beyond it spans are dropped, never waited for.
    pub trace_queue_size: usize,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings {
            log_filter: "info".into(),
            log_format: "text".into(),
            traces: true,
            trace_queue_size: 8192,
        }
    }
}

impl TelemetrySettings {
    /// Refuse values that cannot work.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        ensure(
            matches!(self.log_format.as_str(), "text" | "json"),
            "telemetry.log_format",
            "must be text or json",
        )
    }
}

/// Default OTLP/gRPC endpoint: the local stack's Jaeger.
const DEFAULT_OTLP_ENDPOINT: &str = "http://127.0.0.1:4317";

/// Keeps the exporter alive; dropping it flushes what is queued (bounded by a timeout).
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    // The OTLP client runs on its own small runtime so that exporting never competes with,
    // or depends on, the application's runtime (and survives per-test runtimes).
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            if let Err(e) = p.shutdown_with_timeout(Duration::from_secs(3)) {
                eprintln!("trace export shutdown: {e}");
            }
        }
        if let Some(rt) = self.runtime.take() {
            // Everything is flushed above; this must not block, as it may run inside async code.
            rt.shutdown_background();
        }
    }
}

/// Install the global subscriber and, unless disabled, the OTLP trace pipeline.
/// `RUST_LOG` overrides the configured log filter. A second call (tests) keeps the first.
pub fn init(settings: &TelemetrySettings, role: &str) -> TelemetryGuard {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.log_filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt_layer = if settings.log_format == "json" {
        fmt::layer().json().with_writer(std::io::stderr).boxed()
    } else {
        fmt::layer().with_writer(std::io::stderr).boxed()
    };
    let fmt_layer = fmt_layer.with_filter(filter);

    let mut guard = TelemetryGuard {
        provider: None,
        runtime: None,
    };
    let otel_layer = if traces_enabled(settings) {
        match build_provider(settings, role) {
            Ok((provider, runtime)) => {
                opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
                let tracer = provider.tracer("smsflow");
                guard.provider = Some(provider);
                guard.runtime = Some(runtime);
                // Spans for export are chosen by their own level, not by the log filter.
                Some(tracing_opentelemetry::layer()
                    // Keep per-span work small: no busy/idle timing, thread or code attributes.
                    .with_tracked_inactivity(false)
                    .with_threads(false)
                    .with_location(false)
                    .with_tracer(tracer).with_filter(EnvFilter::new(
                    "info,h2=off,hyper=off,tonic=off,tower=off,opentelemetry=off,rdkafka=off,scylla=off",
                )))
            }
            Err(e) => {
                eprintln!("trace export disabled: {e}");
                None
            }
        }
    } else {
        None
    };
    if tracing_subscriber::registry()
        .with(fmt_layer)
        .with(otel_layer)
        .try_init()
        .is_err()
    {
        // Already installed by an earlier call in this process; keep that one.
        guard.provider = None;
    }
    guard
}

fn traces_enabled(settings: &TelemetrySettings) -> bool {
    let sdk_disabled =
        std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    let exporter_none = std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v == "none");
    settings.traces && !sdk_disabled && !exporter_none
}

fn build_provider(
    settings: &TelemetrySettings,
    role: &str,
) -> Result<(SdkTracerProvider, tokio::runtime::Runtime), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("otlp-export")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the export runtime: {e}"))?;
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT"))
        .unwrap_or_else(|_| DEFAULT_OTLP_ENDPOINT.to_string());
    // The gRPC client must be built inside the runtime that will drive it; a scoped thread
    // makes that possible also when `init` is called from async code.
    let exporter = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                runtime.block_on(async {
                    opentelemetry_otlp::SpanExporter::builder()
                        .with_tonic()
                        .with_endpoint(endpoint.clone())
                        .with_timeout(Duration::from_secs(3))
                        .build()
                })
            })
            .join()
    })
    .map_err(|_| "the OTLP exporter builder panicked".to_string())?
    .map_err(|e| format!("cannot build the OTLP exporter for {endpoint}: {e}"))?;
    let processor = BatchSpanProcessor::builder(CountingExporter(exporter))
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(settings.trace_queue_size)
                .with_max_export_batch_size(512)
                .with_scheduled_delay(Duration::from_millis(500))
                .build(),
        )
        .build();
    // Resource::builder() reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
    let mut resource = Resource::builder().with_attributes([
        KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        KeyValue::new("service.instance.id", uuid::Uuid::new_v4().to_string()),
        KeyValue::new("smsflow.role", role.to_string()),
    ]);
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name("smsflow");
    }
    // The SDK's default sampler reads OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG.
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource.build())
        .build();
    Ok((provider, runtime))
}

/// Wraps the exporter to count what reached the backend and what was lost.
#[derive(Debug)]
struct CountingExporter<E>(E);

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let result = self.0.export(batch).await;
        match &result {
            Ok(()) => crate::metrics::spans_exported(n),
            Err(_) => crate::metrics::spans_dropped(n),
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource);
    }
}
