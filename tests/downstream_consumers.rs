//! Our topics read by code nobody here wrote: fastavro given only `schemas/` (single-object
//! encoding) and confluent-kafka's `AvroDeserializer` pointed at the schema registry (Confluent
//! wire format). Both run in a cached venv (`tests/interop/python/venv.sh`) on the records of a
//! real pipeline run: ingress, the phone registry, enrichment and the projector.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;
use smsflow::app::Role;
use smsflow::cli;
use smsflow::config::Settings;
use smsflow::events::{confluent, WireFormat};
use smsflow::ingress::SenderPolicy;
use smsflow::secrets::ExposeSecret;
use smsflow::topics;

/// Messages from the verified sender (received, then enriched) and from an unknown one
/// (recorded as `SenderRejected`).
const ACCEPTED: usize = 5;
const REJECTED: usize = 2;

const ALL_TOPICS: &[&str] = &[
    topics::MESSAGES,
    topics::MEDIA,
    topics::TRANSCRIPTS,
    topics::ENRICHMENTS,
    topics::REVIEWS,
    topics::PHONES,
    topics::OUTBOUND,
    topics::DEADLETTER,
];

fn interop(path: &str) -> PathBuf {
    repo_root().join("tests/interop").join(path)
}

/// The venv's python (created on first use from PyPI).
fn python() -> String {
    let out = Command::new("bash")
        .arg(interop("python/venv.sh"))
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "cannot create the Python venv (pip, PyPI):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Run the downstream consumer; its JSON report.
fn consume(env: &TestEnv, topics: &[&str], mode_args: &[&str]) -> serde_json::Value {
    let names: Vec<String> = topics.iter().map(|t| env.topic(t)).collect();
    // Bounded, so a stalled consumer fails here with what it printed instead of holding the
    // test until nextest's slow-test timeout kills it with nothing to show.
    let out = Command::new("timeout")
        .args(["--kill-after=10", "240", &python()])
        .arg(interop("python/consume.py"))
        .args(["--brokers", &env.settings.kafka.brokers])
        .args(["--topics", &names.join(",")])
        .args(mode_args)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the downstream consumer failed ({}; 124 is the 240 s bound):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).expect("a JSON report")
}

/// A signed SMS from `from`; retried like Twilio on 503.
async fn text(http: &reqwest::Client, app: &TestApp, n: usize, from: &str) {
    let sid = unique_sid(n);
    let params = sms_with(
        n,
        &[
            ("From", from),
            ("MessageSid", &sid),
            ("SmsSid", &sid),
            ("SmsMessageSid", &sid),
        ],
    );
    assert_eq!(
        post_signed_retrying_503(http, &app.base_url, &params).await,
        200
    );
}

/// One pipeline run in `settings`' wire format; returns when every accepted message is
/// enriched and the projector has caught up.
async fn pipeline_run(env: &TestEnv, settings: &Settings) {
    let (phone, _) = cli::phones::link(&patient(settings), "+15105550177", "ana", true, false)
        .await
        .expect("link a sender");
    let app = TestApp::spawn(
        settings.clone(),
        &[Role::Ingress, Role::Enrich, Role::Projector],
    )
    .await;
    wait_phone_verified(env, &phone).await;
    let http = reqwest::Client::new();
    for i in 0..ACCEPTED {
        text(&http, &app, i, &phone).await;
    }
    for i in 0..REJECTED {
        text(&http, &app, 100 + i, "+15105550999").await;
    }
    wait_for(
        "every accepted message enriched",
        Duration::from_secs(120),
        || async {
            let enriched = read_full_records_to_end(env, &env.topic(topics::ENRICHMENTS))
                .await
                .iter()
                .filter(|r| r.event_type.as_deref() == Some("PartEnriched"))
                .count();
            (enriched >= ACCEPTED).then_some(())
        },
    )
    .await;
    // Our own readers read the same records: the projector holds every accepted message.
    let cql = env.cql().await;
    wait_for(
        "the projector to hold every accepted message",
        Duration::from_secs(60),
        || async { (count_rows(&cql, "messages_by_user").await == ACCEPTED as i64).then_some(()) },
    )
    .await;
    app.stop().await;
}

/// Records per topic and event type, as our own reader sees them, with their first bytes.
async fn what_we_wrote(env: &TestEnv, topics: &[&str]) -> BTreeMap<String, (usize, Vec<u8>)> {
    let mut out = BTreeMap::new();
    for t in topics {
        let records = read_full_records_to_end(env, &env.topic(t)).await;
        let firsts = records
            .iter()
            .map(|r| r.payload.first().copied().unwrap_or(0xFF))
            .collect();
        out.insert(env.topic(t), (records.len(), firsts));
    }
    out
}

