//! Handling a batch: each record is decoded into the stage's event, inputs with the same key
//! run in order and different keys run concurrently (bounded, [`Ordered`]), transient failures
//! retry by the backoff, outputs are encoded, and whatever cannot succeed becomes a dead
//! letter.
//!
//! A panic inside a stage's handler is caught here and treated as poison: the input is
//! dead-lettered at once (not retried: the same input would panic again) and the runner, its
//! batch and its process carry on, so a bad input cannot make a stage crash-loop. What a panic
//! may leave behind is whatever the handler did before it (an object stored, a Redis claim
//! taken): the same as a crash at that point, which every stage already tolerates because its
//! side effects are keyed by the input. A `std::sync::Mutex` the handler held while panicking
//! stays poisoned for the life of the process; stages keep no such lock across a fallible call.

use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::contract::{Input, Output, Stage, StageError};
use super::settings::StageSettings;
use crate::kafka::consume::{
    dead_letter, panic_message, process_span, GiveUp, Inbound, Ordered, Record,
};
use crate::kafka::encoder::EventEncoder;
use crate::kafka::KafkaSettings;

/// One record ready to append: full topic name, key, `event-type` and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub topic: String,
    pub key: String,
    pub event_type: &'static str,
    pub payload: Vec<u8>,
}

/// What became of one input.
#[derive(Debug)]
pub enum Outcome {
    /// Outputs to append (possibly none).
    Outputs(Vec<Encoded>),
    /// The dead letter to append instead.
    Dead(Encoded),
}

/// What handling needs besides the stage.
pub(super) struct Handling<'a> {
    pub settings: &'a StageSettings,
    pub kafka: &'a KafkaSettings,
    pub encoder: &'a EventEncoder,
    pub group: &'a str,
}

/// Handle every record until `deadline`; the result is in record order, each with the trace
/// context its outputs should carry, `None` for an input not finished by then. On
/// `shutdown`, inputs not started yet are not started, and those running get at most
/// `stages.shutdown_grace` more.
pub(super) async fn handle_all<S: Stage>(
    stage: &S,
    h: &Handling<'_>,
    records: &[Record],
    deadline: tokio::time::Instant,
    shutdown: &CancellationToken,
) -> Vec<Option<(Outcome, opentelemetry::Context)>> {
    // Inputs sharing topic, partition and key are handled in order.
    let mut ordered = Ordered::new(h.settings.max_in_flight, |i: usize| {
        handle_one(stage, h, &records[i])
            .map(move |r| (i, r))
            .boxed()
    });
    for (i, r) in records.iter().enumerate() {
        ordered.push(Some((r.topic.as_str(), r.partition, r.key.as_deref())), i);
    }
    let mut results: Vec<Option<(Outcome, opentelemetry::Context)>> =
        (0..records.len()).map(|_| None).collect();
    let mut stopping = false;
    let mut deadline = deadline;
    loop {
        tokio::select! {
            next = ordered.next() => match next {
                Some((i, r)) => results[i] = Some(r),
                None => break,
            },
            _ = tokio::time::sleep_until(deadline) => {
                if stopping {
                    tracing::warn!(
                        stage = S::NAME,
                        unfinished = ordered.len(),
                        "shutting down after stages.shutdown_grace: committing what finished, \
                         the partition's next owner handles the rest"
                    );
                } else {
                    tracing::warn!(
                        stage = S::NAME,
                        unfinished = ordered.len(),
                        "batch over stages.batch_timeout: committing what finished, the rest is read again"
                    );
                }
                break;
            }
            _ = shutdown.cancelled(), if !stopping => {
                stopping = true;
                ordered.drop_waiting();
                deadline = deadline.min(tokio::time::Instant::now() + h.settings.shutdown_grace);
            }
        }
    }
    results
}

async fn handle_one<S: Stage>(
    stage: &S,
    h: &Handling<'_>,
    record: &Record,
) -> (Outcome, opentelemetry::Context) {
    let span = process_span(record, h.group, S::NAME);
    let cx = span.context();
    let outcome = decode_and_attempt(stage, h, record)
        .instrument(span.clone())
        .await;
    span.record(
        "outcome",
        match &outcome {
            Outcome::Dead(_) => "dead_letter",
            Outcome::Outputs(o) if o.is_empty() => "nothing",
            Outcome::Outputs(_) => "ok",
        },
    );
    (outcome, cx)
}

/// The stage's input from a record: `Ok(None)` for another event on its topics (not for this
/// stage), `Err` (poison) for bytes that are not the event they claim to be.
fn decode_input<S: Stage>(record: &Record) -> Result<Option<Input<S::Event>>, StageError> {
    let bytes = record
        .payload
        .as_deref()
        .ok_or_else(|| StageError::Poison("the record has no payload".into()))?;
    let event = <S::Event as Inbound>::decode(record.event_type.as_deref(), bytes)
        .map_err(|e| StageError::Poison(format!("cannot decode the input: {e}")))?;
    Ok(event.map(|event| Input {
        event,
        topic: record.topic.clone(),
        partition: record.partition,
        offset: record.offset,
        key: record.key.clone(),
    }))
}

