//! Verification codes cost an SMS each and guard who owns a number. Against the real Redis,
//! Kafka and Cassandra: codes are limited per number and per account (429 with
//! `Retry-After`), the guess limit holds per number across re-sent codes, a code is consumed
//! only once `PhoneVerified` is stored, and an unverified link expires so that nobody can
//! squat a number.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use smsflow::app::Role;
use smsflow::events::{decode, OutboundRequested, PhoneUnlinked};
use smsflow::phones::registry::Actor;
use smsflow::phones::{
    CodeCheck, CodeLimits, Codes, Issued, PhoneDirectory, PhoneRegistry, RegistryError, SendLimit,
};
use smsflow::secrets::ExposeSecret;
use smsflow::store::SharedSession;

fn redis(env: &TestEnv) -> deadpool_redis::Pool {
    deadpool_redis::Config::from_url(env.settings.redis.url.expose_secret())
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .unwrap()
}

fn limits() -> CodeLimits {
    CodeLimits {
        ttl: Duration::from_secs(600),
        max_attempts: 5,
        sends_per_number: 3,
        sends_per_user: 4,
        window: Duration::from_secs(3600),
        resend_interval: Duration::ZERO,
    }
}

fn code(issued: Issued) -> String {
    match issued {
        Issued::Code(c) => c,
        other => panic!("expected a code, got {other:?}"),
    }
}

fn wrong(code: &str) -> &'static str {
    if code == "000000" {
        "111111"
    } else {
        "000000"
    }
}

#[tokio::test]
async fn codes_are_limited_per_number_and_per_account_with_a_time_to_wait() {
    let env = TestEnv::new().await;
    let codes = Codes::new(redis(&env), &env.settings.kafka.topic_prefix, limits());
    for _ in 0..3 {
        code(codes.issue("+15105550301", "ann").await.unwrap());
    }
    match codes.issue("+15105550301", "ann").await.unwrap() {
        Issued::Limited { retry_after, limit } => {
            assert_eq!(limit, SendLimit::Number);
            assert!(retry_after > Duration::from_secs(3500), "{retry_after:?}");
        }
        other => panic!("a 4th code to one number: {other:?}"),
    }
    // The account's budget (4) is shared by its numbers: one more, then none.
    code(codes.issue("+15105550302", "ann").await.unwrap());
    assert!(matches!(
        codes.issue("+15105550303", "ann").await.unwrap(),
        Issued::Limited {
            limit: SendLimit::User,
            ..
        }
    ));
    // Another account is not affected.
    code(codes.issue("+15105550303", "ben").await.unwrap());

    // The resend interval spaces codes to one number.
    let spaced = Codes::new(
        redis(&env),
        &format!("{}spaced.", env.settings.kafka.topic_prefix),
        CodeLimits {
            resend_interval: Duration::from_secs(60),
            ..limits()
        },
    );
    code(spaced.issue("+15105550304", "cat").await.unwrap());
    match spaced.issue("+15105550304", "cat").await.unwrap() {
        Issued::Limited {
            limit: SendLimit::Resend,
            retry_after,
        } => assert!(retry_after <= Duration::from_secs(60)),
        other => panic!("a code right after a code: {other:?}"),
    }
}

