//! OpenAI-compatible `POST {base_url}/v1/audio/transcriptions` (OpenAI's Whisper, or a local
//! Whisper server): multipart `file`, `model`, optional `language`, `response_format=json`.

use futures::future::BoxFuture;
use reqwest::multipart::{Form, Part};
use serde::Deserialize;
use tracing::{field, instrument, Span};

use super::audio::Audio;
use super::config::TranscribeSettings;
use super::http;
use super::provider::{Provider, ProviderError, Transcript};

const NAME: &str = "openai";

use crate::secrets::{ExposeSecret, SecretString};

/// The OpenAI-compatible provider.
pub struct OpenAiProvider {
    client: reqwest::Client,
    endpoint: String,
    host: String,
    api_key: Option<SecretString>,
    model: String,
    language: Option<String>,
}

#[derive(Deserialize)]
struct Answer {
    text: String,
    #[serde(default)]
    language: Option<String>,
}

impl OpenAiProvider {
    /// A provider for `settings.openai`, sharing `client`'s connection pool.
    pub fn new(settings: &TranscribeSettings, client: reqwest::Client) -> OpenAiProvider {
        let s = &settings.openai;
        let base = s.base_url.trim_end_matches('/');
        OpenAiProvider {
            client,
            endpoint: format!("{base}/v1/audio/transcriptions"),
            host: host_of(base),
            api_key: s.api_key.clone().filter(|k| !k.expose_secret().is_empty()),
            model: s.model.clone(),
            language: s.language.clone().filter(|l| !l.is_empty()),
        }
    }

    #[instrument(
        name = "openai.transcriptions",
        skip_all,
        fields(
            otel.kind = "client",
            otel.name = "POST /v1/audio/transcriptions",
            http.request.method = "POST",
            server.address = %self.host,
            gen_ai.request.model = %self.model,
            audio_ms = audio.duration().as_millis() as u64,
            http.response.status_code = field::Empty,
        )
    )]
    async fn call(&self, audio: &Audio) -> Result<Transcript, ProviderError> {
        let wav = audio.wav();
        let len = wav.len() as u64;
        let file = Part::stream_with_length(wav, len)
            .file_name("audio.wav")
            .mime_str("audio/wav")
            .map_err(|e| http::transport(NAME, e))?;
        let mut form = Form::new()
            .part("file", file)
            .text("model", self.model.clone())
            .text("response_format", "json");
        if let Some(lang) = &self.language {
            form = form.text("language", lang.clone());
        }
        let mut req = self.client.post(&self.endpoint).multipart(form);
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key.expose_secret());
        }
        let resp = req.send().await.map_err(|e| http::transport(NAME, e))?;
        Span::current().record("http.response.status_code", resp.status().as_u16());
        let body = http::success_body(NAME, resp).await?;
        let answer: Answer =
            serde_json::from_slice(&body).map_err(|e| ProviderError::BadResponse {
                provider: NAME,
                detail: format!("expected {{\"text\": …}}: {e}"),
            })?;
        Ok(Transcript {
            text: answer.text.trim().to_owned(),
            confidence: None,
            language: answer.language.or_else(|| self.language.clone()),
        })
    }
}

impl Provider for OpenAiProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    fn model(&self) -> Option<&str> {
        Some(&self.model)
    }

    fn transcribe<'a>(
        &'a self,
        audio: &'a Audio,
    ) -> BoxFuture<'a, Result<Transcript, ProviderError>> {
        Box::pin(self.call(audio))
    }
}

