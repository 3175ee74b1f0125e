//! The bench's drain and memory ceilings on the real local stack: each does the work its figure
//! claims, so a ratio to it means what the summary says.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::*;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message;
use smsflow_loadtest::ceilings::{self, CqlWork};

/// One second of the raw driver loop, two units in flight.
async fn one_second(env: &TestEnv, work: CqlWork) -> ceilings::CqlWrites {
    ceilings::cql_writes(
        &env.settings,
        work,
        2,
        Duration::ZERO,
        Duration::from_secs(1),
    )
    .await
    .unwrap_or_else(|e| panic!("cql-writes --work {work:?}: {e:#}"))
}

/// `cql-writes --work projection` runs the projector's own statements: each unit lands one
/// `messages_by_user` row and one `message_status` row, and counts three statements.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projection_ceiling_writes_both_tables_of_the_projector() {
    let env = TestEnv::new().await;
    let r = one_second(&env, CqlWork::Projection).await;
    assert!(r.writes > 0, "no unit was written: {r:?}");
    assert_eq!(r.failed, 0, "{r:?}");
    assert!((r.statements_rate - 3.0 * r.rate).abs() < 1e-6, "{r:?}");

    let session = env.cql().await;
    let by_user = count_rows(&session, "messages_by_user").await;
    let status = count_rows(&session, "message_status").await;
    // Units that began before the deadline but ended after it are written yet not counted.
    assert!(
        by_user >= r.writes as i64 && status >= r.writes as i64,
        "{} units counted, {by_user} messages_by_user rows, {status} message_status rows",
        r.writes
    );

    let insert = one_second(&env, CqlWork::Insert).await;
    assert!(insert.writes > 0 && insert.failed == 0, "{insert:?}");
    assert_eq!(insert.statements_rate, insert.rate);
}

/// `bare-route --relay-topic` answers 200 only once the body is in Kafka, byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_answers_after_the_body_is_in_kafka() {
    let env = TestEnv::new().await;
    let topic = env.topic(smsflow::topics::MESSAGES);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/webhooks/twilio/messages",
        listener.local_addr().unwrap()
    );
    let mut kafka = env.settings.clone();
    kafka.kafka.produce_deadline = Duration::from_secs(14);
    let relay = tokio::spawn({
        let topic = topic.clone();
        async move { ceilings::bare_relay(listener, &kafka, topic).await }
    });

    let body = format!("MessageSid=SMrelay{}&Body=hello+relay", env.id);
    let answer = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.clone())
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("relay answers");
    assert_eq!(answer.status(), 200);
    assert!(answer.text().await.unwrap().contains("<Response/>"));

    let consumer: StreamConsumer = smsflow::kafka::client::consumer(
        &env.settings.kafka,
        "test-relay-reader",
        &format!("t{}-relay-reader", env.id),
    )
    .create()
    .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let m = consumer.recv().await.expect("read the topic");
            if m.payload() == Some(body.as_bytes()) {
                return m.key().map(<[u8]>::to_vec);
            }
        }
    })
    .await
    .expect("the relayed body is on the topic within 60 s");
    assert!(found.is_some(), "the relayed record has a key");
    relay.abort();
}
