//! The one place an event becomes the bytes of a Kafka record. The producer and the stage
//! runner (outputs and dead letters alike) hold an [`EventEncoder`]; the wire format is
//! chosen here and nowhere else.

use crate::events::{encode, CodecError, Event};

/// Encodes events for their topic.
#[derive(Debug, Clone, Default)]
pub struct EventEncoder {}

impl EventEncoder {
    /// The encoder for this process's wire format.
    pub fn new() -> EventEncoder {
        EventEncoder {}
    }

    /// The record value of `event`, to be appended to `topic` (full name).
    pub fn encode<E: Event>(&self, _topic: &str, event: &E) -> Result<Vec<u8>, CodecError> {
        encode(event)
    }
}
