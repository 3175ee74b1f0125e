//! Enrichment end to end against the real stack: a signed SMS from a verified sender becomes
//! pending items visible through `GET /v1/items`; a review moves one to approved (read your
//! writes with `?wait=true`); another user sees and reviews nothing; and replaying the items
//! projection from offset 0 into emptied tables gives the identical API output.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;
use smsflow::app::Role;
use smsflow::ingress::SenderPolicy;

async fn get(http: &reqwest::Client, url: String, token: &str) -> (u16, Value) {
    let r = http.get(url).bearer_auth(token).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_texted_note_becomes_pending_items_a_review_moves_one_and_a_replay_rebuilds_the_same_view(
) {
    let env = TestEnv::new().await;
    let mut settings = env.settings.clone();
    settings.ingress.sender_policy = SenderPolicy::Registered;
    let (phone, _) = smsflow::cli::phones::link(
        &patient(&settings),
        "+15105550177",
        "dana-user",
        true,
        false,
    )
    .await
    .unwrap();
    let app = TestApp::spawn(
        settings.clone(),
        &[Role::Ingress, Role::Enrich, Role::Projector, Role::Api],
    )
    .await;
    let http = reqwest::Client::new();
    let me = jwt("dana-user", false);
    let other = jwt("someone-else", false);
    let cql = env.cql().await;
    wait_phone_verified(&env, &phone).await;

    let body = "met Dana Reyes at the Oakland expo, her cell is 510-555-0142, follow up next Tuesday 3pm #lead";
    let params = sms_with(1, &[("From", &phone), ("Body", body)]);
    let sid = as_map(&params)["MessageSid"].clone();
    assert_eq!(
        post_signed_retrying_503(&http, &app.base_url, &params).await,
        200
    );

    // The pending items appear through the API.
    let pending = wait_for("the pending items", Duration::from_secs(60), || {
        let (http, url, me) = (http.clone(), app.base_url.clone(), me.clone());
        async move {
            let (s, v) = get(&http, format!("{url}/v1/items?status=pending"), &me).await;
            let items = v["items"].as_array()?.clone();
            (s == 200 && items.len() >= 4).then_some(items)
        }
    })
    .await;
    let find = |kind: &str| {
        pending
            .iter()
            .find(|i| i["kind"] == kind)
            .unwrap_or_else(|| panic!("a {kind} item in {pending:?}"))
            .clone()
    };
    assert_eq!(find("phone")["normalized"], "+15105550142");
    assert_eq!(find("tag")["normalized"], "lead");
    assert_eq!(find("contact")["normalized"], "Dana Reyes");
    assert!(find("datetime")["normalized"]
        .as_str()
        .unwrap()
        .contains("T15:00:00"));
    assert!(pending.iter().all(|i| i["message_sid"] == sid.as_str()));

    // The message's progress: one part, done, with the same items.
    let (s, msg) = wait_for("the message to be done", Duration::from_secs(60), || {
        let (http, url, me, sid) = (http.clone(), app.base_url.clone(), me.clone(), sid.clone());
        async move {
            let (s, v) = get(&http, format!("{url}/v1/messages/{sid}"), &me).await;
            (v["done"] == true).then_some((s, v))
        }
    })
    .await;
    assert_eq!(s, 200);
    assert_eq!(msg["parts_expected"], 1);
    assert_eq!(msg["items"].as_array().unwrap().len(), pending.len());

    // Someone else: 404 for the item, the message and a review; an empty list.
    let phone_item = find("phone");
    let id = phone_item["id"].as_str().unwrap().to_owned();
    assert_eq!(
        get(&http, format!("{}/v1/items/{id}", app.base_url), &other)
            .await
            .0,
        404
    );
    assert_eq!(
        get(&http, format!("{}/v1/messages/{sid}", app.base_url), &other)
            .await
            .0,
        404
    );
    let r = http
        .post(format!("{}/v1/items/{id}/review", app.base_url))
        .bearer_auth(&other)
        .json(&serde_json::json!({"decision": "approve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let (_, v) = get(&http, format!("{}/v1/items", app.base_url), &other).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 0);
    // No token at all: 401.
    let r = http
        .get(format!("{}/v1/items", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Approve the phone number and wait for the projector: it leaves pending for approved.
    let r = http
        .post(format!("{}/v1/items/{id}/review?wait=true", app.base_url))
        .bearer_auth(&me)
        .json(&serde_json::json!({"decision": "approve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["applied"], true, "{v}");
    assert!(v["event_id"].as_str().is_some());
    let (_, v) = get(
        &http,
        format!("{}/v1/items?status=pending", app.base_url),
        &me,
    )
    .await;
    let still: Vec<&Value> = v["items"].as_array().unwrap().iter().collect();
    assert_eq!(still.len(), pending.len() - 1);
    assert!(still.iter().all(|i| i["id"] != id.as_str()));
    let (_, v) = get(
        &http,
        format!("{}/v1/items?status=approved", app.base_url),
        &me,
    )
    .await;
    let approved = v["items"].as_array().unwrap();
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0]["id"], id.as_str());

    // Paging: one item per page walks the same pending list.
    let mut paged = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut url = format!("{}/v1/items?status=pending&limit=1", app.base_url);
        if let Some(t) = &token {
            url.push_str(&format!("&page_token={t}"));
        }
        let (_, v) = get(&http, url, &me).await;
        paged.extend(v["items"].as_array().unwrap().iter().cloned());
        match v["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
        assert!(paged.len() <= still.len(), "paging must end");
    }
    let ids = |l: &[Value]| l.iter().map(|i| i["id"].clone()).collect::<Vec<_>>();
    assert_eq!(
        ids(&paged),
        ids(&still.iter().map(|v| (*v).clone()).collect::<Vec<_>>())
    );

    // Replay: empty the item tables, re-apply from offset 0, compare the API output.
    let snapshot = |http: reqwest::Client, url: String, me: String, sid: String| async move {
        let mut out = Vec::new();
        for status in ["pending", "approved", "rejected"] {
            out.push(
                get(&http, format!("{url}/v1/items?status={status}"), &me)
                    .await
                    .1,
            );
        }
        out.push(get(&http, format!("{url}/v1/messages/{sid}"), &me).await.1);
        out.push(
            get(&http, format!("{url}/v1/items/{}", "missing"), &me)
                .await
                .1,
        );
        out
    };
    let before = snapshot(http.clone(), app.base_url.clone(), me.clone(), sid.clone()).await;
    for table in [
        "items",
        "items_by_user_status",
        "list_buckets",
        "items_by_message",
        "message_parts",
    ] {
        cql.query_unpaged(format!("TRUNCATE {table}"), ())
            .await
            .unwrap();
    }
    let (_, emptied) = get(
        &http,
        format!("{}/v1/items?status=pending", app.base_url),
        &me,
    )
    .await;
    assert_eq!(
        emptied["items"].as_array().unwrap().len(),
        0,
        "the tables were emptied"
    );
    let n = smsflow::cli::replay(&settings, "items").await.unwrap();
    assert!(n >= 3, "re-applied {n} events");
    let after = snapshot(http.clone(), app.base_url.clone(), me.clone(), sid.clone()).await;
    assert_eq!(before, after);
    app.stop().await;
}

/// Dates are read in the time zone the number's owner gave (`phones link --time-zone`), and
/// in `enrich.default_time_zone` (America/Los_Angeles) for a number without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dates_are_read_in_the_time_zone_of_the_sending_number() {
    use chrono::{DateTime, Timelike};
    let env = TestEnv::new().await;
    let mut settings = env.settings.clone();
    settings.ingress.sender_policy = SenderPolicy::Registered;
    let (east, state) = smsflow::cli::phones::link_in_zone(
        &patient(&settings),
        "+12125550123",
        "tz-user",
        true,
        false,
        Some("America/New_York"),
    )
    .await
    .unwrap();
    assert_eq!(state.time_zone.as_deref(), Some("America/New_York"));
    let (west, _) =
        smsflow::cli::phones::link(&patient(&settings), "+15105550124", "tz-user", true, false)
            .await
            .unwrap();
    let app = TestApp::spawn(
        settings.clone(),
        &[Role::Ingress, Role::Enrich, Role::Projector, Role::Api],
    )
    .await;
    let http = reqwest::Client::new();
    let me = jwt("tz-user", false);
    wait_phone_verified(&env, &east).await;
    wait_phone_verified(&env, &west).await;

    let mut sids = Vec::new();
    for (n, from) in [(1, &east), (2, &west)] {
        let params = sms_with(n, &[("From", from), ("Body", "call Sam tomorrow at 9am")]);
        sids.push(as_map(&params)["MessageSid"].clone());
        assert_eq!(
            post_signed_retrying_503(&http, &app.base_url, &params).await,
            200
        );
    }
    let when = |sid: String| {
        let (http, url, me) = (http.clone(), app.base_url.clone(), me.clone());
        async move {
            wait_for("the datetime item", Duration::from_secs(60), || {
                let (http, url, me, sid) = (http.clone(), url.clone(), me.clone(), sid.clone());
                async move {
                    let (_, v) = get(&http, format!("{url}/v1/messages/{sid}"), &me).await;
                    let item = v["items"]
                        .as_array()?
                        .iter()
                        .find(|i| i["kind"] == "datetime")?
                        .clone();
                    DateTime::parse_from_rfc3339(item["normalized"].as_str()?).ok()
                }
            })
            .await
        }
    };
    let east_at = when(sids[0].clone()).await;
    let west_at = when(sids[1].clone()).await;
    assert_eq!(
        east_at.with_timezone(&chrono_tz::America::New_York).hour(),
        9,
        "{east_at} is 9am in New York"
    );
    assert_eq!(
        west_at
            .with_timezone(&chrono_tz::America::Los_Angeles)
            .hour(),
        9,
        "{west_at} is 9am in Los Angeles"
    );
    assert_ne!(east_at, west_at);

    // The owner sees the zone in the list of numbers.
    let (s, phones) = get(&http, format!("{}/v1/phones", app.base_url), &me).await;
    assert_eq!(s, 200);
    let zone_of = |p: &str| {
        phones["phones"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["phone"] == p))
            .map(|x| x["time_zone"].clone())
    };
    assert_eq!(zone_of(&east), Some(Value::from("America/New_York")));
    assert_eq!(zone_of(&west), Some(Value::Null));
    app.stop().await;
}

/// A proposal delivered again after its item was reviewed (an upstream duplicate, a
/// re-enrichment) does not put the item back into pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_proposal_delivered_again_after_the_review_does_not_reopen_the_item() {
    use smsflow::events::{ItemReviewed, ItemsProposed};
    let env = TestEnv::new().await;
    let app = TestApp::spawn(env.settings.clone(), &[Role::Projector, Role::Api]).await;
    let producer = env.fixture_producer();
    let http = reqwest::Client::new();
    let me = jwt("dup-user", false);
    let received_at = smsflow::clock::now_micros() - 60_000_000;
    let proposal = |event_id: &str| ItemsProposed {
        event_id: event_id.into(),
        message_sid: "SMdup".into(),
        user_id: "dup-user".into(),
        part: "body".into(),
        received_at,
        proposed_at: received_at + 1_000,
        items: vec![tag_item("dup-item", "lead")],
    };
    let enrichments = env.topic(smsflow::topics::ENRICHMENTS);
    producer
        .send(&enrichments, "dup-user", &proposal("first"))
        .await
        .unwrap();
    let list = |status: &'static str| {
        let (http, url, me) = (http.clone(), app.base_url.clone(), me.clone());
        async move {
            let (_, v) = get(&http, format!("{url}/v1/items?status={status}"), &me).await;
            v["items"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|i| i["id"].as_str())
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        }
    };
    wait_for("the item to be pending", Duration::from_secs(60), || {
        let l = list("pending");
        async move { (l.await == ["dup-item"]).then_some(()) }
    })
    .await;
    let review = ItemReviewed {
        event_id: "rev-1".into(),
        item_id: "dup-item".into(),
        user_id: "dup-user".into(),
        decision: "approve".into(),
        reviewed_at: smsflow::clock::now_micros(),
        message_sid: "SMdup".into(),
        item_created_at: received_at,
        kind: "tag".into(),
        value: "#lead".into(),
        normalized: "lead".into(),
    };
    producer
        .send(&env.topic(smsflow::topics::REVIEWS), "dup-user", &review)
        .await
        .unwrap();
    wait_for("the item to be approved", Duration::from_secs(60), || {
        let l = list("approved");
        async move { (l.await == ["dup-item"]).then_some(()) }
    })
    .await;
    // The same proposal again, as a new event, appended after the review.
    producer
        .send(&enrichments, "dup-user", &proposal("second"))
        .await
        .unwrap();
    wait_for_zero_lag(
        &env,
        &format!("{}-items", env.settings.projector.group_id),
        &enrichments,
    )
    .await;
    assert_eq!(list("pending").await, Vec::<String>::new());
    assert_eq!(list("approved").await, ["dup-item"]);
    let (_, item) = get(&http, format!("{}/v1/items/dup-item", app.base_url), &me).await;
    assert_eq!(item["status"], "approved");
    app.stop().await;
}
