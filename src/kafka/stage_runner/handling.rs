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
mod tests {
    use super::*;
    use crate::events::{decode, encode, DeadLetter, ItemReviewed};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    fn settings() -> StageSettings {
        StageSettings {
            instance_id: None,
            batch_max: 10,
            batch_linger: Duration::from_millis(1),
            max_in_flight: 4,
            max_attempts: 3,
            backoff_initial: Duration::from_millis(1),
            backoff_max: Duration::from_millis(4),
            transaction_timeout: Duration::from_secs(10),
            input_timeout: Duration::from_secs(5),
            batch_timeout: Duration::from_secs(8),
            max_poll_interval: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(1),
        }
    }

    fn review(item_id: &str) -> ItemReviewed {
        ItemReviewed {
            event_id: "e".into(),
            item_id: item_id.into(),
            user_id: "u".into(),
            decision: "approve".into(),
            reviewed_at: 1,
            message_sid: "SM1".into(),
            item_created_at: 1,
            kind: "email".into(),
            value: "a@b.c".into(),
            normalized: "a@b.c".into(),
        }
    }

    fn record(offset: i64, key: &str, payload: Vec<u8>, event_type: Option<&str>) -> Record {
        Record {
            topic: "t".into(),
            partition: 0,
            offset,
            log_time_ms: 0,
            key: Some(key.as_bytes().to_vec()),
            payload: Some(payload),
            event_type: event_type.map(str::to_owned),
            headers: vec![("event-type".into(), Some(b"ItemReviewed".to_vec()))],
            trace: opentelemetry::Context::new(),
        }
    }

    fn input(offset: i64, key: &str, item: &str) -> Record {
        record(
            offset,
            key,
            encode(&review(item)).unwrap(),
            Some("ItemReviewed"),
        )
    }

    /// Echoes reviews; item "flaky" fails transiently twice, "down" always, "broken" is
    /// permanent.
    struct TestStage {
        calls: AtomicU32,
        order: Mutex<Vec<i64>>,
    }

