//! Kafka headers every event carries: `event-type`, and W3C trace context (`traceparent`,
//! `tracestate`) so that a consumer's span continues the producer's trace.

use opentelemetry::propagation::{Extractor, Injector};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Header naming the event's record type, so consumers can route without decoding.
pub const EVENT_TYPE: &str = "event-type";

/// Headers for a new event, carrying the trace context of `span`.
pub fn for_event(event_type: &str, span: &tracing::Span) -> OwnedHeaders {
    for_event_in(event_type, &span.context())
}

/// Headers for a new event, carrying an explicit trace context.
pub fn for_event_in(event_type: &str, cx: &opentelemetry::Context) -> OwnedHeaders {
    let mut trace = TraceHeaders::default();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(cx, &mut trace));
    let mut h = OwnedHeaders::new_with_capacity(1 + trace.0.len()).insert(Header {
        key: EVENT_TYPE,
        value: Some(event_type),
    });
    for (k, v) in &trace.0 {
        h = h.insert(Header {
            key: k,
            value: Some(v),
        });
    }
    h
}

/// The trace context a record's headers carry (empty when there is none).
pub fn trace_context<H: Headers>(headers: Option<&H>) -> opentelemetry::Context {
    match headers {
        Some(h) => {
            opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(h)))
        }
        None => opentelemetry::Context::new(),
    }
}

/// The last value of a header as UTF-8, if present.
pub fn get<'a, H: Headers>(headers: &'a H, key: &str) -> Option<&'a str> {
    headers
        .iter()
        .filter(|h| h.key.eq_ignore_ascii_case(key))
        .last()
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
}

#[derive(Default)]
struct TraceHeaders(Vec<(String, String)>);

impl Injector for TraceHeaders {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_owned(), value));
    }
}

struct HeaderExtractor<'a, H>(&'a H);

impl<H: Headers> Extractor for HeaderExtractor<'_, H> {
    fn get(&self, key: &str) -> Option<&str> {
        get(self.0, key)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|h| h.key).collect()
    }
}
