//! Event types, their Avro schemas in `schemas/`, their spec fingerprints, and the two wire
//! formats: Avro single-object encoding and the Confluent wire format with its registry.

mod codec;
pub mod confluent;
mod dead_letter;
mod enrichment;
mod fingerprint;
mod media;
mod message_received;
mod outbound;
mod phones;
mod registry;
mod sender_rejected;
mod wire;

pub use codec::{decode, decode_with_reader, encode, split_header, CodecError};
pub use dead_letter::{DeadLetter, DeadLetterHeader};
pub use enrichment::{ItemReviewed, ItemsProposed, PartEnriched, ProposedItem};
pub use fingerprint::{
    canonical_form_of_json, fingerprint, fingerprint_of_json, legacy_fingerprint,
    CanonicalFormError,
};
pub use media::{MediaRejected, MediaStored, TranscriptFailed, TranscriptReady};
pub use message_received::{Geo, MediaRef, MessageReceived};
pub use outbound::{OutboundRequested, OutboundStatusChanged};
pub use phones::{
    OptOutChanged, PhoneEvent, PhoneLinked, PhoneState, PhoneUnlinked, PhoneVerified,
};
pub use registry::{registry, SchemaRegistry};
pub use sender_rejected::SenderRejected;
pub use wire::{Decoder, Encoder, WireFormat};

/// An event that lives on a topic as Avro single-object encoding.
pub trait Event: serde::Serialize + serde::de::DeserializeOwned {
    /// The record's full Avro name, also sent as the `event-type` header.
    const FULL_NAME: &'static str;
    /// Short name used in the `event-type` header and in logs.
    const NAME: &'static str;
}
