//! The transcribe stage's metrics, as typed functions (names listed once, here).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `smsflow_transcribe_outcomes_total` | counter | `provider`, `outcome` |
//! | `smsflow_transcribe_provider_duration_seconds` | histogram | `provider`, `result` |
//! | `smsflow_transcribe_provider_retries_total` | counter | `provider` |
//! | `smsflow_transcribe_breaker_open` | gauge (0 or 1) | `provider` |
//! | `smsflow_transcribe_audio_seconds` | histogram | |

use std::time::Duration;

use metrics::{counter, gauge, histogram};

/// What became of one `MediaStored` audio input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `TranscriptReady` produced.
    Ready,
    /// `TranscriptFailed`, with its `reason`.
    Failed(&'static str),
    /// A transient failure handed back to the runner.
    Transient,
}

impl Outcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ready => "ready",
            Outcome::Failed(reason) => reason,
            Outcome::Transient => "transient",
        }
    }
}

/// One input finished (or was handed back) with `outcome`.
pub fn outcome(provider: &'static str, outcome: Outcome) {
    counter!("smsflow_transcribe_outcomes_total", "provider" => provider, "outcome" => outcome.as_str())
        .increment(1);
}

/// One provider call took `elapsed`; `result` is `ok`, `rejected` or `error`.
pub fn provider_call(provider: &'static str, result: &'static str, elapsed: Duration) {
    histogram!("smsflow_transcribe_provider_duration_seconds", "provider" => provider, "result" => result)
        .record(elapsed.as_secs_f64());
}

/// A provider call is being retried.
pub fn provider_retry(provider: &'static str) {
    counter!("smsflow_transcribe_provider_retries_total", "provider" => provider).increment(1);
}

/// Length of audio sent for transcription.
pub fn audio_length(duration: Duration) {
    histogram!("smsflow_transcribe_audio_seconds").record(duration.as_secs_f64());
}

/// The breaker of `provider` opened (`true`) or closed.
pub fn breaker_open(provider: &'static str, open: bool) {
    gauge!("smsflow_transcribe_breaker_open", "provider" => provider).set(if open {
        1.0
    } else {
        0.0
    });
}
