//! Metric names as one typed list, so dashboards and alerts can rely on them. Exported at
//! `/metrics` in Prometheus text format; the resettable view is in `stats`.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `smsflow_webhook_duration_seconds` | histogram | `outcome` |
//! | `smsflow_webhook_refused_total` | counter | `reason` |
//! | `smsflow_webhooks_in_flight` | gauge | |
//! | `smsflow_kafka_produce_duration_seconds` | histogram | |
//! | `smsflow_webhook_step_duration_seconds` | histogram | `step` (`lookup`, `admission`) |
//! | `smsflow_stage_duration_seconds` | histogram | `stage` |
//! | `smsflow_stage_errors_total` | counter | `stage` |
//! | `smsflow_stage_panics_total`, `smsflow_stage_timeouts_total` | counter | `stage` |
//! | `smsflow_projector_events_total` | counter | `projection` |
//! | `smsflow_projector_poison_total` | counter | `projection` |
//! | `smsflow_projector_retries_total` | counter | `projection` |
//! | `smsflow_end_to_end_duration_seconds` | histogram | |
//! | `smsflow_consumer_lag` | gauge | `group`, `topic`, `partition` |
//! | `smsflow_kafka_client_errors_total` | counter | `client`, `code` (librdkafka's, e.g. `AllBrokersDown`), `source` (`global`: the error callback; `consumer`: returned by a consumer's poll) |
//! | `smsflow_http_open_connections` | gauge | |
//! | `smsflow_http_idle_closed_total` | counter | `phase` (`before_first_request`, `between_requests`) |
//! | `smsflow_http_busy_total` | counter | |
//! | `smsflow_pool` | gauge | `pool` (`redis`, `cql`), `stat` (`size`, `available`, `waiting`, `max_size`, `connections`, `connection_timeouts`) |
//! | `smsflow_trace_spans_exported_total` / `_dropped_total` | counter | |
//! | `smsflow_stage_inputs_total`, `_outputs_total`, `smsflow_dead_letters_total` | counter | `stage` |
//! | `smsflow_media_attachments_total` | counter | `outcome` |
//! | `smsflow_webhook_duplicates_total`, `smsflow_webhook_rate_limited_total` | counter | |
//! | `smsflow_redis_unavailable_total` | counter | `policy` |
//! | `smsflow_sender_rejected_total` | counter | `reason` (`unknown`, `unverified`, `rate_limited`, `opted_out`) |
//! | `smsflow_ingress_registry_unavailable_total` | counter | |
//! | `smsflow_opt_out_keywords_total` | counter | `kind` (`opt_out`, `opt_in`, `help`) |
//! | `smsflow_phone_cache_requests_total` | counter | `result` (`hit`, `miss`) |
//! | `smsflow_phone_cache_updates_total` | counter | |
//! | `smsflow_phone_cache_entries` | gauge | |
//! | `smsflow_transcribe_outcomes_total` | counter | `provider`, `outcome` |
//! | `smsflow_transcribe_provider_duration_seconds` | histogram | `provider`, `result` |
//! | `smsflow_transcribe_provider_retries_total` | counter | `provider` |
//! | `smsflow_transcribe_breaker_open` | gauge | `provider` |
//! | `smsflow_transcribe_audio_seconds` | histogram | |
//! | `smsflow_notify_outcomes_total` | counter | `outcome` (`queued`, `accepted`, `failed`, `suppressed`, `replayed`) |
//! | `smsflow_notify_twilio_duration_seconds` | histogram | `result` |
//! | `smsflow_notify_twilio_retries_total` | counter | |
//! | `smsflow_confirm_outcomes_total` | counter | `outcome` (`requested`, `no_items`) |

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::stats::{stats, Stats};

/// Why a webhook was refused; a label with a small fixed set of values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedReason {
    BadSignature,
    MalformedForm,
    BodyTooLarge,
    WrongContentType,
    KafkaUnavailable,
    InFlight,
    RedisUnavailable,
    RegistryUnavailable,
}

impl RefusedReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusedReason::BadSignature => "bad_signature",
            RefusedReason::MalformedForm => "malformed_form",
            RefusedReason::BodyTooLarge => "body_too_large",
            RefusedReason::WrongContentType => "wrong_content_type",
            RefusedReason::KafkaUnavailable => "kafka_unavailable",
            RefusedReason::InFlight => "in_flight",
            RefusedReason::RedisUnavailable => "redis_unavailable",
            RefusedReason::RegistryUnavailable => "registry_unavailable",
        }
    }
}

fn bump(c: &AtomicU64, n: u64) {
    Stats::incr(c, n);
}

