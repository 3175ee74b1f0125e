//! The exactly-once stage runner: one consumer group per stage and one transactional producer
//! per consumer (exactly-once v2). A batch's outputs, its dead letters and its input offsets
//! are committed in one Kafka transaction, so after any crash, restart or rebalance every
//! input's outputs are visible to `read_committed` readers exactly once.
//!
//! A transaction is open only between two polls, never across one: a rebalance (which happens
//! inside a poll) therefore never meets an open transaction.

mod handling;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::Settings;
use crate::events::confluent::RegistryError;
use crate::events::{Decoder, Encoder};
use crate::kafka::client::LagContext;
use crate::kafka::{client, headers};
use crate::stages::{Input, Output, Stage};

pub use handling::Outcome;

/// Why a stage runner stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("cannot create the {stage} stage's Kafka clients: {source}")]
    Create {
        stage: &'static str,
        source: KafkaError,
    },
    #[error(
        "Kafka transaction failed fatally in the {stage} stage: {source}; restart the process"
    )]
    Fatal {
        stage: &'static str,
        source: KafkaError,
    },
    #[error("stage task failed: {0}")]
    Task(String),
    #[error("the {stage} stage cannot use the schema registry: {source}")]
    Registry {
        stage: &'static str,
        source: RegistryError,
    },
}

/// Names derived from the stage and settings.
struct Names {
    group: String,
    transactional_id: String,
    deadletter_topic: String,
}

fn names<S: Stage>(settings: &Settings) -> Names {
    let prefix = &settings.kafka.topic_prefix;
    let group = format!("{prefix}smsflow-{}", S::NAME);
    let instance = settings
        .stages
        .instance_id
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "local".into());
    Names {
        transactional_id: format!("{group}-{instance}"),
        group,
        deadletter_topic: settings.topic(crate::topics::DEADLETTER),
    }
}

/// Run `stage` until `shutdown` is cancelled; the open batch is finished and committed first.
pub async fn run<S: Stage>(
    settings: Settings,
    stage: Arc<S>,
    shutdown: CancellationToken,
) -> Result<(), RunnerError> {
    let names = names::<S>(&settings);
    let txn_timeout = settings.stages.transaction_timeout;
    let (consumer, producer) = {
        let kafka = settings.kafka.clone();
        let group = names.group.clone();
        let txn_id = names.transactional_id.clone();
        tokio::task::spawn_blocking(
            move || -> Result<(StreamConsumer<LagContext>, FutureProducer), KafkaError> {
                // Static membership: a restarted instance takes its partitions back at once instead
                // of waiting for its predecessor's session to time out.
                let consumer: StreamConsumer<LagContext> =
                    client::consumer(&kafka, &format!("smsflow-{}", S::NAME), &group)
                        .set("group.instance.id", &txn_id)
                        .set("statistics.interval.ms", client::STATISTICS_INTERVAL_MS)
                        .create_with_context(LagContext {
                            group: group.clone(),
                        })?;
                let producer: FutureProducer =
                    client::producer(&kafka, &format!("smsflow-{}", S::NAME))
                        .set("transactional.id", &txn_id)
                        .set(
                            "transaction.timeout.ms",
                            txn_timeout.as_millis().to_string(),
                        )
                        .set("message.timeout.ms", txn_timeout.as_millis().to_string())
                        .create()?;
                // Fences any earlier producer with this id and aborts its open transaction.
                producer.init_transactions(txn_timeout)?;
                Ok((consumer, producer))
            },
        )
        .await
        .map_err(|e| RunnerError::Task(e.to_string()))?
        .map_err(|source| RunnerError::Create {
            stage: S::NAME,
            source,
        })?
    };
    let encoder = Encoder::new(
        settings.kafka.wire_format,
        &settings.kafka.schema_registry,
        &settings.kafka.topic_prefix,
    )
    .map_err(|source| RunnerError::Registry {
        stage: S::NAME,
        source,
    })?;
    if !wait_for_registry_ids::<S>(&encoder, &shutdown).await {
        return Ok(());
    }
    let decoder = Decoder::new(&settings.kafka.schema_registry);
    let inputs: Vec<String> = stage.inputs().iter().map(|t| settings.topic(t)).collect();
    let input_refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    consumer
        .subscribe(&input_refs)
        .map_err(|source| RunnerError::Create {
            stage: S::NAME,
            source,
        })?;
    tracing::info!(stage = S::NAME, group = %names.group, inputs = ?inputs, "stage started");

    let runner = Runner {
        settings: &settings,
        stage: &stage,
        consumer: &consumer,
        producer: &producer,
        names: &names,
        encoder: &encoder,
        decoder: &decoder,
    };
    loop {
        let batch = tokio::select! {
            _ = shutdown.cancelled() => break,
            b = runner.next_batch() => b,
        };
        if batch.is_empty() {
            continue;
        }
        runner.process(batch).await?;
    }
    tracing::info!(
        stage = S::NAME,
        "stage stopped cleanly: no transaction left open"
    );
    Ok(())
}

