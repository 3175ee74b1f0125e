//! What ingress decides for a sender, against real Kafka, Cassandra and Redis: opt-out
//! keywords, the per-sender and per-user rate limits, `sender_policy = any`, and one paid
//! reply to an auto-responder.

mod common;

use std::time::{Duration, Instant};

use common::*;
use smsflow::app::Role;
use smsflow::cli;
use smsflow::events::{decode, OptOutChanged};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stop_blocks_enrichment_until_start_and_is_recorded_as_opt_out_changed() {
    let env = TestEnv::new().await;
    let settings = registered_senders_only(&env);
    let (phone, _) = cli::phones::link(&patient(&settings), "+15105550111", "carol", true, false)
        .await
        .unwrap();
    let app = TestApp::spawn(settings, &[Role::Ingress, Role::Projector]).await;
    wait_phone_verified(&env, &phone).await;
    let http = reqwest::Client::new();

    let (_, _, before) = send_text(&http, &app, 1, &phone, "first note").await;
    let (status, reply, stop_sid) = send_text(&http, &app, 2, &phone, "Stop").await;
    assert_eq!(status, 200);
    assert!(reply.contains("unsubscribed"), "{reply}");
    let (status, reply, _) = send_text(&http, &app, 3, &phone, "note while opted out").await;
    assert_eq!(status, 200);
    assert!(
        !reply.contains("<Message>"),
        "never message an opted-out number: {reply}"
    );
    let (_, reply, _) = send_text(&http, &app, 4, &phone, "START").await;
    assert!(reply.contains("subscribed again"), "{reply}");
    let (_, _, after) = send_text(&http, &app, 5, &phone, "back again").await;
    // Twilio's Advanced Opt-Out: it replied itself, so we record and stay quiet.
    let mut params = sms_with(6, &[("From", &phone), ("Body", "arret")]);
    params.push(("OptOutType".into(), "STOP".into()));
    let resp = post_signed(&http, &app.base_url, &params).await;
    assert_eq!(resp.status(), 200);
    assert!(!resp.text().await.unwrap().contains("<Message>"));

    let (accepted, rejected) = message_events(&env).await;
    let sids: Vec<&str> = accepted
        .iter()
        .map(|(_, m)| m.message_sid.as_str())
        .collect();
    assert_eq!(sids, [before.as_str(), after.as_str()]);
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].reason, "opted_out");

    let changes: Vec<OptOutChanged> = read_full_records_to_end(&env, &env.topic("sms.phones.v1"))
        .await
        .iter()
        .filter(|r| r.event_type.as_deref() == Some("OptOutChanged"))
        .map(|r| decode(&r.payload).unwrap())
        .collect();
    let flags: Vec<(bool, Option<&str>)> = changes
        .iter()
        .map(|c| (c.opted_out, c.opt_out_type.as_deref()))
        .collect();
    assert_eq!(flags, [(true, None), (false, None), (true, Some("STOP"))]);
    assert_eq!(changes[0].message_sid.as_deref(), Some(stop_sid.as_str()));
    assert_eq!(
        changes[0].state.user_id.as_deref(),
        Some("carol"),
        "the owner stays"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_over_the_sender_limit_and_a_user_over_the_user_limit_get_200_and_are_recorded() {
    let env = TestEnv::new().await;
    let mut settings = registered_senders_only(&env);
    settings.ingress.rate_limit.sender_limit = 30;
    settings.ingress.rate_limit.sender_period = Duration::from_secs(60);
    settings.ingress.rate_limit.sender_burst = 30;
    settings.ingress.rate_limit.user_limit = 1000;
    let slow_down = "Too many messages. Please slow down.";
    settings.ingress.replies.rate_limited = slow_down.into();
    let (burst_phone, _) =
        cli::phones::link(&patient(&settings), "+15105550131", "erin", true, false)
            .await
            .unwrap();
    let app = TestApp::spawn(settings.clone(), &[Role::Ingress, Role::Projector]).await;
    wait_phone_verified(&env, &burst_phone).await;
    let http = reqwest::Client::new();

    let started = Instant::now();
    let answers = futures::future::join_all(
        (0..100).map(|i| send_text(&http, &app, 1000 + i, &burst_phone, "burst")),
    )
    .await;
    let elapsed = started.elapsed();
    assert!(
        answers.iter().all(|(s, _, _)| *s == 200),
        "every one answered 200"
    );
    app.stop().await;

    let (accepted, rejected) = message_events(&env).await;
    // GCRA refills one message per 2 s (30/min): a burst slower than that earns more.
    let refilled = (elapsed.as_millis() / 2000) as usize;
    eprintln!(
        "burst of 100 took {elapsed:?}: {} accepted, {} rejected",
        accepted.len(),
        rejected.len()
    );
    assert!(
        (30..=30 + refilled).contains(&accepted.len()),
        "{} accepted",
        accepted.len()
    );
    assert_eq!(accepted.len() + rejected.len(), 100);
    assert!(rejected.iter().all(|r| r.reason == "rate_limited"));
    // The reply goes out once per sender per window (the 60 s period), to a rejected message.
    let replied: Vec<&String> = answers
        .iter()
        .filter(|(_, body, _)| body.contains(&format!("<Message>{slow_down}</Message>")))
        .map(|(_, _, sid)| sid)
        .collect();
    assert_eq!(
        replied.len(),
        1,
        "exactly one of {} rejections carries the reply",
        rejected.len()
    );
    assert!(rejected.iter().any(|r| &r.message_sid == replied[0]));
    assert!(answers
        .iter()
        .filter(|(_, _, sid)| accepted.iter().any(|(_, m)| &m.message_sid == sid))
        .all(|(_, body, _)| !body.contains("<Message>")));

    // Per user: two numbers of one user share the user's budget.
    let env = TestEnv::new().await;
    let mut settings = registered_senders_only(&env);
    settings.ingress.rate_limit.user_limit = 5;
    settings.ingress.rate_limit.user_period = Duration::from_secs(3600);
    settings.ingress.rate_limit.user_burst = 5;
    let (p1, _) = cli::phones::link(&patient(&settings), "+15105550141", "frank", true, false)
        .await
        .unwrap();
    let (p2, _) = cli::phones::link(&patient(&settings), "+15105550142", "frank", true, false)
        .await
        .unwrap();
    let app = TestApp::spawn(settings, &[Role::Ingress, Role::Projector]).await;
    wait_phone_verified(&env, &p1).await;
    wait_phone_verified(&env, &p2).await;
    for i in 0..4 {
        assert_eq!(send_text(&http, &app, 2000 + i, &p1, "one").await.0, 200);
        assert_eq!(send_text(&http, &app, 3000 + i, &p2, "two").await.0, 200);
    }
    app.stop().await;
    let (accepted, rejected) = message_events(&env).await;
    assert_eq!(
        accepted.len(),
        5,
        "the user's budget is shared by both numbers"
    );
    assert_eq!(rejected.len(), 3);
    assert!(rejected
        .iter()
        .all(|r| r.reason == "rate_limited" && r.user_id.as_deref() == Some("frank")));
}

/// `sender_policy = "any"` (single tenant) enriches unknown numbers, but not one that opted
/// out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_sender_policy_any_an_opted_out_number_is_still_not_enriched() {
    let env = TestEnv::new().await;
    let app = TestApp::spawn(env.settings.clone(), &[Role::Ingress, Role::Projector]).await;
    let http = reqwest::Client::new();
    let phone = "+15105550161";
    let (_, _, before) = send_text(&http, &app, 1, phone, "first note").await;
    let (status, reply, _) = send_text(&http, &app, 2, phone, "STOP").await;
    assert_eq!(status, 200);
    assert!(reply.contains("unsubscribed"), "{reply}");
    let (status, reply, during) = send_text(&http, &app, 3, phone, "note while opted out").await;
    assert_eq!(status, 200);
    assert!(!reply.contains("<Message>"), "{reply}");
    send_text(&http, &app, 4, phone, "START").await;
    let (_, _, after) = send_text(&http, &app, 5, phone, "back again").await;

    let (accepted, rejected) = message_events(&env).await;
    let sids: Vec<&str> = accepted
        .iter()
        .map(|(_, m)| m.message_sid.as_str())
        .collect();
    assert_eq!(sids, [before.as_str(), after.as_str()]);
    assert_eq!(
        accepted[0].0, phone,
        "an unregistered number's messages are keyed by the number"
    );
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].reason, "opted_out");
    assert_eq!(rejected[0].message_sid, during);
    app.stop().await;
}

