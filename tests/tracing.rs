//! One inbound message is one trace in Jaeger, from the webhook to the projector's CQL writes,
//! with no phone number or body text in it; and `/metrics` is valid Prometheus text that moves
//! with traffic.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use common::*;
use smsflow::app::Role;

fn unique_params(env: &TestEnv, n: usize) -> Vec<(String, String)> {
    let mut p = sms_params(n);
    let sid = format!("SM{}{n:08x}", env.id);
    for (k, v) in p.iter_mut() {
        if k == "MessageSid" || k == "SmsSid" || k == "SmsMessageSid" {
            *v = sid.clone();
        }
    }
    p
}

async fn find_trace(client: &reqwest::Client, sid: &str) -> Option<Value> {
    let traces = jaeger_traces(client, "message_sid", sid).await?;
    // Wait until the projector's spans have been exported too.
    traces
        .iter()
        .find(|t| {
            t["spans"].as_array().is_some_and(|spans| {
                spans.iter().any(|s| {
                    s["operationName"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("process "))
                }) && spans
                    .iter()
                    .any(|s| s["operationName"] == "POST /webhooks/twilio/messages")
                    && spans
                        .iter()
                        .filter(|s| {
                            // The two writes (the projector also reads message_status first).
                            s["operationName"].as_str().is_some_and(|n| {
                                n == "INSERT messages_by_user" || n == "UPDATE message_status"
                            })
                        })
                        .count()
                        == 2
            })
        })
        .cloned()
}