struct Runner<'a, S: Stage> {
    settings: &'a Settings,
    stage: &'a Arc<S>,
    consumer: &'a StreamConsumer<LagContext>,
    producer: &'a FutureProducer,
    names: &'a Names,
    encoder: &'a Encoder,
    decoder: &'a Decoder,
}

/// In confluent wire format a stage cannot write before it knows the registry ids of its
/// outputs: wait for them (without consuming) until they are fetched or shutdown. False on
/// shutdown.
async fn wait_for_registry_ids<S: Stage>(encoder: &Encoder, shutdown: &CancellationToken) -> bool {
    let mut delay = Duration::from_millis(500);
    loop {
        match encoder.ready().await {
            Ok(()) => return true,
            Err(e) => {
                tracing::warn!(stage = S::NAME, error = %e, retry_in = ?delay, "stage waits for the schema registry ids before consuming");
                tokio::select! {
                    _ = shutdown.cancelled() => return false,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

impl<S: Stage> Runner<'_, S> {
    /// Wait for one record, then take what else arrives within the linger, up to the cap.
    async fn next_batch(&self) -> Vec<OwnedMessage> {
        let cap = self
            .stage
            .batch_limit()
            .map_or(self.settings.stages.batch_max, |l| {
                l.min(self.settings.stages.batch_max)
            })
            .max(1);
        let mut batch = Vec::new();
        match self.consumer.recv().await {
            Ok(m) => batch.push(m.detach()),
            Err(e) => {
                tracing::warn!(stage = S::NAME, error = %e, "consumer error; librdkafka retries");
                return batch;
            }
        }
        let until = tokio::time::Instant::now() + self.settings.stages.batch_linger;
        while batch.len() < cap {
            match tokio::time::timeout_at(until, self.consumer.recv()).await {
                Ok(Ok(m)) => batch.push(m.detach()),
                Ok(Err(e)) => {
                    tracing::warn!(stage = S::NAME, error = %e, "consumer error; librdkafka retries");
                    break;
                }
                Err(_) => break,
            }
        }
        batch
    }

    /// Handle a batch and commit its outputs with its offsets in one transaction. On a
    /// transaction failure the consumer is rewound and the batch will be read again.
    async fn process(&self, batch: Vec<OwnedMessage>) -> Result<(), RunnerError> {
        let span = tracing::info_span!("stage.batch", stage = S::NAME, size = batch.len());
        // Confluent-framed inputs name a registry id: learn unseen writer schemas first. Only
        // an unreachable registry fails here: retry like a transient failure, then go on, so
        // records whose schema stays unknown are dead-lettered and the partition keeps moving.
        let mut attempt = 0;
        while let Err(e) = self
            .decoder
            .prepare_all(batch.iter().filter_map(<OwnedMessage as Message>::payload))
            .await
        {
            attempt += 1;
            if attempt >= self.settings.stages.max_attempts {
                tracing::warn!(stage = S::NAME, error = %e, attempt, "schema registry unreachable; inputs with unknown schema ids will be dead-lettered");
                break;
            }
            let delay = handling::backoff(&self.settings.stages, attempt);
            tracing::warn!(stage = S::NAME, error = %e, attempt, retry_in = ?delay, "cannot resolve input schema ids; retrying");
            tokio::time::sleep(delay).await;
        }
        let inputs: Vec<(Input, opentelemetry::Context)> = batch.iter().map(to_input).collect();
        let mut outcomes =
            handling::handle_all(self.stage.as_ref(), &self.settings.stages, &inputs)
                .instrument(span.clone())
                .await;
        if let Err(e) = self.frame(&mut outcomes) {
            crate::metrics::stage_error(S::NAME);
            tracing::error!(stage = S::NAME, error = %e, "cannot frame outputs for the wire; the batch will be processed again");
            self.rewind(&batch);
            tokio::time::sleep(self.settings.stages.backoff_max).await;
            return Ok(());
        }
        match self.commit(&batch, outcomes).instrument(span).await {
            Ok(()) => Ok(()),
            Err(e) if is_fatal(&e) => Err(RunnerError::Fatal {
                stage: S::NAME,
                source: e,
            }),
            Err(e) => {
                crate::metrics::stage_error(S::NAME);
                tracing::warn!(stage = S::NAME, error = %e, "transaction aborted; the batch will be processed again");
                self.abort().await;
                self.rewind(&batch);
                Ok(())
            }
        }
    }

    async fn commit(
        &self,
        batch: &[OwnedMessage],
        outcomes: Vec<(Outcome, opentelemetry::Context)>,
    ) -> Result<(), KafkaError> {
        let producer = self.producer.clone();
        blocking(move || producer.begin_transaction()).await?;
        let mut deliveries = Vec::new();
        let mut dead = 0u64;
        let mut produced = 0u64;
        for (outcome, trace) in &outcomes {
            match outcome {
                Outcome::Outputs(outputs) => {
                    for out in outputs {
                        deliveries.push(self.enqueue(out, trace)?);
                        produced += 1;
                    }
                }
                Outcome::Dead(letter) => {
                    deliveries.push(self.enqueue_to(
                        &self.names.deadletter_topic,
                        letter,
                        trace,
                    )?);
                    dead += 1;
                }
            }
        }
        let offsets = next_offsets(batch)?;
        let producer = self.producer.clone();
        // Only a consumer that has joined its group has metadata; without it the offsets
        // could not be fenced, so the batch is retried.
        let metadata = self
            .consumer
            .group_metadata()
            .ok_or(KafkaError::MessageConsumption(
                rdkafka::types::RDKafkaErrorCode::UnknownMemberId,
            ))?;
        let timeout = self.settings.stages.transaction_timeout;
        blocking(move || producer.send_offsets_to_transaction(&offsets, &metadata, timeout))
            .await?;
        let producer = self.producer.clone();
        blocking(move || producer.commit_transaction(timeout)).await?;
        // Committed: every delivery succeeded, or the commit would have failed.
        drop(deliveries);
        crate::metrics::stage_processed(S::NAME, batch.len() as u64, produced, dead);
        Ok(())
    }

    /// Stages emit single-object bytes; put them in the configured wire format.
    fn frame(
        &self,
        outcomes: &mut [(Outcome, opentelemetry::Context)],
    ) -> Result<(), crate::events::CodecError> {
        for (outcome, _) in outcomes.iter_mut() {
            let outputs = match outcome {
                Outcome::Outputs(outputs) => outputs.as_mut_slice(),
                Outcome::Dead(letter) => std::slice::from_mut(letter),
            };
            for out in outputs {
                let topic = self.settings.topic(out.topic);
                if let std::borrow::Cow::Owned(framed) = self.encoder.frame(&topic, &out.payload)? {
                    out.payload = framed;
                }
            }
        }
        Ok(())
    }

    fn enqueue(
        &self,
        out: &Output,
        trace: &opentelemetry::Context,
    ) -> Result<rdkafka::producer::DeliveryFuture, KafkaError> {
        let topic = self.settings.topic(out.topic);
        self.enqueue_to(&topic, out, trace)
    }

    fn enqueue_to(
        &self,
        topic: &str,
        out: &Output,
        trace: &opentelemetry::Context,
    ) -> Result<rdkafka::producer::DeliveryFuture, KafkaError> {
        let record = FutureRecord::to(topic)
            .key(&out.key)
            .payload(&out.payload)
            .headers(headers::for_event_in(out.event_type, trace));
        self.producer.send_result(record).map_err(|(e, _)| e)
    }

    async fn abort(&self) {
        let producer = self.producer.clone();
        let timeout = self.settings.stages.transaction_timeout;
        if let Err(e) = blocking(move || producer.abort_transaction(timeout)).await {
            tracing::warn!(stage = S::NAME, error = %e, "abort failed; the broker aborts on transaction timeout");
        }
    }

    /// Seek every partition of the batch back to its first offset, so it is read again.
    fn rewind(&self, batch: &[OwnedMessage]) {
        let mut first: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for m in batch {
            let e = first
                .entry((m.topic().to_owned(), m.partition()))
                .or_insert(m.offset());
            *e = (*e).min(m.offset());
        }
        for ((topic, partition), offset) in first {
            if let Err(e) = self.consumer.seek(
                &topic,
                partition,
                Offset::Offset(offset),
                Duration::from_secs(5),
            ) {
                tracing::warn!(stage = S::NAME, %topic, partition, error = %e, "rewind failed; restarting from the committed offset on the next rebalance");
            }
        }
    }
}

fn to_input(m: &OwnedMessage) -> (Input, opentelemetry::Context) {
    let hdrs: Vec<(String, Option<Vec<u8>>)> = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default();
    let event_type = m
        .headers()
        .and_then(|h| headers::get(h, headers::EVENT_TYPE))
        .map(str::to_owned);
    let trace = headers::trace_context(m.headers());
    (
        Input {
            topic: m.topic().to_owned(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            event_type,
            headers: hdrs,
        },
        trace,
    )
}

fn next_offsets(batch: &[OwnedMessage]) -> Result<TopicPartitionList, KafkaError> {
    let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for m in batch {
        let e = next
            .entry((m.topic().to_owned(), m.partition()))
            .or_insert(m.offset() + 1);
        *e = (*e).max(m.offset() + 1);
    }
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        tpl.add_partition_offset(&topic, partition, Offset::Offset(offset))?;
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
