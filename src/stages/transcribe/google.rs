//! Google Speech-to-Text v1 `POST {base_url}/v1/speech:recognize?key=…`: LINEAR16 16 kHz
//! audio inline as base64, answers `results[].alternatives[0].transcript/confidence`.

use base64::Engine;
use futures::future::BoxFuture;
use serde::Deserialize;
use tracing::{field, instrument, Span};

use super::audio::{Audio, SAMPLE_RATE};
use super::config::TranscribeSettings;
use super::http;
use super::openai::host_of;
use super::provider::{Provider, ProviderError, Transcript};

use crate::secrets::{ExposeSecret, SecretString};

const NAME: &str = "google";

/// The Google Speech-to-Text provider.
pub struct GoogleProvider {
    client: reqwest::Client,
    endpoint: String,
    host: String,
    api_key: SecretString,
    language_code: String,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    results: Vec<RecognitionResult>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecognitionResult {
    #[serde(default)]
    alternatives: Vec<Alternative>,
    #[serde(default)]
    language_code: Option<String>,
}

#[derive(Deserialize)]
struct Alternative {
    #[serde(default)]
    transcript: String,
    #[serde(default)]
    confidence: Option<f64>,
}

impl GoogleProvider {
    /// A provider for `settings.google`, sharing `client`'s connection pool.
    pub fn new(settings: &TranscribeSettings, client: reqwest::Client) -> GoogleProvider {
        let s = &settings.google;
        let base = s.base_url.trim_end_matches('/');
        GoogleProvider {
            client,
            endpoint: format!("{base}/v1/speech:recognize"),
            host: host_of(base),
            api_key: s.api_key.clone().unwrap_or_default(),
            language_code: s.language_code.clone(),
        }
    }

    #[instrument(
        name = "google.recognize",
        skip_all,
        fields(
            otel.kind = "client",
            otel.name = "POST /v1/speech:recognize",
            http.request.method = "POST",
            server.address = %self.host,
            audio_ms = audio.duration().as_millis() as u64,
            http.response.status_code = field::Empty,
        )
    )]
    async fn call(&self, audio: &Audio) -> Result<Transcript, ProviderError> {
        let pcm = audio.pcm();
        let language_code = self.language_code.clone();
        // Base64 of up to a minute of audio: a few MB of CPU work, kept off the runtime.
        let body = tokio::task::spawn_blocking(move || {
            serde_json::to_vec(&serde_json::json!({
                "config": {
                    "encoding": "LINEAR16",
                    "sampleRateHertz": SAMPLE_RATE,
                    "languageCode": language_code,
                },
                "audio": { "content": base64::engine::general_purpose::STANDARD.encode(&pcm) },
            }))
        })
        .await
        .map_err(|e| ProviderError::Local {
            detail: format!("encoding the request failed: {e}"),
        })?
        .map_err(|e| ProviderError::Local {
            detail: format!("encoding the request failed: {e}"),
        })?;
        let resp = self
            .client
            .post(&self.endpoint)
            .query(&[("key", self.api_key.expose_secret())])
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| http::transport(NAME, e))?;
        Span::current().record("http.response.status_code", resp.status().as_u16());
        let body = http::success_body(NAME, resp).await?;
        let answer: Answer =
            serde_json::from_slice(&body).map_err(|e| ProviderError::BadResponse {
                provider: NAME,
                detail: format!("expected {{\"results\": [...]}}: {e}"),
            })?;
        Ok(self.transcript(answer))
    }

    fn transcript(&self, answer: Answer) -> Transcript {
        let mut words = Vec::new();
        let mut confidences = Vec::new();
        let mut language = None;
        for result in answer.results {
            language = language.or(result.language_code);
            let Some(best) = result.alternatives.into_iter().next() else {
                continue;
            };
            let text = best.transcript.trim();
            if !text.is_empty() {
                words.push(text.to_owned());
            }
            // Google documents 0.0 as "not set".
            if let Some(c) = best.confidence.filter(|c| *c > 0.0) {
                confidences.push(c);
            }
        }
        let confidence = (!confidences.is_empty())
            .then(|| confidences.iter().sum::<f64>() / confidences.len() as f64);
        Transcript {
            text: words.join(" "),
            confidence,
            language: language.or_else(|| Some(self.language_code.clone())),
        }
    }
}

