//! The webhook's hot path pays one Redis round trip before its answer: the duplicate claim and
//! the rate limits are one script, and the `done` mark after the append is one more command
//! (off the answer path). Counted on Redis's side with MONITOR, filtered by this test's
//! unique key prefix, so the other tests sharing the Redis do not count.

mod common;

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;

use common::*;
use smsflow::app::Role;
use smsflow::secrets::ExposeSecret;

/// Top-level commands Redis ran (not those a script ran inside itself), as MONITOR lines.
async fn monitor(url: &str) -> mpsc::UnboundedReceiver<String> {
    let client = redis::Client::open(url).expect("redis url");
    let monitor = client.get_async_monitor().await.expect("MONITOR");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = monitor.into_on_message::<String>();
        while let Some(line) = lines.next().await {
            if line.contains(" lua]") {
                continue;
            }
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Lines mentioning `needle`, read until `done` says the expected last one arrived.
async fn commands_until(
    rx: &mut mpsc::UnboundedReceiver<String>,
    needle: &str,
    done: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let line = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no end of the commands for {needle}; saw {seen:#?}"))
            .expect("monitor open");
        if line.contains(needle) {
            let last = done(&line);
            seen.push(line);
            if last {
                return seen;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_webhook_costs_one_redis_round_trip_before_its_answer() {
    let env = TestEnv::new().await;
    let prefix = env.settings.kafka.topic_prefix.clone();
    let app = TestApp::spawn(env.settings.clone(), &[Role::Ingress]).await;
    let client = reqwest::Client::new();
    let mut rx = monitor(env.settings.redis.url.expose_secret()).await;

    // The first webhook may load the script (NOSCRIPT, then SCRIPT LOAD): not the hot path.
    let warm = sms_params(1);
    assert_eq!(
        post_signed_retrying_503(&client, &app.base_url, &warm).await,
        200
    );

    let params = sms_params(2);
    let sid = as_map(&params)["MessageSid"].clone();
    let from = as_map(&params)["From"].clone();
    let sid_key = format!("{prefix}smsflow:dedupe:sid:{sid}");
    assert_eq!(
        post_signed_retrying_503(&client, &app.base_url, &params).await,
        200
    );
    // Everything this message made Redis do, up to its `done` mark.
    let commands = commands_until(&mut rx, &prefix, |l| {
        l.contains(&sid_key) && l.contains("\"done\"")
    })
    .await;
    let ours: Vec<&String> = commands
        .iter()
        .filter(|l| l.contains(&sid) || l.contains(&from))
        .collect();
    assert_eq!(
        ours.len(),
        2,
        "one admission script and one `done` mark, nothing else: {ours:#?}"
    );
    let script = ours[0];
    assert!(
        script.contains("\"EVALSHA\"") || script.contains("\"EVAL\""),
        "{script}"
    );
    assert!(
        script.contains(&sid_key)
            && script.contains(&format!("{prefix}smsflow:rate:sender:{from}")),
        "the claim and the sender's budget are one script: {script}"
    );
    assert!(ours[1].contains("\"SET\"") && ours[1].contains(&sid_key));

    // A retry right after the answer is a duplicate (200), whether or not the mark landed.
    assert_eq!(
        post_signed(&client, &app.base_url, &params).await.status(),
        200
    );
    app.stop().await;
}