/// `host[:port]` of a base URL, for spans.
pub(super) fn host_of(base: &str) -> String {
    url::Url::parse(base)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| {
                u.port()
                    .map_or_else(|| h.to_owned(), |p| format!("{h}:{p}"))
            })
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::transcribe::config::{ProviderKind, RetrySettings};
    use crate::stages::transcribe::provider::Resilient;
    use crate::stages::transcribe::test_server::{multipart_fields, serve, Reply};
    use axum::http::{HeaderMap, StatusCode};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    fn settings(base_url: String) -> TranscribeSettings {
        let mut s = TranscribeSettings {
            provider: ProviderKind::Openai,
            ..Default::default()
        };
        s.openai.base_url = base_url;
        s.openai.api_key = Some("sk-test".into());
        s.openai.model = "whisper-1".into();
        s.openai.language = Some("en".into());
        s.retry = RetrySettings {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(5),
        };
        s
    }

    fn provider(s: &TranscribeSettings) -> OpenAiProvider {
        OpenAiProvider::new(s, http::client(s).unwrap())
    }

    fn audio() -> Audio {
        Audio::from_pcm16(&vec![7u8; 32_000])
    }

    /// The wire format OpenAI documents: bearer auth, multipart with the WAV and fields.
    fn check_request(headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
        if auth != Some("Bearer sk-test") {
            return Err(format!("authorization was {auth:?}"));
        }
        let fields = multipart_fields(headers, body)?;
        let get = |name: &str| fields.iter().find(|f| f.name == name);
        let file = get("file").ok_or("no file part")?;
        if file.filename.as_deref() != Some("audio.wav") || &file.data[..4] != b"RIFF" {
            return Err(format!(
                "file part: {:?}, {} bytes",
                file.filename,
                file.data.len()
            ));
        }
        if file.data.len() != 44 + 32_000 {
            return Err(format!("file part holds {} bytes", file.data.len()));
        }
        for (name, want) in [
            ("model", "whisper-1"),
            ("language", "en"),
            ("response_format", "json"),
        ] {
            let got = get(name).map(|f| String::from_utf8_lossy(&f.data).into_owned());
            if got.as_deref() != Some(want) {
                return Err(format!("field {name} was {got:?}"));
            }
        }
        Ok(())
    }

    #[tokio::test]
    async fn sends_multipart_with_bearer_key_and_reads_the_text() {
        let addr = serve("/v1/audio/transcriptions", |_, headers, body| async move {
            match check_request(&headers, &body) {
                Ok(()) => Reply::json(StatusCode::OK, r#"{"text":" hello there "}"#),
                Err(e) => Reply::json(
                    StatusCode::IM_A_TEAPOT,
                    &format!(r#"{{"error":{{"message":"{e}"}}}}"#),
                ),
            }
        })
        .await;
        let t = provider(&settings(format!("http://{addr}")))
            .call(&audio())
            .await
            .unwrap();
        assert_eq!(t.text, "hello there");
        assert_eq!(t.language.as_deref(), Some("en"));
    }

    #[tokio::test]
    async fn a_bad_request_is_a_rejection_with_the_providers_message() {
        let addr = serve("/v1/audio/transcriptions", |_, _, _| async {
            Reply::json(
                StatusCode::BAD_REQUEST,
                r#"{"error":{"message":"Invalid file format."}}"#,
            )
        })
        .await;
        let e = provider(&settings(format!("http://{addr}")))
            .call(&audio())
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ProviderError::Rejected { status: 400, detail, .. } if detail == "Invalid file format."),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_wrong_key_is_not_blamed_on_the_audio() {
        let addr = serve("/v1/audio/transcriptions", |_, _, _| async {
            Reply::json(
                StatusCode::UNAUTHORIZED,
                r#"{"error":{"message":"Incorrect API key"}}"#,
            )
        })
        .await;
        let e = provider(&settings(format!("http://{addr}")))
            .call(&audio())
            .await
            .unwrap_err();
        assert!(
            matches!(e, ProviderError::Misconfigured { status: 401, .. }),
            "{e}"
        );
        assert!(!e.is_permanent());
        assert!(e.to_string().contains("transcribe.openai.api_key"), "{e}");
    }

    #[tokio::test]
    async fn rate_limited_with_retry_after_then_succeeds() {
        let hits = Arc::new(AtomicU32::new(0));
        let h = hits.clone();
        let addr = serve("/v1/audio/transcriptions", move |_, _, _| {
            let n = h.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Reply::json(
                        StatusCode::TOO_MANY_REQUESTS,
                        r#"{"error":{"message":"slow down"}}"#,
                    )
                    .header("retry-after", "1")
                } else {
                    Reply::json(StatusCode::OK, r#"{"text":"after the wait"}"#)
                }
            }
        })
        .await;
        let s = settings(format!("http://{addr}"));
        let r = Resilient::new(Box::new(provider(&s)), 2, s.retry.clone(), &s.breaker);
        let started = std::time::Instant::now();
        let t = r.transcribe(&audio()).await.unwrap();
        assert_eq!(t.text, "after the wait");
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "Retry-After: 1 was not honoured"
        );
    }

    #[tokio::test]
    async fn service_unavailable_half_the_time_still_transcribes_everything() {
        let hits = Arc::new(AtomicU32::new(0));
        let h = hits.clone();
        let addr = serve("/v1/audio/transcriptions", move |_, _, _| {
            let n = h.fetch_add(1, Ordering::SeqCst);
            async move {
                if n % 2 == 0 {
                    Reply::json(StatusCode::SERVICE_UNAVAILABLE, "overloaded")
                } else {
                    Reply::json(StatusCode::OK, r#"{"text":"fine"}"#)
                }
            }
        })
        .await;
        let s = settings(format!("http://{addr}"));
        let r = Resilient::new(Box::new(provider(&s)), 2, s.retry.clone(), &s.breaker);
        for _ in 0..10 {
            assert_eq!(r.transcribe(&audio()).await.unwrap().text, "fine");
        }
        assert_eq!(
            hits.load(Ordering::SeqCst),
            20,
            "one retry per transcription"
        );
    }

    #[tokio::test]
    async fn a_dead_endpoint_opens_the_breaker_and_stops_calling_it() {
        let hits = Arc::new(AtomicU32::new(0));
        let h = hits.clone();
        let addr = serve("/v1/audio/transcriptions", move |_, _, _| {
            h.fetch_add(1, Ordering::SeqCst);
            async { Reply::json(StatusCode::BAD_GATEWAY, "no upstream") }
        })
        .await;
        let mut s = settings(format!("http://{addr}"));
        s.retry.max_attempts = 2;
        s.breaker.failure_threshold = 4;
        let r = Resilient::new(Box::new(provider(&s)), 2, s.retry.clone(), &s.breaker);
        for _ in 0..2 {
            let e = r.transcribe(&audio()).await.unwrap_err();
            assert!(
                matches!(e, ProviderError::Unavailable { status: 502, .. }),
                "{e}"
            );
        }
        for _ in 0..5 {
            let e = r.transcribe(&audio()).await.unwrap_err();
            assert!(matches!(e, ProviderError::CircuitOpen { .. }), "{e}");
        }
        assert_eq!(
            hits.load(Ordering::SeqCst),
            4,
            "only the calls before the breaker opened"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_transport_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let e = provider(&settings(format!("http://{addr}")))
            .call(&audio())
            .await
            .unwrap_err();
        assert!(matches!(e, ProviderError::Transport { .. }), "{e}");
    }
}
