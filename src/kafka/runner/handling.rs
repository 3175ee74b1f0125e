//! Handling a batch: inputs with the same key run in order, different keys run concurrently
//! (bounded), transient failures retry with exponential backoff and jitter, and whatever
//! cannot succeed becomes a dead letter.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::StageSettings;
use crate::events::{encode, DeadLetter, DeadLetterHeader};
use crate::stages::{Input, Output, Stage, StageError};

/// Inputs sharing topic, partition and key must be handled in order.
type OrderingKey = (String, i32, Option<Vec<u8>>);

/// What became of one input.
pub enum Outcome {
    /// Outputs to append (possibly none).
    Outputs(Vec<Output>),
    /// The encoded dead letter to append instead.
    Dead(Output),
}

/// Handle every input; the result is in input order, each with the trace context that its
/// outputs should carry.
pub(super) async fn handle_all<S: Stage>(
    stage: &S,
    settings: &StageSettings,
    inputs: &[(Input, opentelemetry::Context)],
) -> Vec<(Outcome, opentelemetry::Context)> {
    // Group indexes by (partition, key), keeping input order within a group.
    let mut groups: BTreeMap<OrderingKey, Vec<usize>> = BTreeMap::new();
    for (i, (input, _)) in inputs.iter().enumerate() {
        groups
            .entry((input.topic.clone(), input.partition, input.key.clone()))
            .or_default()
            .push(i);
    }
    let tasks = groups.into_values().map(|indexes| async move {
        let mut done = Vec::with_capacity(indexes.len());
        for i in indexes {
            let (input, parent) = &inputs[i];
            done.push((i, handle_one(stage, settings, input, parent).await));
        }
        done
    });
    let mut results: Vec<Option<(Outcome, opentelemetry::Context)>> =
        (0..inputs.len()).map(|_| None).collect();
    let mut stream = futures::stream::iter(tasks).buffer_unordered(settings.max_in_flight);
    while let Some(done) = stream.next().await {
        for (i, r) in done {
            results[i] = Some(r);
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| (Outcome::Outputs(Vec::new()), opentelemetry::Context::new())))
        .collect()
}

async fn handle_one<S: Stage>(
    stage: &S,
    settings: &StageSettings,
    input: &Input,
    parent: &opentelemetry::Context,
) -> (Outcome, opentelemetry::Context) {
    let span = tracing::info_span!(
        "stage.handle",
        otel.name = format!("process {}", input.topic),
        otel.kind = "consumer",
        stage = S::NAME,
        messaging.system = "kafka",
        messaging.operation.type = "process",
        messaging.destination.name = %input.topic,
        messaging.destination.partition.id = %input.partition,
        messaging.kafka.offset = input.offset,
        outcome = tracing::field::Empty,
    );
    let _ = span.set_parent(parent.clone());
    let cx = span.context();
    let outcome = attempt_all(stage, settings, input)
        .instrument(span.clone())
        .await;
    span.record(
        "outcome",
        if matches!(outcome, Outcome::Dead(_)) {
            "dead_letter"
        } else {
            "ok"
        },
    );
    (outcome, cx)
}

async fn attempt_all<S: Stage>(stage: &S, settings: &StageSettings, input: &Input) -> Outcome {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let started = std::time::Instant::now();
        let result = stage.handle(input).await;
        crate::metrics::stage_latency(S::NAME, started.elapsed());
        match result {
            Ok(outputs) => return Outcome::Outputs(outputs),
            Err(StageError::Transient(e)) if attempt < settings.max_attempts => {
                crate::metrics::stage_error(S::NAME);
                let delay = backoff(settings, attempt);
                tracing::warn!(stage = S::NAME, attempt, error = %e, retry_in = ?delay, "transient failure; retrying");
                tokio::time::sleep(delay).await;
            }
            Err(e) => {
                crate::metrics::stage_error(S::NAME);
                tracing::error!(
                    stage = S::NAME,
                    topic = %input.topic,
                    partition = input.partition,
                    offset = input.offset,
                    attempt,
                    error = %e,
                    "giving up on input; dead-lettering it"
                );
                return dead(S::NAME, input, &e, attempt);
            }
        }
    }
}

/// Exponential backoff with full jitter: uniform in [base/2, base], base doubling per attempt.
pub(super) fn backoff(settings: &StageSettings, attempt: u32) -> Duration {
    let base = settings
        .backoff_initial
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
        .min(settings.backoff_max);
    let half = base / 2;
    half + half.mul_f64(fastrand::f64())
}

