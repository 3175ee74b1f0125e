//! A panic inside a stage handler.

use super::*;

/// Echoes messages; message numbers 7, 27, 47, ... hit a bug that panics.
struct Panicky;

impl Stage for Panicky {
    const NAME: &'static str = "panicky";
    type Event = MessageReceived;

    fn inputs(&self) -> Vec<&'static str> {
        vec![smsflow::topics::MESSAGES]
    }

    async fn handle(&self, input: &Input<MessageReceived>) -> Result<Vec<Output>, StageError> {
        let n = sid_number(&input.event.message_sid);
        if n % 20 == 7 {
            panic!("handler bug: message {n} has a shape the code never expected");
        }
        Ok(echo(&input.event))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_dead_letters_its_input_and_the_stage_keeps_going() {
    let env = TestEnv::new().await;
    let mut settings = env.settings.clone();
    settings.stages.instance_id = Some("panicky-0".into());
    settings.stages.batch_max = 50;
    let input_topic = env.topic(smsflow::topics::MESSAGES);
    let group = format!("{}smsflow-panicky", settings.kafka.topic_prefix);
    let producer = env.fixture_producer();
    produce_messages(&producer, &input_topic, 0..200).await;

    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_stage(
        settings.kafka.clone(),
        settings.stages.clone(),
        Arc::new(Panicky),
        shutdown.clone(),
    ));
    wait_for_zero_lag(&env, &group, &input_topic).await;
    assert!(
        !task.is_finished(),
        "the runner survives its handler's panics"
    );

    // More input after the panics: the same runner handles it.
    produce_messages(&producer, &input_topic, 200..240).await;
    wait_for_zero_lag(&env, &group, &input_topic).await;

    let panicking: BTreeSet<usize> = (0..240).filter(|n| n % 20 == 7).collect();
    let per_sid = outputs_per_sid(&env).await;
    assert_eq!(
        per_sid.len(),
        240 - panicking.len(),
        "one output per good input"
    );
    assert!(per_sid.values().all(|c| *c == 1), "no output twice");
    assert!(per_sid.keys().all(|s| !panicking.contains(&sid_number(s))));

    let letters = dead_letters(&env).await;
    assert_eq!(letters.len(), panicking.len(), "one dead letter per panic");
    let mut lettered = BTreeSet::new();
    for l in &letters {
        assert_eq!(l.stage, "panicky");
        assert_eq!(l.error_kind, "poison");
        assert_eq!(l.attempts, 1, "a panic is not retried");
        assert!(
            l.error.contains("the stage panicked: handler bug: message"),
            "{}",
            l.error
        );
        let original: MessageReceived = decode(l.original_value.as_deref().unwrap()).unwrap();
        lettered.insert(sid_number(&original.message_sid));
    }
    assert_eq!(lettered, panicking);

    shutdown.cancel();
    let result = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("stops in time")
        .expect("the runner task did not panic");
    assert!(result.is_ok(), "{result:?}");
}
