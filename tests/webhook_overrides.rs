//! A webhook URL configured with connection overrides (`…/messages#ct=…&rc=3&rp=ct,rt,5xx`):
//! Twilio signs the URL as configured, fragment included, and the fragment never reaches us.
//! Ingress accepts such a request (and the fragment-less spelling), appends it once, and still
//! refuses a request signed for a fragment it was not configured with.

mod common;

use std::time::Duration;

use common::*;
use smsflow::app::Role;
use smsflow::ingress::signature;
use smsflow::topics::MESSAGES;
use smsflow::twilio::settings::RECOMMENDED_OVERRIDES;

#[tokio::test]
async fn a_webhook_signed_with_its_overrides_fragment_is_accepted_and_appended_once() {
    let env = TestEnv::new().await;
    let app = TestApp::spawn(env.settings.clone(), &[Role::Ingress]).await;
    let client = reqwest::Client::new();
    let configured = format!("{PUBLIC_URL}{MESSAGES_PATH}#{RECOMMENDED_OVERRIDES}");

    // As Twilio signs it: the configured URL, fragment and all.
    let params = sms_params(1);
    let sig = signature::compute(AUTH_TOKEN, &configured, &params);
    let mut status = 503;
    for _ in 0..5 {
        status = post_form(&client, &app.base_url, MESSAGES_PATH, &params, Some(&sig))
            .await
            .status()
            .as_u16();
        if status != 503 {
            break;
        }
    }
    assert_eq!(status, 200, "a fragment-signed webhook is genuine");

    // The same request without the fragment in the signed URL is accepted too.
    let params2 = sms_params(2);
    assert_eq!(
        post_signed_retrying_503(&client, &app.base_url, &params2).await,
        200
    );

    // A fragment we were not configured with is not ours: 403, nothing appended.
    let params3 = sms_params(3);
    let foreign = format!("{PUBLIC_URL}{MESSAGES_PATH}#rc=5&rp=all");
    let sig3 = signature::compute(AUTH_TOKEN, &foreign, &params3);
    let resp = post_form(&client, &app.base_url, MESSAGES_PATH, &params3, Some(&sig3)).await;
    assert_eq!(resp.status().as_u16(), 403);

    let records = wait_for("two appended messages", Duration::from_secs(30), || async {
        let r = read_committed_to_end(&env, &env.topic(MESSAGES)).await;
        (r.len() >= 2).then_some(r)
    })
    .await;
    assert_eq!(records.len(), 2, "the two genuine webhooks, once each");
    app.stop().await;
}
