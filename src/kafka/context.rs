//! How librdkafka's own reports reach operators. Every client logs through [`KafkaContext`]:
//! the first of a kind of warning or error is logged at its level, and repeats within
//! [`QUIET_FOR`] are only counted, so an outage reads as a few lines instead of one per client
//! per second. `smsflow_kafka_client_errors_total` still counts every one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureProducer;
use rdkafka::ClientContext;

/// How long a repeat of one report stays quiet after it was logged. librdkafka retries a
/// down broker every second (`reconnect.backoff.max.ms`) and raises `AllBrokersDown` on each
/// round, per client.
pub const QUIET_FOR: Duration = Duration::from_secs(60);

/// A producer that logs through [`KafkaContext`].
pub type KafkaProducer = FutureProducer<KafkaContext>;

/// The context of every smsflow Kafka client that needs no callbacks of its own; consumers
/// embed it in [`super::consume::ConsumeContext`].
pub struct KafkaContext {
    client: String,
    repeats: Repeats,
}

impl KafkaContext {
    /// A context for the client named `client` (its `client.id`).
    pub fn new(client: &str) -> KafkaContext {
        KafkaContext {
            client: client.to_owned(),
            repeats: Repeats::new(QUIET_FOR),
        }
    }

    /// An error a consumer's `recv` returned (a broker away, a rebalance in progress):
    /// counted with `source="consumer"`, and logged at WARN as the first of its kind;
    /// librdkafka retries by itself. librdkafka raises a global error such as
    /// `AllBrokersDown` both through the error callback and on the consumer's queue, so the
    /// label keeps one event from reading as two.
    pub fn consumer_error(&self, group: &str, error: &KafkaError) {
        let name = code_name(error);
        crate::metrics::kafka_client_error(&self.client, &name, "consumer");
        if let Seen::New { earlier } = self
            .repeats
            .check(&format!("consume {name}"), Instant::now())
        {
            tracing::warn!(
                client = self.client.as_str(),
                group,
                error = %error,
                earlier,
                "Kafka consumer error; librdkafka retries"
            );
        }
    }
}

/// librdkafka's name of an error's code (`AllBrokersDown`), or `Other`.
fn code_name(error: &KafkaError) -> String {
    error
        .rdkafka_error_code()
        .map(|c| format!("{c:?}"))
        .unwrap_or_else(|| "Other".to_owned())
}

impl ClientContext for KafkaContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let client = self.client.as_str();
        let level = match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::Level::ERROR,
            RDKafkaLogLevel::Warning => tracing::Level::WARN,
            // Debug contexts (`SMSFLOW_KAFKA__CLIENT_DEBUG`) are asked for and never held back.
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", client, fac, "{log_message}");
                return;
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", client, fac, "{log_message}");
                return;
            }
        };
        let key = format!("{fac} {}", subject(log_message));
        let Seen::New { earlier } = self.repeats.check(&key, Instant::now()) else {
            return;
        };
        if level == tracing::Level::ERROR {
            tracing::error!(target: "librdkafka", client, fac, earlier, "{log_message}");
        } else {
            tracing::warn!(target: "librdkafka", client, fac, earlier, "{log_message}");
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let name = code_name(&error);
        crate::metrics::kafka_client_error(&self.client, &name, "global");
        // `AllBrokersDown` says how many are down ("0/2", "2/2"): one report whatever the count.
        let key = match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::AllBrokersDown) => name.clone(),
            _ => format!("{name} {}", subject(reason)),
        };
        if let Seen::New { earlier } = self.repeats.check(&key, Instant::now()) {
            tracing::error!(
                target: "librdkafka",
                client = self.client.as_str(),
                code = name,
                earlier,
                "librdkafka: {error}: {reason}"
            );
        }
    }
}

impl ConsumerContext for KafkaContext {}

/// What a report is about: the broker it names (`127.0.0.1:9092/1: Connect to ...`), or its
/// first clause (`Failed to acquire idempotence PID from broker ...`, `3/3 brokers are
/// down`), after the `[thrd:...]` prefix of a log line. Two brokers failing are two reports;
/// one broker failing again is a repeat.
fn subject(text: &str) -> &str {
    let text = match text.strip_prefix("[thrd:") {
        Some(rest) => rest.split_once("]: ").map_or(text, |(_, after)| after),
        None => text,
    };
    text.split_once(": ").map_or(text, |(head, _)| head)
}

