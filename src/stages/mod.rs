//! Stage logic: plain code behind the small typed [`Stage`] trait, unit-testable without
//! Kafka. The stage runner (`kafka::stage_runner`) decodes each input, encodes each output,
//! and owns transactions, retries, dead letters, tracing and shutdown.
//!
//! Stages do not import each other; what several of them need lives in [`shared`].

pub mod confirm;
pub mod enrich;
pub mod media;
pub mod notify;
pub mod shared;
pub mod transcribe;

pub use crate::kafka::stage_runner::{Input, Output, Stage, StageError};
