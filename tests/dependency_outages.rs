//! Telemetry and readiness under outages: with Jaeger down the pipeline goes on and lost spans
//! are counted; with Cassandra down `/readyz` answers 503 and names CQL. These tests stop
//! shared services, so they live in their own test binary and run one at a time.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use smsflow::app::Role;

/// Stops a stack service and brings it back (waiting until it answers) when dropped.
struct Outage(&'static str);

impl Outage {
    fn start(service: &'static str) -> Outage {
        let ok = Command::new("bash")
            .arg(stack_script())
            .args(["down", service])
            .status()
            .unwrap()
            .success();
        assert!(ok, "stack.sh down {service}");
        Outage(service)
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(stack_script())
            .args(["up", self.0])
            .status();
    }
}

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jaeger_down_webhooks_still_answer_200_rows_are_projected_and_lost_spans_are_counted() {
    let _serial = SERIAL.lock().await;
    let env = TestEnv::new().await;
    let app = TestApp::spawn(env.settings.clone(), &[Role::Ingress, Role::Projector]).await;
    let client = reqwest::Client::new();
    let outage = Outage::start("jaeger");

    for i in 0..20 {
        assert_eq!(
            post_signed(&client, &app.base_url, &sms_params(i))
                .await
                .status(),
            200
        );
    }
    let cql = env.cql().await;
    wait_for(
        "20 rows projected with Jaeger down",
        Duration::from_secs(60),
        || async { (count_rows(&cql, "messages_by_user").await == 20).then_some(()) },
    )
    .await;
    wait_for(
        "dropped spans to be counted",
        Duration::from_secs(60),
        || {
            let client = client.clone();
            let url = format!("{}/metrics", app.ops_url);
            async move {
                let m = client.get(url).send().await.ok()?.text().await.ok()?;
                (metric_value(&m, "smsflow_trace_spans_dropped_total") > 0.0).then_some(())
            }
        },
    )
    .await;
    drop(outage);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_open_by_default_and_closed_when_configured() {
    let _serial = SERIAL.lock().await;
    let env = TestEnv::new().await;
    let open = TestApp::spawn(env.settings.clone(), &[Role::Ingress, Role::Projector]).await;
    let mut closed_settings = env.settings.clone();
    closed_settings.ingress.redis_failure =
        smsflow::ingress::dedupe::RedisFailurePolicy::FailClosed;
    let closed = TestApp::spawn(closed_settings, &[Role::Ingress]).await;
    let client = reqwest::Client::new();
    let outage = Outage::start("redis");

    assert_eq!(
        post_signed(&client, &open.base_url, &sms_params(1))
            .await
            .status(),
        200,
        "fail_open accepts"
    );
    // Twilio retries the same message while dedupe cannot see it: both are appended...
    assert_eq!(
        post_signed(&client, &open.base_url, &sms_params(1))
            .await
            .status(),
        200,
        "fail_open accepts the retry too"
    );
    assert_eq!(
        post_signed(&client, &closed.base_url, &sms_params(2))
            .await
            .status(),
        503,
        "fail_closed refuses"
    );
    let m = client
        .get(format!("{}/metrics", open.ops_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metric_value(&m, "smsflow_redis_unavailable_total") >= 1.0,
        "{m}"
    );
    drop(outage);
    // ...and projected once: one timeline row for the one MessageSid.
    let topic = env.topic("sms.messages.v1");
    let appended = read_committed_to_end(&env, &topic).await;
    assert_eq!(appended.len(), 2, "the duplicate got through dedupe");
    let group = env
        .settings
        .projector
        .group_of(smsflow::projector::MESSAGES_PROJECTION);
    wait_for_zero_lag(&env, &group, &topic).await;
    let cql = env.cql().await;
    assert_eq!(count_rows(&cql, "message_status").await, 1);
    assert_eq!(count_rows(&cql, "messages_by_user").await, 1);
    open.stop().await;
    closed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cassandra_down_makes_readyz_503_and_name_cql() {
    let _serial = SERIAL.lock().await;
    let env = TestEnv::new().await;
    let app = TestApp::spawn(env.settings.clone(), &[Role::Ingress]).await;
    let client = reqwest::Client::new();
    let outage = Outage::start("cassandra");

    let body = wait_for("readyz to report CQL down", Duration::from_secs(60), || {
        let client = client.clone();
        let url = format!("{}/readyz", app.ops_url);
        async move {
            let r = client.get(url).send().await.ok()?;
            (r.status() == 503).then_some(())?;
            r.json::<serde_json::Value>().await.ok()
        }
    })
    .await;
    assert_eq!(body["failed"], serde_json::json!(["cql"]), "{body}");
    assert_eq!(body["kafka"], "ok");
    assert_eq!(body["redis"], "ok");
    // Ingress does not need CQL: webhooks are still accepted.
    assert_eq!(
        post_signed(&client, &app.base_url, &sms_params(1))
            .await
            .status(),
        200
    );
    drop(outage);
    app.stop().await;
}
