//! One batch's Kafka transaction: outputs and dead letters produced, input offsets sent to
//! the transaction, commit; on failure, abort and rewind so the batch is read again.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::Consumer as _;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use super::handling::{Encoded, Outcome};
use super::RunnerError;
use crate::kafka::consume::{Consumer, Record};
use crate::kafka::headers;

/// The transactional side of one stage.
pub(super) struct Transaction<'a> {
    pub stage: &'static str,
    pub consumer: &'a Consumer,
    pub producer: &'a FutureProducer,
    pub timeout: Duration,
}

impl Transaction<'_> {
    /// Commit a batch's outcomes with its offsets. A failed transaction is aborted and the
    /// consumer rewound, so the batch is read again; only a fatal one stops the runner.
    pub async fn commit_or_rewind(
        &self,
        batch: &[Record],
        outcomes: Vec<(Outcome, opentelemetry::Context)>,
    ) -> Result<(), RunnerError> {
        match self.commit(batch, outcomes).await {
            Ok(()) => Ok(()),
            Err(e) if is_fatal(&e) => Err(RunnerError::Fatal {
                stage: self.stage,
                source: e,
            }),
            Err(e) => {
                crate::metrics::stage_error(self.stage);
                tracing::warn!(stage = self.stage, error = %e, "transaction aborted; the batch will be processed again");
                self.abort().await;
                self.rewind(batch);
                Ok(())
            }
        }
    }

    async fn commit(
        &self,
        batch: &[Record],
        outcomes: Vec<(Outcome, opentelemetry::Context)>,
    ) -> Result<(), KafkaError> {
        let producer = self.producer.clone();
        blocking(move || producer.begin_transaction()).await?;
        let mut deliveries = Vec::new();
        let (mut produced, mut dead) = (0u64, 0u64);
        for (outcome, trace) in &outcomes {
            match outcome {
                Outcome::Outputs(outputs) => {
                    for out in outputs {
                        deliveries.push(self.enqueue(out, trace)?);
                        produced += 1;
                    }
                }
                Outcome::Dead(letter) => {
                    deliveries.push(self.enqueue(letter, trace)?);
                    dead += 1;
                }
            }
        }
        let offsets = next_offsets(batch)?;
        // Only a consumer that has joined its group has metadata; without it the offsets
        // could not be fenced, so the batch is retried.
        let metadata =
            self.consumer
                .client()
                .group_metadata()
                .ok_or(KafkaError::MessageConsumption(
                    rdkafka::types::RDKafkaErrorCode::UnknownMemberId,
                ))?;
        let (producer, timeout) = (self.producer.clone(), self.timeout);
        blocking(move || producer.send_offsets_to_transaction(&offsets, &metadata, timeout))
            .await?;
        let producer = self.producer.clone();
        blocking(move || producer.commit_transaction(timeout)).await?;
        // Committed: every delivery succeeded, or the commit would have failed.
        drop(deliveries);
        crate::metrics::stage_processed(self.stage, batch.len() as u64, produced, dead);
        Ok(())
    }

    fn enqueue(
        &self,
        out: &Encoded,
        trace: &opentelemetry::Context,
    ) -> Result<DeliveryFuture, KafkaError> {
        let record = FutureRecord::to(&out.topic)
            .key(&out.key)
            .payload(&out.payload)
            .headers(headers::for_event_in(out.event_type, trace));
        self.producer.send_result(record).map_err(|(e, _)| e)
    }

    async fn abort(&self) {
        let (producer, timeout) = (self.producer.clone(), self.timeout);
        if let Err(e) = blocking(move || producer.abort_transaction(timeout)).await {
            tracing::warn!(stage = self.stage, error = %e, "abort failed; the broker aborts on transaction timeout");
        }
    }

    /// Seek every partition of the batch back to its first offset, so it is read again.
    fn rewind(&self, batch: &[Record]) {
        let mut first: BTreeMap<(&str, i32), i64> = BTreeMap::new();
        for r in batch {
            let e = first.entry((&r.topic, r.partition)).or_insert(r.offset);
            *e = (*e).min(r.offset);
        }
        for ((topic, partition), offset) in first {
            if let Err(e) = self.consumer.client().seek(
                topic,
                partition,
                Offset::Offset(offset),
                Duration::from_secs(5),
            ) {
                tracing::warn!(stage = self.stage, %topic, partition, error = %e, "rewind failed; restarting from the committed offset on the next rebalance");
            }
        }
    }
}

/// The offset after the last record of each partition in the batch.
fn next_offsets(batch: &[Record]) -> Result<TopicPartitionList, KafkaError> {
    let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for r in batch {
        let e = next.entry((&r.topic, r.partition)).or_insert(r.offset + 1);
        *e = (*e).max(r.offset + 1);
    }
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    }
    Ok(tpl)
}

fn is_fatal(e: &KafkaError) -> bool {
    matches!(e, KafkaError::Transaction(t) if t.is_fatal())
}

/// librdkafka's transaction calls block; run them off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, KafkaError> + Send + 'static,
) -> Result<T, KafkaError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or(Err(KafkaError::Canceled))
}
