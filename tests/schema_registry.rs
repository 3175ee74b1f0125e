//! The Confluent wire format against the real schema registry (Apicurio, local stack):
//! schemas as code (`smsflow schemas register|check`), schema evolution with old and new
//! consumers, and what producers do when the registry is away.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apache_avro::types::Value;
use apache_avro::Schema;
use tokio::net::{TcpListener, TcpStream};

use common::*;
use smsflow::app::Role;
use smsflow::config::Settings;
use smsflow::events::confluent::{self, Verdict};
use smsflow::events::{decode, decode_with_reader, Decoder, MessageReceived, WireFormat};
use smsflow::secrets::ExposeSecret;
use smsflow::topics;

/// The registry client for `settings`.
fn registry(settings: &Settings) -> confluent::RegistryClient {
    confluent::RegistryClient::new(&settings.kafka.schema_registry).unwrap()
}

fn schemas_dir() -> PathBuf {
    repo_root().join("schemas")
}

/// A copy of `schemas/` with one field appended to MessageReceived.
fn evolved_schemas(field: serde_json::Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(schemas_dir()).unwrap() {
        let path = entry.unwrap().path();
        let mut text = std::fs::read_to_string(&path).unwrap();
        if path.file_name().unwrap() == "MessageReceived.avsc" {
            let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
            json["fields"].as_array_mut().unwrap().push(field.clone());
            text = serde_json::to_string_pretty(&json).unwrap();
        }
        std::fs::write(dir.path().join(path.file_name().unwrap()), text).unwrap();
    }
    dir
}

