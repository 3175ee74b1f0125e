//! One batch's Kafka transaction: outputs and dead letters produced, input offsets sent to
//! the transaction, commit; on failure, abort and rewind so the batch is read again.
//!
//! A batch cut short (by `stages.batch_timeout`, or by shutdown) commits, in each partition,
//! the inputs before its first unfinished one, and seeks the partition back to that one; the
//! outputs of finished inputs after it are dropped and made again when it is read again.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::Consumer as _;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use super::handling::{Encoded, Outcome};
use super::RunnerError;
use crate::kafka::consume::{Consumer, Record};
use crate::kafka::context::KafkaProducer;
use crate::kafka::headers;

/// The transactional side of one stage.
pub(super) struct Transaction<'a> {
    pub stage: &'static str,
    pub consumer: &'a Consumer,
    pub producer: &'a KafkaProducer,
    pub timeout: Duration,
}

impl Transaction<'_> {
    /// Commit a batch's outcomes (`None`: not finished) with its offsets, up to each
    /// partition's first unfinished input. A failed transaction is aborted and the consumer
    /// rewound, so the batch is read again; only a fatal one stops the runner.
    pub async fn commit_or_rewind(
        &self,
        batch: &[Record],
        outcomes: Vec<Option<(Outcome, opentelemetry::Context)>>,
    ) -> Result<(), RunnerError> {
        let cut = first_unfinished(batch, &outcomes);
        let (kept, outcomes): (Vec<Record>, Vec<_>) = batch
            .iter()
            .zip(outcomes)
            .filter(|(r, _)| {
                cut.get(&(r.topic.clone(), r.partition))
                    .is_none_or(|at| r.offset < *at)
            })
            .filter_map(|(r, o)| o.map(|o| (r.clone(), o)))
            .unzip();
        let result = if kept.is_empty() {
            Ok(())
        } else {
            self.commit(&kept, outcomes).await
        };
        match result {
            Ok(()) => {
                if !cut.is_empty() {
                    tracing::info!(
                        stage = self.stage,
                        committed = kept.len(),
                        of = batch.len(),
                        "batch cut short; its unfinished inputs are read again"
                    );
                    self.seek_to(&cut);
                }
                Ok(())
            }
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
        let mut first: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for r in batch {
            let e = first
                .entry((r.topic.clone(), r.partition))
                .or_insert(r.offset);
            *e = (*e).min(r.offset);
        }
        self.seek_to(&first);
    }

    /// Seek each partition to its offset, so reading resumes there.
    fn seek_to(&self, to: &BTreeMap<(String, i32), i64>) {
        for ((topic, partition), offset) in to {
            let (topic, partition, offset) = (topic.as_str(), *partition, *offset);
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

/// Each partition's first input without an outcome (cut off before it finished).
fn first_unfinished<T>(batch: &[Record], outcomes: &[Option<T>]) -> BTreeMap<(String, i32), i64> {
    let mut cut: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for (r, o) in batch.iter().zip(outcomes) {
        if o.is_none() {
            let e = cut
                .entry((r.topic.clone(), r.partition))
                .or_insert(r.offset);
            *e = (*e).min(r.offset);
        }
    }
    cut
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(partition: i32, offset: i64) -> Record {
        Record {
            topic: "t".into(),
            partition,
            offset,
            log_time_ms: 0,
            key: None,
            payload: None,
            event_type: None,
            headers: Vec::new(),
            trace: opentelemetry::Context::new(),
        }
    }

    #[test]
    fn a_cut_batch_stops_each_partition_at_its_first_unfinished_input() {
        let batch = [
            record(0, 5),
            record(0, 6),
            record(1, 9),
            record(0, 7),
            record(1, 10),
        ];
        let outcomes = [Some(()), None, Some(()), Some(()), Some(())];
        let cut = first_unfinished(&batch, &outcomes);
        assert_eq!(
            cut.into_iter().collect::<Vec<_>>(),
            vec![(("t".into(), 0), 6)]
        );
        let all = [Some(()); 5];
        assert!(first_unfinished(&batch, &all).is_empty());
    }
}
