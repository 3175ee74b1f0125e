//! Kafka as a test sees it: every committed record of a topic read to the end, a stage
//! group's lag, and fixture events appended directly.

use std::collections::HashSet;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::Message;

use smsflow::kafka::client;

use super::{sms_params, wait_for, TestEnv};

/// Everything a `read_committed` reader sees on `topic`, read to the end of every partition.
pub async fn read_committed_to_end(env: &TestEnv, topic: &str) -> Vec<Vec<u8>> {
    read_records_to_end(env, topic)
        .await
        .into_iter()
        .map(|(payload, _)| payload)
        .collect()
}

/// Like `read_committed_to_end`, with each record's `traceparent` header.
pub async fn read_records_to_end(env: &TestEnv, topic: &str) -> Vec<(Vec<u8>, Option<String>)> {
    read_full_records_to_end(env, topic)
        .await
        .into_iter()
        .map(|r| (r.payload, r.traceparent))
        .collect()
}

/// One record as read back by a test.
pub struct ReadRecord {
    pub key: Option<String>,
    pub event_type: Option<String>,
    pub payload: Vec<u8>,
    pub traceparent: Option<String>,
}

/// Every committed record of a topic, in partition order, with key and headers.
pub async fn read_full_records_to_end(env: &TestEnv, topic: &str) -> Vec<ReadRecord> {
    let consumer: StreamConsumer = client::consumer(
        &env.settings.kafka,
        "test-reader",
        &format!("t{}-{}", env.id, fastrand_suffix()),
    )
    .set("enable.partition.eof", "true")
    .create()
    .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let partitions = wait_for("the topic's metadata", Duration::from_secs(30), || {
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .ok();
        async move {
            md.and_then(|m| m.topics().first().map(|t| t.partitions().len()))
                .filter(|n| *n > 0)
        }
    })
    .await;
    let mut at_end = HashSet::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while at_end.len() < partitions {
        match tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .expect("read to the end in time")
        {
            Ok(m) => {
                at_end.remove(&m.partition());
                let header = |name: &str| {
                    m.headers()
                        .and_then(|h| smsflow::kafka::headers::get(h, name))
                        .map(str::to_owned)
                };
                out.push(ReadRecord {
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    event_type: header("event-type"),
                    payload: m.payload().unwrap_or_default().to_vec(),
                    traceparent: header("traceparent"),
                });
            }
            Err(KafkaError::PartitionEOF(p)) => {
                at_end.insert(p);
            }
            Err(e) => panic!("consumer error: {e}"),
        }
    }
    out
}

pub fn fastrand_suffix() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// Committed offsets of the stage's group equal the input's high watermarks (lag 0).
pub async fn wait_for_zero_lag(env: &TestEnv, group: &str, topic: &str) {
    wait_for_zero_lag_within(env, group, topic, Duration::from_secs(120)).await
}

/// `wait_for_zero_lag` with a deadline of its own, for large backlogs.
pub async fn wait_for_zero_lag_within(env: &TestEnv, group: &str, topic: &str, deadline: Duration) {
    let consumer: StreamConsumer = client::consumer(&env.settings.kafka, "test-lag", group)
        .create()
        .unwrap();
    wait_for("the stage's lag to reach 0", deadline, || {
        let lag = (|| -> Option<i64> {
            let md = consumer
                .fetch_metadata(Some(topic), Duration::from_secs(5))
                .ok()?;
            let mut tpl = rdkafka::TopicPartitionList::new();
            for p in md.topics().first()?.partitions() {
                tpl.add_partition(topic, p.id());
            }
            let committed = consumer
                .committed_offsets(tpl, Duration::from_secs(5))
                .ok()?;
            let mut lag = 0;
            for e in committed.elements() {
                let (_, high) = consumer
                    .fetch_watermarks(topic, e.partition(), Duration::from_secs(5))
                    .ok()?;
                let at = e.offset().to_raw().filter(|o| *o >= 0).unwrap_or(0);
                lag += high - at;
            }
            Some(lag)
        })();
        async move { (lag == Some(0)).then_some(()) }
    })
    .await;
}

/// Append `MessageReceived` events for `sms_params(i)`, `i` in `range`, and check each landed.
pub async fn produce_messages(
    producer: &smsflow::kafka::EventProducer,
    topic: &str,
    range: std::ops::Range<usize>,
) {
    use futures::StreamExt;
    let results: Vec<_> = futures::stream::iter(range)
        .map(|i| async move {
            let ev = smsflow::ingress::form::message_received(
                &sms_params(i),
                format!("ev-{i}"),
                1_764_000_000_000_000 + i as i64,
                None,
            )
            .unwrap();
            producer.send(topic, ev.partition_key(), &ev).await
        })
        .buffer_unordered(128)
        .collect()
        .await;
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        panic!("producing test events failed: {e}");
    }
}

/// A proposed `#tag` item, as the enrich stage proposes one for a body that starts with it.
pub fn tag_item(item_id: impl Into<String>, tag: &str) -> smsflow::events::ProposedItem {
    smsflow::events::ProposedItem {
        item_id: item_id.into(),
        kind: "tag".into(),
        value: format!("#{tag}"),
        normalized: tag.to_owned(),
        confidence: 1.0,
        source: "body".into(),
        span_start: 0,
        span_end: tag.len() as i32 + 1,
    }
}