fn decoded(report: &serde_json::Value, topic: &str) -> (u64, u64, BTreeMap<String, u64>) {
    let t = &report["topics"][topic];
    let types = t["types"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    (
        t["records"].as_u64().unwrap_or(0),
        t["decoded"].as_u64().unwrap_or(0),
        types,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fastavro_with_only_the_schema_files_decodes_every_record_of_a_pipeline_run() {
    let env = TestEnv::new().await;
    let mut settings = env.settings.clone();
    settings.ingress.sender_policy = SenderPolicy::Registered;
    assert_eq!(settings.kafka.wire_format, WireFormat::SingleObject);
    pipeline_run(&env, &settings).await;

    let ours = what_we_wrote(&env, ALL_TOPICS).await;
    let schemas = repo_root().join("schemas");
    let report = consume(
        &env,
        ALL_TOPICS,
        &[
            "--mode",
            "single-object",
            "--schemas",
            schemas.to_str().unwrap(),
        ],
    );
    let mut total = 0;
    for (topic, (count, firsts)) in &ours {
        assert!(firsts.iter().all(|b| *b == 0xC3), "{topic}: single-object");
        let (records, ok, _) = decoded(&report, topic);
        assert_eq!(
            records as usize, *count,
            "{topic}: fastavro saw every record"
        );
        assert_eq!(ok, records, "{topic}: fastavro decoded every record");
        total += count;
    }
    let (_, _, messages) = decoded(&report, &env.topic(topics::MESSAGES));
    assert_eq!(messages.get("MessageReceived"), Some(&(ACCEPTED as u64)));
    assert_eq!(messages.get("SenderRejected"), Some(&(REJECTED as u64)));
    let (_, _, enrichments) = decoded(&report, &env.topic(topics::ENRICHMENTS));
    assert_eq!(enrichments.get("PartEnriched"), Some(&(ACCEPTED as u64)));
    assert!(enrichments.get("ItemsProposed").is_some_and(|n| *n >= 1));
    let (_, _, phones) = decoded(&report, &env.topic(topics::PHONES));
    assert!(!phones.is_empty(), "the registry's events too");
    eprintln!("fastavro decoded all {total} records: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn confluent_avro_deserializer_decodes_every_record_written_in_confluent_mode() {
    let env = TestEnv::new().await;
    let mut settings = env.settings.clone();
    settings.ingress.sender_policy = SenderPolicy::Registered;
    settings.kafka.wire_format = WireFormat::Confluent;
    let client = confluent::RegistryClient::new(&settings.kafka.schema_registry).unwrap();
    let registered = confluent::register(
        &client,
        &repo_root().join("schemas"),
        &settings.kafka.topic_prefix,
    )
    .await
    .expect("schemas register (is the registry up? deploy/local/stack.sh up registry)");
    assert_eq!(registered.len(), ALL_TOPICS.len());
    pipeline_run(&env, &settings).await;

    let checked = [topics::MESSAGES, topics::ENRICHMENTS];
    let ours = what_we_wrote(&env, &checked).await;
    let report = consume(
        &env,
        &checked,
        &[
            "--mode",
            "confluent",
            "--registry",
            settings.kafka.schema_registry.url.expose_secret(),
        ],
    );
    for (topic, (count, firsts)) in &ours {
        assert!(
            firsts.iter().all(|b| *b == 0x00),
            "{topic}: Confluent wire format"
        );
        let (records, ok, _) = decoded(&report, topic);
        assert_eq!(
            records as usize, *count,
            "{topic}: the deserializer saw every record"
        );
        assert_eq!(
            ok, records,
            "{topic}: the deserializer decoded every record"
        );
    }
    let (_, _, messages) = decoded(&report, &env.topic(topics::MESSAGES));
    assert_eq!(messages.get("MessageReceived"), Some(&(ACCEPTED as u64)));
    assert_eq!(messages.get("SenderRejected"), Some(&(REJECTED as u64)));
    let (_, _, enrichments) = decoded(&report, &env.topic(topics::ENRICHMENTS));
    assert_eq!(enrichments.get("PartEnriched"), Some(&(ACCEPTED as u64)));
    assert!(enrichments.get("ItemsProposed").is_some_and(|n| *n >= 1));
}
