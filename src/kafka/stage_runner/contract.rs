//! What a stage is to the runner: a typed input event in, typed output events out. The runner
//! decodes the input and encodes every output (through the one [`EventEncoder`]), so a stage
//! never handles bytes and an output's `event-type` header always names its payload.

use std::any::Any;
use std::fmt;
use std::future::Future;

use crate::events::{CodecError, Event};
use crate::kafka::consume::Inbound;
use crate::kafka::encoder::EventEncoder;

/// One consumed record, decoded, as a stage sees it.
#[derive(Debug, Clone)]
pub struct Input<E> {
    /// The decoded event.
    pub event: E,
    /// Where it was read (full topic name).
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
}

/// One event a stage wants appended, atomically with its input's offset.
pub struct Output {
    /// Topic base name (the configured prefix is added by the runner).
    pub topic: &'static str,
    /// The record key: the user id, or the sender before a user is known.
    pub key: String,
    event: Box<dyn OutputEvent>,
}

impl Output {
    /// `event` to `topic`, keyed by `key`.
    pub fn new<E: Event + Send + Sync + 'static>(
        topic: &'static str,
        key: impl Into<String>,
        event: E,
    ) -> Output {
        Output {
            topic,
            key: key.into(),
            event: Box::new(event),
        }
    }

    /// The `event-type` header the record will carry.
    pub fn event_type(&self) -> &'static str {
        self.event.event_type()
    }

    /// The event, if it is an `E` (for tests and logs).
    pub fn event<E: 'static>(&self) -> Option<&E> {
        self.event.as_any().downcast_ref()
    }

    /// The record value, encoded for `topic` (the full name).
    pub(crate) fn encode(
        &self,
        encoder: &EventEncoder,
        topic: &str,
    ) -> Result<Vec<u8>, CodecError> {
        self.event.encode(encoder, topic)
    }
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key can be a phone number: not printed.
        f.debug_struct("Output")
            .field("topic", &self.topic)
            .field("event_type", &self.event_type())
            .finish_non_exhaustive()
    }
}

/// An event held by an [`Output`] until the runner encodes it.
trait OutputEvent: Send + Sync {
    fn event_type(&self) -> &'static str;
    fn encode(&self, encoder: &EventEncoder, topic: &str) -> Result<Vec<u8>, CodecError>;
    fn as_any(&self) -> &dyn Any;
}

impl<E: Event + Send + Sync + 'static> OutputEvent for E {
    fn event_type(&self) -> &'static str {
        E::NAME
    }

    fn encode(&self, encoder: &EventEncoder, topic: &str) -> Result<Vec<u8>, CodecError> {
        encoder.encode(topic, self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Why a stage could not process an input.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The input itself is bad (undecodable, unknown schema): retrying cannot help.
    #[error("poison input: {0}")]
    Poison(String),
    /// The input is fine but can never succeed (e.g. media refused by policy with no event).
    #[error("permanent failure: {0}")]
    Permanent(String),
    /// A dependency failed; a retry may succeed.
    #[error("transient failure: {0}")]
    Transient(String),
    /// The input outlasted `stages.input_timeout` (set by the runner, not by stages).
    #[error("the input took longer than stages.input_timeout ({0:?}), all attempts included")]
    TimedOut(std::time::Duration),
}

impl StageError {
    /// The label used in dead letters and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            StageError::Poison(_) => "poison",
            StageError::Permanent(_) => "permanent",
            StageError::Transient(_) => "retries_exhausted",
            StageError::TimedOut(_) => "timed_out",
        }
    }
}

/// A stateless stream stage: plain code, unit-tested without Kafka.
pub trait Stage: Send + Sync + 'static {
    /// Short name: consumer group, transactional id, dead letters and metrics use it.
    const NAME: &'static str;

    /// The event (or union of events, see [`crate::inbound_union!`]) this stage reads; other
    /// events on its topics pass by without reaching it.
    type Event: Inbound;

    /// Topic base names this stage consumes.
    fn inputs(&self) -> Vec<&'static str>;

    /// Most inputs per transaction for this stage, when slow work (transcription) must keep a
    /// batch well inside Kafka's poll interval; `None` uses `stages.batch_max`.
    fn batch_limit(&self) -> Option<usize> {
        None
    }

    /// Turn one input into zero or more outputs. Must be safe to call again for the same
    /// input (retries and replays): side effects are keyed by the input, not by luck.
    fn handle(
        &self,
        input: &Input<Self::Event>,
    ) -> impl Future<Output = Result<Vec<Output>, StageError>> + Send;
}