/// A webhook got a non-200 answer.
pub fn webhook_refused(reason: RefusedReason) {
    counter!("smsflow_webhook_refused_total", "reason" => reason.as_str()).increment(1);
    bump(&stats().webhooks_refused, 1);
}

/// A webhook was answered; `outcome` is `accepted` or a refusal reason.
pub fn webhook_latency(outcome: &'static str, elapsed: Duration) {
    histogram!("smsflow_webhook_duration_seconds", "outcome" => outcome)
        .record(elapsed.as_secs_f64());
    stats().webhook_latency(elapsed);
    if outcome == "accepted" {
        bump(&stats().webhooks_accepted, 1);
    }
}

/// One step before a webhook's append: the sender lookup or the admission (its Redis round
/// trip). Where the ack's time goes before Kafka is asked.
pub fn webhook_step(step: &'static str, elapsed: Duration) {
    histogram!("smsflow_webhook_step_duration_seconds", "step" => step)
        .record(elapsed.as_secs_f64());
}

/// Webhooks being handled right now (+1 on entry, -1 on exit).
pub fn webhooks_in_flight(delta: f64) {
    gauge!("smsflow_webhooks_in_flight").increment(delta);
}

/// Time from send to Kafka's acknowledgement.
pub fn produce_latency(elapsed: Duration) {
    histogram!("smsflow_kafka_produce_duration_seconds").record(elapsed.as_secs_f64());
}

/// The projector applied `n` events of a read model.
pub fn projected(projection: &'static str, n: u64) {
    counter!("smsflow_projector_events_total", "projection" => projection).increment(n);
    bump(&stats().events_projected, n);
}

/// Time the projector spent writing one event.
pub fn projector_write(elapsed: Duration) {
    histogram!("smsflow_stage_duration_seconds", "stage" => "projector")
        .record(elapsed.as_secs_f64());
}

/// The projector skipped an event it cannot decode.
pub fn projector_poison(projection: &'static str) {
    counter!("smsflow_projector_poison_total", "projection" => projection).increment(1);
    counter!("smsflow_stage_errors_total", "stage" => "projector").increment(1);
    bump(&stats().projector_poison, 1);
}

/// A projector write failed and will be retried.
pub fn projector_retry(projection: &'static str) {
    counter!("smsflow_projector_retries_total", "projection" => projection).increment(1);
    counter!("smsflow_stage_errors_total", "stage" => "projector").increment(1);
    bump(&stats().projector_retries, 1);
}

/// From webhook receipt until the projector applied the event.
pub fn end_to_end_latency(elapsed: Duration) {
    histogram!("smsflow_end_to_end_duration_seconds").record(elapsed.as_secs_f64());
    stats().end_to_end(elapsed);
}

/// A stage committed a batch: inputs consumed, outputs appended, inputs dead-lettered.
pub fn stage_processed(stage: &'static str, inputs: u64, outputs: u64, dead: u64) {
    counter!("smsflow_stage_inputs_total", "stage" => stage).increment(inputs);
    counter!("smsflow_stage_outputs_total", "stage" => stage).increment(outputs);
    counter!("smsflow_dead_letters_total", "stage" => stage).increment(dead);
}

/// One failed attempt in a stage (retried, dead-lettered, or an aborted transaction).
pub fn stage_error(stage: &'static str) {
    counter!("smsflow_stage_errors_total", "stage" => stage).increment(1);
}

/// A stage's handler panicked (its input is dead-lettered as poison).
pub fn stage_panic(stage: &'static str) {
    counter!("smsflow_stage_panics_total", "stage" => stage).increment(1);
}

/// An input outlasted `stages.input_timeout` (dead-lettered as `timed_out`).
pub fn stage_timeout(stage: &'static str) {
    counter!("smsflow_stage_timeouts_total", "stage" => stage).increment(1);
}

/// Time a stage spent on one input attempt.
pub fn stage_latency(stage: &'static str, elapsed: Duration) {
    histogram!("smsflow_stage_duration_seconds", "stage" => stage).record(elapsed.as_secs_f64());
}

/// What became of one MMS attachment: `stored` or a rejection reason.
pub fn media_outcome(outcome: &'static str) {
    counter!("smsflow_media_attachments_total", "outcome" => outcome).increment(1);
}

/// What the notify stage decided for one request; `replayed` means a recorded decision was
/// returned instead of sending again.
pub fn notify_outcome(outcome: &'static str) {
    counter!("smsflow_notify_outcomes_total", "outcome" => outcome).increment(1);
}

/// The confirm stage found a message fully enriched: a reply `requested`, or `no_items`.
pub fn confirm_outcome(outcome: &'static str) {
    counter!("smsflow_confirm_outcomes_total", "outcome" => outcome).increment(1);
}

