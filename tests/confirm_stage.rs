//! The confirmation reply on the real Kafka, Redis and Cassandra, sent through notify to a fake
//! Twilio Messages API in the harness: a message with items gets exactly one "N new items to
//! review" however its events are duplicated and across a restart; a message without items
//! gets none; an opted-out sender gets none; and with `confirm.enabled = false` nothing is sent.

mod common;

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};

use common::twilio_api::{FakeTwilio, ACCOUNT_SID};
use common::*;
use smsflow::app::Role;
use smsflow::config::Settings;
use smsflow::events::{
    decode, ItemsProposed, MediaRef, MessageReceived, OutboundRequested, OutboundStatusChanged,
    PartEnriched, SenderRejected,
};
use smsflow::stages::confirm::tally::{request_event_id, PURPOSE};
use smsflow::topics::{ENRICHMENTS, MESSAGES, OUTBOUND};

/// Our Twilio number: messages come in on it and replies go out from it.
const OURS: &str = "+14155550100";

fn confirm_settings(env: &TestEnv, fake: &FakeTwilio, enabled: bool) -> Settings {
    let mut s = env.settings.clone();
    s.twilio.account_sid = Some(ACCOUNT_SID.into());
    s.notify.api_base = fake.base_url.clone();
    s.notify.backoff_base = Duration::from_millis(50);
    s.stages.instance_id = Some(format!("confirm-{}", env.id));
    s.stages.backoff_initial = Duration::from_millis(50);
    s.confirm.enabled = enabled;
    s
}

/// A `MessageReceived` from `from` with `media` attachments, received now.
fn message(sid: &str, from: &str, media: usize) -> MessageReceived {
    let mut m = smsflow::ingress::form::message_received(
        &sms_params(1),
        format!("ev-{sid}"),
        smsflow::clock::now_micros(),
        None,
    )
    .unwrap();
    m.message_sid = sid.into();
    m.from = from.into();
    m.to = OURS.into();
    m.user_id = Some(format!("user-{from}"));
    m.media = (0..media)
        .map(|i| MediaRef {
            url: format!("https://api.twilio.com/media/{sid}/{i}"),
            content_type: "image/jpeg".into(),
        })
        .collect();
    m
}

fn part(m: &MessageReceived, part: &str, items: i32) -> PartEnriched {
    PartEnriched {
        event_id: format!("pe-{}-{part}", m.message_sid),
        message_sid: m.message_sid.clone(),
        user_id: m.partition_key().to_owned(),
        part: part.into(),
        received_at: m.received_at,
        enriched_at: smsflow::clock::now_micros(),
        item_count: items,
        outcome: "extracted".into(),
        text: None,
    }
}

async fn produce_message(env: &TestEnv, m: &MessageReceived) {
    env.fixture_producer()
        .send(&env.topic(MESSAGES), m.partition_key(), m)
        .await
        .expect("produce MessageReceived");
}

async fn produce_parts(env: &TestEnv, parts: &[&PartEnriched]) {
    let producer = env.fixture_producer();
    for p in parts {
        producer
            .send(&env.topic(ENRICHMENTS), &p.user_id, *p)
            .await
            .expect("produce PartEnriched");
    }
}

/// Every committed `OutboundRequested` on the outbound topic.
async fn requests(env: &TestEnv) -> Vec<OutboundRequested> {
    read_full_records_to_end(env, &env.topic(OUTBOUND))
        .await
        .into_iter()
        .filter(|r| r.event_type.as_deref() == Some("OutboundRequested"))
        .map(|r| decode(&r.payload).unwrap())
        .collect()
}

/// The confirm stage committed everything appended so far; its outputs are committed in the
/// same transactions, so they are on the outbound topic by now.
async fn confirm_caught_up(env: &TestEnv) {
    let group = format!("{}smsflow-confirm", env.settings.kafka.topic_prefix);
    wait_for_zero_lag(env, &group, &env.topic(MESSAGES)).await;
    wait_for_zero_lag(env, &group, &env.topic(ENRICHMENTS)).await;
}

