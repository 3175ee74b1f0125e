//! A real recorded voice note (Debian's pocketsphinx-testdata `goforward.raw`, wrapped in WAV)
//! sent as an MMS goes all the way through ingress → media → transcribe on the real Kafka,
//! and its transcript reads "go forward ten meters". The trace continues across the stages;
//! enrichment and the projector then finish the message, and its owner reads the transcript
//! and the progress through `GET /v1/messages/{sid}`.

mod common;

use std::time::Duration;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use common::*;
use smsflow::app::Role;
use smsflow::events::{decode, MediaStored, TranscriptReady};

const GOFORWARD: &str = "/usr/share/pocketsphinx/test/data/goforward.raw";

/// 16 kHz, 16-bit, mono PCM in a RIFF/WAVE container.
fn wav(pcm: &[u8]) -> Vec<u8> {
    let mut w = Vec::with_capacity(44 + pcm.len());
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + pcm.len() as u32).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&16_000u32.to_le_bytes());
    w.extend_from_slice(&32_000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(pcm.len() as u32).to_le_bytes());
    w.extend_from_slice(pcm);
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_voice_note_is_fetched_stored_transcribed_enriched_and_done() {
    let pcm = std::fs::read(GOFORWARD).expect("pocketsphinx-testdata is installed (make deps)");
    let note = wav(&pcm);
    let served = note.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let media_base = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route(
        "/voice.wav",
        get(move || {
            let body = served.clone();
            async move { ([(header::CONTENT_TYPE, "audio/wav")], body).into_response() }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let env = TestEnv::new().await;
    let store = tempfile::tempdir().unwrap();
    let mut settings = env.settings.clone();
    settings.media.allowed_hosts = vec!["127.0.0.1".into()];
    settings.media.credential_hosts = vec!["127.0.0.1".into()];
    settings.media.allow_addresses = vec!["127.0.0.1".parse().unwrap()];
    settings.media.store_url = format!("file://{}", store.path().display());
    settings.stages.instance_id = Some(format!("voice-{}", env.id));
    let app = TestApp::spawn(
        settings,
        &[
            Role::Ingress,
            Role::Media,
            Role::Transcribe,
            Role::Enrich,
            Role::Projector,
            Role::Api,
        ],
    )
    .await;

    let mut params = sms_params(5);
    params.retain(|(k, _)| k != "NumMedia" && k != "Body");
    params.push(("Body".into(), String::new()));
    params.push(("NumMedia".into(), "1".into()));
    params.push(("MediaUrl0".into(), format!("{media_base}/voice.wav")));
    params.push(("MediaContentType0".into(), "audio/wav".into()));
    let client = reqwest::Client::new();
    assert_eq!(
        post_signed(&client, &app.base_url, &params).await.status(),
        200
    );

    let transcripts = env.topic(smsflow::topics::TRANSCRIPTS);
    let ready: TranscriptReady = wait_for("the transcript", Duration::from_secs(120), || async {
        let records = read_committed_to_end(&env, &transcripts).await;
        records
            .first()
            .map(|b| decode::<TranscriptReady>(b).expect("a TranscriptReady"))
    })
    .await;
    assert_eq!(ready.text, "go forward ten meters");
    assert_eq!(ready.provider, "local");
    assert_eq!(ready.message_sid, as_map(&params)["MessageSid"]);

    let media = read_records_to_end(&env, &env.topic(smsflow::topics::MEDIA)).await;
    assert_eq!(media.len(), 1);
    let stored: MediaStored = decode(&media[0].0).unwrap();
    assert_eq!(
        std::fs::read(store.path().join(&stored.object_key)).unwrap(),
        note,
        "stored byte-identical"
    );
    assert_eq!(stored.object_key, ready.object_key);

    // One trace: the transcript and the stored media carry the webhook's trace id.
    let trace_id = |tp: &Option<String>| {
        tp.as_deref()
            .and_then(|t| t.split('-').nth(1))
            .map(str::to_owned)
    };
    let messages = read_records_to_end(&env, &env.topic(smsflow::topics::MESSAGES)).await;
    let transcripts = read_records_to_end(&env, &transcripts).await;
    let webhook_trace = trace_id(&messages[0].1).expect("MessageReceived carries a traceparent");
    assert_eq!(
        trace_id(&media[0].1).as_deref(),
        Some(webhook_trace.as_str()),
        "media continues the trace"
    );
    assert_eq!(
        trace_id(&transcripts[0].1).as_deref(),
        Some(webhook_trace.as_str()),
        "transcribe continues the trace"
    );

    // Enriched and projected: both parts done, the transcript readable by its owner (with
    // sender_policy "any", the owner is the sending number).
    let sid = as_map(&params)["MessageSid"].clone();
    let owner = jwt(&as_map(&params)["From"], false);
    let view: serde_json::Value =
        wait_for("the message to be done", Duration::from_secs(120), || {
            let (client, url, owner, sid) = (
                client.clone(),
                app.base_url.clone(),
                owner.clone(),
                sid.clone(),
            );
            async move {
                let v: serde_json::Value = client
                    .get(format!("{url}/v1/messages/{sid}"))
                    .bearer_auth(owner)
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                (v["done"] == true).then_some(v)
            }
        })
        .await;
    assert_eq!(view["parts_expected"], 2);
    let parts = view["parts"].as_array().unwrap();
    let part = |name: &str| parts.iter().find(|p| p["part"] == name).unwrap().clone();
    assert_eq!(part("body")["outcome"], "no_text");
    assert_eq!(part("media:0")["outcome"], "extracted");
    assert_eq!(part("media:0")["transcript"], "go forward ten meters");
    app.stop().await;
}
