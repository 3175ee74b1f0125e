//! The review queue's tombstone cost is bounded: after 100,000 reviews on one user, the first
//! page of pending items reads without stepping over them.
//!
//! One user owns 100,050 items spread over 1,000 hours, 100 an hour: the design bounds a read
//! by one user-hour of tombstones, so this is the history it is built for. 100,000 of them
//! are reviewed; 40 of the newest hour and one in every hundredth hour stay pending, so the
//! first page must walk the whole history. The events go straight onto the topics the
//! enrich stage and the API write to, and the real projector applies them.
//!
//! Checks: the page holds exactly the 50 pending items, newest first; Cassandra logged no
//! tombstone warning for this keyspace. A control then reads a bucket of 1,100 deleted rows
//! directly, and the same log check must see its warning: the check can fail.
//! The read latency is printed (p50, p99), not asserted.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use serde_json::Value;
use smsflow::app::Role;
use smsflow::events::{ItemReviewed, ItemsProposed, ProposedItem};

const USER: &str = "heavy-reviewer";
const HOURS: i64 = 1_000;
const PER_HOUR: i64 = 100;
const PER_EVENT: i64 = 25;
const HOUR_US: i64 = 3_600_000_000;

/// Where Cassandra's log is (see deploy/local/stack.sh).
fn cassandra_log() -> std::path::PathBuf {
    let state = std::env::var("SMSSTACK_STATE").map_or_else(
        |_| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".local/state/smsflow-stack")
        },
        std::path::PathBuf::from,
    );
    state.join("logs/cassandra.log")
}

fn log_len() -> u64 {
    std::fs::metadata(cassandra_log()).map_or(0, |m| m.len())
}

