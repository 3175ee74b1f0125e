//! The span of processing one record, following the OpenTelemetry messaging conventions and
//! continuing the producer's trace from the record's headers. The key is never recorded: it
//! can be a phone number.

use tracing::field;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::Record;

/// `process <topic>` for `record`, consumed by `group` in `component` (a stage or a
/// projection). `outcome` and `message_sid` are left for the caller to record.
pub fn process_span(record: &Record, group: &str, component: &'static str) -> tracing::Span {
    let span = tracing::info_span!(
        "kafka.process",
        otel.name = %format_args!("process {}", record.topic),
        otel.kind = "consumer",
        messaging.system = "kafka",
        messaging.operation.type = "process",
        messaging.destination.name = %record.topic,
        messaging.destination.partition.id = %record.partition,
        messaging.kafka.offset = record.offset,
        messaging.consumer.group.name = group,
        component,
        message_sid = field::Empty,
        outcome = field::Empty,
    );
    let _ = span.set_parent(record.trace.clone());
    span
}
