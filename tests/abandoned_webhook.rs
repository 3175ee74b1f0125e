//! A webhook whose sender hangs up while it is being appended (Twilio gave up at 15 s, a load
//! balancer closed the connection) still finishes: the event is appended once and its claim
//! confirmed, so the sender's retry is answered 200 as a duplicate. When ingress watched the
//! socket, a hang-up dropped the handler: here nothing was appended, and its claim stayed
//! `pending`, so a retry got 503 "in flight" until the claim expired.

mod common;

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use common::*;
use smsflow::app::Role;
use smsflow::events::{decode, MessageReceived};
use smsflow::topics::MESSAGES;

#[tokio::test]
async fn a_webhook_whose_sender_hung_up_is_appended_once_and_its_retry_is_a_duplicate() {
    let env = TestEnv::new().await;
    let mut settings = env.settings.clone();
    // Each append waits for its batch, so the sender can hang up while it is on its way.
    settings.kafka.linger = Duration::from_millis(1500);
    settings.kafka.produce_deadline = Duration::from_secs(10);
    let app = TestApp::spawn(settings, &[Role::Ingress]).await;
    let http = reqwest::Client::new();

    let params = sms_params(1);
    let sid = as_map(&params)["MessageSid"].clone();
    let body = encode_form(&params);
    let addr = app.base_url.trim_start_matches("http://");
    let request = format!(
        "POST {MESSAGES_PATH} HTTP/1.1\r\nhost: {addr}\r\n\
         content-type: application/x-www-form-urlencoded\r\n\
         x-twilio-signature: {}\r\ncontent-length: {}\r\n\r\n{body}",
        sign(MESSAGES_PATH, &params),
        body.len()
    );
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket.write_all(request.as_bytes()).await.unwrap();
    wait_for("the webhook in flight", Duration::from_secs(10), || async {
        (metric(&http, &app.ops_url, "smsflow_webhooks_in_flight").await >= 1.0).then_some(())
    })
    .await;
    // The sender hangs up before the answer.
    drop(socket);

    let topic = env.topic(MESSAGES);
    wait_for(
        "the abandoned webhook appended",
        Duration::from_secs(30),
        || async { (copies_of(&env, &topic, &sid).await > 0).then_some(()) },
    )
    .await;
    wait_for("the handler finished", Duration::from_secs(10), || async {
        (metric(&http, &app.ops_url, "smsflow_webhooks_in_flight").await == 0.0).then_some(())
    })
    .await;

    // Twilio's retry: its claim was confirmed, so it is a duplicate, answered at once.
    let retry = post_signed(&http, &app.base_url, &params).await;
    assert_eq!(
        retry.status().as_u16(),
        200,
        "the retry of an appended webhook is a duplicate, not in flight"
    );
    let copies = copies_of(&env, &topic, &sid).await;
    assert_eq!(copies, 1, "appended once, hang-up and retry included");
    app.stop().await;
}

/// How many `MessageReceived` events on `topic` carry `sid`.
async fn copies_of(env: &TestEnv, topic: &str, sid: &str) -> usize {
    read_committed_to_end(env, topic)
        .await
        .iter()
        .filter_map(|b| decode::<MessageReceived>(b).ok())
        .filter(|ev| ev.message_sid == sid)
        .count()
}
