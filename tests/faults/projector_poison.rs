//! An undecodable event at the projector.

use super::*;

async fn spawn_messages_projection(
    env: &TestEnv,
    shutdown: &CancellationToken,
) -> tokio::task::JoinHandle<Result<(), smsflow::projector::ProjectionError>> {
    let session = env.cql().await;
    let projection =
        smsflow::projector::MessagesProjection::new(session.clone(), &env.settings.cql.keyspace)
            .await
            .unwrap();
    spawn_projection(env, session, Arc::new(projection), shutdown)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_event_at_the_projector_is_dead_lettered_and_its_partition_moves_on() {
    let env = TestEnv::new().await;
    let topic = env.topic(smsflow::topics::MESSAGES);
    let producer = env.fixture_producer();
    let cql = env.cql().await;

    // 100 messages from 17 senders, and 6 garbage records among them on the same keys.
    let mut garbage_at = BTreeSet::new();
    let mut end: BTreeMap<i32, i64> = BTreeMap::new();
    for i in 0..106usize {
        let p = if i % 18 == 9 {
            let key = as_map(&sms_params(i))["From"].clone();
            let p = producer
                .send_bytes(&topic, &key, "MessageReceived", b"\x00not an event")
                .await
                .unwrap();
            garbage_at.insert((p.partition, p.offset));
            p
        } else {
            let ev = smsflow::ingress::form::message_received(
                &sms_params(i),
                format!("ev-{i}"),
                1_764_000_000_000_000 + i as i64,
                None,
            )
            .unwrap();
            producer
                .send(&topic, ev.partition_key(), &ev)
                .await
                .unwrap()
        };
        let e = end.entry(p.partition).or_insert(0);
        *e = (*e).max(p.offset + 1);
    }
    assert_eq!(garbage_at.len(), 6);

    let shutdown = CancellationToken::new();
    let task = spawn_messages_projection(&env, &shutdown).await;
    wait_for("100 messages projected", Duration::from_secs(120), || {
        let cql = cql.clone();
        async move { (count_rows(&cql, "messages_by_user").await == 100).then_some(()) }
    })
    .await;
    wait_for(
        "every partition's checkpoint past its last record",
        Duration::from_secs(60),
        || {
            let env = &env;
            let end = end.clone();
            async move {
                let at = env.checkpoints("messages").await;
                end.iter()
                    .all(|(p, e)| at.get(p).is_some_and(|a| a >= e))
                    .then_some(())
            }
        },
    )
    .await;
    let letters = dead_letters(&env).await;
    assert_eq!(letters.len(), 6, "one dead letter per undecodable record");
    let mut seen = BTreeSet::new();
    for l in &letters {
        assert_eq!(l.stage, "projector:messages");
        assert_eq!(l.error_kind, "poison");
        assert_eq!(l.source_topic, topic);
        assert_eq!(l.original_value.as_deref(), Some(&b"\x00not an event"[..]));
        assert!(l.original_headers.iter().any(|h| h.key == "event-type"));
        seen.insert((l.source_partition, l.source_offset));
    }
    assert_eq!(seen, garbage_at);

    // A restart resumes past the poison: one more message, and no letter again.
    shutdown.cancel();
    task.await.unwrap().unwrap();
    let shutdown = CancellationToken::new();
    let task = spawn_messages_projection(&env, &shutdown).await;
    produce_messages(&producer, &topic, 500..501).await;
    wait_for(
        "the 101st message projected",
        Duration::from_secs(120),
        || {
            let cql = cql.clone();
            async move { (count_rows(&cql, "messages_by_user").await == 101).then_some(()) }
        },
    )
    .await;
    assert_eq!(
        dead_letters(&env).await.len(),
        6,
        "nothing dead-lettered twice"
    );
    assert_eq!(count_rows(&cql, "messages_by_user").await, 101);
    shutdown.cancel();
    task.await.unwrap().unwrap();
}
