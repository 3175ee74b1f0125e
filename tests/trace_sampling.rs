//! Head sampling: with a ratio of 0 no webhook trace reaches Jaeger, yet a refused webhook
//! still leaves a span there that an operator can find, and metrics count every message.
//! (Its own test binary: the trace pipeline, and so the sampler, is one per process.)

mod common;

use std::time::Duration;

use serde_json::Value;

use common::*;
use smsflow::app::Role;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_zero_ratio_traces_are_dropped_but_a_refused_webhook_is_kept() {
    let env = TestEnv::new().await;
    let mut settings = env.settings.clone();
    settings.telemetry.sampler = "parentbased_traceidratio".into();
    settings.telemetry.sampler_ratio = 0.0;
    let app = TestApp::spawn(settings, &[Role::Ingress]).await;
    let client = reqwest::Client::new();

    // Accepted, and sampled out.
    let mut accepted = sms_params(3);
    let sid = format!("SM{}a", env.id);
    for (k, v) in accepted.iter_mut() {
        if k == "MessageSid" || k == "SmsSid" || k == "SmsMessageSid" {
            *v = sid.clone();
        }
    }
    assert_eq!(
        post_signed_retrying_503(&client, &app.base_url, &accepted).await,
        200
    );
    // Forged: refused with 403, and kept.
    let token = format!("forged-{}", env.id);
    let forged = client
        .post(format!("{}{MESSAGES_PATH}", app.base_url))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", "bm90IGEgc2lnbmF0dXJl")
        .header("i-twilio-idempotency-token", &token)
        .body(encode_form(&sms_params(4)))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    let traces = wait_for(
        "the refused webhook's span in Jaeger",
        Duration::from_secs(60),
        || {
            let client = client.clone();
            let token = token.clone();
            async move {
                jaeger_traces(&client, "twilio.idempotency_token", &token)
                    .await
                    .filter(|t| !t.is_empty())
            }
        },
    )
    .await;
    let span = &traces[0]["spans"][0];
    assert_eq!(span["operationName"], "webhook refused");
    assert_eq!(
        span_tag(span, "outcome").and_then(Value::as_str),
        Some("bad_signature")
    );
    assert_eq!(
        span_tag(span, "http.response.status_code").and_then(Value::as_i64),
        Some(403)
    );
    let request_trace = span_tag(span, "request.trace_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    assert_eq!(request_trace.len(), 32, "the request's trace id: {span}");

    // The accepted webhook's spans were exported before the refusal's, if at all: none.
    assert_eq!(
        jaeger_traces(&client, "message_sid", &sid)
            .await
            .map(|t| t.len()),
        Some(0),
        "a zero ratio keeps no webhook trace"
    );
    // Metrics saw both, sampled or not.
    let metrics = client
        .get(format!("{}/metrics", app.ops_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |outcome: &str| {
        metrics
            .lines()
            .filter(|l| {
                l.starts_with("smsflow_webhook_duration_seconds_count")
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    assert!(count("accepted") >= 1.0, "{metrics}");
    assert!(count("bad_signature") >= 1.0, "{metrics}");
    app.stop().await;
}
