//! The transcribe stage with the OpenAI-compatible provider against a real HTTP server on
//! 127.0.0.1: what reaches the provider, and how its answers become events or stage errors.
//! No Kafka; needs Debian's `ffmpeg` for decoding.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};

use smsflow::events::{encode, MediaStored, TranscriptFailed, TranscriptReady};
use smsflow::kafka::consume::Record;
use smsflow::kafka::stage_runner::handle_record;
use smsflow::stages::transcribe::{ProviderKind, TranscribeSettings, TranscribeStage};
use smsflow::stages::{Output, StageError};

type Handler = Arc<dyn Fn(HeaderMap, Bytes) -> (StatusCode, String) + Send + Sync>;

/// A fake `/v1/audio/transcriptions` on 127.0.0.1:0, counting requests.
async fn fake_openai(handler: Handler) -> (String, Arc<AtomicU32>) {
    let hits = Arc::new(AtomicU32::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/v1/audio/transcriptions",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            counter.fetch_add(1, Ordering::SeqCst);
            let handler = handler.clone();
            async move { handler(headers, body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), hits)
}

fn settings(base_url: String) -> TranscribeSettings {
    let mut s = TranscribeSettings {
        provider: ProviderKind::Openai,
        ..Default::default()
    };
    s.openai.base_url = base_url;
    s.openai.api_key = Some("sk-stage-test".into());
    s.openai.language = Some("en".into());
    s.retry.max_attempts = 2;
    s.retry.initial_backoff = Duration::from_millis(10);
    s.breaker.failure_threshold = 4;
    s.breaker.open_for = Duration::from_secs(60);
    s
}

/// One second of a 440 Hz tone at 8 kHz, as WAV: the stage must resample it to 16 kHz.
fn tone_wav_8k() -> Vec<u8> {
    let samples: Vec<u8> = (0..8000)
        .flat_map(|i| {
            let v = (f64::from(i) * 440.0 * std::f64::consts::TAU / 8000.0).sin() * 8000.0;
            (v as i16).to_le_bytes()
        })
        .collect();
    let len = samples.len() as u32;
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + len).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    for v in [
        16u32.to_le_bytes(),
        [1, 0, 1, 0],
        8000u32.to_le_bytes(),
        16_000u32.to_le_bytes(),
        [2, 0, 16, 0],
    ] {
        w.extend_from_slice(&v);
    }
    w.extend_from_slice(b"data");
    w.extend_from_slice(&len.to_le_bytes());
    w.extend_from_slice(&samples);
    w
}

async fn run(
    stage: &TranscribeStage,
    store: &InMemory,
    sid: &str,
) -> Result<Vec<Output>, StageError> {
    let media = MediaStored {
        event_id: format!("event-{sid}"),
        stored_at: 1,
        message_sid: sid.into(),
        media_index: 1,
        sender: "+15105550142".into(),
        user_id: None,
        received_at: 1,
        content_type: "audio/wav".into(),
        size_bytes: 0,
        sha256: "0".repeat(64),
        object_key: format!("media/{sid}/1"),
        source_url: "https://api.twilio.com/x".into(),
    };
    store
        .put(
            &ObjectPath::from(media.object_key.as_str()),
            PutPayload::from(tone_wav_8k()),
        )
        .await
        .expect("put");
    let input = Record {
        topic: smsflow::topics::MEDIA.into(),
        partition: 3,
        offset: 42,
        log_time_ms: 0,
        key: Some(media.sender.as_bytes().to_vec()),
        payload: Some(encode(&media).expect("encode")),
        event_type: Some("MediaStored".into()),
        headers: Vec::new(),
        trace: Default::default(),
    };
    handle_record(stage, &input).await
}

fn stage(s: &TranscribeSettings) -> (TranscribeStage, Arc<InMemory>) {
    let store = Arc::new(InMemory::new());
    let stage =
        TranscribeStage::new(s, store.clone()).expect("stage starts (is ffmpeg installed?)");
    (stage, store)
}