/// One Twilio Messages API call and how it ended.
pub fn notify_call(result: &'static str, elapsed: Duration) {
    histogram!("smsflow_notify_twilio_duration_seconds", "result" => result)
        .record(elapsed.as_secs_f64());
}

/// A Twilio call is retried (429, 5xx or no connection).
pub fn notify_retry() {
    counter!("smsflow_notify_twilio_retries_total").increment(1);
}

/// A repeated delivery of an already appended message was answered without appending.
pub fn webhook_duplicate() {
    counter!("smsflow_webhook_duplicates_total").increment(1);
}

/// A sender went over its rate limit; the message was recorded as `SenderRejected`.
pub fn rate_limited() {
    counter!("smsflow_webhook_rate_limited_total").increment(1);
}

/// Ingress could not ask the phone registry and went on without it (`sender_policy = any`).
pub fn registry_unavailable() {
    counter!("smsflow_ingress_registry_unavailable_total").increment(1);
}

/// Ingress recorded a message as `SenderRejected`.
pub fn sender_rejected(reason: &'static str) {
    counter!("smsflow_sender_rejected_total", "reason" => reason).increment(1);
}

/// An opt-out, opt-in or help keyword arrived.
pub fn opt_out_keyword(kind: &'static str) {
    counter!("smsflow_opt_out_keywords_total", "kind" => kind).increment(1);
}

/// A phone lookup was answered from the cache (`hit`) or had to read CQL.
pub fn phone_cache(hit: bool) {
    let result = if hit { "hit" } else { "miss" };
    counter!("smsflow_phone_cache_requests_total", "result" => result).increment(1);
    if hit {
        bump(&stats().phone_cache_hits, 1);
    } else {
        bump(&stats().phone_cache_misses, 1);
    }
}

/// A registry event refreshed the phone cache.
pub fn phone_cache_update() {
    counter!("smsflow_phone_cache_updates_total").increment(1);
}

/// Entries in the phone cache, sampled.
pub fn phone_cache_entries(n: u64) {
    gauge!("smsflow_phone_cache_entries").set(n as f64);
    PHONE_CACHE_ENTRIES.store(n, std::sync::atomic::Ordering::Relaxed);
}

static PHONE_CACHE_ENTRIES: AtomicU64 = AtomicU64::new(0);

/// The last sampled phone cache size (for `/v1/admin/stats/cache`).
pub fn phone_cache_entry_count() -> u64 {
    PHONE_CACHE_ENTRIES.load(std::sync::atomic::Ordering::Relaxed)
}

/// Redis did not answer; `policy` says what ingress did about it.
pub fn redis_unavailable(policy: &'static str) {
    counter!("smsflow_redis_unavailable_total", "policy" => policy).increment(1);
}

/// Records behind the end of a partition for a consumer group.
pub fn consumer_lag(group: &str, topic: &str, partition: i32, lag: i64) {
    gauge!(
        "smsflow_consumer_lag",
        "group" => group.to_owned(),
        "topic" => topic.to_owned(),
        "partition" => partition.to_string()
    )
    .set(lag as f64);
}

/// A global or consumer error a Kafka client reported (`client` is its `client.id`). Every one is
/// counted; the log holds back repeats (see `kafka::context`).
pub fn kafka_client_error(client: &str, code: &str, source: &'static str) {
    counter!(
        "smsflow_kafka_client_errors_total",
        "client" => client.to_owned(),
        "code" => code.to_owned(),
        "source" => source
    )
    .increment(1);
}

/// One statistic of a client pool (`pool` = redis, cql; `stat` = size, available, ...).
pub fn pool(pool: &'static str, stat: &'static str, value: f64) {
    gauge!("smsflow_pool", "pool" => pool, "stat" => stat).set(value);
}

/// Open HTTP connections.
pub fn open_connections(n: usize) {
    gauge!("smsflow_http_open_connections").set(n as f64);
}

/// A connection closed for idling: before its first request, or between requests.
pub fn http_idle_closed(before_first_request: bool) {
    let phase = if before_first_request {
        "before_first_request"
    } else {
        "between_requests"
    };
    counter!("smsflow_http_idle_closed_total", "phase" => phase).increment(1);
}

/// A request answered 503 because no `http.max_concurrent_requests` permit came in time.
pub fn http_busy() {
    counter!("smsflow_http_busy_total").increment(1);
}

/// Spans the OTLP exporter delivered.
pub fn spans_exported(n: u64) {
    counter!("smsflow_trace_spans_exported_total").increment(n);
}

/// Spans lost because the trace backend did not take them; the pipeline went on.
pub fn spans_dropped(n: u64) {
    counter!("smsflow_trace_spans_dropped_total").increment(n);
    bump(&stats().spans_dropped, n);
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