    impl Stage for TestStage {
        const NAME: &'static str = "test";
        type Event = ItemReviewed;
        fn inputs(&self) -> Vec<&'static str> {
            vec!["t"]
        }
        async fn handle(&self, input: &Input<ItemReviewed>) -> Result<Vec<Output>, StageError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            self.order.lock().unwrap().push(input.offset);
            match input.event.item_id.as_str() {
                "flaky" if n < 2 => Err(StageError::Transient("503".into())),
                "down" => Err(StageError::Transient("503".into())),
                "broken" => Err(StageError::Permanent("refused".into())),
                "boom" => panic!("handler bug on offset {}", input.offset),
                "hang" => std::future::pending().await,
                _ => Ok(vec![Output::new("out", "k", input.event.clone())]),
            }
        }
    }

    fn stage() -> TestStage {
        TestStage {
            calls: AtomicU32::new(0),
            order: Mutex::new(Vec::new()),
        }
    }

    async fn run(s: &TestStage, records: &[Record]) -> Vec<Outcome> {
        run_until(s, records, Duration::from_secs(3600))
            .await
            .into_iter()
            .map(|o| o.expect("every input finishes"))
            .collect()
    }

    async fn run_until(
        s: &TestStage,
        records: &[Record],
        batch_time: Duration,
    ) -> Vec<Option<Outcome>> {
        run_stopping(s, records, batch_time, &CancellationToken::new()).await
    }

    async fn run_stopping(
        s: &TestStage,
        records: &[Record],
        batch_time: Duration,
        shutdown: &CancellationToken,
    ) -> Vec<Option<Outcome>> {
        let (settings, kafka, encoder) = (
            settings(),
            KafkaSettings::default(),
            EventEncoder::single_object(),
        );
        let h = Handling {
            settings: &settings,
            kafka: &kafka,
            encoder: &encoder,
            group: "g",
        };
        let deadline = tokio::time::Instant::now() + batch_time;
        handle_all(s, &h, records, deadline, shutdown)
            .await
            .into_iter()
            .map(|o| o.map(|(o, _)| o))
            .collect()
    }

    fn letter(o: &Outcome) -> DeadLetter {
        match o {
            Outcome::Dead(e) => {
                assert_eq!(e.topic, crate::topics::DEADLETTER);
                assert_eq!(e.event_type, "DeadLetter");
                decode(&e.payload).unwrap()
            }
            Outcome::Outputs(_) => panic!("expected a dead letter"),
        }
    }

    #[tokio::test]
    async fn undecodable_input_is_dead_lettered_at_once_without_reaching_the_stage() {
        let s = stage();
        let records = vec![
            input(0, "a", "x"),
            record(1, "b", b"\x00not avro".to_vec(), Some("ItemReviewed")),
            input(2, "a", "y"),
        ];
        let out = run(&s, &records).await;
        match &out[0] {
            Outcome::Outputs(o) => {
                assert_eq!(o[0].topic, "out");
                assert_eq!(o[0].event_type, "ItemReviewed");
                let echoed: ItemReviewed = decode(&o[0].payload).unwrap();
                assert_eq!(echoed.item_id, "x");
            }
            Outcome::Dead(_) => panic!("x must pass"),
        }
        let l = letter(&out[1]);
        assert_eq!(l.error_kind, "poison");
        assert_eq!(l.stage, "test");
        assert_eq!(l.original_value.as_deref(), Some(&b"\x00not avro"[..]));
        assert_eq!(l.source_offset, 1);
        assert_eq!(l.attempts, 1);
        assert_eq!(l.original_headers[0].key, "event-type");
        assert!(matches!(&out[2], Outcome::Outputs(o) if o.len() == 1));
        assert_eq!(
            s.calls.load(Ordering::SeqCst),
            2,
            "poison never reaches the stage"
        );
    }

    #[tokio::test]
    async fn other_events_on_the_topic_pass_by_without_output() {
        let s = stage();
        let out = run(
            &s,
            &[input(0, "a", "x")].map(|mut r| {
                r.event_type = Some("PartEnriched".into());
                r
            }),
        )
        .await;
        assert!(matches!(&out[0], Outcome::Outputs(o) if o.is_empty()));
        assert_eq!(s.calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn transient_failures_retry_then_succeed_or_dead_letter_after_the_limit() {
        let s = stage();
        let out = run(&s, &[input(0, "a", "flaky")]).await;
        assert!(matches!(&out[0], Outcome::Outputs(o) if o.len() == 1));
        assert_eq!(s.calls.load(Ordering::SeqCst), 3);

        let s = stage();
        let l = letter(&run(&s, &[input(0, "a", "down")]).await[0]);
        assert_eq!(l.error_kind, "retries_exhausted");
        assert_eq!(l.attempts, 3);

        let s = stage();
        let l = letter(&run(&s, &[input(0, "a", "broken")]).await[0]);
        assert_eq!(l.error_kind, "permanent");
        assert_eq!(
            s.calls.load(Ordering::SeqCst),
            1,
            "permanent is not retried"
        );
    }

    #[tokio::test]
    async fn a_panicking_handler_dead_letters_its_input_as_poison_and_the_batch_goes_on() {
        let s = stage();
        let records = vec![
            input(0, "a", "boom"),
            input(1, "a", "x"),
            input(2, "b", "y"),
        ];
        let out = run(&s, &records).await;
        let l = letter(&out[0]);
        assert_eq!(l.error_kind, "poison");
        assert_eq!(l.attempts, 1, "a panic is not retried");
        assert!(
            l.error
                .contains("the stage panicked: handler bug on offset 0"),
            "{}",
            l.error
        );
        assert!(matches!(&out[1], Outcome::Outputs(o) if o.len() == 1));
        assert!(matches!(&out[2], Outcome::Outputs(o) if o.len() == 1));
        assert_eq!(s.calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn an_input_over_its_time_is_dead_lettered_as_timed_out_and_its_key_moves_on() {
        let s = stage();
        let records = vec![
            input(0, "a", "hang"),
            input(1, "a", "x"),
            input(2, "b", "y"),
        ];
        let out = run(&s, &records).await;
        let l = letter(&out[0]);
        assert_eq!(l.error_kind, "timed_out");
        assert_eq!(l.attempts, 1);
        assert!(l.error.contains("stages.input_timeout"), "{}", l.error);
        assert!(matches!(&out[1], Outcome::Outputs(o) if o.len() == 1));
        assert!(matches!(&out[2], Outcome::Outputs(o) if o.len() == 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_over_its_time_returns_what_finished_and_leaves_the_rest() {
        let s = stage();
        // Key a: two hanging inputs in a row (5 s each at most), then one more; key b is quick.
        let records = vec![
            input(0, "a", "hang"),
            input(1, "a", "hang"),
            input(2, "a", "x"),
            input(3, "b", "y"),
        ];
        let out = run_until(&s, &records, Duration::from_secs(8)).await;
        assert_eq!(letter(out[0].as_ref().unwrap()).error_kind, "timed_out");
        assert!(out[1].is_none(), "cut off at the batch deadline");
        assert!(out[2].is_none(), "never started");
        assert!(matches!(&out[3], Some(Outcome::Outputs(o)) if o.len() == 1));
    }

    #[tokio::test(start_paused = true)]
    async fn on_shutdown_running_inputs_get_the_grace_and_the_rest_is_left() {
        let s = stage();
        // Key a hangs (dead-lettered only after input_timeout, 5 s) with one more behind it.
        let records = vec![
            input(0, "a", "hang"),
            input(1, "b", "y"),
            input(2, "a", "x"),
        ];
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            stop.cancel();
        });
        let started = tokio::time::Instant::now();
        let out = run_stopping(&s, &records, Duration::from_secs(3600), &shutdown).await;
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(1100),
            "shutdown_grace (1 s) after the signal, not input_timeout (5 s)"
        );
        assert!(out[0].is_none(), "cut off, left for the next owner");
        assert!(matches!(&out[1], Some(Outcome::Outputs(o)) if o.len() == 1));
        assert!(out[2].is_none(), "never started");
    }

    #[tokio::test]
    async fn inputs_with_one_key_are_handled_in_order() {
        let s = stage();
        let records: Vec<_> = (0..20)
            .map(|i| input(i, if i % 2 == 0 { "a" } else { "b" }, "x"))
            .collect();
        run(&s, &records).await;
        let order = s.order.lock().unwrap().clone();
        let evens: Vec<i64> = order.iter().copied().filter(|o| o % 2 == 0).collect();
        let odds: Vec<i64> = order.iter().copied().filter(|o| o % 2 == 1).collect();
        assert_eq!(order.len(), 20);
        assert!(evens.windows(2).all(|w| w[0] < w[1]), "{order:?}");
        assert!(odds.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    }
}
