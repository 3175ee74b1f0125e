//! Fault scenarios of issue 13 §2 that need no frozen shared service, each counting messages
//! exactly against the real Kafka, Cassandra and Redis (an isolated topic prefix and keyspace
//! per test):
//!
//! - a stage handler that panics: its input is dead-lettered, the stage keeps going;
//! - an undecodable event at the projector: dead-lettered, its partition moves on;
//! - a number verified while no ingress ran: accepted as soon as its link is in the registry,
//!   and a cached miss does not outlive the link reaching the projection;
//! - a batch slower than `max.poll.interval.ms` (an input that trickles a byte every 2 s):
//!   the slow inputs are dead-lettered and later offsets move on;
//! - one MessageSid ingested twice: its items are listed once and a review made between the
//!   copies stays, also when the copies fall in different hour buckets;
//! - a rebalance storm: three instances of one stage started and SIGKILLed at random while
//!   2,000 messages arrive: exactly 2,000 outputs for a `read_committed` reader.

#[path = "../common/mod.rs"]
mod common;
mod duplicate_sid;
mod handler_panic;
mod late_link;
mod projector_poison;
mod rebalance_storm;
mod slow_batch;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use common::*;
use smsflow::app::Role;
use smsflow::config::Settings;
use smsflow::events::{decode, DeadLetter, ItemReviewed, ItemsProposed, MessageReceived};
use smsflow::ingress::SenderPolicy;
use smsflow::kafka::stage_runner::run_stage;
use smsflow::secrets::ExposeSecret;
use smsflow::stages::{Input, Output, Stage, StageError};

/// The number `n` of a test message (`sms_params(n)`'s MessageSid is `SM{n:032x}`).
fn sid_number(sid: &str) -> usize {
    usize::from_str_radix(&sid[2..], 16).unwrap()
}

fn echo(ev: &MessageReceived) -> Vec<Output> {
    vec![Output::new(
        smsflow::topics::ENRICHMENTS,
        ev.partition_key().to_owned(),
        ev.clone(),
    )]
}

/// The dead letters on the test's dead-letter topic.
async fn dead_letters(env: &TestEnv) -> Vec<DeadLetter> {
    read_committed_to_end(env, &env.topic(smsflow::topics::DEADLETTER))
        .await
        .iter()
        .map(|b| decode::<DeadLetter>(b).unwrap())
        .collect()
}

/// How many outputs (echoed messages) each MessageSid has.
async fn outputs_per_sid(env: &TestEnv) -> HashMap<String, usize> {
    let mut per_sid = HashMap::new();
    for b in read_committed_to_end(env, &env.topic(smsflow::topics::ENRICHMENTS)).await {
        let ev: MessageReceived = decode(&b).unwrap();
        *per_sid.entry(ev.message_sid).or_default() += 1;
    }
    per_sid
}
