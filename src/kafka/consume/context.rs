//! What librdkafka reports back to a consumer: periodic statistics (the consumer lag gauge),
//! rebalances (partitions taken away, which a runner must forget), and its logs and errors
//! (through [`KafkaContext`], as every client's).

use std::sync::Mutex;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::{ClientContext, Statistics};

use crate::kafka::context::KafkaContext;

/// The context of every smsflow consumer.
pub struct ConsumeContext {
    /// The consumer group, a label of the lag gauge.
    pub group: String,
    revoked: Mutex<Vec<(String, i32)>>,
    client: KafkaContext,
}

impl ConsumeContext {
    /// A context for the client `client_id` in `group`.
    pub fn new(client_id: &str, group: &str) -> ConsumeContext {
        ConsumeContext {
            group: group.to_owned(),
            revoked: Mutex::new(Vec::new()),
            client: KafkaContext::new(client_id),
        }
    }

    /// How this client logs and counts what librdkafka reports.
    pub fn client(&self) -> &KafkaContext {
        &self.client
    }

    /// Partitions revoked since the last call.
    pub fn take_revoked(&self) -> Vec<(String, i32)> {
        self.revoked
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default()
    }
}

impl ClientContext for ConsumeContext {
    fn stats(&self, statistics: Statistics) {
        report_lag(&self.group, &statistics);
    }

    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.client.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.client.error(error, reason);
    }
}

impl ConsumerContext for ConsumeContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            if let Ok(mut revoked) = self.revoked.lock() {
                revoked.extend(
                    tpl.elements()
                        .iter()
                        .map(|e| (e.topic().to_owned(), e.partition())),
                );
            }
        }
    }
}

/// Export each partition's consumer lag from librdkafka's periodic statistics.
fn report_lag(group: &str, statistics: &Statistics) {
    for (topic, t) in &statistics.topics {
        for (partition, p) in &t.partitions {
            // -1 means "not known yet" (e.g. not assigned to this member).
            if *partition >= 0 && p.consumer_lag >= 0 {
                crate::metrics::consumer_lag(group, topic, *partition, p.consumer_lag);
            }
        }
    }
}
