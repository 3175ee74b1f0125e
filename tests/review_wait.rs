//! `POST /v1/items/{id}/review?wait=true` waits for the projector only while the request has
//! time left: a review that was stored is answered 202 (with `applied: false` when the
//! projector has not shown it yet), never 408 from the request timeout.

mod common;

use std::time::Duration;

use common::*;
use smsflow::app::Role;
use smsflow::events::{decode, ItemReviewed, ItemsProposed, ProposedItem};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stored_review_is_answered_202_before_the_request_timeout_when_the_projector_lags() {
    let env = TestEnv::new().await;
    // The projector builds the item, then stops: the review will never be applied.
    let projector = TestApp::spawn(env.settings.clone(), &[Role::Projector]).await;
    let received_at = smsflow::clock::now_micros() - 60_000_000;
    env.fixture_producer()
        .send(
            &env.topic(smsflow::topics::ENRICHMENTS),
            "ivy",
            &ItemsProposed {
                event_id: "proposal-1".into(),
                message_sid: "SMwait".into(),
                user_id: "ivy".into(),
                part: "body".into(),
                received_at,
                proposed_at: received_at + 1_000,
                items: vec![ProposedItem {
                    item_id: "wait-item".into(),
                    kind: "tag".into(),
                    value: "#lead".into(),
                    normalized: "lead".into(),
                    confidence: 1.0,
                    source: "body".into(),
                    span_start: 0,
                    span_end: 5,
                }],
            },
        )
        .await
        .unwrap();
    let cql = env.cql().await;
    wait_for("the item to be projected", Duration::from_secs(60), || {
        let cql = cql.clone();
        async move {
            let rows = cql
                .query_unpaged("SELECT status FROM items WHERE item_id = 'wait-item'", ())
                .await
                .ok()?
                .into_rows_result()
                .ok()?;
            let (status,): (Option<String>,) = rows.maybe_first_row().ok()??;
            (status.as_deref() == Some("pending")).then_some(())
        }
    })
    .await;
    projector.stop().await;

    // A request timeout shorter than the 10 s the wait allows itself.
    let mut settings = env.settings.clone();
    settings.http.request_timeout = Duration::from_secs(6);
    let api = TestApp::spawn(settings, &[Role::Api]).await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!(
            "{}/v1/items/wait-item/review?wait=true",
            api.base_url
        ))
        .bearer_auth(jwt("ivy", false))
        .json(&serde_json::json!({"decision": "approve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "a stored review is never answered 408");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["applied"], false);
    let event_id = body["event_id"].as_str().unwrap().to_owned();
    api.stop().await;

    // And it was stored.
    let reviews: Vec<ItemReviewed> =
        read_full_records_to_end(&env, &env.topic(smsflow::topics::REVIEWS))
            .await
            .iter()
            .map(|r| decode(&r.payload).unwrap())
            .collect();
    assert_eq!(reviews.len(), 1);
    assert_eq!(reviews[0].event_id, event_id);
    assert_eq!(reviews[0].decision, "approve");
}
