//! Logging and tracing: one `tracing` subscriber for the whole process, with an OpenTelemetry
//! layer that exports spans over OTLP (Jaeger locally) through a bounded batch processor.
//!
//! Telemetry never blocks the pipeline: the batch queue is bounded, spans beyond it or in a
//! failed export are dropped and counted in `smsflow_trace_spans_dropped_total`.

use std::time::Duration;

use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry::{KeyValue, Value};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SamplingDecision, SamplingResult,
    SdkTracerProvider, ShouldSample, SpanData, SpanExporter,
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
    /// Head sampling, named as `OTEL_TRACES_SAMPLER` names it: `always_on`, `always_off`,
    /// `traceidratio`, `parentbased_always_on`, `parentbased_always_off` or
    /// `parentbased_traceidratio`. `OTEL_TRACES_SAMPLER` (with `OTEL_TRACES_SAMPLER_ARG`)
    /// wins when set. Whatever it says, a refused or failed webhook keeps a span (see
    /// `KEEP_ATTRIBUTE`), and metrics count every message.
    pub sampler: String,
    /// The share of traces kept by the `*traceidratio` samplers, 0 to 1.
    pub sampler_ratio: f64,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings {
            log_filter: "info".into(),
            log_format: "text".into(),
            traces: true,
            trace_queue_size: 8192,
            // Exporting every span cost most of the ack tail (issue 15); one trace in twenty
            // still shows every stage's latency at any useful rate.
            sampler: "parentbased_traceidratio".into(),
            sampler_ratio: 0.05,
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
        )?;
        ensure(
            sampler(&self.sampler, self.sampler_ratio).is_some(),
            "telemetry.sampler",
            "must be always_on, always_off, traceidratio, parentbased_always_on, \
             parentbased_always_off or parentbased_traceidratio",
        )?;
        ensure(
            (0.0..=1.0).contains(&self.sampler_ratio),
            "telemetry.sampler_ratio",
            "must be between 0 and 1",
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
                    // Nothing here reads OpenTelemetry's own current context (propagation
                    // reads the tracing span's), so entering a span, once per poll of an
                    // instrumented future, need not clone and attach it.
                    .with_context_activation(false)
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
    let provider = SdkTracerProvider::builder()
        .with_sampler(KeepMarked(configured_sampler(settings)))
        .with_span_processor(processor)
        .with_resource(resource.build())
        .build();
    Ok((provider, runtime))
}

/// A span with this attribute set to a positive integer is kept whatever the sampler says
/// (the OpenTracing convention): refused and failed webhooks use it, so they stay easy to find.
pub const KEEP_ATTRIBUTE: &str = "sampling.priority";

/// `OTEL_TRACES_SAMPLER` when set (the SDK reads it, with `OTEL_TRACES_SAMPLER_ARG`), else
/// `telemetry.sampler`.
fn configured_sampler(settings: &TelemetrySettings) -> Box<dyn ShouldSample> {
    if std::env::var_os("OTEL_TRACES_SAMPLER").is_some() {
        return opentelemetry_sdk::trace::Config::default().sampler;
    }
    match sampler(&settings.sampler, settings.sampler_ratio) {
        Some(s) => Box::new(s),
        None => Box::new(Sampler::ParentBased(Box::new(Sampler::AlwaysOn))),
    }
}

/// The sampler `name` (as `OTEL_TRACES_SAMPLER` spells it) keeping `ratio` of the traces.
fn sampler(name: &str, ratio: f64) -> Option<Sampler> {
    let parent_based = |s| Sampler::ParentBased(Box::new(s));
    Some(match name {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatioBased(ratio),
        "parentbased_always_on" => parent_based(Sampler::AlwaysOn),
        "parentbased_always_off" => parent_based(Sampler::AlwaysOff),
        "parentbased_traceidratio" => parent_based(Sampler::TraceIdRatioBased(ratio)),
        _ => return None,
    })
}

/// Keeps spans marked with `KEEP_ATTRIBUTE`; asks the inner sampler about the rest.
#[derive(Debug, Clone)]
struct KeepMarked(Box<dyn ShouldSample>);

impl ShouldSample for KeepMarked {
    fn should_sample(
        &self,
        parent_context: Option<&opentelemetry::Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let marked = attributes.iter().any(|kv| {
            kv.key.as_str() == KEEP_ATTRIBUTE && matches!(kv.value, Value::I64(p) if p > 0)
        });
        if !marked {
            return self.0.should_sample(
                parent_context,
                trace_id,
                name,
                span_kind,
                attributes,
                links,
            );
        }
        let trace_state = parent_context
            .map(|cx| cx.span().span_context().trace_state().clone())
            .unwrap_or_default();
        SamplingResult {
            decision: SamplingDecision::RecordAndSample,
            attributes: Vec::new(),
            trace_state,
        }
    }
}

/// The current span's trace id (hex), when it has one: log lines of refused webhooks carry it
/// so that an operator can go from the log to the trace.
pub fn current_trace_id() -> Option<String> {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let cx = tracing::Span::current().context();
    let id = cx.span().span_context().trace_id();
    (id != TraceId::INVALID).then(|| id.to_string())
}

