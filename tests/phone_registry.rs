//! The phone registry against real Kafka, Cassandra and Redis: link and verify through the
//! API and by texted code, unknown senders rejected, cache invalidation across instances
//! through `sms.phones.v1`, and a moved number listed only under its new owner. What the
//! registry decides for a sender (opt-out, rate limits, replies) is in `sender_policy.rs`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use smsflow::app::Role;
use smsflow::cli;
use smsflow::events::{decode, OutboundRequested, PhoneVerified};

fn code_in(body: &str) -> String {
    body.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .expect("a 6-digit code in the SMS")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn link_and_verify_through_the_api_and_by_texted_code_and_reject_unknown_senders() {
    let env = TestEnv::new().await;
    let app = TestApp::spawn(
        registered_senders_only(&env),
        &[Role::Ingress, Role::Api, Role::Projector],
    )
    .await;
    let http = reqwest::Client::new();
    let alice = jwt("alice", false);
    let bob = jwt("bob", false);
    let (a1, a2, stranger) = ("+15105550101", "+15105550102", "+15105550199");

    // Without a token, or with a bad one: 401 in the API's error shape.
    let r = http
        .get(format!("{}/v1/phones", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let r = http
        .get(format!("{}/v1/phones", app.base_url))
        .bearer_auth("eyJhbGciOiJIUzI1NiJ9.e30.forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // A stranger texting in is recorded as SenderRejected{unknown} and told so.
    let (status, reply, _) = send_text(&http, &app, 1, stranger, "hello there").await;
    assert_eq!(status, 200);
    assert!(
        reply.contains("<Message>") && reply.contains("not registered"),
        "{reply}"
    );

    // The API takes E.164 only, as its document says: a formatted number is refused.
    let r = http
        .post(format!("{}/v1/phones", app.base_url))
        .bearer_auth(&alice)
        .json(&serde_json::json!({"phone": "+1 (510) 555-0101"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_request");

    // Alice links a1 through the API: 202, and a code goes out through sms.outbound.v1.
    let r = http
        .post(format!("{}/v1/phones", app.base_url))
        .bearer_auth(&alice)
        .json(&serde_json::json!({"phone": a1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let outbound = read_full_records_to_end(&env, &env.topic("sms.outbound.v1")).await;
    let requests: Vec<OutboundRequested> = outbound
        .iter()
        .filter(|r| r.event_type.as_deref() == Some("OutboundRequested"))
        .map(|r| decode(&r.payload).unwrap())
        .collect();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].to, a1);
    assert_eq!(requests[0].purpose, "verification_code");
    let code = code_in(&requests[0].body);

    // Bob can neither take, verify nor delete Alice's number, and cannot tell it exists.
    let r = http
        .post(format!("{}/v1/phones", app.base_url))
        .bearer_auth(&bob)
        .json(&serde_json::json!({"phone": a1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let r = http
        .post(format!("{}/v1/phones/{a1}/verify", app.base_url))
        .bearer_auth(&bob)
        .json(&serde_json::json!({"code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = http
        .delete(format!("{}/v1/phones/{a1}", app.base_url))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Before verification, a1's messages are rejected as unverified.
    let (status, reply, _) = send_text(&http, &app, 2, a1, "note before verifying").await;
    assert_eq!(status, 200);
    assert!(reply.contains("6-digit code"), "{reply}");

    // A wrong code is refused with the attempts left; the right one verifies.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = http
        .post(format!("{}/v1/phones/{a1}/verify", app.base_url))
        .bearer_auth(&alice)
        .json(&serde_json::json!({"code": wrong}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "wrong_code");
    let r = http
        .post(format!("{}/v1/phones/{a1}/verify", app.base_url))
        .bearer_auth(&alice)
        .json(&serde_json::json!({"code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // a2 is linked through the API and verified by texting the code back.
    let r = http
        .post(format!("{}/v1/phones", app.base_url))
        .bearer_auth(&alice)
        .json(&serde_json::json!({"phone": a2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let outbound = read_full_records_to_end(&env, &env.topic("sms.outbound.v1")).await;
    let code2 = outbound
        .iter()
        .filter_map(|r| decode::<OutboundRequested>(&r.payload).ok())
        .find(|o| o.to == a2)
        .map(|o| code_in(&o.body))
        .expect("a code for a2");
    let (status, reply, code_sid) = send_text(&http, &app, 3, a2, &code2).await;
    assert_eq!(status, 200);
    assert!(reply.contains("Number verified"), "{reply}");
    let verified: Vec<PhoneVerified> = read_full_records_to_end(&env, &env.topic("sms.phones.v1"))
        .await
        .iter()
        .filter(|r| r.event_type.as_deref() == Some("PhoneVerified"))
        .map(|r| decode(&r.payload).unwrap())
        .collect();
    assert_eq!(verified.len(), 2);
    assert!(verified.iter().any(|v| v.phone == a2
        && v.method == "code_sms"
        && v.message_sid.as_deref() == Some(code_sid.as_str())));

    // Both numbers are listed for Alice once projected; Bob sees none.
    let listed = wait_for(
        "Alice's two verified numbers",
        Duration::from_secs(60),
        || {
            let (http, url, alice) = (http.clone(), app.base_url.clone(), alice.clone());
            async move {
                let body: serde_json::Value = http
                    .get(format!("{url}/v1/phones"))
                    .bearer_auth(&alice)
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                let phones = body["phones"].as_array()?.clone();
                (phones.len() == 2 && phones.iter().all(|p| p["verified"] == true))
                    .then_some(phones)
            }
        },
    )
    .await;
    assert_eq!(listed[0]["phone"], a1);
    let body: serde_json::Value = http
        .get(format!("{}/v1/phones", app.base_url))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["phones"].as_array().unwrap().len(), 0);

    // A verified sender's message carries the user id and is keyed by it.
    let (status, _, sid) = send_text(&http, &app, 4, a1, "met Dana at the expo").await;
    assert_eq!(status, 200);

    let (accepted, rejected) = message_events(&env).await;
    assert_eq!(
        accepted.len(),
        1,
        "only the verified sender's note is enriched"
    );
    assert_eq!(accepted[0].0, "alice");
    assert_eq!(accepted[0].1.message_sid, sid);
    assert_eq!(accepted[0].1.user_id.as_deref(), Some("alice"));
    let mut reasons: Vec<&str> = rejected.iter().map(|r| r.reason.as_str()).collect();
    reasons.sort();
    assert_eq!(reasons, ["unknown", "unverified"]);

    // Alice deletes a1: 204, and it leaves her list.
    let r = http
        .delete(format!("{}/v1/phones/{a1}", app.base_url))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    wait_for("a1 to leave Alice's list", Duration::from_secs(60), || {
        let (http, url, alice) = (http.clone(), app.base_url.clone(), alice.clone());
        async move {
            let body: serde_json::Value = http
                .get(format!("{url}/v1/phones"))
                .bearer_auth(&alice)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (body["phones"].as_array()?.len() == 1).then_some(())
        }
    })
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unlinking_reaches_another_instances_cache_within_a_second() {
    let env = TestEnv::new().await;
    let settings = registered_senders_only(&env);
    // Two ingress instances, as behind a load balancer; the change is made by a third party
    // (the operator's command line), so neither instance made it itself.
    let one = TestApp::spawn(settings.clone(), &[Role::Ingress]).await;
    let two = TestApp::spawn(settings.clone(), &[Role::Ingress]).await;
    let http = reqwest::Client::new();
    let (phone, _) = cli::phones::link(&patient(&settings), "+15105550121", "dave", true, false)
        .await
        .unwrap();
    // Both caches learn the link from the topic (nothing projects in this test).
    for (i, app) in [&one, &two].into_iter().enumerate() {
        wait_for(
            "the link to reach the instance",
            Duration::from_secs(30),
            || {
                let http = http.clone();
                let phone = phone.clone();
                async move {
                    let (_, reply, _) = send_text(&http, app, 10 + i, &phone, "hello").await;
                    (!reply.contains("<Message>")).then_some(())
                }
            },
        )
        .await;
    }
    cli::phones::unlink(&patient(&settings), &phone)
        .await
        .unwrap();
    let unlinked_at = Instant::now();
    let mut n = 100;
    wait_for(
        "instance two to treat the number as unknown",
        Duration::from_secs(1),
        || {
            n += 1;
            let (http, phone, two) = (http.clone(), phone.clone(), &two);
            async move {
                let (_, reply, _) = send_text(&http, two, n, &phone, "still here?").await;
                reply.contains("not registered").then_some(())
            }
        },
    )
    .await;
    eprintln!(
        "instance two saw the unlink after {:?}",
        unlinked_at.elapsed()
    );
    one.stop().await;
    two.stop().await;
}

/// A projector that lagged while a number moved from one user to another, and found the
/// unlink compacted away, still removes the number from the first user's list; a replay of
/// the old link does not bring it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_whose_unlink_was_compacted_away_leaves_the_number_only_with_its_new_owner() {
    use smsflow::events::{PhoneEvent, PhoneLinked, PhoneState};
    use smsflow::projector::{PhonesProjection, Position, Projection};

    let env = TestEnv::new().await;
    let cql = env.cql().await;
    let projection = PhonesProjection::new(cql.clone(), &env.settings.cql.keyspace)
        .await
        .unwrap();
    let phone = "+15105550171";
    let linked = |user: &str, at_ms: i64| {
        PhoneEvent::Linked(PhoneLinked {
            event_id: format!("ev-{user}"),
            occurred_at: at_ms * 1000,
            phone: phone.into(),
            state: PhoneState {
                user_id: Some(user.into()),
                verified: false,
                opted_out: false,
                linked_at: Some(at_ms * 1000),
                verified_at: None,
                opted_out_at: None,
                time_zone: None,
            },
            actor: "test".into(),
        })
    };
    let at = |offset: i64, log_time_ms: i64| Position {
        topic: env.topic(smsflow::topics::PHONES),
        partition: 0,
        offset,
        log_time_ms,
    };
    let owners = || {
        let cql = cql.clone();
        async move {
            let mut users = Vec::new();
            for user in ["ivy", "jon"] {
                let rows = cql
                    .query_unpaged(
                        "SELECT phone FROM phones_by_user WHERE user_id = ?",
                        (user,),
                    )
                    .await
                    .unwrap()
                    .into_rows_result()
                    .unwrap();
                if rows.rows_num() > 0 {
                    users.push(user);
                }
            }
            users
        }
    };

    // ivy's link (offset 0); her unlink (offset 1) was compacted away; jon's link (offset 2).
    projection
        .apply(&linked("ivy", 1_764_000_000_000), &at(0, 1_764_000_000_000))
        .await
        .unwrap();
    assert_eq!(owners().await, ["ivy"]);
    projection
        .apply(&linked("jon", 1_764_000_060_000), &at(2, 1_764_000_060_000))
        .await
        .unwrap();
    assert_eq!(owners().await, ["jon"], "the old owner's row is gone");

    // A replay applies ivy's old link again: it is older than what jon's link wrote.
    projection
        .apply(&linked("ivy", 1_764_000_000_000), &at(0, 1_764_000_000_000))
        .await
        .unwrap();
    projection
        .apply(&linked("jon", 1_764_000_060_000), &at(2, 1_764_000_060_000))
        .await
        .unwrap();
    assert_eq!(
        owners().await,
        ["jon"],
        "a replay ends where the first pass did"
    );
}
