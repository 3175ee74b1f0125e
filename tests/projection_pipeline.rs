//! The pipelined projection runner against the real Kafka and CQL: a write that hangs holds
//! back only its own partition's checkpoint (other partitions check in past it, and later
//! events of other keys in its own partition are written meanwhile); events of one key are
//! written in the order they were read; once the write completes, the checkpoint follows.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use common::*;
use smsflow::events::MessageReceived;
use smsflow::projector::{Position, Projection};
use smsflow::store::StoreError;

const NAME: &str = "pipeline-test";

/// Records what it "writes"; one sender's first event hangs until released.
struct Recorder {
    slow_sender: String,
    release: Notify,
    released: std::sync::atomic::AtomicBool,
    written: Mutex<Vec<(String, i32, i64)>>,
}

impl Projection for Recorder {
    type Event = MessageReceived;
    const NAME: &'static str = NAME;

    fn topics(&self) -> &'static [&'static str] {
        &[smsflow::topics::MESSAGES]
    }

    async fn apply(&self, ev: &MessageReceived, pos: &Position) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering::SeqCst;
        if ev.from == self.slow_sender && !self.released.load(SeqCst) {
            self.release.notified().await;
        }
        self.written
            .lock()
            .unwrap()
            .push((ev.from.clone(), pos.partition, pos.offset));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_write_holds_back_only_its_partition_and_keys_stay_in_order() {
    let env = TestEnv::new().await;
    let topic = env.topic(smsflow::topics::MESSAGES);
    let producer = env.fixture_producer();
    // 17 senders over the topic's partitions, 10 messages each, appended in order.
    let mut positions: Vec<(String, i32, i64)> = Vec::new();
    for i in 0..170usize {
        let ev = smsflow::ingress::form::message_received(
            &sms_params(i),
            format!("ev-{i}"),
            1_764_000_000_000_000 + i as i64,
            None,
        )
        .unwrap();
        let p = producer
            .send(&topic, ev.partition_key(), &ev)
            .await
            .unwrap();
        positions.push((ev.from.clone(), p.partition, p.offset));
    }
    let (slow_sender, slow_partition, slow_offset) = positions[0].clone();
    let end: BTreeMap<i32, i64> = positions.iter().fold(BTreeMap::new(), |mut m, (_, p, o)| {
        let e = m.entry(*p).or_insert(0);
        *e = (*e).max(o + 1);
        m
    });
    assert!(end.len() > 1, "the test needs events on several partitions");

    let projection = Arc::new(Recorder {
        slow_sender: slow_sender.clone(),
        release: Notify::new(),
        released: false.into(),
        written: Mutex::new(Vec::new()),
    });
    let session = env.cql().await;
    let shutdown = CancellationToken::new();
    let task = spawn_projection(&env, session, projection.clone(), &shutdown);

    // Everything but the slow sender's events is written, the slow partition's other keys
    // included, while the first slow write hangs.
    let slow_total = positions
        .iter()
        .filter(|(s, _, _)| *s == slow_sender)
        .count();
    let others = positions.len() - slow_total;
    wait_for(
        "every other key's events to be written",
        Duration::from_secs(60),
        || {
            let n = projection.written.lock().unwrap().len();
            async move { (n == others).then_some(()) }
        },
    )
    .await;
    let later_in_slow_partition = positions
        .iter()
        .filter(|(s, p, o)| *s != slow_sender && *p == slow_partition && *o > slow_offset)
        .count();
    assert!(
        later_in_slow_partition > 0,
        "other keys follow on the slow partition"
    );

    // Other partitions check in to their end; the slow one stops at the hanging write.
    let cp = wait_for(
        "checkpoints of the other partitions",
        Duration::from_secs(30),
        || {
            let env = &env;
            let end = &end;
            async move {
                let cp = env.checkpoints(NAME).await;
                end.iter()
                    .filter(|(p, _)| **p != slow_partition)
                    .all(|(p, e)| cp.get(p) == Some(e))
                    .then_some(cp)
            }
        },
    )
    .await;
    assert!(
        cp.get(&slow_partition).is_none_or(|c| *c <= slow_offset),
        "the slow partition's checkpoint passed its unwritten offset {slow_offset}: {cp:?}"
    );

    // Released: the slow key's events follow in order, and the checkpoint catches up.
    projection
        .released
        .store(true, std::sync::atomic::Ordering::SeqCst);
    projection.release.notify_waiters();
    wait_for(
        "every checkpoint to reach the end",
        Duration::from_secs(30),
        || {
            let env = &env;
            let end = &end;
            async move { (env.checkpoints(NAME).await == *end).then_some(()) }
        },
    )
    .await;
    let written = projection.written.lock().unwrap().clone();
    assert_eq!(written.len(), positions.len(), "each event written once");
    let mut by_key: HashMap<&str, Vec<i64>> = HashMap::new();
    for (sender, _, offset) in &written {
        by_key.entry(sender).or_default().push(*offset);
    }
    for (sender, offsets) in by_key {
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "{sender}'s events out of order: {offsets:?}"
        );
    }

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("stops in time")
        .unwrap()
        .unwrap();
}