/// Run the `smsflow` binary with this env's prefix; (exit code, stdout + stderr).
fn smsflow(env: &TestEnv, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .args(args)
        .envs(env.child_env())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("smsflow runs");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn sample(n: usize) -> MessageReceived {
    MessageReceived {
        event_id: format!("0190f1c2-0000-7000-8000-{n:012}"),
        received_at: 1_764_000_000_000_000 + n as i64,
        message_sid: format!("SM{n:032x}"),
        account_sid: "AC0123456789abcdef0123456789abcdef".into(),
        messaging_service_sid: None,
        from: "+15105550142".into(),
        to: "+14155550100".into(),
        body: format!("evolution {n}"),
        num_segments: 1,
        media: vec![],
        geo: None,
        sms_status: Some("received".into()),
        api_version: None,
        idempotency_token: None,
        user_id: Some("ana".into()),
        extra: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_register_sets_backward_compatibility_and_is_idempotent() {
    let env = TestEnv::new().await;
    let (code, out) = smsflow(&env, &["schemas", "register"]);
    assert_eq!(code, 0, "{out}");
    let (code, again) = smsflow(&env, &["schemas", "register"]);
    assert_eq!(code, 0, "{again}");
    assert_eq!(out, again, "registering twice changes nothing");
    let client = registry(&env.settings);
    for (base, _) in confluent::TOPIC_EVENTS {
        let subject = confluent::subject(&env.topic(base));
        assert!(out.contains(&subject), "{out}");
        assert_eq!(
            client
                .compatibility_level(&subject)
                .await
                .unwrap()
                .as_deref(),
            Some("BACKWARD"),
            "{subject}"
        );
        assert_eq!(client.latest(&subject).await.unwrap().unwrap().version, 1);
    }
    let (code, out) = smsflow(&env, &["schemas", "check"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.matches("unchanged").count(),
        confluent::TOPIC_EVENTS.len(),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incompatible_change_is_refused_by_schemas_check_with_the_subject_and_the_reason() {
    let env = TestEnv::new().await;
    let client = registry(&env.settings);
    confluent::register(&client, &schemas_dir(), &env.settings.kafka.topic_prefix)
        .await
        .unwrap();
    // A new required field: readers of the new schema cannot read the records already there.
    let bad = evolved_schemas(serde_json::json!({"name": "language", "type": "string"}));
    let dir = bad.path().to_str().unwrap();
    let (code, out) = smsflow(&env, &["schemas", "check", "--dir", dir]);
    println!("{out}");
    assert_eq!(code, 3, "non-zero exit:\n{out}");
    let subject = confluent::subject(&env.topic(topics::MESSAGES));
    let line = out
        .lines()
        .find(|l| l.starts_with("INCOMPATIBLE"))
        .unwrap_or_else(|| panic!("an INCOMPATIBLE line:\n{out}"));
    assert!(line.contains(&subject), "names the subject: {line}");
    assert!(
        line.contains("smsflow.events.MessageReceived"),
        "names the event: {line}"
    );
    assert!(
        line.contains("language") && line.contains("default"),
        "gives the reason: {line}"
    );
    assert_eq!(
        out.matches("INCOMPATIBLE").count(),
        1,
        "only that subject:\n{out}"
    );

    // `register` refuses it too, naming the subject, and the registry keeps version 1.
    let err = confluent::register(&client, bad.path(), &env.settings.kafka.topic_prefix)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&subject) && err.contains("language"), "{err}");
    assert_eq!(client.latest(&subject).await.unwrap().unwrap().version, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backward_compatible_change_registers_and_old_and_new_consumers_decode() {
    let env = TestEnv::new().await;
    let mut settings = env.settings.clone();
    settings.kafka.wire_format = WireFormat::Confluent;
    settings.kafka.produce_deadline = Duration::from_secs(14);
    let prefix = settings.kafka.topic_prefix.clone();
    let client = registry(&settings);
    confluent::register(&client, &schemas_dir(), &prefix)
        .await
        .unwrap();
    let topic = env.topic(topics::MESSAGES);
    let subject = confluent::subject(&topic);

    // An old producer (today's smsflow) writes v1.
    let producer = smsflow::kafka::EventProducer::new(&settings.kafka, "test-v1").unwrap();
    producer.ready().await.unwrap();
    producer
        .send(&topic, "ana", &sample(1))
        .await
        .expect("v1 record");

    // v2: an optional field with a default. `schemas check` accepts it, `register` adds it.
    let good = evolved_schemas(
        serde_json::json!({"name": "language", "type": ["null", "string"], "default": null}),
    );
    let report = confluent::check(&client, good.path(), &prefix)
        .await
        .unwrap();
    for s in &report.subjects {
        let expected = if s.subject == subject {
            Verdict::Compatible
        } else {
            Verdict::Unchanged
        };
        assert_eq!(s.verdict, expected, "{}", s.subject);
    }
    let (code, out) = smsflow(
        &env,
        &["schemas", "check", "--dir", good.path().to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out}");
    let v2 = confluent::register(&client, good.path(), &prefix)
        .await
        .unwrap();
    let v2_id = v2.iter().find(|r| r.subject == subject).unwrap().id;
    assert_eq!(client.latest(&subject).await.unwrap().unwrap().version, 2);

    // A new producer writes v2 (built here with apache-avro from the registered union).
    let v2_text = client.latest(&subject).await.unwrap().unwrap().schema;
    let v2_union = Schema::parse_str(&v2_text).unwrap();
    let Schema::Union(u) = &v2_union else {
        panic!("a union")
    };
    let v2_record = u.variants()[0].clone();
    let mut value = apache_avro::to_value(sample(2))
        .unwrap()
        .resolve(&Schema::parse_str(&standalone(&v2_record)).unwrap())
        .unwrap();
    if let Value::Record(fields) = &mut value {
        for (name, v) in fields.iter_mut() {
            if name == "language" {
                *v = Value::Union(1, Box::new(Value::String("pt".into())));
            }
        }
    }
    let body = apache_avro::to_avro_datum(&v2_union, Value::Union(0, Box::new(value))).unwrap();
    let mut bytes = vec![0u8];
    bytes.extend_from_slice(&v2_id.to_be_bytes());
    bytes.extend_from_slice(&body);
    producer
        .send_bytes(&topic, "ana", "MessageReceived", &bytes)
        .await
        .expect("v2 record");

    let records = read_committed_to_end(&env, &topic).await;
    assert_eq!(records.len(), 2);

    // The old consumer (this build's reader, v1) decodes both; v2's id is fetched once.
    let decoder = Decoder::new(&settings.kafka.schema_registry);
    for r in &records {
        decoder.prepare(r).await.unwrap();
    }
    let old: Vec<MessageReceived> = records.iter().map(|r| decode(r).unwrap()).collect();
    assert_eq!(old, vec![sample(1), sample(2)]);

    // A new consumer (reader v2) decodes both: the v1 record gets the default.
    #[derive(Debug, serde::Deserialize, serde::Serialize)]
    struct MessageReceivedV2 {
        body: String,
        language: Option<String>,
    }
    impl smsflow::events::Event for MessageReceivedV2 {
        const FULL_NAME: &'static str = "smsflow.events.MessageReceived";
        const NAME: &'static str = "MessageReceived";
    }
    let reader = Schema::parse_str(&standalone(&v2_record)).unwrap();
    let reg = smsflow::events::SchemaRegistry::builtin();
    let new: Vec<MessageReceivedV2> = records
        .iter()
        .map(|r| decode_with_reader(&reg, &reader, r).unwrap())
        .collect();
    assert_eq!(new[0].language, None);
    assert_eq!(new[1].language.as_deref(), Some("pt"));
    assert_eq!(new[1].body, "evolution 2");

    // And the Confluent deserializer, which takes each record's writer schema from the registry.
    let python = Command::new("bash")
        .arg(repo_root().join("tests/interop/python/venv.sh"))
        .output()
        .unwrap();
    assert!(python.status.success());
    let out = Command::new(String::from_utf8(python.stdout).unwrap().trim())
        .arg(repo_root().join("tests/interop/python/consume.py"))
        .args(["--brokers", &settings.kafka.brokers, "--topics", &topic])
        .args([
            "--mode",
            "confluent",
            "--registry",
            settings.kafka.schema_registry.url.expose_secret(),
        ])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("\"decoded\": 2"), "{report}");
}

/// A union branch as standalone JSON (the first branch defines every type it uses).
fn standalone(record: &Schema) -> String {
    serde_json::to_string(record).unwrap()
}

/// A TCP proxy in front of the real registry that a test can cut: after `cut`, open
/// connections are closed and new ones are counted and refused.
struct CuttableProxy {
    addr: std::net::SocketAddr,
    cut: Arc<std::sync::atomic::AtomicBool>,
    after_cut: Arc<AtomicUsize>,
    forwarded: Arc<AtomicUsize>,
    open: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl CuttableProxy {
    async fn start(upstream: &str) -> CuttableProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = CuttableProxy {
            addr: listener.local_addr().unwrap(),
            cut: Default::default(),
            after_cut: Default::default(),
            forwarded: Default::default(),
            open: Default::default(),
        };
        let (cut, after_cut, forwarded, open) = (
            proxy.cut.clone(),
            proxy.after_cut.clone(),
            proxy.forwarded.clone(),
            proxy.open.clone(),
        );
        let upstream = upstream.to_owned();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if cut.load(Ordering::SeqCst) {
                    after_cut.fetch_add(1, Ordering::SeqCst);
                    drop(inbound);
                    continue;
                }
                forwarded.fetch_add(1, Ordering::SeqCst);
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut out) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                open.lock().unwrap().push(task.abort_handle());
            }
        });
        proxy
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for t in self.open.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

fn registry_via(settings: &Settings, addr: std::net::SocketAddr) -> Settings {
    let mut s = settings.clone();
    let mut url = url::Url::parse(s.kafka.schema_registry.url.expose_secret()).unwrap();
    url.set_port(Some(addr.port())).unwrap();
    s.kafka.schema_registry.url = url.to_string().into();
    s.kafka.schema_registry.timeout = Duration::from_secs(2);
    s
}

async fn readyz(app: &TestApp) -> (u16, serde_json::Value) {
    let resp = reqwest::get(format!("{}/readyz", app.ops_url))
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_registry_down_at_start_confluent_producers_fail_readiness_and_store_nothing() {
    let env = TestEnv::new().await;
    let mut settings = env.settings.clone();
    settings.kafka.wire_format = WireFormat::Confluent;
    // A port nothing listens on: connection refused, like a registry that is down.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let settings = registry_via(&settings, closed);
    let app = TestApp::spawn(settings.clone(), &[Role::Ingress]).await;

    let (status, body) = readyz(&app).await;
    println!("{body}");
    assert_eq!(status, 503);
    let why = body["schema_registry"].as_str().unwrap_or_default();
    assert!(
        why.contains("confluent wire format")
            && why.contains("registry ids")
            && why.contains("did not answer"),
        "a clear message: {why}"
    );
    assert!(body["failed"].to_string().contains("schema_registry"));

    // A webhook is refused with 503 (Twilio retries), and nothing is appended.
    let http = reqwest::Client::new();
    let resp = post_signed(&http, &app.base_url, &sms_params(1)).await;
    assert_eq!(resp.status().as_u16(), 503);
    app.stop().await;
    assert!(read_committed_to_end(&env, &env.topic(topics::MESSAGES))
        .await
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn once_ids_are_cached_a_registry_outage_does_not_touch_the_hot_path() {
    let env = TestEnv::new().await;
    let mut settings = env.settings.clone();
    settings.kafka.wire_format = WireFormat::Confluent;
    let real = url::Url::parse(settings.kafka.schema_registry.url.expose_secret()).unwrap();
    confluent::register(
        &registry(&settings),
        &schemas_dir(),
        &settings.kafka.topic_prefix,
    )
    .await
    .unwrap();
    let proxy = CuttableProxy::start(&format!(
        "{}:{}",
        real.host_str().unwrap(),
        real.port().unwrap()
    ))
    .await;
    let settings = registry_via(&settings, proxy.addr);
    let app = TestApp::spawn(
        settings.clone(),
        &[Role::Ingress, Role::Enrich, Role::Projector],
    )
    .await;
    wait_for(
        "readiness with the ids cached",
        Duration::from_secs(60),
        || async { (readyz(&app).await.0 == 200).then_some(()) },
    )
    .await;
    assert!(
        proxy.forwarded.load(Ordering::SeqCst) > 0,
        "the ids came through the proxy"
    );

    proxy.cut();
    let http = reqwest::Client::new();
    let n = 20;
    for i in 0..n {
        assert_eq!(
            post_signed_retrying_503(&http, &app.base_url, &sms_params(i)).await,
            200,
            "webhook {i} during the outage"
        );
    }
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 200, "still ready: {body}");
    // The stage and the projector keep going too.
    wait_for(
        "every message enriched",
        Duration::from_secs(120),
        || async {
            let enriched = read_full_records_to_end(&env, &env.topic(topics::ENRICHMENTS))
                .await
                .iter()
                .filter(|r| r.event_type.as_deref() == Some("PartEnriched"))
                .count();
            (enriched >= n).then_some(())
        },
    )
    .await;
    let cql = env.cql().await;
    wait_for(
        "every message projected",
        Duration::from_secs(60),
        || async { (count_rows(&cql, "messages_by_user").await == n as i64).then_some(()) },
    )
    .await;
    app.stop().await;
    assert_eq!(
        proxy.after_cut.load(Ordering::SeqCst),
        0,
        "no registry connection was even attempted during the outage"
    );
    let records = read_committed_to_end(&env, &env.topic(topics::MESSAGES)).await;
    assert_eq!(records.len(), n);
    assert!(
        records.iter().all(|r| r[0] == 0x00),
        "Confluent wire format"
    );
}