async fn wait_sent(fake: &FakeTwilio, n: usize) {
    wait_for(
        &format!("{n} message(s) at the fake Twilio"),
        Duration::from_secs(120),
        || async { (fake.sent().len() >= n).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_reply_per_message_with_items_across_duplicates_and_a_restart() {
    let env = TestEnv::new().await;
    let fake = FakeTwilio::start().await;
    let settings = confirm_settings(&env, &fake, true);

    // Three parts: 2 + 1 + 0 items. Only the body is in before the restart.
    let a = message("SMconfirmA", "+15105550171", 2);
    let (a_body, a_m0, a_m1) = (
        part(&a, "body", 2),
        part(&a, "media:0", 1),
        part(&a, "media:1", 0),
    );
    // No items at all.
    let b = message("SMconfirmB", "+15105550172", 0);
    let b_body = part(&b, "body", 0);
    // Exactly one item.
    let c = message("SMconfirmC", "+15105550173", 1);
    let (c_body, c_m0) = (part(&c, "body", 1), part(&c, "media:0", 0));

    produce_message(&env, &a).await;
    produce_parts(&env, &[&a_body]).await;
    let app = TestApp::spawn(settings.clone(), &[Role::Confirm, Role::Notify]).await;
    confirm_caught_up(&env).await;
    assert!(
        requests(&env).await.is_empty(),
        "a message with parts still out gets no reply"
    );
    app.stop().await;

    // After the restart: the rest, each part delivered twice, parts before their message.
    produce_parts(&env, &[&a_m0, &a_m1, &a_m0, &a_body, &a_m1]).await;
    produce_parts(&env, &[&c_body, &c_m0, &c_body]).await;
    produce_message(&env, &c).await;
    produce_message(&env, &b).await;
    produce_parts(&env, &[&b_body, &b_body]).await;
    let app = TestApp::spawn(settings.clone(), &[Role::Confirm, Role::Notify]).await;
    wait_sent(&fake, 2).await;
    confirm_caught_up(&env).await;

    // Every event of A again, after its reply went out.
    produce_message(&env, &a).await;
    produce_parts(&env, &[&a_body, &a_m0, &a_m1]).await;
    confirm_caught_up(&env).await;
    // (Not notify's lag: its own transactions' markers on the topic it reads keep that above 0.)
    for m in [&a, &c] {
        let id = request_event_id(&m.message_sid);
        wait_for(
            "notify's decision on the reply",
            Duration::from_secs(120),
            || async {
                read_committed_to_end(&env, &env.topic(OUTBOUND))
                    .await
                    .iter()
                    .filter_map(|p| decode::<OutboundStatusChanged>(p).ok())
                    .find(|s| s.request_event_id.as_deref() == Some(id.as_str()))
            },
        )
        .await;
    }
    app.stop().await;

    let requested = requests(&env).await;
    assert_eq!(
        requested.len(),
        2,
        "one request each for A and C, none for B, none from copies: {requested:?}"
    );
    for (m, body) in [(&a, "3 new items to review"), (&c, "1 new item to review")] {
        let r = requested
            .iter()
            .find(|r| r.message_sid.as_deref() == Some(m.message_sid.as_str()))
            .unwrap_or_else(|| panic!("a request for {}", m.message_sid));
        assert_eq!(r.event_id, request_event_id(&m.message_sid));
        assert_eq!(r.purpose, PURPOSE);
        assert_eq!(r.to, m.from);
        assert_eq!(r.from.as_deref(), Some(OURS));
        assert_eq!(r.user_id, m.user_id);
        assert_eq!(r.body, body);
    }

    let sent = fake.sent();
    assert_eq!(sent.len(), 2, "exactly one SMS per message with items");
    let to_a = sent
        .iter()
        .find(|s| s.form["To"] == a.from)
        .expect("A's sender got the reply");
    assert_eq!(to_a.form["From"], OURS);
    assert_eq!(to_a.form["Body"], "3 new items to review");
    let to_c = sent
        .iter()
        .find(|s| s.form["To"] == c.from)
        .expect("C's sender got the reply");
    assert_eq!(to_c.form["Body"], "1 new item to review");
    assert!(
        sent.iter().all(|s| s.form["To"] != b.from),
        "no items, no reply"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_is_enriched_and_its_sender_told_the_item_count_unless_opted_out() {
    let env = TestEnv::new().await;
    let fake = FakeTwilio::start().await;
    let store = tempfile::tempdir().unwrap();
    let mut settings = confirm_settings(&env, &fake, true);
    settings.media.store_url = format!("file://{}", store.path().display());
    // An opted-out number must get nothing: ingress records its message as SenderRejected
    // (even with sender_policy = "any"), so it is neither enriched nor confirmed. Notify's own
    // opt-out check is covered in tests/notify_stage.rs.
    let opted_out = "+15105550189";
    env.cql()
        .await
        .query_unpaged(
            "INSERT INTO phones (phone, opted_out) VALUES (?, ?)",
            (opted_out, true),
        )
        .await
        .unwrap();
    let app = TestApp::spawn(
        settings,
        &[Role::Ingress, Role::Enrich, Role::Confirm, Role::Notify],
    )
    .await;
    let http = reqwest::Client::new();
    let sms = sms_params(7);
    let sid = as_map(&sms)["MessageSid"].clone();
    let sender = as_map(&sms)["From"].clone();
    let quiet = sms_with(8, &[("From", opted_out)]);
    let quiet_sid = as_map(&quiet)["MessageSid"].clone();
    for params in [&sms, &quiet] {
        assert_eq!(
            post_signed(&http, &app.base_url, params).await.status(),
            200
        );
    }

    wait_sent(&fake, 1).await;
    app.stop().await;
    let records = read_full_records_to_end(&env, &env.topic(MESSAGES)).await;
    let rejected: Vec<SenderRejected> = records
        .iter()
        .filter(|r| r.event_type.as_deref() == Some("SenderRejected"))
        .map(|r| decode(&r.payload).unwrap())
        .collect();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].message_sid, quiet_sid);
    assert_eq!(rejected[0].reason, "opted_out");
    let requested_for_quiet = read_committed_to_end(&env, &env.topic(OUTBOUND))
        .await
        .iter()
        .filter_map(|p| decode::<OutboundRequested>(p).ok())
        .any(|r| r.event_id == request_event_id(&quiet_sid));
    assert!(
        !requested_for_quiet,
        "no reply is even requested for the opted-out sender"
    );

    let items: usize = read_full_records_to_end(&env, &env.topic(ENRICHMENTS))
        .await
        .into_iter()
        .filter(|r| r.event_type.as_deref() == Some("ItemsProposed"))
        .map(|r| decode::<ItemsProposed>(&r.payload).unwrap())
        .filter(|p| p.message_sid == sid)
        .map(|p| p.items.len())
        .sum();
    assert!(
        items > 1,
        "the sample body has several items, found {items}"
    );
    let sent = fake.sent();
    assert_eq!(sent.len(), 1, "one reply, and none to the opted-out number");
    assert_eq!(sent[0].form["To"], sender);
    assert_eq!(sent[0].form["From"], OURS);
    assert_eq!(sent[0].form["Body"], format!("{items} new items to review"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_confirm_off_nothing_is_requested_or_sent() {
    let env = TestEnv::new().await;
    let fake = FakeTwilio::start().await;
    let settings = confirm_settings(&env, &fake, false);
    let m = message("SMconfirmOff", "+15105550174", 0);
    produce_message(&env, &m).await;
    produce_parts(&env, &[&part(&m, "body", 4)]).await;
    let app = TestApp::spawn(settings, &[Role::Confirm, Role::Notify]).await;

    // A request appended after the message: once notify sent it, notify is running and
    // caught up, and a confirmation (had one been requested) would be on the topic too.
    let sentinel = OutboundRequested {
        event_id: format!("sentinel-{}", env.id),
        requested_at: smsflow::clock::now_micros(),
        user_id: None,
        to: "+15105550175".into(),
        from: Some(OURS.into()),
        body: "sentinel".into(),
        purpose: "test".into(),
        message_sid: None,
    };
    env.fixture_producer()
        .send(&env.topic(OUTBOUND), sentinel.partition_key(), &sentinel)
        .await
        .unwrap();
    wait_sent(&fake, 1).await;
    app.stop().await;

    let requested = requests(&env).await;
    assert_eq!(requested.len(), 1, "only the sentinel: {requested:?}");
    assert_eq!(fake.sent()[0].form["Body"], "sentinel");
    // The stage never ran: its group committed nothing.
    let group = format!("{}smsflow-confirm", env.settings.kafka.topic_prefix);
    let consumer: BaseConsumer =
        smsflow::kafka::client::consumer(&env.settings.kafka, "test", &group)
            .create()
            .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition(&env.topic(ENRICHMENTS), 0);
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    assert!(committed
        .elements()
        .iter()
        .all(|e| e.offset() == rdkafka::Offset::Invalid));
}
