//! With Kafka down the webhook answers 503 within the deadline (so Twilio retries), and once
//! Kafka is back it answers 200 again. This test stops the shared broker, so it lives alone in
//! its own test binary, and `make test` runs `*outage*` binaries alone, after the rest.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use smsflow::app::Role;

struct KafkaGuard;

impl KafkaGuard {
    fn stop() -> KafkaGuard {
        let ok = Command::new("bash")
            .arg(stack_script())
            .args(["down", "kafka"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "stack.sh down kafka");
        KafkaGuard
    }
}

impl Drop for KafkaGuard {
    // Whatever happens in the test, leave the broker running for the tests after it.
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(stack_script())
            .args(["up", "kafka"])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_down_gives_503_within_the_deadline_and_kafka_back_gives_200() {
    let env = TestEnv::new().await;
    let deadline = env.settings.kafka.produce_deadline;
    let mut settings = env.settings.clone();
    // If recovery fails, the output shows where librdkafka held the records and which metadata
    // each broker answered (twice, in CI, every webhook timed out for two minutes after the
    // restart: vendor/README.md).
    settings.kafka.client_debug = "eos,msg,topic,metadata".into();
    settings.telemetry.log_filter = "info,librdkafka=debug".into();
    let app = TestApp::spawn(settings, &[Role::Ingress]).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(14))
        .build()
        .unwrap();
    assert_eq!(
        post_signed(&client, &app.base_url, &sms_params(1))
            .await
            .status(),
        200
    );

    let guard = KafkaGuard::stop();
    for i in 2..5 {
        let started = Instant::now();
        let resp = post_signed(&client, &app.base_url, &sms_params(i)).await;
        let took = started.elapsed();
        assert_eq!(resp.status(), 503, "Kafka is down");
        assert!(resp.headers().contains_key("retry-after"));
        // The deadline plus scheduling slack on a loaded two-core machine; far below Twilio's 15 s.
        assert!(
            took < deadline + Duration::from_secs(2),
            "answered in {took:?}"
        );
    }
    drop(guard);

    let mut i = 100;
    wait_for(
        "webhooks to be accepted again after Kafka restarts",
        Duration::from_secs(120),
        || {
            i += 1;
            let client = client.clone();
            let base = app.base_url.clone();
            async move {
                (post_signed(&client, &base, &sms_params(i)).await.status() == 200).then_some(())
            }
        },
    )
    .await;
    app.stop().await;
}