fn parent_of(span: &Value) -> Option<String> {
    span["references"]
        .as_array()?
        .iter()
        .find(|r| r["refType"] == "CHILD_OF")
        .and_then(|r| r["spanID"].as_str().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_webhook_is_one_trace_from_ingress_to_the_projectors_writes() {
    let env = TestEnv::new().await;
    let app = TestApp::spawn(env.settings.clone(), &[Role::Ingress, Role::Projector]).await;
    let client = reqwest::Client::new();
    let params = unique_params(&env, 1);
    let map = as_map(&params);
    let sid = map["MessageSid"].clone();
    assert_eq!(
        post_signed(&client, &app.base_url, &params).await.status(),
        200
    );

    let trace = wait_for("the trace in Jaeger", Duration::from_secs(60), || {
        find_trace(&client, &sid)
    })
    .await;
    let spans = trace["spans"].as_array().unwrap();
    let by_name: HashMap<&str, &Value> = spans
        .iter()
        .map(|s| (s["operationName"].as_str().unwrap(), s))
        .collect();
    let id = |s: &Value| s["spanID"].as_str().unwrap().to_owned();
    let topic = env.topic(smsflow::topics::MESSAGES);

    let span = |name: &str| -> &Value {
        by_name
            .get(name)
            .copied()
            .unwrap_or_else(|| panic!("no span {name:?}; spans: {:?}", by_name.keys()))
    };
    let webhook = span("POST /webhooks/twilio/messages");
    let signature = span("webhook.signature");
    let produce = span(&format!("send {topic}"));
    let process = span(&format!("process {topic}"));
    let insert = span("INSERT messages_by_user");
    let update = span("UPDATE message_status");

    assert!(
        spans.iter().all(|s| s["traceID"] == trace["traceID"]),
        "one trace"
    );
    assert_eq!(parent_of(webhook), None, "the webhook starts the trace");
    assert_eq!(parent_of(signature), Some(id(webhook)));
    assert_eq!(parent_of(produce), Some(id(webhook)));
    assert_eq!(
        parent_of(process),
        Some(id(produce)),
        "the consumer continues the producer's context from Kafka headers"
    );
    assert_eq!(parent_of(insert), Some(id(process)));
    assert_eq!(parent_of(update), Some(id(process)));
    let read = span("SELECT message_status");
    assert_eq!(parent_of(read), Some(id(process)));

    let tag = |s: &Value, key: &str| span_tag(s, key).cloned();
    assert_eq!(
        tag(webhook, "message_sid"),
        Some(Value::String(sid.clone()))
    );
    assert_eq!(
        tag(process, "message_sid"),
        Some(Value::String(sid.clone()))
    );
    assert_eq!(
        tag(process, "messaging.system"),
        Some(Value::String("kafka".into()))
    );
    assert_eq!(
        tag(process, "messaging.consumer.group.name"),
        Some(Value::String(
            env.settings
                .projector
                .group_of(smsflow::projector::MESSAGES_PROJECTION)
        ))
    );
    assert_eq!(
        tag(produce, "span.kind"),
        Some(Value::String("producer".into()))
    );
    assert_eq!(
        tag(process, "span.kind"),
        Some(Value::String("consumer".into()))
    );

    let text = trace.to_string();
    let from_digits: String = map["From"].chars().filter(|c| c.is_ascii_digit()).collect();
    assert!(
        !text.contains(&from_digits),
        "sender number leaked into the trace"
    );
    assert!(
        !text.contains(&from_digits[1..8]),
        "sender number leaked into the trace"
    );
    assert!(
        !text.contains("Dana Reyes"),
        "message body leaked into the trace"
    );
    assert!(
        !text.contains("follow up"),
        "message body leaked into the trace"
    );
    app.stop().await;
}

fn histogram_count(metrics: &str, name: &str) -> f64 {
    let lines = metrics.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text format");
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == format!("{name}_count"))
        .map(|s| match s.value {
            prometheus_parse::Value::Untyped(v) | prometheus_parse::Value::Counter(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_valid_prometheus_text_and_histograms_move_with_traffic() {
    let env = TestEnv::new().await;
    let app = TestApp::spawn(env.settings.clone(), &[Role::Ingress, Role::Projector]).await;
    let client = reqwest::Client::new();
    let scrape = || async {
        client
            .get(format!("{}/metrics", app.ops_url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };

    let before = scrape().await;
    let webhooks_before = histogram_count(&before, "smsflow_webhook_duration_seconds");
    let e2e_before = histogram_count(&before, "smsflow_end_to_end_duration_seconds");
    for i in 0..5 {
        assert_eq!(
            post_signed(&client, &app.base_url, &unique_params(&env, i))
                .await
                .status(),
            200
        );
    }
    let cql = env.cql().await;
    wait_for("5 projected rows", Duration::from_secs(60), || async {
        (count_rows(&cql, "messages_by_user").await == 5).then_some(())
    })
    .await;
    // The projector records end-to-end latency after a row is written, so a row can be
    // visible a moment before its sample is: wait for the counts, do not assume them.
    let after = wait_for(
        "the histograms to count the 5 webhooks",
        Duration::from_secs(30),
        || async {
            let after = scrape().await;
            let webhooks = histogram_count(&after, "smsflow_webhook_duration_seconds");
            let e2e = histogram_count(&after, "smsflow_end_to_end_duration_seconds");
            (webhooks >= webhooks_before + 5.0 && e2e >= e2e_before + 5.0).then_some(after)
        },
    )
    .await;
    assert!(after.contains("smsflow_kafka_produce_duration_seconds_bucket"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_200_when_kafka_cql_and_redis_answer() {
    let env = TestEnv::new().await;
    let app = TestApp::spawn(env.settings.clone(), &[Role::Ingress]).await;
    let client = reqwest::Client::new();
    let resp = client
        .get(format!("{}/readyz", app.ops_url))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["kafka"], "ok");
    assert_eq!(body["cql"], "ok");
    assert_eq!(body["redis"], "ok");
    assert_eq!(
        client
            .get(format!("{}/healthz", app.base_url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_stats_need_the_admin_role_and_reset_zeroes_counters() {
    let env = TestEnv::new().await;
    // The admin routes are on every role's operator listener, checked by the user API's verifier (api.auth).
    let app = TestApp::spawn(env.settings.clone(), &[Role::Ingress]).await;
    let client = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", app.ops_url);
    let admin = jwt("ops", true);

    for (token, status, code) in [
        (None, 401, "unauthorized"),
        (Some("wrong".to_string()), 401, "unauthorized"),
        (Some(jwt("a-user", false)), 403, "forbidden"),
    ] {
        let mut req = client.get(url("/v1/admin/stats"));
        if let Some(t) = &token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), status, "{token:?}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(body["error"]["message"].as_str().is_some(), "{body}");
    }
    assert_eq!(
        post_signed(&client, &app.base_url, &unique_params(&env, 1))
            .await
            .status(),
        200
    );

    let stats: Value = client
        .get(url("/v1/admin/stats"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        stats["counters"]["webhooks_accepted"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    for part in ["cache", "database", "connections"] {
        let r = client
            .get(url(&format!("/v1/admin/stats/{part}")))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{part}");
    }
    let r = client
        .post(url("/v1/admin/stats/reset"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let stats: Value = client
        .get(url("/v1/admin/stats"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["counters"]["webhooks_accepted"], 0, "{stats}");
    app.stop().await;
}
