//! The one consume shape every smsflow consumer is built on: the stage runner, the
//! projection runner and the phone-cache follower.
//!
//! - [`Consumer`]: client creation off the async workers, subscription or assignment, one
//!   record or a lingering batch at a time, consumer errors logged and retried by librdkafka;
//! - [`Record`]: an owned record with its `event-type` and trace context;
//! - [`Inbound`]: typed decoding, so consumers name the events they read; a record's writer
//!   schema is learned from the registry as it is received ([`SchemaWait`]), in either wire
//!   format;
//! - [`Ordered`]: per-key order with bounded concurrency;
//! - [`PartitionOffsets`]: per-partition progress when records finish out of order;
//! - [`process_span`]: the messaging span of one record;
//! - [`dead_letter`]: the one dead letter of a record a consumer gives up on;
//! - retries wait by the one [`crate::backoff::Backoff`].

mod context;
mod dead_letter;
pub mod inbound;
mod offsets;
mod ordered;
mod record;
mod schemas;
mod span;

use std::sync::Mutex;
use std::time::Duration;

use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

pub use context::ConsumeContext;
pub use dead_letter::{dead_letter, panic_message, GiveUp};
pub use inbound::Inbound;
pub use offsets::PartitionOffsets;
pub use ordered::Ordered;
pub use record::Record;
pub use schemas::SchemaWait;
pub use span::process_span;

use super::{client, KafkaSettings};
use crate::events::Decoder;
use schemas::Held;

/// How often librdkafka reports statistics (consumer lag among them).
const STATISTICS_INTERVAL_MS: &str = "5000";

/// A consumer of one group, with smsflow's client settings (`read_committed`, no
/// auto-commit, bounded prefetch) and the lag gauge.
pub struct Consumer {
    inner: StreamConsumer<ConsumeContext>,
    group: String,
    decoder: Decoder,
    schema_wait: SchemaWait,
    /// A record received but not yet handed on (its schema was being learned when the
    /// caller stopped waiting); the next receive returns it.
    held: Mutex<Option<Record>>,
}

impl Consumer {
    /// Create the client off the async workers (librdkafka blocks while it starts);
    /// `tune` adjusts the configuration (static membership, isolation level, ...).
    pub async fn create(
        kafka: &KafkaSettings,
        client_id: &str,
        group: &str,
        tune: impl FnOnce(&mut ClientConfig) + Send + 'static,
    ) -> Result<Consumer, KafkaError> {
        let mut cfg = client::consumer(kafka, client_id, group);
        cfg.set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
        let context = ConsumeContext::new(client_id, group);
        let inner = tokio::task::spawn_blocking(move || {
            tune(&mut cfg);
            cfg.create_with_context(context)
        })
        .await
        .map_err(|e| KafkaError::ClientCreation(format!("consumer creation task: {e}")))??;
        Ok(Consumer {
            inner,
            group: group.to_owned(),
            decoder: Decoder::new(&kafka.schema_registry),
            schema_wait: SchemaWait::default(),
            held: Mutex::new(None),
        })
    }

    /// How long to wait for the schema registry when a record names an unknown id
    /// (default: until it answers).
    pub fn with_schema_wait(mut self, wait: SchemaWait) -> Consumer {
        self.schema_wait = wait;
        self
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The client, for what only some runners do (transactions, seeks, commits).
    pub fn client(&self) -> &StreamConsumer<ConsumeContext> {
        &self.inner
    }

    /// Join the group for `topics`.
    pub fn subscribe(&self, topics: &[String]) -> Result<(), KafkaError> {
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        self.inner.subscribe(&names)
    }

    /// Read every partition of `topic` from `offset`, without group membership; returns how
    /// many partitions there are.
    pub fn assign_all(&self, topic: &str, offset: Offset) -> Result<usize, KafkaError> {
        let tpl = self.partitions(&[topic.to_owned()], offset)?;
        self.inner.assign(&tpl)?;
        Ok(tpl.count())
    }

    /// Every partition of `topics`, each at `offset`. Reads metadata synchronously: only at
    /// start-up, bounded by a 10 s timeout.
    pub fn partitions(
        &self,
        topics: &[String],
        offset: Offset,
    ) -> Result<TopicPartitionList, KafkaError> {
        let mut tpl = TopicPartitionList::new();
        for topic in topics {
            let md = self
                .inner
                .fetch_metadata(Some(topic), Duration::from_secs(10))?;
            for t in md.topics() {
                for p in t.partitions() {
                    tpl.add_partition_offset(topic, p.id(), offset)?;
                }
            }
        }
        Ok(tpl)
    }

    /// The next record, its writer schema known (see [`SchemaWait`]). A consumer error (a
    /// broker away, a rebalance in progress) is logged and yields `None`; librdkafka retries
    /// by itself. Cancel safe: a record is never lost by dropping this future.
    pub async fn recv(&self) -> Option<Record> {
        // A held record of a partition taken away meanwhile belongs to its new owner now.
        let record = match Held::take(&self.held).filter(|r| self.still_assigned(r)) {
            Some(r) => r,
            None => match self.inner.recv().await {
                Ok(m) => Record::of(&m),
                Err(e) => {
                    self.inner
                        .context()
                        .client()
                        .consumer_error(&self.group, &e);
                    return None;
                }
            },
        };
        let held = Held::new(&self.held, record);
        if let Some(r) = held.record() {
            schemas::resolve(&self.decoder, self.schema_wait, &self.group, r).await;
        }
        held.release()
    }

    fn still_assigned(&self, r: &Record) -> bool {
        self.inner.assignment().map_or(true, |tpl| {
            tpl.find_partition(&r.topic, r.partition).is_some()
        })
    }

    /// Wait for one record, then take what else arrives within `linger`, up to `cap`.
    pub async fn next_batch(&self, cap: usize, linger: Duration) -> Vec<Record> {
        let mut batch = Vec::new();
        match self.recv().await {
            Some(r) => batch.push(r),
            None => return batch,
        }
        let until = tokio::time::Instant::now() + linger;
        while batch.len() < cap.max(1) {
            match tokio::time::timeout_at(until, self.recv()).await {
                Ok(Some(r)) => batch.push(r),
                Ok(None) | Err(_) => break,
            }
        }
        batch
    }

    /// Partitions a rebalance took away since the last call.
    pub fn take_revoked(&self) -> Vec<(String, i32)> {
        self.inner.context().take_revoked()
    }
}
