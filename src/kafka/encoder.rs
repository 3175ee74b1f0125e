//! The one place an event becomes the bytes of a Kafka record. The producer and the stage
//! runner (outputs and dead letters alike) hold an [`EventEncoder`]; the wire format
//! (`kafka.wire_format`) is applied here and nowhere else.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::KafkaSettings;
use crate::backoff::Backoff;
use crate::events::confluent::RegistryError;
use crate::events::{CodecError, Encoder, Event, WireFormat};

/// Encodes events for their topic in the configured wire format. Cheap to clone; every
/// encoder made from the same settings shares one cache of registry ids, so a process fetches
/// each id once, at start-up, and never on the hot path.
#[derive(Debug, Clone)]
pub struct EventEncoder {
    inner: Encoder,
}

impl EventEncoder {
    /// The process's encoder for `kafka.wire_format` (and its registry in confluent mode).
    pub fn new(kafka: &KafkaSettings) -> Result<EventEncoder, RegistryError> {
        Ok(EventEncoder {
            inner: Encoder::new(
                kafka.wire_format,
                &kafka.schema_registry,
                &kafka.topic_prefix,
            )?,
        })
    }

    /// An encoder writing Avro single-object encoding, which needs no registry.
    pub fn single_object() -> EventEncoder {
        EventEncoder {
            inner: Encoder::single_object(),
        }
    }

    /// The wire format this encoder writes.
    pub fn format(&self) -> WireFormat {
        self.inner.format()
    }

    /// The record value of `event`, to be appended to `topic` (full name). In confluent mode
    /// an id that is not cached yet fails at once ([`CodecError::SchemaIdNotCached`]).
    pub fn encode<E: Event>(&self, topic: &str, event: &E) -> Result<Vec<u8>, CodecError> {
        self.inner.encode(topic, event)
    }

    /// True when every topic's registry id is cached (always, in single-object mode).
    pub fn is_ready(&self) -> bool {
        self.inner.is_ready()
    }

    /// Fetch and cache every topic's registry id (confluent mode); a no-op once done.
    pub async fn ready(&self) -> Result<(), RegistryError> {
        self.inner.ready().await
    }

    /// [`EventEncoder::ready`], retried while the registry is away, until it succeeds (true)
    /// or `shutdown` (false). `who` names the waiting role in the logs.
    pub async fn wait_ready(&self, who: &str, shutdown: &CancellationToken) -> bool {
        let backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let delay = match self.ready().await {
                Ok(()) => return true,
                Err(e) => {
                    let delay = backoff.delay(attempt);
                    tracing::warn!(%who, error = %e, retry_in = ?delay, "waiting for the schema registry ids (confluent wire format)");
                    delay
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }
}
