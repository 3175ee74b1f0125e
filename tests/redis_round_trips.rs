//! The webhook's hot path pays one Redis round trip before its answer: the duplicate claim and
//! the rate limits are one script, and the `done` mark after the append is one more command
//! (off the answer path). Counted on Redis's side with MONITOR: the commands naming this
//! test's message, and everything else sent over the connections that carried them (a pooled
//! connection's checkout `PING` would be a round trip too), so the other tests sharing the
//! Redis do not count.

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

/// Every line, read until `done` says the expected last one arrived.
async fn commands_until(
    rx: &mut mpsc::UnboundedReceiver<String>,
    done: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let line = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("the expected command never came; saw {seen:#?}"))
            .expect("monitor open");
        let last = done(&line);
        seen.push(line);
        if last {
            return seen;
        }
    }
}

/// The client address of a MONITOR line: `1700000000.123456 [0 127.0.0.1:50000] "GET" "k"`.
fn client_of(line: &str) -> &str {
    line.split_once('[')
        .and_then(|(_, rest)| rest.split_once(']'))
        .and_then(|(inside, _)| inside.split_once(' '))
        .map_or("", |(_, addr)| addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_webhook_costs_one_redis_round_trip_before_its_answer() {
    let env = TestEnv::new().await;
    let prefix = env.settings.kafka.topic_prefix.clone();
    let app = TestApp::spawn(env.settings.clone(), &[Role::Ingress]).await;
    let client = reqwest::Client::new();
    let mut rx = monitor(env.settings.redis.url.expose_secret()).await;

    // The first webhook may load the script (NOSCRIPT, then SCRIPT LOAD) and connect: not the
    // hot path. What follows its `done` mark is the second webhook's.
    let warm = sms_params(1);
    assert_eq!(
        post_signed_retrying_503(&client, &app.base_url, &warm).await,
        200
    );
    let warm_key = format!("{prefix}smsflow:dedupe:sid:{}", as_map(&warm)["MessageSid"]);
    commands_until(&mut rx, |l| l.contains(&warm_key) && l.contains("\"done\"")).await;

    let params = sms_params(2);
    let sid = as_map(&params)["MessageSid"].clone();
    let from = as_map(&params)["From"].clone();
    let sid_key = format!("{prefix}smsflow:dedupe:sid:{sid}");
    assert_eq!(
        post_signed_retrying_503(&client, &app.base_url, &params).await,
        200
    );
    // Everything this message made Redis do, up to its `done` mark.
    let commands =
        commands_until(&mut rx, |l| l.contains(&sid_key) && l.contains("\"done\"")).await;
    let connections: Vec<&str> = commands
        .iter()
        .filter(|l| l.contains(&sid) || l.contains(&from))
        .map(|l| client_of(l))
        .collect();
    let ours: Vec<&String> = commands
        .iter()
        .filter(|l| connections.contains(&client_of(l)))
        .collect();
    assert_eq!(
        ours.len(),
        2,
        "one admission script and one `done` mark, nothing else on their connections: {ours:#?}"
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

/// On shutdown the `done` marks still running in the background land before the process
/// exits: while Redis holds writes, `drain` waits, and the mark is there when it returns.
/// After the drain a confirm is awaited by its caller (the request holds its answer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_shutdown_the_done_marks_in_the_background_land_before_exit() {
    let env = TestEnv::new().await;
    let url = env.settings.redis.url.expose_secret().to_owned();
    let link = smsflow::redis_link::RedisLink::new(&env.settings.redis.url, Duration::from_secs(5))
        .expect("redis url");
    let dedupe = smsflow::ingress::dedupe::Deduper::new(
        link,
        &env.settings.kafka.topic_prefix,
        Duration::from_secs(30),
        Duration::from_secs(60),
    );
    let mut admin = redis::Client::open(url.as_str())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let reader = admin.clone();
    let get = move |key: String| {
        let mut conn = reader.clone();
        async move {
            redis::cmd("GET")
                .arg(key)
                .query_async::<Option<String>>(&mut conn)
                .await
                .expect("GET")
        }
    };

    // Writes wait for 300 ms (reads do not): the mark below is still on its way.
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(300)
        .arg("WRITE")
        .query_async::<()>(&mut admin)
        .await
        .expect("CLIENT PAUSE");
    let keys = dedupe.keys(&unique_sid(1), None);
    dedupe.confirm(keys.clone()).await;
    assert!(
        dedupe.is_confirming(&keys),
        "the confirm runs in the background"
    );
    assert_eq!(
        get(keys[0].clone()).await,
        None,
        "not written while writes wait"
    );

    assert!(
        dedupe.drain(Duration::from_secs(10)).await,
        "drained within the deadline"
    );
    assert_eq!(get(keys[0].clone()).await.as_deref(), Some("done"));

    let later = dedupe.keys(&unique_sid(2), None);
    dedupe.confirm(later.clone()).await;
    assert!(
        !dedupe.is_confirming(&later),
        "after the drain a confirm is not left behind"
    );
    assert_eq!(get(later[0].clone()).await.as_deref(), Some("done"));
}
