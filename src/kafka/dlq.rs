//! `smsflow dlq list|replay`: inspect dead letters and re-inject their original records.
//!
//! Replay uses its own consumer group and commits after each re-injected letter is
//! acknowledged, so running it twice does not inject a letter twice.

use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::context::{KafkaContext, KafkaProducer};
use super::{client, KafkaSettings};
use crate::events::confluent::RegistryError;
use crate::events::{decode, CodecError, DeadLetter, Decoder};

/// Why a dead-letter command failed.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error("Kafka failed ({context}): {source}; is Kafka up at kafka.brokers?")]
    Kafka {
        context: &'static str,
        source: KafkaError,
    },
    #[error("dead letter at offset {offset} cannot be decoded: {source}")]
    Decode { offset: i64, source: CodecError },
    #[error(
        "dead letter at offset {offset} names a schema id the registry cannot give now: {source}"
    )]
    Registry { offset: i64, source: RegistryError },
}

/// Decode a dead letter in either wire format, asking the registry about an unseen id.
async fn read_letter(
    decoder: &Decoder,
    m: &rdkafka::message::BorrowedMessage<'_>,
) -> Result<DeadLetter, DlqError> {
    let payload = m.payload().unwrap_or_default();
    decoder
        .prepare(payload)
        .await
        .map_err(|source| DlqError::Registry {
            offset: m.offset(),
            source,
        })?;
    decode(payload).map_err(|source| DlqError::Decode {
        offset: m.offset(),
        source,
    })
}

/// Which dead letters a command applies to.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub stage: Option<String>,
}

impl Filter {
    fn matches(&self, l: &DeadLetter) -> bool {
        self.stage.as_deref().is_none_or(|s| s == l.stage)
    }
}

fn kafka(context: &'static str) -> impl FnOnce(KafkaError) -> DlqError {
    move |source| DlqError::Kafka { context, source }
}

/// Read every dead letter currently in the topic (no offsets are committed).
pub async fn list(
    settings: &KafkaSettings,
    filter: &Filter,
    limit: usize,
) -> Result<Vec<DeadLetter>, DlqError> {
    let topic = settings.topic(crate::topics::DEADLETTER);
    let consumer: StreamConsumer<KafkaContext> =
        client::consumer(settings, "smsflow-dlq", "smsflow-dlq-list")
            .set("enable.partition.eof", "true")
            .create_with_context(KafkaContext::new("smsflow-dlq"))
            .map_err(kafka("create consumer"))?;
    let md = consumer
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .map_err(kafka("fetch metadata"))?;
    let partitions: Vec<i32> = md
        .topics()
        .first()
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        tpl.add_partition_offset(&topic, *p, Offset::Beginning)
            .map_err(kafka("assign"))?;
    }
    consumer.assign(&tpl).map_err(kafka("assign"))?;
    let decoder = Decoder::new(&settings.schema_registry);
    let mut out = Vec::new();
    let mut at_end = 0usize;
    while at_end < partitions.len() && out.len() < limit {
        match tokio::time::timeout(Duration::from_secs(10), consumer.recv()).await {
            Err(_) => break,
            Ok(Err(KafkaError::PartitionEOF(_))) => at_end += 1,
            Ok(Err(e)) => {
                return Err(DlqError::Kafka {
                    context: "read dead letters",
                    source: e,
                })
            }
            Ok(Ok(m)) => {
                let letter = read_letter(&decoder, &m).await?;
                if filter.matches(&letter) {
                    out.push(letter);
                }
            }
        }
    }
    Ok(out)
}

/// Re-inject matching dead letters to their source topics, once each. Returns how many.
pub async fn replay(
    settings: &KafkaSettings,
    filter: &Filter,
    dry_run: bool,
) -> Result<usize, DlqError> {
    let topic = settings.topic(crate::topics::DEADLETTER);
    let group = format!("{}smsflow-dlq-replay", settings.topic_prefix);
    let consumer: StreamConsumer<KafkaContext> = client::consumer(settings, "smsflow-dlq", &group)
        .set("enable.partition.eof", "true")
        .create_with_context(KafkaContext::new("smsflow-dlq"))
        .map_err(kafka("create consumer"))?;
    let producer: KafkaProducer = client::producer(settings, "smsflow-dlq")
        .create_with_context(KafkaContext::new("smsflow-dlq"))
        .map_err(kafka("create producer"))?;
    consumer.subscribe(&[&topic]).map_err(kafka("subscribe"))?;
    let decoder = Decoder::new(&settings.schema_registry);
    let mut replayed = 0usize;
    let mut idle_eofs = 0usize;
    loop {
        let m = match tokio::time::timeout(Duration::from_secs(10), consumer.recv()).await {
            Err(_) => break,
            Ok(Err(KafkaError::PartitionEOF(_))) => {
                idle_eofs += 1;
                let assigned = consumer.assignment().map(|a| a.count()).unwrap_or(0);
                if assigned > 0 && idle_eofs >= assigned {
                    break;
                }
                continue;
            }
            Ok(Err(e)) => {
                return Err(DlqError::Kafka {
                    context: "read dead letters",
                    source: e,
                })
            }
            Ok(Ok(m)) => m,
        };
        let letter = read_letter(&decoder, &m).await?;
        if filter.matches(&letter) {
            if !dry_run {
                let mut headers =
                    OwnedHeaders::new_with_capacity(letter.original_headers.len() + 1);
                for h in &letter.original_headers {
                    headers = headers.insert(Header {
                        key: &h.key,
                        value: h.value.as_deref(),
                    });
                }
                headers = headers.insert(Header {
                    key: "smsflow-replayed-from",
                    value: Some(letter.event_id.as_str()),
                });
                let mut record = FutureRecord::to(&letter.source_topic).headers(headers);
                if let Some(k) = letter.original_key.as_deref() {
                    record = record.key(k);
                }
                if let Some(v) = letter.original_value.as_deref() {
                    record = record.payload(v);
                }
                producer
                    .send(record, Duration::from_secs(10))
                    .await
                    .map_err(|(e, _)| DlqError::Kafka {
                        context: "re-inject",
                        source: e,
                    })?;
            }
            replayed += 1;
        }
        if !dry_run {
            consumer
                .store_offset_from_message(&m)
                .map_err(kafka("store offset"))?;
            consumer
                .commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
                .map_err(kafka("commit"))?;
        }
    }
    Ok(replayed)
}
