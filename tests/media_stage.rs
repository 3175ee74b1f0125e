//! The media stage against a media server inside the harness: attachments are stored
//! byte-identical with their SHA-256; private addresses, foreign hosts, oversized and lying
//! bodies and trickling servers are refused with a named reason; credentials go to Twilio's
//! host only; and a stage process killed mid-run stores each attachment exactly once.

mod common;

use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as AxPath, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::StreamExt;
use sha2::{Digest, Sha256};

use common::*;
use smsflow::events::{decode, encode, MediaRef, MediaRejected, MediaStored, MessageReceived};
use smsflow::ingress::form;
use smsflow::kafka::consume::Record;
use smsflow::kafka::stage_runner::handle_record;
use smsflow::stages::media::{MediaSettings, MediaStage};
use smsflow::stages::StageError;

/// Requests the media server saw: (path, had an Authorization header).
type Seen = Arc<Mutex<Vec<(String, bool)>>>;

fn jpeg() -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F', 0];
    b.extend((0..200_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8));
    b
}

fn ogg() -> Vec<u8> {
    let mut b = b"OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00".to_vec();
    b.extend((0..50_000u32).map(|i| (i.wrapping_mul(40503) >> 7) as u8));
    b
}

fn vcard() -> Vec<u8> {
    b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Dana Reyes\r\nTEL;TYPE=CELL:+15105550142\r\nEMAIL:dana@acme.io\r\nEND:VCARD\r\n".to_vec()
}

fn pdf() -> Vec<u8> {
    let mut b = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    b.extend(std::iter::repeat_n(b'x', 4096));
    b
}

async fn media(
    State((seen, port)): State<(Seen, u16)>,
    AxPath(name): AxPath<String>,
    headers: HeaderMap,
) -> Response {
    seen.lock()
        .unwrap()
        .push((name.clone(), headers.contains_key(header::AUTHORIZATION)));
    let typed =
        |ct: &'static str, body: Vec<u8>| ([(header::CONTENT_TYPE, ct)], body).into_response();
    match name.as_str() {
        "jpeg" => typed("image/jpeg", jpeg()),
        "ogg" => typed("audio/ogg", ogg()),
        "vcard" => typed("text/vcard", vcard()),
        "pdf-as-jpeg" => typed("image/jpeg", pdf()),
        "big" => {
            // 50 MiB, generated as it is sent.
            let head = futures::stream::once(async { Ok::<_, std::io::Error>(jpeg()) });
            let chunks = head.chain(
                futures::stream::iter(0..800)
                    .map(|_| Ok::<_, std::io::Error>(vec![0xFFu8; 64 * 1024])),
            );
            (
                [(header::CONTENT_TYPE, "image/jpeg")],
                Body::from_stream(chunks),
            )
                .into_response()
        }
        "trickle" => {
            let first =
                futures::stream::once(async { Ok::<_, std::io::Error>(jpeg()[..16].to_vec()) });
            let rest = futures::stream::iter(0..100).then(|_| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                Ok::<_, std::io::Error>(vec![0u8])
            });
            (
                [(header::CONTENT_TYPE, "image/jpeg")],
                Body::from_stream(first.chain(rest)),
            )
                .into_response()
        }
        "redirect-private" => (
            StatusCode::FOUND,
            [(header::LOCATION, "http://10.0.0.1/media/jpeg".to_string())],
        )
            .into_response(),
        "redirect-metadata" => (
            StatusCode::FOUND,
            [(
                header::LOCATION,
                "http://169.254.169.254/latest/meta-data/".to_string(),
            )],
        )
            .into_response(),
        "redirect-localhost" => (
            StatusCode::FOUND,
            [(
                header::LOCATION,
                format!("http://localhost:{port}/media/jpeg"),
            )],
        )
            .into_response(),
        "unavailable" => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Start the harness media server; returns its base URL and the request log.
async fn media_server() -> (String, Seen, u16) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route("/media/{name}", get(media))
        .with_state((seen.clone(), port));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://127.0.0.1:{port}"), seen, port)
}

fn settings(store: &std::path::Path) -> MediaSettings {
    MediaSettings {
        allowed_hosts: vec![
            "127.0.0.1".into(),
            "localhost".into(),
            "10.0.0.1".into(),
            "169.254.169.254".into(),
        ],
        credential_hosts: vec!["127.0.0.1".into()],
        allow_addresses: vec![IpAddr::from([127, 0, 0, 1]), "::1".parse().unwrap()],
        read_timeout: Duration::from_secs(1),
        total_timeout: Duration::from_secs(20),
        store_url: format!("file://{}", store.display()),
        ..MediaSettings::default()
    }
}