/// The span `make` builds, for work under the current span, unless the current span belongs to
/// a trace that head sampling dropped: then no span (`Span::none()`), and the work runs in the
/// current one.
///
/// A child of a dropped trace is never exported, yet the OpenTelemetry layer still builds it:
/// a span builder with its attributes, and a lock on every enter, record and exit. At the
/// default ratio that was about a third of the layer's work in ingress (`perf`, 2026-12-01).
/// The trace id and the sampled flag still travel in Kafka headers, from the current span.
/// Without a trace pipeline, or under a span unknown to it, the span is built as before: there
/// it is log context, and cheap. In a dropped trace, log lines inside carry the current span's
/// context instead of the child's.
pub fn sampled_child(make: impl FnOnce() -> tracing::Span) -> tracing::Span {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let current = tracing::Span::current();
    if current.is_none() {
        return make();
    }
    let cx = current.context();
    let span = cx.span();
    let parent = span.span_context();
    if parent.is_valid() && !parent.is_sampled() {
        tracing::Span::none()
    } else {
        make()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A trace id whose low 64 bits (what the ratio sampler looks at) are `low`.
    fn trace_id(low: u64) -> TraceId {
        TraceId::from_bytes(((1u128 << 64) | u128::from(low)).to_be_bytes())
    }

    fn sampled(s: &dyn ShouldSample, id: TraceId, attributes: &[KeyValue]) -> bool {
        let r = s.should_sample(None, id, "span", &SpanKind::Server, attributes, &[]);
        r.decision == SamplingDecision::RecordAndSample
    }

    #[test]
    fn the_ratio_sampler_keeps_and_drops_as_configured() {
        let half = KeepMarked(Box::new(sampler("parentbased_traceidratio", 0.5).unwrap()));
        assert!(sampled(&half, trace_id(0), &[]), "low ids are kept");
        assert!(
            !sampled(&half, trace_id(u64::MAX), &[]),
            "high ids are dropped"
        );
        let none = KeepMarked(Box::new(sampler("parentbased_traceidratio", 0.0).unwrap()));
        assert!(!sampled(&none, trace_id(0), &[]));
        let all = KeepMarked(Box::new(sampler("traceidratio", 1.0).unwrap()));
        assert!(sampled(&all, trace_id(u64::MAX), &[]));
        // Over many random ids the share kept follows the ratio.
        let tenth = KeepMarked(Box::new(sampler("traceidratio", 0.1).unwrap()));
        let kept = (0..10_000u64)
            .filter(|i| sampled(&tenth, trace_id(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)), &[]))
            .count();
        assert!((800..1200).contains(&kept), "{kept} of 10000 kept at 0.1");
    }

    #[test]
    fn a_marked_span_is_kept_whatever_the_ratio() {
        let none = KeepMarked(Box::new(sampler("parentbased_traceidratio", 0.0).unwrap()));
        let keep = [KeyValue::new(KEEP_ATTRIBUTE, 1i64)];
        assert!(sampled(&none, trace_id(u64::MAX), &keep));
        let off = KeepMarked(Box::new(sampler("always_off", 0.0).unwrap()));
        assert!(sampled(&off, trace_id(7), &keep));
        let zero = [KeyValue::new(KEEP_ATTRIBUTE, 0i64)];
        assert!(!sampled(&none, trace_id(u64::MAX), &zero));
    }

    /// Runs `f` under a subscriber whose OpenTelemetry layer samples with `sampler`, or with no
    /// OpenTelemetry layer when `None`.
    fn under(sampler: Option<Sampler>, f: impl FnOnce()) {
        use tracing_subscriber::layer::SubscriberExt;
        match sampler {
            Some(s) => {
                let provider = SdkTracerProvider::builder().with_sampler(s).build();
                let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
                tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
            }
            None => tracing::subscriber::with_default(tracing_subscriber::registry(), f),
        }
    }

    #[test]
    fn children_of_a_dropped_trace_are_not_built() {
        let child = || tracing::info_span!("child");
        under(Some(Sampler::AlwaysOff), || {
            let root = tracing::info_span!("root");
            let _g = root.enter();
            assert!(sampled_child(child).is_none(), "dropped: no child");
        });
        under(Some(Sampler::AlwaysOn), || {
            let root = tracing::info_span!("root");
            let _g = root.enter();
            assert!(!sampled_child(child).is_none(), "kept: a child");
        });
        // A root is never skipped: the sampler decides about it.
        under(Some(Sampler::AlwaysOff), || {
            assert!(!sampled_child(child).is_none(), "no current span: a root");
        });
        // No trace pipeline: spans are log context, built as before.
        under(None, || {
            let root = tracing::info_span!("root");
            let _g = root.enter();
            assert!(
                !sampled_child(child).is_none(),
                "no OpenTelemetry layer: a child"
            );
        });
    }

    #[test]
    fn unknown_sampler_names_and_ratios_are_refused() {
        let mut s = TelemetrySettings::default();
        assert!(s.validate().is_ok());
        s.sampler = "sometimes".into();
        assert!(s.validate().is_err());
        s.sampler = "traceidratio".into();
        s.sampler_ratio = 1.5;
        assert!(s.validate().is_err());
    }
}
