//! The event producer: encode (in the configured wire format), send, and wait for the
//! broker's acknowledgement.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureRecord, Producer};
use rdkafka::util::Timeout;
use tracing::Instrument;

use super::context::{KafkaContext, KafkaProducer};
use super::encoder::EventEncoder;
use super::{client, headers, KafkaSettings};
use crate::events::confluent::RegistryError;
use crate::events::{CodecError, Event};
use crate::telemetry::sampled_child;

/// Where the broker stored an event.
#[derive(Debug, Clone, Copy)]
pub struct Produced {
    pub partition: i32,
    pub offset: i64,
}

/// Why an event is not (known to be) in Kafka.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("could not encode the event: {0}")]
    Encode(#[from] CodecError),
    #[error("cannot write in confluent wire format: {0}")]
    Registry(#[from] RegistryError),
    #[error("the producer queue is full; Kafka is slower than the inflow, retry later")]
    QueueFull,
    #[error("Kafka did not acknowledge within {0:?}; the client should retry")]
    Deadline(Duration),
    #[error("Kafka refused the event: {0}")]
    Kafka(#[from] KafkaError),
    #[error("could not create the Kafka producer: {0}")]
    Create(KafkaError),
}

impl ProduceError {
    /// True when a retry can succeed (everything but an encoding bug or a schema that the
    /// registry does not hold).
    pub fn is_transient(&self) -> bool {
        match self {
            ProduceError::Encode(e) => matches!(e, CodecError::SchemaIdNotCached { .. }),
            ProduceError::Registry(e) => e.is_transient(),
            _ => true,
        }
    }
}

/// A shared, thread-safe producer with a delivery deadline.
#[derive(Clone)]
pub struct EventProducer {
    inner: KafkaProducer,
    deadline: Duration,
    encoder: EventEncoder,
}

impl EventProducer {
    /// Create the producer (the caller should do this off the async runtime's hot path). Its
    /// encoder writes `settings.wire_format`; call [`EventProducer::ready`] before serving.
    pub fn new(settings: &KafkaSettings, client_id: &str) -> Result<Self, ProduceError> {
        let encoder = EventEncoder::new(settings)?;
        let inner: KafkaProducer = client::producer(settings, client_id)
            .create_with_context(KafkaContext::new(client_id))
            .map_err(ProduceError::Create)?;
        Ok(EventProducer {
            inner,
            deadline: settings.produce_deadline,
            encoder,
        })
    }

    /// The encoder (shared with every encoder of this process and settings).
    pub fn encoder(&self) -> &EventEncoder {
        &self.encoder
    }

    /// Fetch the registry ids this producer writes (confluent mode; a no-op otherwise and
    /// once cached). Until it succeeds, sends fail fast instead of calling the registry.
    pub async fn ready(&self) -> Result<(), RegistryError> {
        self.encoder.ready().await
    }

    /// Append one event and wait until Kafka has it (acks=all), or the deadline passes.
    /// The span follows the OpenTelemetry messaging conventions; the key is never recorded
    /// because it can be a phone number.
    /// Its span is built only for a trace that is exported (`telemetry::sampled_child`).
    pub async fn send<E: Event>(
        &self,
        topic: &str,
        key: &str,
        event: &E,
    ) -> Result<Produced, ProduceError> {
        let span = sampled_child(|| {
            tracing::info_span!(
                "kafka.produce",
                otel.name = %format_args!("send {topic}"),
                otel.kind = "producer",
                messaging.system = "kafka",
                messaging.operation.type = "send",
                messaging.destination.name = %topic,
                messaging.destination.partition.id = tracing::field::Empty,
                messaging.kafka.offset = tracing::field::Empty,
                event_type = E::NAME,
            )
        });
        async {
            // Never a registry call here: an id not cached yet fails fast (transient), and
            // `ready`, retried in the background, fetches it.
            let payload = self.encoder.encode(topic, event)?;
            let produced = self.send_bytes(topic, key, E::NAME, &payload).await?;
            span.record(
                "messaging.destination.partition.id",
                produced.partition.to_string(),
            );
            span.record("messaging.kafka.offset", produced.offset);
            Ok(produced)
        }
        .instrument(span.clone())
        .await
    }

    /// Append pre-encoded bytes.
    pub async fn send_bytes(
        &self,
        topic: &str,
        key: &str,
        event_type: &str,
        payload: &[u8],
    ) -> Result<Produced, ProduceError> {
        let record = FutureRecord::to(topic)
            .key(key)
            .payload(payload)
            .headers(headers::for_event(event_type, &tracing::Span::current()));
        let delivery = match self.inner.send_result(record) {
            Ok(fut) => fut,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                return Err(ProduceError::QueueFull)
            }
            Err((e, _)) => return Err(ProduceError::Kafka(e)),
        };
        match tokio::time::timeout(self.deadline, delivery).await {
            Err(_) => Err(ProduceError::Deadline(self.deadline)),
            // The future is cancelled only when the producer is dropped mid-flight.
            Ok(Err(_canceled)) => Err(ProduceError::Deadline(self.deadline)),
            Ok(Ok(Err((e, _)))) => match e {
                KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut) => {
                    Err(ProduceError::Deadline(self.deadline))
                }
                e => Err(ProduceError::Kafka(e)),
            },
            Ok(Ok(Ok(d))) => Ok(Produced {
                partition: d.partition,
                offset: d.offset,
            }),
        }
    }

    /// Wait for queued records to be delivered (used on shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.inner.flush(Timeout::After(timeout))
    }
}
