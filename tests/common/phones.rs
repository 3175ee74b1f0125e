//! The phone registry's side of a test: settings that accept only registered senders,
//! texting from a number as Twilio would, and reading what ingress appended for it.

use std::time::Duration;

use smsflow::events::{decode, MessageReceived, SenderRejected};
use smsflow::ingress::SenderPolicy;

use super::{post_signed, read_full_records_to_end, sms_with, unique_sid, TestApp, TestEnv};

/// This environment's settings with `ingress.sender_policy = registered`.
pub fn registered_senders_only(env: &TestEnv) -> smsflow::config::Settings {
    let mut s = env.settings.clone();
    s.ingress.sender_policy = SenderPolicy::Registered;
    s
}

/// A signed SMS from `from` with `body` and a fresh SID; returns (status, body, sid).
pub async fn send_text(
    http: &reqwest::Client,
    app: &TestApp,
    n: usize,
    from: &str,
    body: &str,
) -> (u16, String, String) {
    let sid = unique_sid(n);
    let params = sms_with(
        n,
        &[
            ("From", from),
            ("Body", body),
            ("MessageSid", &sid),
            ("SmsSid", &sid),
            ("SmsMessageSid", &sid),
        ],
    );
    // Like Twilio: a 503 is retried with the same message (a loaded two-core box can miss
    // the 2 s produce deadline on a fresh topic).
    for _ in 0..5 {
        let resp = post_signed(http, &app.base_url, &params).await;
        let status = resp.status().as_u16();
        if status != 503 {
            return (status, resp.text().await.unwrap_or_default(), sid);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("webhook still answered 503 after 5 tries");
}

/// The events on `sms.messages.v1`, split by type.
pub async fn message_events(
    env: &TestEnv,
) -> (Vec<(String, MessageReceived)>, Vec<SenderRejected>) {
    let mut accepted = Vec::new();
    let mut rejected = Vec::new();
    for r in read_full_records_to_end(env, &env.topic("sms.messages.v1")).await {
        match r.event_type.as_deref() {
            Some("MessageReceived") => accepted.push((
                r.key.unwrap_or_default(),
                decode::<MessageReceived>(&r.payload).unwrap(),
            )),
            Some("SenderRejected") => rejected.push(decode(&r.payload).unwrap()),
            other => panic!("unexpected event type {other:?}"),
        }
    }
    (accepted, rejected)
}
