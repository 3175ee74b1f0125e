//! The notify stage on the real Kafka, Redis and Cassandra, sending to a fake Twilio Messages
//! API inside the harness: one POST per request however often it is consumed, 429 retried
//! without a second message, Twilio's refusals recorded as `failed`, opted-out recipients
//! suppressed; the signed status callback appended; and the outbound projection applied.

mod common;

use std::time::Duration;

use common::twilio_api::{FakeTwilio, Scripted, ACCOUNT_SID};
use common::*;
use smsflow::app::Role;
use smsflow::config::Settings;
use smsflow::events::{decode, OutboundRequested, OutboundStatusChanged};
use smsflow::projector::position::Position;
use smsflow::projector::{Applied, OutboundProjection};
use smsflow::topics::OUTBOUND;

const SENDER: &str = "+14155550100";
const STATUS_PATH: &str = "/webhooks/twilio/status";

fn notify_settings(env: &TestEnv, fake: &FakeTwilio) -> Settings {
    let mut s = env.settings.clone();
    s.twilio.account_sid = Some(ACCOUNT_SID.into());
    s.notify.api_base = fake.base_url.clone();
    s.notify.from = Some(SENDER.into());
    s.notify.max_attempts = 3;
    s.notify.backoff_base = Duration::from_millis(50);
    s.notify.backoff_max = Duration::from_secs(3);
    s.stages.instance_id = Some("notify-test-0".into());
    s.stages.backoff_initial = Duration::from_millis(50);
    s
}

fn request(n: u32, to: &str, purpose: &str) -> OutboundRequested {
    OutboundRequested {
        event_id: format!("req-{n}-{}", fastrand_suffix()),
        requested_at: 1_764_000_000_000_000,
        user_id: Some(format!("user-{n}")),
        to: to.into(),
        from: None,
        body: format!("Your items are ready ({n})"),
        purpose: purpose.into(),
        message_sid: None,
    }
}

async fn produce(env: &TestEnv, reqs: &[&OutboundRequested]) {
    let producer = env.fixture_producer();
    for r in reqs {
        producer
            .send(&env.topic(OUTBOUND), r.partition_key(), *r)
            .await
            .expect("produce OutboundRequested");
    }
}

/// Every committed `OutboundStatusChanged` on the outbound topic.
async fn statuses(env: &TestEnv) -> Vec<OutboundStatusChanged> {
    read_committed_to_end(env, &env.topic(OUTBOUND))
        .await
        .iter()
        .filter_map(|p| decode::<OutboundStatusChanged>(p).ok())
        .collect()
}

