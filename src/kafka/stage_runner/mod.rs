//! The exactly-once stage runner: one consumer group per stage and one transactional producer
//! per consumer (exactly-once v2). A batch's outputs, its dead letters and its input offsets
//! are committed in one Kafka transaction, so after any crash, restart or rebalance every
//! input's outputs are visible to `read_committed` readers exactly once.
//!
//! A transaction is open only between two polls, never across one: a rebalance (which happens
//! inside a poll) therefore never meets an open transaction. Polls are never overdue: an input
//! gets at most `stages.input_timeout` (then it is dead-lettered as `timed_out`) and a batch
//! at most `stages.batch_timeout` (then what finished is committed and the rest read again),
//! both inside `stages.max_poll_interval`, so a slow input cannot get the consumer evicted and
//! its batch redone forever.
//!
//! Built on the one consume shape ([`crate::kafka::consume`]); a stage itself is the small
//! typed [`Stage`] trait ([`contract`]).

pub mod contract;
mod handling;
mod settings;
mod transaction;

use std::sync::Arc;

use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use contract::{Input, Output, Stage, StageError};
pub use handling::{handle_record, Encoded, Outcome};
pub use settings::StageSettings;

use super::consume::{Consumer, SchemaWait};
use super::context::{KafkaContext, KafkaProducer};
use super::encoder::EventEncoder;
use super::{client, KafkaSettings};
use crate::events::confluent::RegistryError;
use handling::Handling;
use transaction::Transaction;

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
    #[error("the {stage} stage cannot use the schema registry: {source}")]
    Registry {
        stage: &'static str,
        source: RegistryError,
    },
}

/// The consumer group of a stage.
pub fn group_of<S: Stage>(kafka: &KafkaSettings) -> String {
    format!("{}smsflow-{}", kafka.topic_prefix, S::NAME)
}

/// Run `stage` until `shutdown` is cancelled; the open batch is finished and committed first.
pub async fn run_stage<S: Stage>(
    kafka: KafkaSettings,
    settings: StageSettings,
    stage: Arc<S>,
    shutdown: CancellationToken,
) -> Result<(), RunnerError> {
    let create = |source| RunnerError::Create {
        stage: S::NAME,
        source,
    };
    // Outputs are encoded in the configured wire format; in confluent mode the stage waits
    // (without consuming) until its outputs' registry ids are cached.
    let encoder = EventEncoder::new(&kafka).map_err(|source| RunnerError::Registry {
        stage: S::NAME,
        source,
    })?;
    if !encoder.wait_ready(S::NAME, &shutdown).await {
        return Ok(());
    }
    let group = group_of::<S>(&kafka);
    let instance = settings
        .instance_id
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "local".into());
    let transactional_id = format!("{group}-{instance}");
    let client_id = format!("smsflow-{}", S::NAME);
    // Static membership: a restarted instance takes its partitions back at once instead of
    // waiting for its predecessor's session to time out.
    let member = transactional_id.clone();
    let poll = settings.poll_settings();
    let consumer = Consumer::create(&kafka, &client_id, &group, move |cfg| {
        cfg.set("group.instance.id", &member);
        for (key, value) in poll {
            cfg.set(key, value);
        }
    })
    .await
    .map_err(create)?
    // An input naming a registry id the registry cannot give now is retried like a transient
    // failure, then dead-lettered, so the partition keeps moving (`dlq replay` later).
    .with_schema_wait(SchemaWait::Attempts(
        settings.max_attempts,
        settings.backoff(),
    ));
    let producer = transactional_producer(&kafka, &settings, &client_id, &transactional_id)
        .await
        .map_err(create)?;
    let inputs: Vec<String> = stage.inputs().iter().map(|t| kafka.topic(t)).collect();
    consumer.subscribe(&inputs).map_err(create)?;
    tracing::info!(stage = S::NAME, %group, ?inputs, "stage started");

    let handling = Handling {
        settings: &settings,
        kafka: &kafka,
        encoder: &encoder,
        group: &group,
    };
    let txn = Transaction {
        stage: S::NAME,
        consumer: &consumer,
        producer: &producer,
        timeout: settings.transaction_timeout,
    };
    let cap = stage
        .batch_limit()
        .map_or(settings.batch_max, |l| l.min(settings.batch_max))
        .max(1);
    loop {
        let batch = tokio::select! {
            _ = shutdown.cancelled() => break,
            b = consumer.next_batch(cap, settings.batch_linger) => b,
        };
        if batch.is_empty() {
            continue;
        }
        let span = tracing::info_span!("stage.batch", stage = S::NAME, size = batch.len());
        // The batch and its commit must end before the consumer's next poll is overdue.
        let deadline = tokio::time::Instant::now() + settings.batch_timeout;
        let outcomes = handling::handle_all(stage.as_ref(), &handling, &batch, deadline, &shutdown)
            .instrument(span.clone())
            .await;
        txn.commit_or_rewind(&batch, outcomes)
            .instrument(span)
            .await?;
    }
    tracing::info!(
        stage = S::NAME,
        "stage stopped cleanly: no transaction left open"
    );
    Ok(())
}

/// The stage's transactional producer, created and initialised off the async workers;
/// initialising fences any earlier producer with this id and aborts its open transaction.
async fn transactional_producer(
    kafka: &KafkaSettings,
    settings: &StageSettings,
    client_id: &str,
    transactional_id: &str,
) -> Result<KafkaProducer, KafkaError> {
    let timeout = settings.transaction_timeout;
    let mut cfg = client::producer(kafka, client_id);
    cfg.set("transactional.id", transactional_id)
        .set("transaction.timeout.ms", timeout.as_millis().to_string())
        .set("message.timeout.ms", timeout.as_millis().to_string());
    let context = KafkaContext::new(client_id);
    tokio::task::spawn_blocking(move || {
        let producer: KafkaProducer = cfg.create_with_context(context)?;
        producer.init_transactions(timeout)?;
        Ok(producer)
    })
    .await
    .unwrap_or_else(|e| Err(KafkaError::ClientCreation(format!("producer task: {e}"))))
}