#[tokio::test]
async fn the_provider_gets_16k_mono_wav_and_its_text_becomes_transcript_ready() {
    let handler: Handler = Arc::new(|headers, body| {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let body = body.to_vec();
        // The file part: a WAV whose fmt chunk says 16 kHz mono 16-bit, one second long.
        let riff = body.windows(4).position(|w| w == b"RIFF");
        let ok = auth == "Bearer sk-stage-test"
            && riff.is_some_and(|at| {
                let h = &body[at..];
                h.len() > 44
                    && h[22..24] == [1, 0]
                    && h[24..28] == 16_000u32.to_le_bytes()
                    && h[34..36] == [16, 0]
                    && h[40..44] == 32_000u32.to_le_bytes()
            })
            && String::from_utf8_lossy(&body).contains("whisper-1");
        if ok {
            (
                StatusCode::OK,
                r#"{"text":"a tone, and nothing else"}"#.into(),
            )
        } else {
            (
                StatusCode::IM_A_TEAPOT,
                r#"{"error":{"message":"unexpected request"}}"#.into(),
            )
        }
    });
    let (base, hits) = fake_openai(handler).await;
    let (stage, store) = stage(&settings(base));
    let outputs = run(&stage, &store, "MMok").await.expect("handled");
    assert_eq!(outputs.len(), 1);
    let out = &outputs[0];
    assert_eq!(
        (out.topic, out.event_type()),
        (smsflow::topics::TRANSCRIPTS, "TranscriptReady")
    );
    assert_eq!(
        out.key, "+15105550142",
        "keyed by the sender until a user is known"
    );
    let t: &TranscriptReady = out.event().expect("a TranscriptReady");
    assert_eq!(t.text, "a tone, and nothing else");
    assert_eq!(t.provider, "openai");
    assert_eq!(t.model.as_deref(), Some("whisper-1"));
    assert_eq!(t.language.as_deref(), Some("en"));
    assert_eq!(t.audio_duration_ms, Some(1000));
    assert_eq!((t.message_sid.as_str(), t.media_index), ("MMok", 1));
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // A replay of the same input yields the same event id.
    let again = run(&stage, &store, "MMok").await.expect("handled");
    let t2: &TranscriptReady = again[0].event().expect("a TranscriptReady");
    assert_eq!(t.event_id, t2.event_id);
}

#[tokio::test]
async fn a_provider_400_becomes_transcript_failed_provider_rejected() {
    let handler: Handler = Arc::new(|_, _| {
        (
            StatusCode::BAD_REQUEST,
            r#"{"error":{"message":"Audio file is too short."}}"#.into(),
        )
    });
    let (base, hits) = fake_openai(handler).await;
    let (stage, store) = stage(&settings(base));
    let outputs = run(&stage, &store, "MMbad").await.expect("handled");
    assert_eq!(outputs[0].event_type(), "TranscriptFailed");
    let f: &TranscriptFailed = outputs[0].event().expect("a TranscriptFailed");
    assert_eq!(f.reason, "provider_rejected");
    assert!(
        f.detail.contains("Audio file is too short."),
        "{}",
        f.detail
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1, "a rejection is not retried");
}

#[tokio::test]
async fn an_outage_is_transient_then_the_open_breaker_answers_without_calling() {
    let handler: Handler = Arc::new(|_, _| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "down for maintenance".into(),
        )
    });
    let (base, hits) = fake_openai(handler).await;
    let (stage, store) = stage(&settings(base));
    // Two attempts per input, breaker threshold 4: two inputs open it.
    for sid in ["MMa", "MMb"] {
        match run(&stage, &store, sid).await {
            Err(StageError::Transient(msg)) => assert!(msg.contains("503"), "{msg}"),
            other => panic!("expected a transient failure, got {other:?}"),
        }
    }
    assert_eq!(hits.load(Ordering::SeqCst), 4);
    let started = Instant::now();
    for sid in ["MMc", "MMd", "MMe"] {
        match run(&stage, &store, sid).await {
            Err(StageError::Transient(msg)) => assert!(msg.contains("circuit breaker"), "{msg}"),
            other => panic!("expected a transient failure, got {other:?}"),
        }
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        4,
        "the open breaker kept calls away"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused fast: {:?}",
        started.elapsed()
    );
}