/// What the runner does with one record, without Kafka, retries or encoding: decode it and,
/// if it is the stage's event, hand it to the stage. For tests of a stage on records.
pub async fn handle_record<S: Stage>(
    stage: &S,
    record: &Record,
) -> Result<Vec<Output>, StageError> {
    match decode_input::<S>(record)? {
        Some(input) => stage.handle(&input).await,
        None => Ok(Vec::new()),
    }
}

async fn decode_and_attempt<S: Stage>(stage: &S, h: &Handling<'_>, record: &Record) -> Outcome {
    let input = match decode_input::<S>(record) {
        Ok(Some(input)) => input,
        // Another event on the stage's topics: not for this stage.
        Ok(None) => return Outcome::Outputs(Vec::new()),
        Err(e) => return give_up::<S>(h, record, &e, 1),
    };
    let attempts = std::sync::atomic::AtomicU32::new(0);
    let limit = h.settings.input_timeout;
    match tokio::time::timeout(limit, attempt_all(stage, h, record, &input, &attempts)).await {
        Ok(outcome) => outcome,
        Err(_) => {
            // The attempt in progress is dropped: like a crash at that point, which the
            // stage's keyed side effects tolerate.
            crate::metrics::stage_timeout(S::NAME);
            let error = StageError::TimedOut(limit);
            let attempts = attempts.load(std::sync::atomic::Ordering::Relaxed);
            give_up::<S>(h, record, &error, attempts)
        }
    }
}

/// Attempt `input` until it succeeds, fails for good, or its transient failures are spent.
async fn attempt_all<S: Stage>(
    stage: &S,
    h: &Handling<'_>,
    record: &Record,
    input: &Input<S::Event>,
    attempts: &std::sync::atomic::AtomicU32,
) -> Outcome {
    let backoff = h.settings.backoff();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        attempts.store(attempt, std::sync::atomic::Ordering::Relaxed);
        let started = std::time::Instant::now();
        let result = caught(stage, input)
            .await
            .and_then(|outputs| encode_all(h, &outputs));
        crate::metrics::stage_latency(S::NAME, started.elapsed());
        match result {
            Ok(outputs) => return Outcome::Outputs(outputs),
            Err(StageError::Transient(e)) if attempt < h.settings.max_attempts => {
                crate::metrics::stage_error(S::NAME);
                let delay = backoff.delay(attempt);
                tracing::warn!(stage = S::NAME, attempt, error = %e, retry_in = ?delay, "transient failure; retrying");
                tokio::time::sleep(delay).await;
            }
            Err(e) => return give_up::<S>(h, record, &e, attempt),
        }
    }
}

/// The stage's result for `input`, with a panic turned into poison (see the module doc).
async fn caught<S: Stage>(stage: &S, input: &Input<S::Event>) -> Result<Vec<Output>, StageError> {
    // Unwind safety: the runner shares nothing with the handler but `&S` and `&input`; a stage
    // whose own state a panic could leave half-changed is the stage's to guard (see above).
    match AssertUnwindSafe(stage.handle(input)).catch_unwind().await {
        Ok(result) => result,
        Err(payload) => {
            crate::metrics::stage_panic(S::NAME);
            Err(StageError::Poison(format!(
                "the stage panicked: {}",
                panic_message(payload.as_ref())
            )))
        }
    }
}

/// Encode a stage's outputs; an event that cannot be encoded is a schema bug, so permanent.
fn encode_all(h: &Handling<'_>, outputs: &[Output]) -> Result<Vec<Encoded>, StageError> {
    outputs
        .iter()
        .map(|o| {
            let topic = h.kafka.topic(o.topic);
            let payload = o.encode(h.encoder, &topic).map_err(|e| {
                StageError::Permanent(format!("cannot encode {}: {e}", o.event_type()))
            })?;
            Ok(Encoded {
                topic,
                key: o.key.clone(),
                event_type: o.event_type(),
                payload,
            })
        })
        .collect()
}

fn give_up<S: Stage>(
    h: &Handling<'_>,
    record: &Record,
    error: &StageError,
    attempts: u32,
) -> Outcome {
    crate::metrics::stage_error(S::NAME);
    tracing::error!(
        stage = S::NAME,
        topic = %record.topic,
        partition = record.partition,
        offset = record.offset,
        attempts,
        error = %error,
        "giving up on input; dead-lettering it"
    );
    letter_for(h, S::NAME, record, error, attempts)
}

fn letter_for(
    h: &Handling<'_>,
    stage: &'static str,
    record: &Record,
    error: &StageError,
    attempts: u32,
) -> Outcome {
    let letter = dead_letter(
        record,
        GiveUp {
            consumer: stage,
            kind: error.kind(),
            error: &error.to_string(),
            attempts,
        },
    );
    let out = Output::new(crate::topics::DEADLETTER, record.key_str(), letter);
    match encode_all(h, std::slice::from_ref(&out)) {
        Ok(mut encoded) if encoded.len() == 1 => Outcome::Dead(encoded.remove(0)),
        Ok(_) | Err(_) => {
            // Only a schema bug can get here (covered by unit tests); say so loudly.
            tracing::error!(stage, "cannot encode a dead letter; the input is skipped");
            Outcome::Outputs(Vec::new())
        }
    }
}

#[cfg(test)]
mod tests;
