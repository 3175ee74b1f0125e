//! A flaky speech-to-text provider (503 half the time) behind the transcribe stage on the real
//! Kafka: every input ends up either transcribed or dead-lettered, never both, never neither.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};
use tokio_util::sync::CancellationToken;

use common::*;
use smsflow::events::{decode, DeadLetter, MediaStored, TranscriptReady};
use smsflow::kafka::stage_runner::run_stage;
use smsflow::stages::transcribe::{ProviderKind, TranscribeStage};

/// One second of a 440 Hz tone, 8 kHz 16-bit mono WAV.
fn tone_wav() -> Vec<u8> {
    let samples: Vec<u8> = (0..8000u32)
        .flat_map(|i| {
            (((f64::from(i) * 440.0 * std::f64::consts::TAU / 8000.0).sin() * 8000.0) as i16)
                .to_le_bytes()
        })
        .collect();
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + samples.len() as u32).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&[1, 0, 1, 0]);
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&16_000u32.to_le_bytes());
    w.extend_from_slice(&[2, 0, 16, 0]);
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(samples.len() as u32).to_le_bytes());
    w.extend_from_slice(&samples);
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_provider_failing_half_the_time_every_input_is_transcribed_or_dead_lettered() {
    // The fake provider speaks OpenAI's wire format and fails at random, half the time.
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let app = Router::new().route(
        "/v1/audio/transcriptions",
        post(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                if fastrand::bool() {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        r#"{"error":{"message":"overloaded"}}"#.to_string(),
                    )
                } else {
                    (StatusCode::OK, r#"{"text":"a tone"}"#.to_string())
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let env = TestEnv::new().await;
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> =
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    let mut settings = env.settings.clone();
    settings.stages.instance_id = Some(format!("flaky-{}", env.id));
    settings.stages.max_attempts = 2;
    settings.stages.backoff_initial = Duration::from_millis(10);
    settings.stages.backoff_max = Duration::from_millis(50);
    settings.transcribe.provider = ProviderKind::Openai;
    settings.transcribe.openai.base_url = base;
    settings.transcribe.openai.api_key = Some("sk-test".into());
    settings.transcribe.retry.max_attempts = 1;
    settings.transcribe.retry.initial_backoff = Duration::from_millis(10);
    settings.transcribe.breaker.failure_threshold = 10_000;

    let n = 30;
    let producer = env.fixture_producer();
    let topic = env.topic(smsflow::topics::MEDIA);
    for i in 0..n {
        let ev = MediaStored {
            event_id: format!("media-{i}"),
            stored_at: 1,
            message_sid: format!("MM{i:032x}"),
            media_index: 0,
            sender: format!("+1510555{:04}", i % 7),
            user_id: None,
            received_at: 1,
            content_type: "audio/wav".into(),
            size_bytes: 0,
            sha256: "0".repeat(64),
            object_key: format!("media/MM{i:032x}/0"),
            source_url: "https://api.twilio.com/x".into(),
        };
        store
            .put(
                &ObjectPath::from(ev.object_key.as_str()),
                PutPayload::from(tone_wav()),
            )
            .await
            .unwrap();
        producer
            .send(&topic, ev.partition_key(), &ev)
            .await
            .unwrap();
    }

    let stage = TranscribeStage::new(&settings.transcribe, store).unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_stage(
        settings.kafka.clone(),
        settings.stages.clone(),
        Arc::new(stage),
        shutdown.clone(),
    ));
    wait_for_zero_lag(
        &env,
        &format!("{}smsflow-transcribe", settings.kafka.topic_prefix),
        &topic,
    )
    .await;
    shutdown.cancel();
    task.await.unwrap().unwrap();

    let mut outcome: HashMap<String, Vec<&'static str>> = HashMap::new();
    for b in read_committed_to_end(&env, &env.topic(smsflow::topics::TRANSCRIPTS)).await {
        let t: TranscriptReady = decode(&b).expect("only TranscriptReady here");
        assert_eq!(t.text, "a tone");
        outcome
            .entry(t.message_sid)
            .or_default()
            .push("transcribed");
    }
    for b in read_committed_to_end(&env, &env.topic(smsflow::topics::DEADLETTER)).await {
        let l: DeadLetter = decode(&b).unwrap();
        assert_eq!(l.stage, "transcribe");
        assert_eq!(l.error_kind, "retries_exhausted");
        let original: MediaStored = decode(l.original_value.as_deref().unwrap()).unwrap();
        outcome
            .entry(original.message_sid)
            .or_default()
            .push("dead-lettered");
    }
    assert_eq!(outcome.len(), n, "every input has an outcome");
    assert!(
        outcome.values().all(|v| v.len() == 1),
        "exactly one outcome each: {outcome:?}"
    );
    let transcribed = outcome.values().filter(|v| v[0] == "transcribed").count();
    println!(
        "flaky provider: {transcribed} transcribed, {} dead-lettered, {} provider calls",
        n - transcribed,
        calls.load(Ordering::SeqCst)
    );
    assert!(
        calls.load(Ordering::SeqCst) as usize > n,
        "failures were retried"
    );
}