impl Provider for GoogleProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    fn model(&self) -> Option<&str> {
        None
    }

    fn transcribe<'a>(
        &'a self,
        audio: &'a Audio,
    ) -> BoxFuture<'a, Result<Transcript, ProviderError>> {
        Box::pin(self.call(audio))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::transcribe::config::ProviderKind;
    use crate::stages::transcribe::provider::Resilient;
    use crate::stages::transcribe::test_server::{serve, Reply};
    use axum::http::{HeaderMap, StatusCode, Uri};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    fn settings(base_url: String) -> TranscribeSettings {
        let mut s = TranscribeSettings {
            provider: ProviderKind::Google,
            max_audio_duration: Duration::from_secs(60),
            ..Default::default()
        };
        s.google.base_url = base_url;
        s.google.api_key = Some("AIza-test".into());
        s.retry.initial_backoff = Duration::from_millis(10);
        s
    }

    fn provider(s: &TranscribeSettings) -> GoogleProvider {
        GoogleProvider::new(s, http::client(s).unwrap())
    }

    /// Samples 0, 1, 2, … as s16le, so the decoded content can be checked exactly.
    fn audio() -> Audio {
        let pcm: Vec<u8> = (0..16_000i16).flat_map(|s| s.to_le_bytes()).collect();
        Audio::from_pcm16(&pcm)
    }

    fn check_request(uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
        if uri.query() != Some("key=AIza-test") {
            return Err(format!("query was {:?}", uri.query()));
        }
        let ct = headers.get("content-type").and_then(|v| v.to_str().ok());
        if ct != Some("application/json") {
            return Err(format!("content-type was {ct:?}"));
        }
        let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let config = &v["config"];
        if config["encoding"] != "LINEAR16"
            || config["sampleRateHertz"] != 16000
            || config["languageCode"] != "en-US"
        {
            return Err(format!("config was {config}"));
        }
        let content = v["audio"]["content"].as_str().ok_or("no audio.content")?;
        let pcm = base64::engine::general_purpose::STANDARD
            .decode(content)
            .map_err(|e| e.to_string())?;
        let expected: Vec<u8> = (0..16_000i16).flat_map(|s| s.to_le_bytes()).collect();
        if pcm != expected {
            return Err(format!(
                "audio.content decodes to {} bytes of something else",
                pcm.len()
            ));
        }
        Ok(())
    }

    #[tokio::test]
    async fn posts_linear16_base64_with_the_key_and_joins_results() {
        let addr = serve("/v1/speech:recognize", |uri, headers, body| async move {
            match check_request(&uri, &headers, &body) {
                Ok(()) => Reply::json(
                    StatusCode::OK,
                    r#"{"results":[
                        {"alternatives":[{"transcript":"go forward","confidence":0.9},{"transcript":"no forward","confidence":0.1}],"languageCode":"en-us"},
                        {"alternatives":[{"transcript":" ten meters","confidence":0.7}]}
                    ],"totalBilledTime":"15s"}"#,
                ),
                Err(e) => Reply::json(StatusCode::IM_A_TEAPOT, &e),
            }
        })
        .await;
        let t = provider(&settings(format!("http://{addr}")))
            .call(&audio())
            .await
            .unwrap();
        assert_eq!(t.text, "go forward ten meters");
        let c = t.confidence.unwrap();
        assert!((c - 0.8).abs() < 1e-9, "{c}");
        assert_eq!(t.language.as_deref(), Some("en-us"));
    }

    #[tokio::test]
    async fn silence_comes_back_as_an_empty_transcript() {
        let addr = serve("/v1/speech:recognize", |_, _, _| async {
            Reply::json(StatusCode::OK, "{}")
        })
        .await;
        let t = provider(&settings(format!("http://{addr}")))
            .call(&audio())
            .await
            .unwrap();
        assert_eq!(t.text, "");
        assert_eq!(t.confidence, None);
    }

    #[tokio::test]
    async fn invalid_argument_is_a_rejection() {
        let addr = serve("/v1/speech:recognize", |_, _, _| async {
            Reply::json(
                StatusCode::BAD_REQUEST,
                r#"{"error":{"code":400,"message":"Sync input too long.","status":"INVALID_ARGUMENT"}}"#,
            )
        })
        .await;
        let e = provider(&settings(format!("http://{addr}")))
            .call(&audio())
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ProviderError::Rejected { status: 400, detail, .. } if detail == "Sync input too long."),
            "{e}"
        );
    }

    #[tokio::test]
    async fn errors_never_show_the_api_key() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let e = provider(&settings(format!("http://{addr}")))
            .call(&audio())
            .await
            .unwrap_err();
        assert!(matches!(e, ProviderError::Transport { .. }), "{e}");
        assert!(!e.to_string().contains("AIza"), "{e}");
    }

    #[tokio::test]
    async fn rate_limited_then_unavailable_then_answers() {
        let hits = Arc::new(AtomicU32::new(0));
        let h = hits.clone();
        let addr = serve("/v1/speech:recognize", move |_, _, _| {
            let n = h.fetch_add(1, Ordering::SeqCst);
            async move {
                match n {
                    0 => Reply::json(
                        StatusCode::TOO_MANY_REQUESTS,
                        r#"{"error":{"message":"quota"}}"#,
                    )
                    .header("retry-after", "0"),
                    1 => Reply::json(
                        StatusCode::SERVICE_UNAVAILABLE,
                        r#"{"error":{"message":"later"}}"#,
                    ),
                    _ => Reply::json(
                        StatusCode::OK,
                        r#"{"results":[{"alternatives":[{"transcript":"third time"}]}]}"#,
                    ),
                }
            }
        })
        .await;
        let s = settings(format!("http://{addr}"));
        let r = Resilient::new(Box::new(provider(&s)), 2, s.retry.clone(), &s.breaker);
        assert_eq!(r.transcribe(&audio()).await.unwrap().text, "third time");
        assert_eq!(hits.load(Ordering::SeqCst), 3);
    }
}
