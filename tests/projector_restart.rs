//! The projector survives SIGKILL mid-stream: after a restart every event is projected once,
//! and every row carries the write timestamp derived from its event's Kafka position.

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message;

use common::*;
use smsflow::events::{decode, MessageReceived};
use smsflow::kafka::client;
use smsflow::projector::Position;

const HALF: usize = 1500;

fn spawn_projector(env: &TestEnv) -> Child {
    Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .args(["serve", "--role", "projector"])
        .envs(env.child_env())
        // Small batches so the kill lands between checkpoints, not after the last one.
        .env("SMSFLOW_PROJECTOR__BATCH_MAX", "25")
        .env("SMSFLOW_PROJECTOR__MAX_IN_FLIGHT", "8")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .expect("smsflow binary starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projector_killed_mid_stream_resumes_without_loss_or_duplicates() {
    let env = TestEnv::new().await;
    let topic = env.topic(smsflow::topics::MESSAGES);
    let producer = env.fixture_producer();
    let cql = env.cql().await;

    produce_messages(&producer, &topic, 0..HALF).await;
    let mut projector = spawn_projector(&env);
    let at_kill = wait_for(
        "the projector to write its first rows",
        Duration::from_secs(90),
        || async {
            let n = count_rows(&cql, "messages_by_user").await;
            (n > 0).then_some(n)
        },
    )
    .await;
    projector.kill().expect("SIGKILL");
    let _ = projector.wait();
    assert!(
        at_kill < 2 * HALF as i64,
        "killed before the end of the stream"
    );

    // More events arrive while it is down.
    produce_messages(&producer, &topic, HALF..2 * HALF).await;
    let mut projector = spawn_projector(&env);
    wait_for(
        "every event to be projected",
        Duration::from_secs(180),
        || async { (count_rows(&cql, "messages_by_user").await == 2 * HALF as i64).then_some(()) },
    )
    .await;

    // Let it idle past a few batches, then check nothing more appeared.
    let positions = positions_by_sid(&env, 2 * HALF).await;
    assert_eq!(count_rows(&cql, "messages_by_user").await, 2 * HALF as i64);
    assert_eq!(count_rows(&cql, "message_status").await, 2 * HALF as i64);

    let rows = cql
        .query_unpaged(
            "SELECT message_sid, WRITETIME(body) FROM messages_by_user",
            (),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    let mut checked = 0;
    for row in rows.rows::<(String, i64)>().unwrap() {
        let (sid, writetime) = row.unwrap();
        let pos = &positions[&sid];
        assert_eq!(writetime, pos.write_timestamp(), "{sid} at {pos:?}");
        checked += 1;
    }
    assert_eq!(checked, 2 * HALF);

    // A clean stop on SIGTERM.
    let pid = projector.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = wait_for(
        "the projector to exit on SIGTERM",
        Duration::from_secs(30),
        || {
            let s = projector.try_wait().unwrap();
            async move { s }
        },
    )
    .await;
    assert!(status.success(), "clean exit, got {status:?}");
}

/// Every event's position, read back from the topic.
async fn positions_by_sid(env: &TestEnv, expected: usize) -> HashMap<String, Position> {
    let consumer: StreamConsumer = client::consumer(
        &env.settings.kafka,
        "test-reader",
        &format!("t{}-positions", env.id),
    )
    .create()
    .unwrap();
    consumer
        .subscribe(&[&env.topic(smsflow::topics::MESSAGES)])
        .unwrap();
    let mut out = HashMap::new();
    let mut stream = consumer.stream();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while out.len() < expected {
        let msg = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("all events readable")
            .unwrap()
            .unwrap()
            .detach();
        let ev: MessageReceived = decode(msg.payload().unwrap()).unwrap();
        assert!(
            out.insert(ev.message_sid, Position::of(&msg)).is_none(),
            "each SID appended once"
        );
    }
    out
}
