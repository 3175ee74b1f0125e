//! Stage logic: plain code behind a small trait, unit-testable without Kafka. The Kafka runner
//! (`kafka::runner`) owns transactions, retries, dead letters, tracing and shutdown.

pub mod confirm;
pub mod enrich;
pub mod media;
pub mod notify;
pub mod transcribe;

use std::future::Future;

/// One consumed record, as a stage sees it.
#[derive(Debug, Clone)]
pub struct Input {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// The `event-type` header, when present.
    pub event_type: Option<String>,
    /// Every header, in order (kept for dead letters).
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// One record a stage wants appended, atomically with its input's offset.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Topic base name (the configured prefix is added by the runner).
    pub topic: &'static str,
    pub key: String,
    pub event_type: &'static str,
    pub payload: Vec<u8>,
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
}

impl StageError {
    /// The label used in dead letters and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            StageError::Poison(_) => "poison",
            StageError::Permanent(_) => "permanent",
            StageError::Transient(_) => "retries_exhausted",
        }
    }
}

/// A stateless stream stage.
pub trait Stage: Send + Sync + 'static {
    /// Short name: consumer group, transactional id, dead letters and metrics use it.
    const NAME: &'static str;

    /// Topic base names this stage consumes.
    fn inputs(&self) -> Vec<&'static str>;

    /// Most inputs per transaction for this stage, when slow work (transcription) must keep a
    /// batch well inside Kafka's poll interval; `None` uses `stages.batch_max`.
    fn batch_limit(&self) -> Option<usize> {
        None
    }

    /// Turn one input into zero or more outputs. Must be safe to call again for the same
    /// input (retries and replays): side effects are keyed by the input, not by luck.
    fn handle(&self, input: &Input)
        -> impl Future<Output = Result<Vec<Output>, StageError>> + Send;
}