/// Wait until at least `n` status events concern `request`, and return them.
async fn statuses_for(env: &TestEnv, request: &str, n: usize) -> Vec<OutboundStatusChanged> {
    wait_for(
        &format!("{n} status event(s) for {request}"),
        Duration::from_secs(120),
        || async {
            let found: Vec<_> = statuses(env)
                .await
                .into_iter()
                .filter(|s| s.request_event_id.as_deref() == Some(request))
                .collect();
            (found.len() >= n).then_some(found)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_sent_once_with_twilios_fields_and_its_sid_is_appended() {
    let env = TestEnv::new().await;
    let fake = FakeTwilio::start().await;
    let app = TestApp::spawn(notify_settings(&env, &fake), &[Role::Notify]).await;
    let req = request(1, "+15105550142", "items_ready");
    produce(&env, &[&req]).await;

    let events = statuses_for(&env, &req.event_id, 1).await;
    let sent = fake.sent();
    assert_eq!(sent.len(), 1, "exactly one message created");
    let form = &sent[0].form;
    assert_eq!(form["To"], "+15105550142");
    assert_eq!(form["From"], SENDER);
    assert_eq!(form["Body"], req.body);
    assert!(!form.contains_key("MessagingServiceSid"));
    let callback = url::Url::parse(&form["StatusCallback"]).expect("StatusCallback is a URL");
    // The connection overrides ride along, so Twilio retries a callback answered 503.
    assert_eq!(
        callback.fragment(),
        Some(smsflow::twilio::settings::RECOMMENDED_OVERRIDES)
    );
    assert_eq!(
        format!(
            "{}://{}{}",
            callback.scheme(),
            callback.host_str().unwrap(),
            callback.path()
        ),
        format!("{PUBLIC_URL}{STATUS_PATH}")
    );
    let query: Vec<(String, String)> = callback.query_pairs().into_owned().collect();
    assert!(query.contains(&("event_id".into(), req.event_id.clone())));
    assert!(query.contains(&("user_id".into(), "user-1".into())));

    assert_eq!(events.len(), 1);
    let ev = &events[0];
    assert_eq!(ev.status, "queued");
    assert_eq!(ev.source, "notify");
    assert_eq!(ev.twilio_sid.as_deref(), Some(sent[0].sid.as_str()));
    assert_eq!(ev.to.as_deref(), Some("+15105550142"));
    assert_eq!(ev.from.as_deref(), Some(SENDER));
    assert_eq!(ev.purpose.as_deref(), Some("items_ready"));
    assert_eq!(ev.user_id.as_deref(), Some("user-1"));
    assert_eq!(ev.error_code, None);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_retry_after_429_sends_one_message_not_two() {
    let env = TestEnv::new().await;
    let fake = FakeTwilio::start().await;
    fake.script([Scripted::TooManyRequests(1), Scripted::ServerError]);
    let app = TestApp::spawn(notify_settings(&env, &fake), &[Role::Notify]).await;
    let req = request(2, "+15105550143", "items_ready");
    produce(&env, &[&req]).await;

    let events = statuses_for(&env, &req.event_id, 1).await;
    assert_eq!(fake.requests(), 3, "429, then 500, then created");
    assert_eq!(fake.sent().len(), 1, "one message, not two");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].status, "queued");
    assert_eq!(
        events[0].twilio_sid.as_deref(),
        Some(fake.sent()[0].sid.as_str())
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_recipient_is_failed_with_twilios_code_and_the_partition_keeps_moving() {
    let env = TestEnv::new().await;
    let fake = FakeTwilio::start().await;
    fake.script([Scripted::Error {
        status: 400,
        code: 21211,
        message: "The 'To' number +1555 is not a valid phone number.".into(),
    }]);
    let app = TestApp::spawn(notify_settings(&env, &fake), &[Role::Notify]).await;
    // Same owner, so same partition, in this order.
    let bad = request(3, "+1555", "items_ready");
    let mut good = request(3, "+15105550144", "items_ready");
    good.event_id = format!("{}-next", bad.event_id);
    produce(&env, &[&bad, &good]).await;

    let failed = statuses_for(&env, &bad.event_id, 1).await;
    let next = statuses_for(&env, &good.event_id, 1).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].status, "failed");
    assert_eq!(failed[0].error_code, Some(21211));
    assert_eq!(failed[0].twilio_sid, None);
    assert!(failed[0]
        .error_message
        .as_deref()
        .is_some_and(|m| m.contains("not a valid phone number")));
    assert_eq!(next[0].status, "queued");
    assert_eq!(fake.requests(), 2, "the refused request was not retried");
    assert_eq!(fake.sent().len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opted_out_recipient_gets_nothing_but_the_opt_out_confirmation() {
    let env = TestEnv::new().await;
    let fake = FakeTwilio::start().await;
    let cql = env.cql().await;
    cql.query_unpaged(
        "INSERT INTO phones (phone, user_id, verified, opted_out) VALUES (?, ?, ?, ?)",
        ("+15105550145", "user-4", true, true),
    )
    .await
    .unwrap();
    let app = TestApp::spawn(notify_settings(&env, &fake), &[Role::Notify]).await;
    let blocked = request(4, "+15105550145", "items_ready");
    let mut confirmation = request(4, "+15105550145", "opt_out_confirmation");
    confirmation.event_id = format!("{}-confirm", blocked.event_id);
    produce(&env, &[&blocked, &confirmation]).await;

    let suppressed = statuses_for(&env, &blocked.event_id, 1).await;
    let confirmed = statuses_for(&env, &confirmation.event_id, 1).await;
    assert_eq!(suppressed.len(), 1);
    assert_eq!(suppressed[0].status, "suppressed");
    assert_eq!(suppressed[0].reason.as_deref(), Some("opted_out"));
    assert_eq!(suppressed[0].twilio_sid, None);
    assert_eq!(confirmed[0].status, "queued");
    let sent = fake.sent();
    assert_eq!(sent.len(), 1, "only the confirmation went out");
    assert_eq!(sent[0].form["Body"], confirmation.body);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_request_after_a_restart_is_not_sent_again() {
    let env = TestEnv::new().await;
    let fake = FakeTwilio::start().await;
    let settings = notify_settings(&env, &fake);
    let req = request(5, "+15105550146", "verification_code");

    let app = TestApp::spawn(settings.clone(), &[Role::Notify]).await;
    produce(&env, &[&req]).await;
    let first = statuses_for(&env, &req.event_id, 1).await;
    app.stop().await;

    // The same request appended again, consumed by a restarted stage.
    produce(&env, &[&req]).await;
    let app = TestApp::spawn(settings, &[Role::Notify]).await;
    let both = statuses_for(&env, &req.event_id, 2).await;

    assert_eq!(fake.requests(), 1, "one POST in all");
    assert_eq!(fake.sent().len(), 1);
    assert_eq!(both.len(), 2, "each consumption answered once");
    assert_eq!(both[0], first[0]);
    assert_eq!(
        both[1], first[0],
        "the replay returns the recorded decision"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_status_callback_is_appended_and_a_forged_one_is_refused_with_nothing_appended() {
    let env = TestEnv::new().await;
    let app = TestApp::spawn(env.settings.clone(), &[Role::Ingress]).await;
    let client = reqwest::Client::new();
    let path = format!("{STATUS_PATH}?event_id=req-cb-1&user_id=user-9");
    let params: Vec<(String, String)> = [
        ("SmsSid", "SM0123456789abcdef0123456789abcdef"),
        ("SmsStatus", "undelivered"),
        ("MessageStatus", "undelivered"),
        ("ErrorCode", "30003"),
        ("To", "+15105550147"),
        ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
        ("AccountSid", ACCOUNT_SID),
        ("From", SENDER),
        ("ApiVersion", "2010-04-01"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();

    let forged = sign(&path, &params).replace(|c: char| c.is_ascii_alphabetic(), "A");
    let resp = post_form(&client, &app.base_url, &path, &params, Some(&forged)).await;
    assert_eq!(resp.status(), 403);
    let mut tampered = params.clone();
    tampered[1].1 = "delivered".into();
    let resp = post_form(
        &client,
        &app.base_url,
        &path,
        &tampered,
        Some(&sign(&path, &params)),
    )
    .await;
    assert_eq!(
        resp.status(),
        403,
        "a changed parameter breaks the signature"
    );

    let resp = post_form(
        &client,
        &app.base_url,
        &path,
        &params,
        Some(&sign(&path, &params)),
    )
    .await;
    assert_eq!(resp.status(), 200);

    // Kafka had it before the 200: it is readable at once, and it is the only one.
    let all = statuses(&env).await;
    assert_eq!(all.len(), 1, "only the signed callback was appended");
    let ev = &all[0];
    assert_eq!(ev.source, "callback");
    assert_eq!(ev.status, "undelivered");
    assert_eq!(ev.error_code, Some(30003));
    assert_eq!(
        ev.twilio_sid.as_deref(),
        Some("SM0123456789abcdef0123456789abcdef")
    );
    assert_eq!(ev.request_event_id.as_deref(), Some("req-cb-1"));
    assert_eq!(ev.partition_key(), "user-9");
    app.stop().await;
}

fn at(log_time_ms: i64, offset: i64) -> Position {
    Position {
        topic: "sms.outbound.v1".into(),
        partition: 0,
        offset,
        log_time_ms,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbound_projection_keeps_the_newest_status_and_ignores_an_older_event() {
    let env = TestEnv::new().await;
    let session = env.cql().await;
    let projection = OutboundProjection::new(session.clone(), &env.settings.cql.keyspace)
        .await
        .unwrap();
    let queued = OutboundStatusChanged {
        event_id: "ev-1".into(),
        changed_at: 1_764_000_000_000_000,
        request_event_id: Some("req-p".into()),
        source: "notify".into(),
        status: "queued".into(),
        twilio_sid: Some("SMp".into()),
        error_code: None,
        error_message: None,
        reason: None,
        user_id: Some("user-p".into()),
        to: Some("+15105550148".into()),
        from: Some(SENDER.into()),
        purpose: Some("items_ready".into()),
    };
    // A callback knows less than the stage: no purpose, no user.
    let undelivered = OutboundStatusChanged {
        event_id: "ev-2".into(),
        changed_at: 1_764_000_005_000_000,
        source: "callback".into(),
        status: "undelivered".into(),
        error_code: Some(30003),
        user_id: None,
        purpose: None,
        ..queued.clone()
    };
    let read = || async {
        session
            .query_unpaged(
                "SELECT status, error_code, twilio_sid, purpose, user_id, to_number, status_at \
                 FROM outbound_messages WHERE request_event_id = 'req-p'",
                (),
            )
            .await
            .unwrap()
            .into_rows_result()
            .unwrap()
            .single_row::<(
                String,
                Option<i32>,
                String,
                String,
                String,
                String,
                std::collections::HashMap<String, scylla::value::CqlTimestamp>,
            )>()
            .unwrap()
    };

    assert_eq!(
        projection
            .apply(&queued, &at(1_764_000_001_000, 10))
            .await
            .unwrap(),
        Applied::Written
    );
    projection
        .apply(&undelivered, &at(1_764_000_006_000, 11))
        .await
        .unwrap();
    let row = read().await;
    assert_eq!(row.0, "undelivered");
    assert_eq!(row.1, Some(30003));
    assert_eq!(row.2, "SMp");
    assert_eq!(
        row.3, "items_ready",
        "the callback did not erase the purpose"
    );
    assert_eq!(row.4, "user-p");
    assert_eq!(row.5, "+15105550148");
    assert_eq!(row.6.len(), 2, "both statuses are timed");

    // The older event again (a replay): nothing changes.
    projection
        .apply(&queued, &at(1_764_000_001_000, 10))
        .await
        .unwrap();
    let again = read().await;
    assert_eq!(
        again.0, "undelivered",
        "an older event never overwrites a newer one"
    );
    assert_eq!(again, row);

    let orphan = OutboundStatusChanged {
        request_event_id: None,
        ..undelivered
    };
    assert_eq!(
        projection
            .apply(&orphan, &at(1_764_000_007_000, 12))
            .await
            .unwrap(),
        Applied::NoRequest
    );
}
