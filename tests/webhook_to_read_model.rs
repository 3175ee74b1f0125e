//! The spine end to end: signed webhooks become events in Kafka and rows in CQL; anything
//! unsigned, forged or malformed is refused and appends nothing.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use scylla::value::CqlTimestamp;

use common::*;
use smsflow::app::Role;
use smsflow::events::{decode, MessageReceived};
use smsflow::kafka::client;

type Params = Vec<(String, String)>;

type Row = (
    String,
    CqlTimestamp,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    i32,
    Option<Vec<(String, String)>>,
    Option<HashMap<String, String>>,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_signed_webhooks_become_exactly_two_hundred_rows() {
    let env = TestEnv::new().await;
    let app = TestApp::spawn(env.settings.clone(), &[Role::Ingress, Role::Projector]).await;
    let client = reqwest::Client::new();
    let n = 200;

    let statuses: Vec<u16> = futures::stream::iter(0..n)
        .map(|i| {
            let client = client.clone();
            let base = app.base_url.clone();
            async move {
                post_signed(&client, &base, &sms_params(i))
                    .await
                    .status()
                    .as_u16()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 200), "statuses: {statuses:?}");

    let cql = env.cql().await;
    wait_for(
        "200 rows in messages_by_user",
        Duration::from_secs(60),
        || async { (count_rows(&cql, "messages_by_user").await == n as i64).then_some(()) },
    )
    .await;

    let rows = cql
        .query_unpaged(
            "SELECT user_id, received_at, message_sid, account_sid, messaging_service_sid, from_number, to_number, body, num_segments, media, geo FROM messages_by_user",
            (),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    let rows: Vec<Row> = rows.rows::<Row>().unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), n);
    let by_sid: HashMap<&str, &Row> = rows.iter().map(|r| (r.2.as_str(), r)).collect();
    assert_eq!(by_sid.len(), n, "message SIDs are distinct");
    for i in 0..n {
        let p = as_map(&sms_params(i));
        let row = by_sid[p["MessageSid"].as_str()];
        assert_eq!(
            row.0, p["From"],
            "owner is the sender until the phone registry knows the user"
        );
        assert_eq!(row.3, p["AccountSid"]);
        assert_eq!(row.4, None);
        assert_eq!(row.5, p["From"]);
        assert_eq!(row.6, p["To"]);
        assert_eq!(row.7, p["Body"]);
        assert_eq!(row.8, 1);
        assert!(row.9.clone().unwrap_or_default().is_empty(), "no media");
        let geo = row.10.clone().unwrap();
        assert_eq!(geo["from_city"], "OAKLAND");
        assert_eq!(geo["to_zip"], "94105");
        assert!(row.1 .0 > 1_700_000_000_000, "received_at is set");
    }
    assert_eq!(count_rows(&cql, "message_status").await, n as i64);

    // Per-stage times on one host clock, in the order the message went through them.
    let stages = cql
        .query_unpaged("SELECT message_sid, stage_at FROM message_status", ())
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    for row in stages
        .rows::<(String, HashMap<String, CqlTimestamp>)>()
        .unwrap()
    {
        let (sid, at) = row.unwrap();
        let (received, appended, projected) =
            (at["received"].0, at["appended"].0, at["projected"].0);
        assert!(
            received <= appended && appended <= projected,
            "{sid}: received {received} <= appended {appended} <= projected {projected}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_signature_wrong_url_and_dropped_parameter_are_refused_and_nothing_is_appended() {
    let env = TestEnv::new().await;
    let app = TestApp::spawn(env.settings.clone(), &[Role::Ingress]).await;
    let client = reqwest::Client::new();
    let params = sms_params(1);

    let forged = signature_with_token("not-the-token", MESSAGES_PATH, &params);
    let wrong_url =
        smsflow::ingress::signature::compute(AUTH_TOKEN, &format!("{PUBLIC_URL}/other"), &params);
    let mut dropped = params.clone();
    dropped.retain(|(k, _)| k != "FromZip");
    let signed_full = sign(MESSAGES_PATH, &params);

    let cases: Vec<(&str, Params, Option<String>)> = vec![
        ("forged", params.clone(), Some(forged)),
        ("wrong url", params.clone(), Some(wrong_url)),
        ("dropped parameter", dropped, Some(signed_full.clone())),
        ("missing header", params.clone(), None),
        ("query string added", params.clone(), Some(signed_full)),
    ];
    for (name, body, sig) in &cases {
        let path = if *name == "query string added" {
            format!("{MESSAGES_PATH}?x=1")
        } else {
            MESSAGES_PATH.to_string()
        };
        let resp = post_form(&client, &app.base_url, &path, body, sig.as_deref()).await;
        assert_eq!(resp.status(), 403, "{name}");
    }
    // A valid sentinel: once the consumer sees it, everything sent before it would be visible.
    let sentinel = sms_params(999);
    assert_eq!(
        post_signed(&client, &app.base_url, &sentinel)
            .await
            .status(),
        200
    );

    let seen = read_all_sids(&env, &as_map(&sentinel)["MessageSid"]).await;
    assert_eq!(
        seen,
        vec![as_map(&sentinel)["MessageSid"].clone()],
        "only the sentinel was appended"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_oversized_and_wrongly_typed_bodies_get_400_413_415_and_nothing_is_appended() {
    let env = TestEnv::new().await;
    let mut settings = env.settings.clone();
    settings.http.body_limit_bytes = 4096;
    let app = TestApp::spawn(settings, &[Role::Ingress]).await;
    let client = reqwest::Client::new();

    // Signed but NumMedia disagrees with the media parameters: 400.
    let mut bad = sms_params(2);
    bad.retain(|(k, _)| k != "NumMedia");
    bad.push(("NumMedia".into(), "1".into()));
    assert_eq!(
        post_signed(&client, &app.base_url, &bad).await.status(),
        400
    );

    // Signed but without a MessageSid: 400.
    let mut no_sid = sms_params(3);
    no_sid.retain(|(k, _)| k != "MessageSid");
    assert_eq!(
        post_signed(&client, &app.base_url, &no_sid).await.status(),
        400
    );

    // Larger than the body limit: 413.
    let mut big = sms_params(4);
    big.push(("Body2".into(), "x".repeat(8192)));
    assert_eq!(
        post_signed(&client, &app.base_url, &big).await.status(),
        413
    );

    // JSON instead of a form: 415.
    let resp = client
        .post(format!("{}{MESSAGES_PATH}", app.base_url))
        .header("content-type", "application/json")
        .header("x-twilio-signature", "x")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);

    let metrics = client
        .get(format!("{}/metrics", app.ops_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for reason in ["malformed_form", "body_too_large", "wrong_content_type"] {
        assert!(
            metrics.contains(&format!(
                "smsflow_webhook_refused_total{{reason=\"{reason}\"}}"
            )),
            "{reason} counted:\n{metrics}"
        );
    }

    let sentinel = sms_params(998);
    assert_eq!(
        post_signed(&client, &app.base_url, &sentinel)
            .await
            .status(),
        200
    );
    let seen = read_all_sids(&env, &as_map(&sentinel)["MessageSid"]).await;
    assert_eq!(seen, vec![as_map(&sentinel)["MessageSid"].clone()]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_webhook_answers_empty_twiml_as_text_xml() {
    let env = TestEnv::new().await;
    let app = TestApp::spawn(env.settings.clone(), &[Role::Ingress]).await;
    let client = reqwest::Client::new();
    let resp = post_signed(&client, &app.base_url, &sms_params(7)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/xml");
    let body = resp.text().await.unwrap();
    assert!(body.contains("<Response/>"), "{body}");
    app.stop().await;
}

fn signature_with_token(token: &str, path: &str, params: &[(String, String)]) -> String {
    smsflow::ingress::signature::compute(token, &format!("{PUBLIC_URL}{path}"), params)
}

/// Every MessageReceived SID on the messages topic, read to the end of every partition once
/// `until_sid` (appended last, acknowledged with 200) is among them.
async fn read_all_sids(env: &TestEnv, until_sid: &str) -> Vec<String> {
    let topic = env.topic(smsflow::topics::MESSAGES);
    wait_for(
        "the sentinel on the topic",
        Duration::from_secs(60),
        || async {
            let sids: Vec<String> = read_committed_to_end(env, &topic)
                .await
                .iter()
                .filter_map(|b| decode::<MessageReceived>(b).ok())
                .map(|ev| ev.message_sid)
                .collect();
            sids.iter().any(|s| s == until_sid).then_some(sids)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_deliveries_of_one_message_are_appended_once() {
    let env = TestEnv::new().await;
    let app = TestApp::spawn(env.settings.clone(), &[Role::Ingress]).await;
    let client = reqwest::Client::new();
    let params = sms_params(11);
    let sig = sign(MESSAGES_PATH, &params);
    // Twilio retries carry the same idempotency token.
    let send = |client: reqwest::Client, base: String, params: Params, sig: String| async move {
        let token = format!("retry-token-{}", as_map(&params)["MessageSid"]);
        client
            .post(format!("{base}{MESSAGES_PATH}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", sig)
            .header("i-twilio-idempotency-token", token)
            .body(encode_form(&params))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    for _ in 0..3 {
        assert_eq!(
            send(
                client.clone(),
                app.base_url.clone(),
                params.clone(),
                sig.clone()
            )
            .await,
            200
        );
    }
    // Concurrent duplicates: each answer is 200 (appended or duplicate) or 503 (in flight).
    let other = sms_params(12);
    let other_sig = sign(MESSAGES_PATH, &other);
    let statuses: Vec<u16> = futures::future::join_all((0..5).map(|_| {
        send(
            client.clone(),
            app.base_url.clone(),
            other.clone(),
            other_sig.clone(),
        )
    }))
    .await;
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    assert!(statuses.contains(&200), "{statuses:?}");

    let sentinel = sms_params(997);
    assert_eq!(
        post_signed(&client, &app.base_url, &sentinel)
            .await
            .status(),
        200
    );
    let seen = read_all_sids(&env, &as_map(&sentinel)["MessageSid"]).await;
    let count = |p: &Params| {
        seen.iter()
            .filter(|s| **s == as_map(p)["MessageSid"])
            .count()
    };
    assert_eq!(count(&params), 1, "{seen:?}");
    assert_eq!(count(&other), 1, "{seen:?}");
    let metrics = client
        .get(format!("{}/metrics", app.ops_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("smsflow_webhook_duplicates_total"),
        "duplicates are counted"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_over_its_rate_limit_gets_200_and_is_recorded_as_sender_rejected() {
    let env = TestEnv::new().await;
    let mut settings = env.settings.clone();
    settings.ingress.rate_limit.sender_limit = 6;
    settings.ingress.rate_limit.sender_period = Duration::from_secs(60);
    settings.ingress.rate_limit.sender_burst = 3;
    let app = TestApp::spawn(settings, &[Role::Ingress, Role::Projector]).await;
    let client = reqwest::Client::new();
    // One sender, seven messages at once: three fit the burst, four are over the limit.
    let same_sender = |i: usize| -> Params { sms_with(100 + i, &[("From", "+15105559999")]) };
    for i in 0..7 {
        assert_eq!(
            post_signed(&client, &app.base_url, &same_sender(i))
                .await
                .status(),
            200,
            "Twilio must not retry"
        );
    }
    let sentinel = sms_params(996);
    assert_eq!(
        post_signed(&client, &app.base_url, &sentinel)
            .await
            .status(),
        200
    );

    let consumer: StreamConsumer = client::consumer(
        &env.settings.kafka,
        "test-reader",
        &format!("t{}-rl", env.id),
    )
    .create()
    .unwrap();
    consumer
        .subscribe(&[&env.topic(smsflow::topics::MESSAGES)])
        .unwrap();
    let (mut received, mut rejected, mut sentinel_seen) = (0, Vec::new(), false);
    let mut stream = consumer.stream();
    // Partitions interleave freely: read until all eight records are in.
    while !(sentinel_seen && received + rejected.len() == 7) {
        let msg = tokio::time::timeout(Duration::from_secs(60), stream.next())
            .await
            .expect("events arrive")
            .unwrap()
            .unwrap();
        let event_type = msg
            .headers()
            .and_then(|h| smsflow::kafka::headers::get(h, "event-type"))
            .unwrap_or_default()
            .to_owned();
        if event_type == "SenderRejected" {
            let r: smsflow::events::SenderRejected = decode(msg.payload().unwrap()).unwrap();
            rejected.push(r);
            continue;
        }
        let ev: MessageReceived = decode(msg.payload().unwrap()).unwrap();
        if ev.message_sid == as_map(&sentinel)["MessageSid"] {
            sentinel_seen = true;
        } else {
            received += 1;
        }
    }
    assert_eq!(received, 3, "the burst is accepted");
    assert_eq!(rejected.len(), 4);
    assert!(rejected
        .iter()
        .all(|r| r.reason == "rate_limited" && r.retry_after_ms.unwrap_or(0) > 0));
    // Rejected messages are recorded but not projected as messages.
    let cql = env.cql().await;
    wait_for(
        "the accepted messages and the sentinel projected",
        Duration::from_secs(60),
        || async { (count_rows(&cql, "messages_by_user").await == 4).then_some(()) },
    )
    .await;
    app.stop().await;
}
