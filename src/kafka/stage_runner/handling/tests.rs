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
