//! Metric names as one typed list, so dashboards can rely on them. Exported at `/metrics`.

use std::time::Duration;

use metrics::{counter, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Why a webhook was refused; a label with a small fixed set of values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedReason {
    BadSignature,
    MalformedForm,
    BodyTooLarge,
    WrongContentType,
    KafkaUnavailable,
}

impl RefusedReason {
    fn as_str(self) -> &'static str {
        match self {
            RefusedReason::BadSignature => "bad_signature",
            RefusedReason::MalformedForm => "malformed_form",
            RefusedReason::BodyTooLarge => "body_too_large",
            RefusedReason::WrongContentType => "wrong_content_type",
            RefusedReason::KafkaUnavailable => "kafka_unavailable",
        }
    }
}

/// A webhook got a non-200 answer.
pub fn webhook_refused(reason: RefusedReason) {
    counter!("smsflow_webhook_refused_total", "reason" => reason.as_str()).increment(1);
}

/// A webhook was answered; `outcome` is `accepted` or a refusal reason.
pub fn webhook_latency(outcome: &'static str, elapsed: Duration) {
    histogram!("smsflow_webhook_duration_seconds", "outcome" => outcome)
        .record(elapsed.as_secs_f64());
}

/// Time from send to Kafka's acknowledgement.
pub fn produce_latency(elapsed: Duration) {
    histogram!("smsflow_kafka_produce_duration_seconds").record(elapsed.as_secs_f64());
}

/// The projector applied `n` events of a read model.
pub fn projected(projection: &'static str, n: u64) {
    counter!("smsflow_projector_events_total", "projection" => projection).increment(n);
}

/// The projector skipped an event it cannot decode.
pub fn projector_poison(projection: &'static str) {
    counter!("smsflow_projector_poison_total", "projection" => projection).increment(1);
}

/// A projector batch failed and will be retried.
pub fn projector_retry(projection: &'static str) {
    counter!("smsflow_projector_retries_total", "projection" => projection).increment(1);
}

/// From webhook receipt until the projector applied the event.
pub fn end_to_end_latency(elapsed: Duration) {
    histogram!("smsflow_end_to_end_duration_seconds").record(elapsed.as_secs_f64());
}

/// Install the Prometheus recorder once per process and return its handle.
pub fn install() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(h) => h,
                // Another recorder is installed (tests): a detached one keeps /metrics working.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}