/// An auto-responder (or a loop between two of them) texting us over and over: each reply is
/// a paid SMS, so a stranger or an unverified number gets at most one per
/// `ingress.replies.stranger_interval`, and every message is still recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_auto_responder_texting_thirty_times_gets_one_paid_reply() {
    let env = TestEnv::new().await;
    let settings = registered_senders_only(&env);
    let (unverified, _) =
        cli::phones::link(&patient(&settings), "+15105550161", "hal", false, false)
            .await
            .unwrap();
    let app = TestApp::spawn(settings, &[Role::Ingress, Role::Projector]).await;
    let cql = env.cql().await;
    wait_for(
        "the unverified link to be projected",
        Duration::from_secs(60),
        || {
            let (cql, phone) = (cql.clone(), unverified.clone());
            async move {
                let row = cql
                    .query_unpaged("SELECT user_id FROM phones WHERE phone = ?", (phone,))
                    .await
                    .ok()?
                    .into_rows_result()
                    .ok()?
                    .maybe_first_row::<(Option<String>,)>()
                    .ok()??;
                row.0.map(|_| ())
            }
        },
    )
    .await;
    let http = reqwest::Client::new();
    for (from, base) in [("+15105550198", 5000), (unverified.as_str(), 6000)] {
        let mut replies = 0;
        for i in 0..30 {
            let (status, body, _) =
                send_text(&http, &app, base + i, from, "I am away until Monday.").await;
            assert_eq!(status, 200);
            if body.contains("<Message>") {
                replies += 1;
            }
        }
        assert_eq!(replies, 1, "one paid reply to {from}, not one per message");
    }
    app.stop().await;
    let (accepted, rejected) = message_events(&env).await;
    assert!(accepted.is_empty());
    assert_eq!(rejected.len(), 60, "every message is recorded");
}