/// Whether a report was seen within the quiet window.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// Log it; `earlier` repeats were held back since it was last logged.
    New { earlier: u64 },
    /// Count it only.
    Repeat,
}

/// The reports logged within the last window, each with the repeats held back since.
struct Repeats {
    window: Duration,
    seen: Mutex<HashMap<String, (Instant, u64)>>,
}

/// Distinct reports remembered at once; each names a broker or an error code, so a client
/// has a few dozen at most. Past this, reports older than the window are forgotten.
const MAX_REMEMBERED: usize = 256;

impl Repeats {
    fn new(window: Duration) -> Repeats {
        Repeats {
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    fn check(&self, key: &str, now: Instant) -> Seen {
        // A poisoned lock only means another log call panicked; logging goes on.
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((logged, held)) = seen.get_mut(key) {
            if now.duration_since(*logged) < self.window {
                *held += 1;
                return Seen::Repeat;
            }
            let earlier = std::mem::take(held);
            *logged = now;
            return Seen::New { earlier };
        }
        if seen.len() >= MAX_REMEMBERED {
            let window = self.window;
            seen.retain(|_, (logged, _)| now.duration_since(*logged) < window);
        }
        if seen.len() < MAX_REMEMBERED {
            seen.insert(key.to_owned(), (now, 0));
        }
        Seen::New { earlier: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeat_within_the_window_is_counted_and_reported_with_the_next_line() {
        let r = Repeats::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(r.check("AllBrokersDown", at(0)), Seen::New { earlier: 0 });
        for s in 1..60 {
            assert_eq!(r.check("AllBrokersDown", at(s)), Seen::Repeat);
        }
        assert_eq!(r.check("AllBrokersDown", at(60)), Seen::New { earlier: 59 });
        assert_eq!(r.check("AllBrokersDown", at(61)), Seen::Repeat);
        assert_eq!(r.check("AllBrokersDown", at(200)), Seen::New { earlier: 1 });
    }

    #[test]
    fn reports_about_different_brokers_are_not_repeats_of_each_other() {
        let r = Repeats::new(Duration::from_secs(60));
        let now = Instant::now();
        let a = "[thrd:127.0.0.1:9092/bootstrap]: 127.0.0.1:9092/1: Connect to ipv4#127.0.0.1:9092 failed: Connection refused";
        let b = "127.0.0.1:9094/2: Connect to ipv4#127.0.0.1:9094 failed: Connection refused";
        assert_eq!(subject(a), "127.0.0.1:9092/1");
        assert_eq!(subject("3/3 brokers are down"), "3/3 brokers are down");
        assert_eq!(
            subject("[thrd:main]: Failed to acquire idempotence PID from broker 127.0.0.1:9092/1: Broker: Coordinator load in progress: retrying"),
            "Failed to acquire idempotence PID from broker 127.0.0.1:9092/1"
        );
        assert_eq!(r.check(subject(a), now), Seen::New { earlier: 0 });
        assert_eq!(r.check(subject(b), now), Seen::New { earlier: 0 });
        assert_eq!(r.check(subject(a), now), Seen::Repeat);
    }

    #[test]
    fn memory_is_bounded_and_old_reports_make_room() {
        let r = Repeats::new(Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..MAX_REMEMBERED {
            r.check(&format!("k{i}"), t0);
        }
        // Full, all within the window: a new report is logged but not remembered.
        assert_eq!(r.check("late", t0), Seen::New { earlier: 0 });
        assert_eq!(r.check("late", t0), Seen::New { earlier: 0 });
        assert_eq!(r.seen.lock().unwrap().len(), MAX_REMEMBERED);
        // Once the window has passed, the old ones are forgotten to make room.
        let later = t0 + Duration::from_secs(61);
        assert_eq!(r.check("late", later), Seen::New { earlier: 0 });
        assert_eq!(r.check("late", later), Seen::Repeat);
        assert_eq!(r.seen.lock().unwrap().len(), 1);
    }
}
