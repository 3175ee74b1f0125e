//! Fault scenarios of issue 13 §2 that need no frozen shared service, each counting messages
//! exactly against the real Kafka, Cassandra and Redis (an isolated topic prefix and keyspace
//! per test):
//!
//! - a stage handler that panics: its input is dead-lettered, the stage keeps going;
//! - an undecodable event at the projector: dead-lettered, its partition moves on;
//! - a number verified while no ingress ran: accepted as soon as its link is in the registry,
//!   and a cached miss does not outlive the link reaching the projection;
//! - a batch slower than `max.poll.interval.ms` (an input that trickles a byte every 2 s):
//!   the slow inputs are dead-lettered and later offsets move on;
//! - one MessageSid ingested twice: its items are listed once and a review made between the
//!   copies stays, also when the copies fall in different hour buckets;
//! - a rebalance storm: three instances of one stage started and SIGKILLed at random while
//!   2,000 messages arrive: exactly 2,000 outputs for a `read_committed` reader.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use common::*;
use smsflow::app::Role;
use smsflow::config::Settings;
use smsflow::events::{decode, DeadLetter, ItemReviewed, ItemsProposed, MessageReceived};
use smsflow::ingress::SenderPolicy;
use smsflow::kafka::projection_runner::{run_projection, Target};
use smsflow::kafka::stage_runner::run_stage;
use smsflow::secrets::ExposeSecret;
use smsflow::stages::{Input, Output, Stage, StageError};

/// The number `n` of a test message (`sms_params(n)`'s MessageSid is `SM{n:032x}`).
fn sid_number(sid: &str) -> usize {
    usize::from_str_radix(&sid[2..], 16).unwrap()
}

fn echo(ev: &MessageReceived) -> Vec<Output> {
    vec![Output::new(
        smsflow::topics::ENRICHMENTS,
        ev.partition_key().to_owned(),
        ev.clone(),
    )]
}

/// The dead letters on the test's dead-letter topic.
async fn dead_letters(env: &TestEnv) -> Vec<DeadLetter> {
    read_committed_to_end(env, &env.topic(smsflow::topics::DEADLETTER))
        .await
        .iter()
        .map(|b| decode::<DeadLetter>(b).unwrap())
        .collect()
}

/// How many outputs (echoed messages) each MessageSid has.
async fn outputs_per_sid(env: &TestEnv) -> HashMap<String, usize> {
    let mut per_sid = HashMap::new();
    for b in read_committed_to_end(env, &env.topic(smsflow::topics::ENRICHMENTS)).await {
        let ev: MessageReceived = decode(&b).unwrap();
        *per_sid.entry(ev.message_sid).or_default() += 1;
    }
    per_sid
}

// ---------------------------------------------------------------------------------------
// 1. A panic inside a stage handler

/// Echoes messages; message numbers 7, 27, 47, ... hit a bug that panics.
struct Panicky;

impl Stage for Panicky {
    const NAME: &'static str = "panicky";
    type Event = MessageReceived;

