//! A batch slower than max.poll.interval.ms.

use super::*;

/// A media server that sends one byte every 2 s and never finishes.
async fn trickling_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                while socket.write_all(b"x").await.is_ok() {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            });
        }
    });
    addr
}

/// Echoes messages; a message whose body says "slow media" first downloads from the
/// trickling server, to its end (which never comes).
struct Trickle {
    server: std::net::SocketAddr,
}

impl Stage for Trickle {
    const NAME: &'static str = "trickle";
    type Event = MessageReceived;

    fn inputs(&self) -> Vec<&'static str> {
        vec![smsflow::topics::MESSAGES]
    }

    async fn handle(&self, input: &Input<MessageReceived>) -> Result<Vec<Output>, StageError> {
        if input.event.body.contains("slow media") {
            let mut socket = tokio::net::TcpStream::connect(self.server)
                .await
                .map_err(|e| StageError::Transient(e.to_string()))?;
            let mut buf = [0u8; 64];
            while socket
                .read(&mut buf)
                .await
                .map_err(|e| StageError::Transient(e.to_string()))?
                > 0
            {}
        }
        Ok(echo(&input.event))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_slower_than_the_poll_interval_dead_letters_the_slow_inputs_and_moves_on() {
    let env = TestEnv::new().await;
    let mut settings = env.settings.clone();
    settings.stages.instance_id = Some("trickle-0".into());
    // A poll interval of 20 s: without a bound on the handling, the first slow input would get
    // the consumer evicted and its batch redone forever.
    settings.stages.max_poll_interval = Duration::from_secs(20);
    settings.stages.transaction_timeout = Duration::from_secs(5);
    settings.stages.input_timeout = Duration::from_secs(3);
    settings.stages.batch_timeout = Duration::from_secs(5);
    settings.stages.validate().unwrap();
    let input_topic = env.topic(smsflow::topics::MESSAGES);
    let producer = env.fixture_producer();

    // 40 messages; three of them (one sender, so one partition and in order) are slow, so
    // one batch also hits its deadline behind the first.
    let slow: BTreeSet<usize> = [5, 22, 39].into();
    for i in 0..40usize {
        let params = if slow.contains(&i) {
            sms_with(i, &[("Body", &format!("slow media #{i}"))])
        } else {
            sms_params(i)
        };
        let ev = smsflow::ingress::form::message_received(
            &params,
            format!("ev-{i}"),
            1_764_000_000_000_000,
            None,
        )
        .unwrap();
        producer
            .send(&input_topic, ev.partition_key(), &ev)
            .await
            .unwrap();
    }
    let senders: BTreeSet<String> = slow
        .iter()
        .map(|i| as_map(&sms_params(*i))["From"].clone())
        .collect();
    assert_eq!(senders.len(), 1, "the slow inputs share a key");

    let server = trickling_server().await;
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_stage(
        settings.kafka.clone(),
        settings.stages.clone(),
        Arc::new(Trickle { server }),
        shutdown.clone(),
    ));
    wait_for_zero_lag(
        &env,
        &format!("{}smsflow-trickle", settings.kafka.topic_prefix),
        &input_topic,
    )
    .await;

    let per_sid = outputs_per_sid(&env).await;
    assert_eq!(per_sid.len(), 37, "every quick input has its output");
    assert!(
        per_sid.values().all(|c| *c == 1),
        "no output twice: {per_sid:?}"
    );
    let letters = dead_letters(&env).await;
    let mut timed_out = BTreeSet::new();
    for l in &letters {
        assert_eq!(l.stage, "trickle");
        assert_eq!(l.error_kind, "timed_out", "{}", l.error);
        let original: MessageReceived = decode(l.original_value.as_deref().unwrap()).unwrap();
        timed_out.insert(sid_number(&original.message_sid));
    }
    assert_eq!(letters.len(), 3, "each slow input dead-lettered once");
    assert_eq!(timed_out, slow);

    shutdown.cancel();
    let result = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("stops in time")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
}