#[tokio::test]
async fn the_guess_limit_holds_per_number_across_re_sent_codes() {
    let env = TestEnv::new().await;
    let codes = Codes::new(
        redis(&env),
        &env.settings.kafka.topic_prefix,
        CodeLimits {
            sends_per_number: 100,
            sends_per_user: 100,
            ..limits()
        },
    );
    let phone = "+15105550311";
    let mut guesses = 0;
    // A new code after every two wrong guesses: the count goes on.
    let last = loop {
        let c = code(codes.issue(phone, "dan").await.unwrap());
        let mut out = None;
        for _ in 0..2 {
            guesses += 1;
            match codes.check(phone, wrong(&c)).await.unwrap() {
                CodeCheck::Wrong { attempts_left } => {
                    assert_eq!(attempts_left, 5 - guesses)
                }
                CodeCheck::Exhausted { .. } => {
                    out = Some(c.clone());
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        if let Some(c) = out {
            break c;
        }
    };
    assert_eq!(guesses, 5, "five wrong guesses in all, over three codes");
    // Used up: even the right code is not checked, and no new code is sent.
    assert!(matches!(
        codes.check(phone, &last).await.unwrap(),
        CodeCheck::Exhausted { .. }
    ));
    match codes.issue(phone, "dan").await.unwrap() {
        Issued::Limited {
            limit: SendLimit::Guesses,
            retry_after,
        } => assert!(retry_after > Duration::from_secs(3500)),
        other => panic!("a new code while the guesses are used up: {other:?}"),
    }
}

#[tokio::test]
async fn a_right_guess_is_not_consumed_until_the_caller_says_so() {
    let env = TestEnv::new().await;
    let codes = Codes::new(redis(&env), &env.settings.kafka.topic_prefix, limits());
    let phone = "+15105550321";
    let c = code(codes.issue(phone, "eve").await.unwrap());
    for _ in 0..10 {
        assert_eq!(
            codes.check(phone, &c).await.unwrap(),
            CodeCheck::Valid {
                user_id: "eve".into()
            },
            "right guesses neither consume the code nor use up guesses"
        );
    }
    codes.consume(phone).await.unwrap();
    assert_eq!(codes.check(phone, &c).await.unwrap(), CodeCheck::Missing);
}

/// The registry of this test env; `producer` decides whether appends can succeed.
fn registry(
    env: &TestEnv,
    settings: &smsflow::config::Settings,
    producer: smsflow::kafka::EventProducer,
) -> PhoneRegistry {
    let directory = Arc::new(PhoneDirectory::new(
        &settings.phones,
        SharedSession::new(&settings.cql),
        redis(env),
        &settings.kafka.topic_prefix,
    ));
    PhoneRegistry::new(
        &settings.phones,
        &settings.kafka,
        directory,
        producer,
        redis(env),
    )
}

/// The last code texted to `phone` for `user` (records of one user share a partition, so
/// their order is the order they were sent in; across users it is not).
async fn last_code_to(env: &TestEnv, phone: &str, user: &str) -> String {
    read_full_records_to_end(env, &env.topic(smsflow::topics::OUTBOUND))
        .await
        .iter()
        .rev()
        .filter_map(|r| decode::<OutboundRequested>(&r.payload).ok())
        .find(|o| o.to == phone && o.user_id.as_deref() == Some(user))
        .map(|o| {
            o.body
                .split(|c: char| !c.is_ascii_digit())
                .find(|w| w.len() == 6)
                .expect("a code in the SMS")
                .to_owned()
        })
        .expect("a code was sent")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_code_whose_phone_verified_event_was_not_stored_stays_usable() {
    let env = TestEnv::new().await;
    let settings = env.settings.clone();
    let good = registry(&env, &settings, env.fixture_producer());
    let phone = "+15105550331";
    let linked = good
        .link(phone, "fay", Actor::Api, true, None)
        .await
        .unwrap();
    assert!(linked.code_sent);
    let code = last_code_to(&env, phone, "fay").await;

    // Kafka refuses the PhoneVerified append (no broker answers).
    let mut broken_kafka = settings.kafka.clone();
    broken_kafka.brokers = "127.0.0.1:1".into();
    broken_kafka.produce_deadline = Duration::from_secs(1);
    let broken = {
        let k = broken_kafka.clone();
        tokio::task::spawn_blocking(move || smsflow::kafka::EventProducer::new(&k, "broken"))
            .await
            .unwrap()
            .unwrap()
    };
    let failing = registry(&env, &settings, broken);
    match failing.verify_code(phone, &code, Some("fay"), None).await {
        Err(RegistryError::Produce(_)) => {}
        other => panic!("expected the append to fail, got {other:?}"),
    }

    // The same code, again, once Kafka takes it.
    let state = good
        .verify_code(phone, &code, Some("fay"), None)
        .await
        .expect("the code survived the failed append");
    assert!(state.verified);
    // And now it is used up.
    assert!(matches!(
        good.verify_code(phone, &code, Some("fay"), None).await,
        Err(RegistryError::NoPendingCode)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn linking_again_and_again_gets_429_with_retry_after_and_sends_no_more_codes() {
    let env = TestEnv::new().await;
    let mut settings = env.settings.clone();
    settings.phones.code_sends_per_number = 2;
    settings.phones.code_resend_interval = Duration::ZERO;
    let app = TestApp::spawn(settings, &[Role::Api]).await;
    let http = reqwest::Client::new();
    let token = jwt("gus", false);
    let phone = "+15105550341";
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..6 {
        let r = http
            .post(format!("{}/v1/phones", app.base_url))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "phone": phone }))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            retry_after = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "too_many_codes");
        }
    }
    assert_eq!(statuses, [202, 202, 429, 429, 429, 429]);
    let wait = retry_after.expect("a 429 says when to retry");
    assert!((3500..=3600).contains(&wait), "Retry-After {wait}");
    let sent = read_full_records_to_end(&env, &env.topic(smsflow::topics::OUTBOUND))
        .await
        .iter()
        .filter_map(|r| decode::<OutboundRequested>(&r.payload).ok())
        .filter(|o| o.to == phone)
        .count();
    assert_eq!(sent, 2, "two codes went out, not six");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unverified_link_expires_and_the_number_can_be_linked_by_its_owner() {
    let env = TestEnv::new().await;
    let mut settings = env.settings.clone();
    // Shorter than the code's TTL, which configuration refuses; the registry takes it so the
    // test need not wait an hour (the code must outlive the test's reads).
    settings.phones.unverified_link_ttl = Duration::from_secs(2);
    settings.phones.code_resend_interval = Duration::ZERO;
    let registry = registry(&env, &settings, env.fixture_producer());
    let phone = "+15105550351";
    // A squatter links someone else's number and cannot verify it.
    registry
        .link(phone, "squatter", Actor::Api, true, None)
        .await
        .unwrap();
    // Within the TTL, the number is taken.
    assert!(matches!(
        registry.link(phone, "owner", Actor::Api, true, None).await,
        Err(RegistryError::OwnedByOther)
    ));
    // After it, the owner links it (and gets the code), and the squatter's link is recorded
    // as unlinked by expiry.
    let linked = wait_for(
        "the unverified link to expire",
        Duration::from_secs(30),
        || {
            let registry = &registry;
            async move {
                match registry.link(phone, "owner", Actor::Api, true, None).await {
                    Ok(l) => Some(l),
                    Err(RegistryError::OwnedByOther) => None,
                    Err(e) => panic!("{e}"),
                }
            }
        },
    )
    .await;
    assert_eq!(linked.state.user_id.as_deref(), Some("owner"));
    assert!(linked.code_sent);
    let unlinked: Vec<PhoneUnlinked> =
        read_full_records_to_end(&env, &env.topic(smsflow::topics::PHONES))
            .await
            .iter()
            .filter(|r| r.event_type.as_deref() == Some("PhoneUnlinked"))
            .map(|r| decode(&r.payload).unwrap())
            .collect();
    assert_eq!(unlinked.len(), 1);
    assert_eq!(unlinked[0].previous_user_id.as_deref(), Some("squatter"));
    assert_eq!(unlinked[0].actor, "expiry");
    // The squatter's old code is void for the owner's link; the owner's code verifies.
    let code = last_code_to(&env, phone, "owner").await;
    let state = registry
        .verify_code(phone, &code, Some("owner"), None)
        .await
        .unwrap();
    assert!(state.verified);
    // A verified link never expires.
    assert!(matches!(
        registry
            .link(phone, "squatter", Actor::Api, true, None)
            .await,
        Err(RegistryError::OwnedByOther)
    ));
}
