//! The enrich stage's extractors: plain functions from text to items, unit-tested on typed
//! messages and on speech-recognizer transcripts (lowercase, no punctuation, numbers as words).
//! The Kafka stage around them arrives with the enrichment issue.

pub mod extract;
pub mod item;
pub mod spoken;

pub use extract::{extract, Source};
pub use item::{Item, ItemKind};