fn dead(stage: &'static str, input: &Input, error: &StageError, attempts: u32) -> Outcome {
    let letter = DeadLetter {
        event_id: uuid::Uuid::now_v7().to_string(),
        failed_at: crate::clock::now_micros(),
        stage: stage.to_owned(),
        error_kind: error.kind().to_owned(),
        error: error.to_string(),
        attempts: i32::try_from(attempts).unwrap_or(i32::MAX),
        source_topic: input.topic.clone(),
        source_partition: input.partition,
        source_offset: input.offset,
        original_key: input.key.clone(),
        original_value: input.payload.clone(),
        original_headers: input
            .headers
            .iter()
            .map(|(k, v)| DeadLetterHeader {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
    };
    match encode(&letter) {
        Ok(payload) => Outcome::Dead(Output {
            topic: crate::topics::DEADLETTER,
            key: input
                .key
                .as_deref()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .unwrap_or_default(),
            event_type: "DeadLetter",
            payload,
        }),
        Err(e) => {
            // Only a schema bug can get here (covered by unit tests); say so loudly.
            tracing::error!(stage, error = %e, "cannot encode a dead letter; the input is skipped");
            Outcome::Outputs(Vec::new())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;

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
        }
    }

    fn input(offset: i64, key: &str, payload: &str) -> (Input, opentelemetry::Context) {
        (
            Input {
                topic: "t".into(),
                partition: 0,
                offset,
                key: Some(key.as_bytes().to_vec()),
                payload: Some(payload.as_bytes().to_vec()),
                event_type: None,
                headers: vec![("event-type".into(), Some(b"X".to_vec()))],
            },
            opentelemetry::Context::new(),
        )
    }

    /// Echoes payloads; "poison" is poison, "flaky" fails transiently twice, "down" always.
    struct TestStage {
        calls: AtomicU32,
        order: Mutex<Vec<i64>>,
    }

    impl Stage for TestStage {
        const NAME: &'static str = "test";
        fn inputs(&self) -> Vec<&'static str> {
            vec!["t"]
        }
        async fn handle(&self, input: &Input) -> Result<Vec<Output>, StageError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            self.order.lock().unwrap().push(input.offset);
            let body =
                String::from_utf8_lossy(input.payload.as_deref().unwrap_or_default()).into_owned();
            match body.as_str() {
                "poison" => Err(StageError::Poison("not Avro".into())),
                "flaky" if n < 2 => Err(StageError::Transient("503".into())),
                "down" => Err(StageError::Transient("503".into())),
                _ => Ok(vec![Output {
                    topic: "out",
                    key: "k".into(),
                    event_type: "E",
                    payload: body.into_bytes(),
                }]),
            }
        }
    }

    fn stage() -> TestStage {
        TestStage {
            calls: AtomicU32::new(0),
            order: Mutex::new(Vec::new()),
        }
    }

    #[tokio::test]
    async fn poison_is_dead_lettered_at_once_and_others_pass() {
        let s = stage();
        let inputs = vec![
            input(0, "a", "x"),
            input(1, "b", "poison"),
            input(2, "a", "y"),
        ];
        let out = handle_all(&s, &settings(), &inputs).await;
        assert!(matches!(&out[0].0, Outcome::Outputs(o) if o[0].payload == b"x"));
        assert!(matches!(&out[1].0, Outcome::Dead(o) if o.topic == crate::topics::DEADLETTER));
        assert!(matches!(&out[2].0, Outcome::Outputs(o) if o[0].payload == b"y"));
        assert_eq!(s.calls.load(Ordering::SeqCst), 3, "poison is not retried");
        if let Outcome::Dead(o) = &out[1].0 {
            let letter: DeadLetter = crate::events::decode(&o.payload).unwrap();
            assert_eq!(letter.error_kind, "poison");
            assert_eq!(letter.original_value.as_deref(), Some(&b"poison"[..]));
            assert_eq!(letter.source_offset, 1);
            assert_eq!(letter.attempts, 1);
            assert_eq!(letter.original_headers[0].key, "event-type");
        }
    }

    #[tokio::test]
    async fn transient_failures_retry_then_succeed_or_dead_letter_after_the_limit() {
        let s = stage();
        let out = handle_all(&s, &settings(), &[input(0, "a", "flaky")]).await;
        assert!(matches!(&out[0].0, Outcome::Outputs(_)));
        assert_eq!(s.calls.load(Ordering::SeqCst), 3);

        let s = stage();
        let out = handle_all(&s, &settings(), &[input(0, "a", "down")]).await;
        match &out[0].0 {
            Outcome::Dead(o) => {
                let letter: DeadLetter = crate::events::decode(&o.payload).unwrap();
                assert_eq!(letter.error_kind, "retries_exhausted");
                assert_eq!(letter.attempts, 3);
            }
            Outcome::Outputs(_) => panic!("a permanently failing dependency must dead-letter"),
        }
    }

    #[tokio::test]
    async fn inputs_with_one_key_are_handled_in_order() {
        let s = stage();
        let inputs: Vec<_> = (0..20)
            .map(|i| input(i, if i % 2 == 0 { "a" } else { "b" }, "x"))
            .collect();
        handle_all(&s, &settings(), &inputs).await;
        let order = s.order.lock().unwrap().clone();
        let evens: Vec<i64> = order.iter().copied().filter(|o| o % 2 == 0).collect();
        let odds: Vec<i64> = order.iter().copied().filter(|o| o % 2 == 1).collect();
        assert!(evens.windows(2).all(|w| w[0] < w[1]), "{order:?}");
        assert!(odds.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    }

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let s = StageSettings {
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
            ..settings()
        };
        for attempt in 1..10 {
            let d = backoff(&s, attempt);
            let base =
                Duration::from_millis(100 * 2u64.pow(attempt - 1)).min(Duration::from_secs(1));
            assert!(d >= base / 2 && d <= base, "attempt {attempt}: {d:?}");
        }
    }
}