fn stage(settings: &MediaSettings) -> MediaStage {
    MediaStage::new(settings, Some("ACtest".into()), Some("secret-token".into())).unwrap()
}

fn mms(urls: &[(String, &str)]) -> Record {
    let mut ev =
        form::message_received(&sms_params(1), "ev".into(), 1_764_000_000_000_000, None).unwrap();
    ev.message_sid = format!("MM{}", fastrand_suffix());
    ev.media = urls
        .iter()
        .map(|(u, ct)| MediaRef {
            url: u.clone(),
            content_type: ct.to_string(),
        })
        .collect();
    Record {
        topic: "t".into(),
        partition: 0,
        offset: 0,
        log_time_ms: 0,
        key: Some(ev.from.as_bytes().to_vec()),
        payload: Some(encode(&ev).unwrap()),
        event_type: Some("MessageReceived".into()),
        headers: Vec::new(),
        trace: Default::default(),
    }
}

fn rejection(out: &smsflow::stages::Output) -> MediaRejected {
    assert_eq!(out.event_type(), "MediaRejected", "expected a rejection");
    out.event::<MediaRejected>().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_attachments_are_stored_byte_identical_with_their_sha256() {
    let (base, seen, _) = media_server().await;
    let dir = tempfile::tempdir().unwrap();
    let stage = stage(&settings(dir.path()));
    let input = mms(&[
        (format!("{base}/media/jpeg"), "image/jpeg"),
        (format!("{base}/media/ogg"), "audio/ogg"),
        (format!("{base}/media/vcard"), "text/vcard"),
    ]);
    let outputs = handle_record(&stage, &input).await.unwrap();
    assert_eq!(outputs.len(), 3);
    for (out, original) in outputs.iter().zip([jpeg(), ogg(), vcard()]) {
        assert_eq!(out.event_type(), "MediaStored");
        let ev: &MediaStored = out.event().unwrap();
        assert_eq!(ev.sha256, hex::encode(Sha256::digest(&original)));
        assert_eq!(ev.size_bytes, original.len() as i64);
        let stored = std::fs::read(dir.path().join(&ev.object_key)).unwrap();
        assert!(
            stored == original,
            "stored bytes differ for {}",
            ev.object_key
        );
    }
    assert!(
        seen.lock().unwrap().iter().all(|(_, auth)| *auth),
        "Twilio's own host gets basic auth"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_or_bad_media_is_rejected_with_a_named_reason() {
    let (base, _, port) = media_server().await;
    let dir = tempfile::tempdir().unwrap();
    let stage = stage(&settings(dir.path()));
    let cases = [
        (
            "http://169.254.169.254/latest/meta-data/".to_string(),
            "image/jpeg",
            "forbidden_address",
        ),
        (
            format!("{base}/media/redirect-private"),
            "image/jpeg",
            "forbidden_address",
        ),
        (
            format!("{base}/media/redirect-metadata"),
            "image/jpeg",
            "forbidden_address",
        ),
        (
            "http://media.evil.example/media/jpeg".to_string(),
            "image/jpeg",
            "host_not_allowed",
        ),
        (format!("{base}/media/big"), "image/jpeg", "too_large"),
        (format!("{base}/media/trickle"), "image/jpeg", "timeout"),
        (
            format!("{base}/media/pdf-as-jpeg"),
            "image/jpeg",
            "content_mismatch",
        ),
        (
            format!("{base}/media/jpeg"),
            "application/x-msdownload",
            "content_type_not_allowed",
        ),
        (
            format!("http://[::ffff:10.0.0.1]:{port}/media/jpeg"),
            "image/jpeg",
            "forbidden_address",
        ),
    ];
    for (url, ct, reason) in cases {
        let started = std::time::Instant::now();
        let out = handle_record(&stage, &mms(&[(url.clone(), ct)]))
            .await
            .unwrap();
        let r = rejection(&out[0]);
        assert_eq!(r.reason, reason, "{url}: {}", r.detail);
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{url} took {:?}",
            started.elapsed()
        );
    }
    assert!(
        std::fs::read_dir(dir.path())
            .map(|d| d.count())
            .unwrap_or(0)
            <= 1,
        "nothing refused was kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_is_refused_without_the_test_allowance() {
    let (base, seen, _) = media_server().await;
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.allow_addresses.clear();
    let out = handle_record(
        &stage(&s),
        &mms(&[(format!("{base}/media/jpeg"), "image/jpeg")]),
    )
    .await
    .unwrap();
    assert_eq!(rejection(&out[0]).reason, "forbidden_address");
    assert!(
        seen.lock().unwrap().is_empty(),
        "no request reached the server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_cross_to_another_host() {
    let (base, seen, _) = media_server().await;
    let dir = tempfile::tempdir().unwrap();
    let out = handle_record(
        &stage(&settings(dir.path())),
        &mms(&[(format!("{base}/media/redirect-localhost"), "image/jpeg")]),
    )
    .await
    .unwrap();
    assert_eq!(out[0].event_type(), "MediaStored");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            ("redirect-localhost".to_string(), true),
            ("jpeg".to_string(), false)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_5xx_is_transient_and_poison_is_poison() {
    let (base, _, _) = media_server().await;
    let dir = tempfile::tempdir().unwrap();
    let stage = stage(&settings(dir.path()));
    let err = handle_record(
        &stage,
        &mms(&[(format!("{base}/media/unavailable"), "image/jpeg")]),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StageError::Transient(_)), "{err}");
    let mut garbage = mms(&[]);
    garbage.payload = Some(b"garbage".to_vec());
    assert!(matches!(
        handle_record(&stage, &garbage).await,
        Err(StageError::Poison(_))
    ));
}

fn spawn_media_stage(env: &TestEnv, store: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .args(["serve", "--role", "media"])
        .envs(env.child_env())
        .env("SMSFLOW_STAGES__INSTANCE_ID", "media-test-0")
        .env("SMSFLOW_STAGES__BATCH_MAX", "20")
        .env("SMSFLOW_MEDIA__ALLOWED_HOSTS", "[\"127.0.0.1\"]")
        .env("SMSFLOW_MEDIA__CREDENTIAL_HOSTS", "[\"127.0.0.1\"]")
        .env("SMSFLOW_MEDIA__ALLOW_ADDRESSES", "[\"127.0.0.1\"]")
        .env(
            "SMSFLOW_MEDIA__STORE_URL",
            format!("file://{}", store.display()),
        )
        .env("OTEL_SDK_DISABLED", "true")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_stage_killed_mid_run_stores_each_attachment_exactly_once() {
    let env = TestEnv::new().await;
    let (base, _, _) = media_server().await;
    let dir = tempfile::tempdir().unwrap();
    let producer = env.fixture_producer();
    let topic = env.topic(smsflow::topics::MESSAGES);
    let n = 500;
    let sends: Vec<_> = futures::stream::iter(0..n)
        .map(|i| {
            let (producer, topic, base) = (&producer, &topic, &base);
            async move {
                let mut ev: MessageReceived =
                    form::message_received(&sms_params(i), format!("ev-{i}"), 1, None).unwrap();
                ev.message_sid = format!("MM{i:032x}");
                ev.media = vec![MediaRef {
                    url: format!("{base}/media/jpeg"),
                    content_type: "image/jpeg".into(),
                }];
                producer.send(topic, ev.partition_key(), &ev).await
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    if let Some(Err(e)) = sends.iter().find(|r| r.is_err()) {
        panic!("producing the MMS events failed: {e}");
    }

    let media_topic = env.topic(smsflow::topics::MEDIA);
    let mut child = spawn_media_stage(&env, dir.path());
    let probe: rdkafka::consumer::StreamConsumer = smsflow::kafka::client::consumer(
        &env.settings.kafka,
        "probe",
        &format!("t{}-probe", env.id),
    )
    .create()
    .unwrap();
    rdkafka::consumer::Consumer::subscribe(&probe, &[&media_topic]).unwrap();
    tokio::time::timeout(Duration::from_secs(90), probe.recv())
        .await
        .expect("first MediaStored")
        .unwrap();
    child.kill().unwrap();
    let _ = child.wait();

    let mut child = spawn_media_stage(&env, dir.path());
    wait_for_zero_lag(
        &env,
        &format!("{}smsflow-media", env.settings.kafka.topic_prefix),
        &topic,
    )
    .await;
    let outputs = read_committed_to_end(&env, &media_topic).await;
    let mut per_sid = std::collections::HashMap::<String, usize>::new();
    for b in &outputs {
        let ev: MediaStored = decode(b).expect("only MediaStored expected");
        *per_sid
            .entry(format!("{}/{}", ev.message_sid, ev.media_index))
            .or_default() += 1;
    }
    assert_eq!(per_sid.len(), n, "one MediaStored per attachment");
    assert!(per_sid.values().all(|c| *c == 1), "none doubled");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}