/// Tombstone warnings Cassandra logged since byte `from` that mention `needle`.
fn tombstone_warnings(from: u64, needle: &str) -> Vec<String> {
    let text = std::fs::read(cassandra_log()).unwrap_or_default();
    // A rolled log starts over: read it all.
    let start = if (text.len() as u64) < from {
        0
    } else {
        from as usize
    };
    String::from_utf8_lossy(&text[start..])
        .lines()
        .filter(|l| l.contains("tombstone") && l.contains(needle))
        .map(str::to_owned)
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_100k_reviews_the_first_pending_page_skips_the_tombstones() {
    let env = TestEnv::new().await;
    let ks = env.settings.cql.keyspace.clone();
    let log_start = log_len();
    let app = TestApp::spawn(env.settings.clone(), &[Role::Projector, Role::Api]).await;
    let producer = env.fixture_producer();
    let enrichments = env.topic(smsflow::topics::ENRICHMENTS);
    let reviews = env.topic(smsflow::topics::REVIEWS);
    let newest_hour = (smsflow::clock::now_micros() / HOUR_US - 1) * HOUR_US;
    let first_hour = newest_hour - (HOURS - 1) * HOUR_US;

    // Proposals: PER_HOUR reviewed-to-be items per hour, plus the ones that stay pending.
    let mut proposals: Vec<ItemsProposed> = Vec::new();
    let mut to_review: Vec<(String, i64, String)> = Vec::new();
    let mut stay_pending: Vec<(i64, String)> = Vec::new();
    for h in 0..HOURS {
        let hour = first_hour + h * HOUR_US;
        for e in 0..PER_HOUR / PER_EVENT {
            let sid = format!("SMh{h}e{e}");
            let received_at = hour + e * 60_000_000;
            let items = (0..PER_EVENT)
                .map(|k| {
                    let id = format!("{sid}-{k}");
                    to_review.push((id.clone(), received_at, sid.clone()));
                    tag_item(id, &format!("t{k}"))
                })
                .collect();
            proposals.push(proposed(&sid, received_at, items));
        }
        let keep = if h == HOURS - 1 {
            40
        } else if h % 100 == 50 {
            1
        } else {
            0
        };
        if keep > 0 {
            let sid = format!("SMh{h}keep");
            let received_at = hour + 30 * 60_000_000;
            let items = (0..keep)
                .map(|k| {
                    let id = format!("{sid}-{k:02}");
                    stay_pending.push((received_at, id.clone()));
                    tag_item(id, &format!("t{k}"))
                })
                .collect();
            proposals.push(proposed(&sid, received_at, items));
        }
    }
    assert_eq!(to_review.len(), 100_000);
    assert_eq!(stay_pending.len(), 50);
    send_all(&producer, &enrichments, proposals).await;
    wait_for_zero_lag_within(
        &env,
        &format!("{}-items", env.settings.projector.group_id),
        &enrichments,
        Duration::from_secs(600),
    )
    .await;

    // Reviews, interleaved across hours as a bulk review would send them.
    let started = Instant::now();
    to_review.sort_by_key(|(id, _, _)| {
        let (h, rest) = id
            .trim_start_matches("SMh")
            .split_once('e')
            .unwrap_or(("0", ""));
        (rest.to_owned(), h.parse::<i64>().unwrap_or(0))
    });
    let reviewed: Vec<ItemReviewed> = to_review
        .iter()
        .enumerate()
        .map(|(n, (id, created, sid))| ItemReviewed {
            event_id: format!("rev-{n}"),
            item_id: id.clone(),
            user_id: USER.into(),
            decision: if n % 4 == 0 { "reject" } else { "approve" }.into(),
            reviewed_at: smsflow::clock::now_micros(),
            message_sid: sid.clone(),
            item_created_at: *created,
            kind: "tag".into(),
            value: "#t".into(),
            normalized: "t".into(),
        })
        .collect();
    send_all(&producer, &reviews, reviewed).await;
    let group = format!("{}-items", env.settings.projector.group_id);
    wait_for_zero_lag_within(&env, &group, &reviews, Duration::from_secs(900)).await;
    println!(
        "projected 100000 reviews in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The first page: exactly the 50 pending items, newest first.
    let http = reqwest::Client::new();
    let token = jwt(USER, false);
    let url = format!("{}/v1/items?status=pending&limit=50", app.base_url);
    stay_pending.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let expected: Vec<String> = stay_pending.iter().map(|(_, id)| id.clone()).collect();
    let mut latencies = Vec::with_capacity(200);
    for round in 0..200 {
        let t = Instant::now();
        let r = http.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let page: Value = r.json().await.unwrap();
        latencies.push(t.elapsed());
        if round == 0 {
            let ids: Vec<String> = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap_or_default().to_owned())
                .collect();
            assert_eq!(ids, expected, "the first page is the 50 pending items");
        }
    }
    latencies.sort();
    println!(
        "first pending page after 100000 reviews: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (200 reads)",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies[latencies.len() - 1].as_secs_f64() * 1e3,
    );
    // The decided lists hold the rest.
    let approved: Value = http
        .get(format!(
            "{}/v1/items?status=approved&limit=200",
            app.base_url
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(approved["items"].as_array().map(Vec::len), Some(200));
    let cql = env.cql().await;
    let drained: i64 = cql
        .query_unpaged(
            "SELECT bucket, added_version, drained_version FROM list_buckets WHERE user_id = ? AND status = 'pending'",
            (USER,),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .rows::<(i32, Option<i64>, Option<i64>)>()
        .unwrap()
        .filter_map(Result::ok)
        .filter(|(_, a, d)| a.is_some() && a == d)
        .count() as i64;
    println!("pending buckets drained: {drained} of {HOURS}");
    assert_eq!(drained, HOURS - 11, "every fully reviewed hour is drained");

    let warnings = tombstone_warnings(log_start, &ks);
    assert!(
        warnings.is_empty(),
        "Cassandra warned about tombstones: {warnings:?}"
    );

    // Control: 1,100 deleted rows in one partition, read directly, must warn.
    let control_from = log_len();
    let ids: BTreeSet<String> = (0..1_100).map(|i| format!("c{i:04}")).collect();
    futures::stream::iter(ids.iter())
        .map(|id| {
            let cql = cql.clone();
            async move {
                cql.query_unpaged(
                    "DELETE FROM items_by_user_status WHERE user_id = 'control' AND status = 'pending' AND bucket = 1 AND created_at = 0 AND item_id = ?",
                    (id.as_str(),),
                )
                .await
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    cql.query_unpaged(
        "SELECT item_id FROM items_by_user_status WHERE user_id = 'control' AND status = 'pending' AND bucket = 1 LIMIT 10",
        (),
    )
    .await
    .unwrap();
    wait_for(
        "Cassandra to log the control read's tombstone warning",
        Duration::from_secs(30),
        || {
            let seen = !tombstone_warnings(control_from, &ks).is_empty();
            async move { seen.then_some(()) }
        },
    )
    .await;
    app.stop().await;
}

fn proposed(sid: &str, received_at: i64, items: Vec<ProposedItem>) -> ItemsProposed {
    ItemsProposed {
        event_id: format!("{sid}-body"),
        message_sid: sid.into(),
        user_id: USER.into(),
        part: "body".into(),
        received_at,
        proposed_at: received_at + 1_000,
        items,
    }
}

async fn send_all<E: smsflow::events::Event + Send + Sync>(
    producer: &smsflow::kafka::EventProducer,
    topic: &str,
    events: Vec<E>,
) {
    let results: Vec<_> = futures::stream::iter(events.iter())
        .map(|e| producer.send(topic, USER, e))
        .buffer_unordered(512)
        .collect()
        .await;
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        panic!("producing test events failed: {e}");
    }
}