    fn inputs(&self) -> Vec<&'static str> {
        vec![smsflow::topics::MESSAGES]
    }

    async fn handle(&self, input: &Input<MessageReceived>) -> Result<Vec<Output>, StageError> {
        let n = sid_number(&input.event.message_sid);
        if n % 20 == 7 {
            panic!("handler bug: message {n} has a shape the code never expected");
        }
        Ok(echo(&input.event))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_dead_letters_its_input_and_the_stage_keeps_going() {
    let env = TestEnv::new().await;
    let mut settings = env.settings.clone();
    settings.stages.instance_id = Some("panicky-0".into());
    settings.stages.batch_max = 50;
    let input_topic = env.topic(smsflow::topics::MESSAGES);
    let group = format!("{}smsflow-panicky", settings.kafka.topic_prefix);
    let producer = env.fixture_producer();
    produce_messages(&producer, &input_topic, 0..200).await;

    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_stage(
        settings.kafka.clone(),
        settings.stages.clone(),
        Arc::new(Panicky),
        shutdown.clone(),
    ));
    wait_for_zero_lag(&env, &group, &input_topic).await;
    assert!(
        !task.is_finished(),
        "the runner survives its handler's panics"
    );

    // More input after the panics: the same runner handles it.
    produce_messages(&producer, &input_topic, 200..240).await;
    wait_for_zero_lag(&env, &group, &input_topic).await;

    let panicking: BTreeSet<usize> = (0..240).filter(|n| n % 20 == 7).collect();
    let per_sid = outputs_per_sid(&env).await;
    assert_eq!(
        per_sid.len(),
        240 - panicking.len(),
        "one output per good input"
    );
    assert!(per_sid.values().all(|c| *c == 1), "no output twice");
    assert!(per_sid.keys().all(|s| !panicking.contains(&sid_number(s))));

    let letters = dead_letters(&env).await;
    assert_eq!(letters.len(), panicking.len(), "one dead letter per panic");
    let mut lettered = BTreeSet::new();
    for l in &letters {
        assert_eq!(l.stage, "panicky");
        assert_eq!(l.error_kind, "poison");
        assert_eq!(l.attempts, 1, "a panic is not retried");
        assert!(
            l.error.contains("the stage panicked: handler bug: message"),
            "{}",
            l.error
        );
        let original: MessageReceived = decode(l.original_value.as_deref().unwrap()).unwrap();
        lettered.insert(sid_number(&original.message_sid));
    }
    assert_eq!(lettered, panicking);

    shutdown.cancel();
    let result = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("stops in time")
        .expect("the runner task did not panic");
    assert!(result.is_ok(), "{result:?}");
}

// ---------------------------------------------------------------------------------------
// 2. An undecodable event at the projector

/// `projection_offsets` of one projection, by partition.
async fn checkpoints(env: &TestEnv, projection: &str) -> BTreeMap<i32, i64> {
    let cql = env.cql().await;
    let rows = cql
        .query_unpaged(
            "SELECT partition, next_offset FROM projection_offsets WHERE projection = ?",
            (projection,),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    rows.rows::<(i32, i64)>()
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

fn spawn_messages_projection(
    env: &TestEnv,
    shutdown: &CancellationToken,
) -> tokio::task::JoinHandle<Result<(), smsflow::projector::ProjectionError>> {
    let (settings, shutdown) = (env.settings.clone(), shutdown.clone());
    tokio::spawn(async move {
        let session = smsflow::store::connect_to_keyspace(&settings.cql)
            .await
            .unwrap();
        let projection =
            smsflow::projector::MessagesProjection::new(session.clone(), &settings.cql.keyspace)
                .await
                .unwrap();
        let target = Target {
            kafka: &settings.kafka,
            settings: &settings.projector,
            session: &session,
            keyspace: &settings.cql.keyspace,
        };
        run_projection(target, &projection, &shutdown).await
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_event_at_the_projector_is_dead_lettered_and_its_partition_moves_on() {
    let env = TestEnv::new().await;
    let topic = env.topic(smsflow::topics::MESSAGES);
    let producer = env.fixture_producer();
    let cql = env.cql().await;

    // 100 messages from 17 senders, and 6 garbage records among them on the same keys.
    let mut garbage_at = BTreeSet::new();
    let mut end: BTreeMap<i32, i64> = BTreeMap::new();
    for i in 0..106usize {
        let p = if i % 18 == 9 {
            let key = as_map(&sms_params(i))["From"].clone();
            let p = producer
                .send_bytes(&topic, &key, "MessageReceived", b"\x00not an event")
                .await
                .unwrap();
            garbage_at.insert((p.partition, p.offset));
            p
        } else {
            let ev = smsflow::ingress::form::message_received(
                &sms_params(i),
                format!("ev-{i}"),
                1_764_000_000_000_000 + i as i64,
                None,
            )
            .unwrap();
            producer
                .send(&topic, ev.partition_key(), &ev)
                .await
                .unwrap()
        };
        let e = end.entry(p.partition).or_insert(0);
        *e = (*e).max(p.offset + 1);
    }
    assert_eq!(garbage_at.len(), 6);

    let shutdown = CancellationToken::new();
    let task = spawn_messages_projection(&env, &shutdown);
    wait_for("100 messages projected", Duration::from_secs(120), || {
        let cql = cql.clone();
        async move { (count_rows(&cql, "messages_by_user").await == 100).then_some(()) }
    })
    .await;
    wait_for(
        "every partition's checkpoint past its last record",
        Duration::from_secs(60),
        || {
            let env = &env;
            let end = end.clone();
            async move {
                let at = checkpoints(env, "messages").await;
                end.iter()
                    .all(|(p, e)| at.get(p).is_some_and(|a| a >= e))
                    .then_some(())
            }
        },
    )
    .await;
    let letters = dead_letters(&env).await;
    assert_eq!(letters.len(), 6, "one dead letter per undecodable record");
    let mut seen = BTreeSet::new();
    for l in &letters {
        assert_eq!(l.stage, "projector:messages");
        assert_eq!(l.error_kind, "poison");
        assert_eq!(l.source_topic, topic);
        assert_eq!(l.original_value.as_deref(), Some(&b"\x00not an event"[..]));
        assert!(l.original_headers.iter().any(|h| h.key == "event-type"));
        seen.insert((l.source_partition, l.source_offset));
    }
    assert_eq!(seen, garbage_at);

    // A restart resumes past the poison: one more message, and no letter again.
    shutdown.cancel();
    task.await.unwrap().unwrap();
    let shutdown = CancellationToken::new();
    let task = spawn_messages_projection(&env, &shutdown);
    produce_messages(&producer, &topic, 500..501).await;
    wait_for(
        "the 101st message projected",
        Duration::from_secs(120),
        || {
            let cql = cql.clone();
            async move { (count_rows(&cql, "messages_by_user").await == 101).then_some(()) }
        },
    )
    .await;
    assert_eq!(
        dead_letters(&env).await.len(),
        6,
        "nothing dead-lettered twice"
    );
    assert_eq!(count_rows(&cql, "messages_by_user").await, 101);
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

// ---------------------------------------------------------------------------------------
// 3. A number verified while no ingress ran

fn patient(settings: &Settings) -> Settings {
    let mut s = settings.clone();
    s.kafka.produce_deadline = Duration::from_secs(14);
    s
}

/// MessageSids appended as `MessageReceived` (accepted, not `SenderRejected`).
async fn accepted_sids(env: &TestEnv) -> Vec<String> {
    read_committed_to_end(env, &env.topic(smsflow::topics::MESSAGES))
        .await
        .iter()
        .filter_map(|b| decode::<MessageReceived>(b).ok())
        .map(|m| m.message_sid)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_verified_while_no_ingress_ran_is_accepted_once_its_link_is_in_the_registry() {
    let env = TestEnv::new().await;
    let mut settings = env.settings.clone();
    settings.ingress.sender_policy = SenderPolicy::Registered;
    // Verified while no ingress runs; and no projector runs in this test at all, so the link
    // is only in the registry topic, never in the `phones` read model.
    let (phone, _) =
        smsflow::cli::phones::link(&patient(&settings), "+15105550163", "gina", true, false)
            .await
            .unwrap();
    let app = TestApp::spawn(settings.clone(), &[Role::Ingress]).await;
    let http = reqwest::Client::new();

    // Text from the number until one is accepted (a refusal is appended as SenderRejected).
    let mut posted = 0usize;
    let accepted = wait_for(
        "a text from the verified number to be accepted",
        Duration::from_secs(60),
        || {
            posted += 1;
            let mut params = sms_params(10_000 + posted);
            for (k, v) in params.iter_mut() {
                if k == "From" {
                    *v = phone.clone();
                }
            }
            let sid = as_map(&params)["MessageSid"].clone();
            let (http, url, env) = (http.clone(), app.base_url.clone(), &env);
            async move {
                assert_eq!(post_signed_retrying_503(&http, &url, &params).await, 200);
                accepted_sids(env).await.contains(&sid).then_some(sid)
            }
        },
    )
    .await;
    let sids = accepted_sids(&env).await;
    assert_eq!(
        sids,
        vec![accepted],
        "exactly the accepted text is appended, once"
    );
    eprintln!("accepted after {posted} text(s)");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_miss_does_not_outlive_the_link_reaching_the_projection() {
    let env = TestEnv::new().await;
    let settings = env.settings.clone();
    let redis = deadpool_redis::Config::from_url(settings.redis.url.expose_secret())
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .unwrap();
    // A directory that does not follow the topic: only the projection can tell it.
    let directory = smsflow::phones::PhoneDirectory::new(
        &settings.phones,
        smsflow::store::SharedSession::new(&settings.cql),
        redis,
        &settings.kafka.topic_prefix,
    );
    let phone = "+15105550164";
    assert_eq!(
        directory.lookup(phone).await.unwrap(),
        None,
        "unknown before the link"
    );

    smsflow::cli::phones::link(&patient(&settings), phone, "hana", true, false)
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let task = {
        let (settings, shutdown) = (settings.clone(), shutdown.clone());
        tokio::spawn(async move {
            let session = smsflow::store::connect_to_keyspace(&settings.cql)
                .await
                .unwrap();
            let projection =
                smsflow::projector::PhonesProjection::new(session.clone(), &settings.cql.keyspace)
                    .await
                    .unwrap();
            let target = Target {
                kafka: &settings.kafka,
                settings: &settings.projector,
                session: &session,
                keyspace: &settings.cql.keyspace,
            };
            run_projection(target, &projection, &shutdown).await
        })
    };
    wait_phone_verified(&env, phone).await;
    // The miss was cached before the link; it must not hide the link for phones.cache_ttl
    // (15 min): the deadline here is 60 s.
    let state = wait_for(
        "the lookup to see the projected link",
        Duration::from_secs(60),
        || {
            let directory = &directory;
            async move { directory.lookup(phone).await.unwrap() }
        },
    )
    .await;
    assert!(state.verified);
    assert_eq!(state.user_id.as_deref(), Some("hana"));
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

// ---------------------------------------------------------------------------------------
// 4. A batch slower than max.poll.interval.ms

/// A media server that sends one byte every 2 s and never finishes.
async fn trickling_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                while socket.write_all(b"x").await.is_ok() {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            });
        }
    });
    addr
}

/// Echoes messages; a message whose body says "slow media" first downloads from the
/// trickling server, to its end (which never comes).
struct Trickle {
    server: std::net::SocketAddr,
}

impl Stage for Trickle {
    const NAME: &'static str = "trickle";
    type Event = MessageReceived;

    fn inputs(&self) -> Vec<&'static str> {
        vec![smsflow::topics::MESSAGES]
    }

    async fn handle(&self, input: &Input<MessageReceived>) -> Result<Vec<Output>, StageError> {
        if input.event.body.contains("slow media") {
            let mut socket = tokio::net::TcpStream::connect(self.server)
                .await
                .map_err(|e| StageError::Transient(e.to_string()))?;
            let mut buf = [0u8; 64];
            while socket
                .read(&mut buf)
                .await
                .map_err(|e| StageError::Transient(e.to_string()))?
                > 0
            {}
        }
        Ok(echo(&input.event))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_slower_than_the_poll_interval_dead_letters_the_slow_inputs_and_moves_on() {
    let env = TestEnv::new().await;
    let mut settings = env.settings.clone();
    settings.stages.instance_id = Some("trickle-0".into());
    // A poll interval of 20 s: without a bound on the handling, the first slow input would get
    // the consumer evicted and its batch redone forever.
    settings.stages.max_poll_interval = Duration::from_secs(20);
    settings.stages.transaction_timeout = Duration::from_secs(5);
    settings.stages.input_timeout = Duration::from_secs(3);
    settings.stages.batch_timeout = Duration::from_secs(5);
    settings.stages.validate().unwrap();
    let input_topic = env.topic(smsflow::topics::MESSAGES);
    let producer = env.fixture_producer();

    // 40 messages; three of them (one sender, so one partition and in order) are slow, so
    // one batch also hits its deadline behind the first.
    let slow: BTreeSet<usize> = [5, 22, 39].into();
    for i in 0..40usize {
        let mut params = sms_params(i);
        if slow.contains(&i) {
            for (k, v) in params.iter_mut() {
                if k == "Body" {
                    *v = format!("slow media #{i}");
                }
            }
        }
        let ev = smsflow::ingress::form::message_received(
            &params,
            format!("ev-{i}"),
            1_764_000_000_000_000,
            None,
        )
        .unwrap();
        producer
            .send(&input_topic, ev.partition_key(), &ev)
            .await
            .unwrap();
    }
    let senders: BTreeSet<String> = slow
        .iter()
        .map(|i| as_map(&sms_params(*i))["From"].clone())
        .collect();
    assert_eq!(senders.len(), 1, "the slow inputs share a key");

    let server = trickling_server().await;
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_stage(
        settings.kafka.clone(),
        settings.stages.clone(),
        Arc::new(Trickle { server }),
        shutdown.clone(),
    ));
    wait_for_zero_lag(
        &env,
        &format!("{}smsflow-trickle", settings.kafka.topic_prefix),
        &input_topic,
    )
    .await;

    let per_sid = outputs_per_sid(&env).await;
    assert_eq!(per_sid.len(), 37, "every quick input has its output");
    assert!(
        per_sid.values().all(|c| *c == 1),
        "no output twice: {per_sid:?}"
    );
    let letters = dead_letters(&env).await;
    let mut timed_out = BTreeSet::new();
    for l in &letters {
        assert_eq!(l.stage, "trickle");
        assert_eq!(l.error_kind, "timed_out", "{}", l.error);
        let original: MessageReceived = decode(l.original_value.as_deref().unwrap()).unwrap();
        timed_out.insert(sid_number(&original.message_sid));
    }
    assert_eq!(letters.len(), 3, "each slow input dead-lettered once");
    assert_eq!(timed_out, slow);

    shutdown.cancel();
    let result = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("stops in time")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
}

// ---------------------------------------------------------------------------------------
// 5. The same MessageSid ingested twice

async fn get(http: &reqwest::Client, url: String, token: &str) -> Value {
    let r = http.get(url).bearer_auth(token).send().await.unwrap();
    r.json().await.unwrap_or(Value::Null)
}

/// Item ids in one list, in list order, duplicates kept.
async fn listed(http: &reqwest::Client, base: &str, token: &str, status: &str) -> Vec<String> {
    let v = get(
        http,
        format!("{base}/v1/items?status={status}&limit=100"),
        token,
    )
    .await;
    v["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["id"].as_str())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_sid_ingested_twice_is_listed_once_and_a_review_between_stays() {
    let env = TestEnv::new().await;
    let mut settings = env.settings.clone();
    // As after a Redis outage in fail_open: nothing stops the second copy.
    settings.ingress.dedupe = false;
    let app = TestApp::spawn(
        settings.clone(),
        &[Role::Ingress, Role::Enrich, Role::Projector, Role::Api],
    )
    .await;
    let http = reqwest::Client::new();
    let mut params = sms_params(3);
    for (k, v) in params.iter_mut() {
        if k == "Body" {
            *v = "call Dana Reyes at 510-555-0142 or dana@example.com #lead".into();
        }
    }
    let map = as_map(&params);
    let (sid, user) = (map["MessageSid"].clone(), map["From"].clone());
    let me = jwt(&user, false);

    // The first copy, enriched and listed.
    assert_eq!(
        post_signed_retrying_503(&http, &app.base_url, &params).await,
        200
    );
    let pending = wait_for("the first copy's items", Duration::from_secs(90), || {
        let (http, base, me) = (http.clone(), app.base_url.clone(), me.clone());
        async move {
            let l = listed(&http, &base, &me, "pending").await;
            (l.len() >= 3).then_some(l)
        }
    })
    .await;
    // A review between the copies.
    let reviewed = pending[0].clone();
    let r = http
        .post(format!(
            "{}/v1/items/{reviewed}/review?wait=true",
            app.base_url
        ))
        .bearer_auth(&me)
        .json(&serde_json::json!({"decision": "approve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    wait_for("the review to be listed", Duration::from_secs(60), || {
        let (http, base, me, id) = (
            http.clone(),
            app.base_url.clone(),
            me.clone(),
            reviewed.clone(),
        );
        async move { (listed(&http, &base, &me, "approved").await == [id]).then_some(()) }
    })
    .await;

    // The second copy: a fresh received_at, later than the review.
    assert_eq!(
        post_signed_retrying_503(&http, &app.base_url, &params).await,
        200
    );
    let copies: Vec<MessageReceived> =
        read_committed_to_end(&env, &env.topic(smsflow::topics::MESSAGES))
            .await
            .iter()
            .filter_map(|b| decode::<MessageReceived>(b).ok())
            .filter(|m| m.message_sid == sid)
            .collect();
    assert_eq!(copies.len(), 2, "both copies were appended");
    assert!(copies[1].received_at > copies[0].received_at);
    // Wait until the second copy's proposal is projected.
    let enrichments = env.topic(smsflow::topics::ENRICHMENTS);
    wait_for(
        "the second copy's proposal",
        Duration::from_secs(90),
        || {
            let (env, sid) = (&env, sid.clone());
            let enrichments = enrichments.clone();
            async move {
                let n = read_committed_to_end(env, &enrichments)
                    .await
                    .iter()
                    .filter_map(|b| decode::<ItemsProposed>(b).ok())
                    .filter(|p| p.message_sid == sid)
                    .count();
                (n == 2).then_some(())
            }
        },
    )
    .await;
    // Then a sentinel proposal of the same user and hour, appended after the second copy's:
    // the items projection applies one user-hour's events in order, so once the sentinel is
    // listed the second copy has been applied. (The enrich stage writes transactionally, so
    // the commit markers keep the projector's informational lag above 0.)
    let sentinel = ItemsProposed {
        event_id: "sentinel".into(),
        message_sid: "SMsentinel".into(),
        user_id: user.clone(),
        part: "body".into(),
        received_at: copies[1].received_at,
        proposed_at: copies[1].received_at,
        items: vec![smsflow::events::ProposedItem {
            item_id: "sentinel-item".into(),
            kind: "tag".into(),
            value: "#sentinel".into(),
            normalized: "sentinel".into(),
            confidence: 1.0,
            source: "body".into(),
            span_start: 0,
            span_end: 9,
        }],
    };
    env.fixture_producer()
        .send(&enrichments, &user, &sentinel)
        .await
        .unwrap();
    let mut now_pending = wait_for("the sentinel to be listed", Duration::from_secs(60), || {
        let (http, base, me) = (http.clone(), app.base_url.clone(), me.clone());
        async move {
            let l = listed(&http, &base, &me, "pending").await;
            l.contains(&"sentinel-item".to_owned()).then_some(l)
        }
    })
    .await;
    now_pending.retain(|id| id != "sentinel-item");

    let mut expected: Vec<String> = pending[1..].to_vec();
    expected.sort();
    now_pending.sort();
    assert_eq!(
        now_pending, expected,
        "each item listed once, the reviewed one not again"
    );
    assert_eq!(
        listed(&http, &app.base_url, &me, "approved").await,
        std::slice::from_ref(&reviewed)
    );
    let item = get(&http, format!("{}/v1/items/{reviewed}", app.base_url), &me).await;
    assert_eq!(item["status"], "approved");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_of_one_message_in_different_hour_buckets_list_the_item_once() {
    let env = TestEnv::new().await;
    let app = TestApp::spawn(env.settings.clone(), &[Role::Projector, Role::Api]).await;
    let producer = env.fixture_producer();
    let http = reqwest::Client::new();
    let user = "hour-user";
    let me = jwt(user, false);
    // Time is set on the events, as ingress stamps it: the first copy was received in the
    // last second of the previous hour, the second copy now, after the review (so minutes,
    // up to an hour, apart and always in another hour bucket).
    let hour = 3_600_000_000i64;
    let first_at = smsflow::clock::now_micros().div_euclid(hour) * hour - 1_000_000;
    let proposal = |event_id: &str, received_at: i64| ItemsProposed {
        event_id: event_id.into(),
        message_sid: "SMhour".into(),
        user_id: user.into(),
        part: "body".into(),
        received_at,
        proposed_at: received_at + 1_000,
        items: vec![smsflow::events::ProposedItem {
            item_id: "hour-item".into(),
            kind: "tag".into(),
            value: "#lead".into(),
            normalized: "lead".into(),
            confidence: 1.0,
            source: "body".into(),
            span_start: 0,
            span_end: 5,
        }],
    };
    let enrichments = env.topic(smsflow::topics::ENRICHMENTS);
    producer
        .send(&enrichments, user, &proposal("first", first_at))
        .await
        .unwrap();
    wait_for("the item to be pending", Duration::from_secs(60), || {
        let (http, base, me) = (http.clone(), app.base_url.clone(), me.clone());
        async move { (listed(&http, &base, &me, "pending").await == ["hour-item"]).then_some(()) }
    })
    .await;
    let review = ItemReviewed {
        event_id: "rev-hour".into(),
        item_id: "hour-item".into(),
        user_id: user.into(),
        decision: "approve".into(),
        reviewed_at: smsflow::clock::now_micros(),
        message_sid: "SMhour".into(),
        item_created_at: first_at,
        kind: "tag".into(),
        value: "#lead".into(),
        normalized: "lead".into(),
    };
    producer
        .send(&env.topic(smsflow::topics::REVIEWS), user, &review)
        .await
        .unwrap();
    wait_for("the item to be approved", Duration::from_secs(60), || {
        let (http, base, me) = (http.clone(), app.base_url.clone(), me.clone());
        async move { (listed(&http, &base, &me, "approved").await == ["hour-item"]).then_some(()) }
    })
    .await;
    let second_at = smsflow::clock::now_micros();
    assert_ne!(
        smsflow::projector::items::bucket_of(first_at),
        smsflow::projector::items::bucket_of(second_at)
    );
    producer
        .send(&enrichments, user, &proposal("second", second_at))
        .await
        .unwrap();
    wait_for_zero_lag(
        &env,
        &format!("{}-items", env.settings.projector.group_id),
        &enrichments,
    )
    .await;
    assert_eq!(
        listed(&http, &app.base_url, &me, "pending").await,
        Vec::<String>::new()
    );
    assert_eq!(
        listed(&http, &app.base_url, &me, "approved").await,
        ["hour-item"]
    );
    let item = get(&http, format!("{}/v1/items/hour-item", app.base_url), &me).await;
    assert_eq!(item["status"], "approved");
    app.stop().await;
}

// ---------------------------------------------------------------------------------------
// 6. A rebalance storm

/// Echoes every message; run by the child processes of the storm test.
struct Storm;

impl Stage for Storm {
    const NAME: &'static str = "storm";
    type Event = MessageReceived;

    fn inputs(&self) -> Vec<&'static str> {
        vec![smsflow::topics::MESSAGES]
    }

    async fn handle(&self, input: &Input<MessageReceived>) -> Result<Vec<Output>, StageError> {
        Ok(echo(&input.event))
    }
}

/// Not a test: one stage instance of the storm, started and killed by
/// `a_rebalance_storm_of_three_instances_outputs_each_input_exactly_once`.
#[test]
#[ignore = "runs only as a child process of the rebalance storm test"]
fn child_storm_stage() {
    if std::env::var("FAULTS_TEST_CHILD").is_err() {
        return;
    }
    let settings = Settings::load(None).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let shutdown = CancellationToken::new();
        smsflow::shutdown::install(shutdown.clone());
        run_stage(settings.kafka, settings.stages, Arc::new(Storm), shutdown)
            .await
            .unwrap();
    });
}

fn spawn_storm_instance(env: &TestEnv, instance: usize) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_storm_stage",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .envs(env.child_env())
        .env("SMSFLOW_STAGES__INSTANCE_ID", format!("storm-{instance}"))
        .env("SMSFLOW_STAGES__BATCH_MAX", "50")
        .env("FAULTS_TEST_CHILD", "1")
        .env("RUST_LOG", "error")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// A small xorshift generator: the storm's schedule is random, and its seed is printed so a
/// failing schedule can be run again (`FAULTS_STORM_SEED`).
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_storm_of_three_instances_outputs_each_input_exactly_once() {
    let env = TestEnv::new().await;
    let input_topic = env.topic(smsflow::topics::MESSAGES);
    let producer = env.fixture_producer();
    let seed = std::env::var("FAULTS_STORM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| smsflow::clock::now_micros() as u64 | 1);
    eprintln!("storm seed {seed}");
    let mut rng = Rng(seed);
    let n = 2000usize;
    let mut instances: Vec<Option<std::process::Child>> = (0..3).map(|_| None).collect();
    let (mut kills, mut starts) = (0usize, 0usize);
    // 20 steps: 100 more messages each, then start or SIGKILL a random instance, then a
    // random pause of 0.3 to 3 s (the storm's cadence, not a wait for a condition).
    for step in 0..20 {
        produce_messages(&producer, &input_topic, step * 100..(step + 1) * 100).await;
        let i = rng.next(3) as usize;
        match instances[i].take() {
            Some(mut child) => {
                child.kill().unwrap();
                let _ = child.wait();
                kills += 1;
            }
            None => {
                instances[i] = Some(spawn_storm_instance(&env, i));
                starts += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(300 + rng.next(2700))).await;
    }
    // Calm: every instance runs until the input is consumed.
    for (i, slot) in instances.iter_mut().enumerate() {
        if slot.is_none() {
            *slot = Some(spawn_storm_instance(&env, i));
            starts += 1;
        }
    }
    eprintln!("storm: {starts} starts, {kills} SIGKILLs");
    assert!(kills > 0, "the storm killed something (seed {seed})");
    wait_for_zero_lag_within(
        &env,
        &format!("{}smsflow-storm", env.settings.kafka.topic_prefix),
        &input_topic,
        Duration::from_secs(300),
    )
    .await;

    let per_sid = outputs_per_sid(&env).await;
    let total: usize = per_sid.values().sum();
    let doubled = per_sid.values().filter(|c| **c > 1).count();
    assert_eq!(per_sid.len(), n, "every input has an output (seed {seed})");
    assert_eq!(doubled, 0, "no output twice (seed {seed})");
    assert_eq!(total, n, "exactly {n} outputs (seed {seed})");
    assert!(dead_letters(&env).await.is_empty());

    for child in instances.iter_mut().flatten() {
        assert!(std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success());
    }
    for child in instances.iter_mut().flatten() {
        let status = wait_for(
            "an instance to exit on SIGTERM",
            Duration::from_secs(60),
            || {
                let s = child.try_wait().unwrap();
                async move { s }
            },
        )
        .await;
        assert!(status.success(), "{status:?}");
    }
}
