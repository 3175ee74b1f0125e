//! The transcribe stage: audio from `sms.media.v1` to text on `sms.transcripts.v1`.
//!
//! Each `MediaStored` with an `audio/*` content type is read from the media store, decoded by
//! ffmpeg to 16 kHz mono PCM, and sent to one provider (local pocketsphinx, OpenAI-compatible
//! or Google) behind a concurrency limit, retries and a circuit breaker. The outcome is one
//! `TranscriptReady` or `TranscriptFailed` keyed like the media; transient trouble goes back to
//! the runner as `StageError::Transient`. Other inputs produce nothing.

pub mod audio;
pub mod breaker;
pub mod config;
pub mod google;
pub(crate) mod http;
pub mod local;
mod metrics;
pub mod openai;
mod process;
pub mod provider;
#[cfg(test)]
mod test_server;
pub mod wer;

use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use tracing::{field, instrument, Span};

pub use config::{InvalidSetting, ProviderKind, TranscribeSettings};

use crate::events::{Event, MediaStored, TranscriptFailed, TranscriptReady};
use crate::stages::shared::content_type::is_audio;
use crate::stages::shared::event_ids::derived_event_id;
use crate::stages::{Input, Output, Stage, StageError};
use audio::{DecodeError, Decoder};
use local::LocalProvider;
use metrics::Outcome;
use provider::{Provider, Resilient, Transcript};

/// Turns stored audio into `TranscriptReady` / `TranscriptFailed`.
pub struct TranscribeStage {
    store: Arc<dyn ObjectStore>,
    decoder: Decoder,
    provider: Resilient,
    max_object_bytes: u64,
    batch_limit: usize,
}

/// Why the stage cannot start.
#[derive(Debug, thiserror::Error)]
pub enum TranscribeError {
    /// A `[transcribe]` setting is wrong.
    #[error(transparent)]
    Invalid(#[from] InvalidSetting),
    /// A helper program is not installed.
    #[error("`{key}` = \"{program}\" was not found: install it (apt-get install {package}) or set `{key}` to its full path")]
    MissingProgram {
        key: &'static str,
        program: String,
        package: &'static str,
    },
    /// A pocketsphinx model file is missing.
    #[error("`{key}` = {path} does not exist: install the model (apt-get install pocketsphinx-en-us) or point `{key}` at one")]
    MissingModel {
        key: &'static str,
        path: std::path::PathBuf,
    },
    /// The HTTP client could not be built (TLS set-up).
    #[error("cannot build the HTTP client for the {provider} provider: {source}")]
    HttpClient {
        provider: &'static str,
        #[source]
        source: reqwest::Error,
    },
}

/// What became of one audio attachment.
enum Verdict {
    Ready(Transcript, Duration),
    Failed {
        reason: &'static str,
        detail: String,
    },
}

impl Verdict {
    fn failed(reason: &'static str, detail: impl Into<String>) -> Verdict {
        Verdict::Failed {
            reason,
            detail: detail.into(),
        }
    }
}

impl TranscribeStage {
    /// The stage with the configured provider. Checks that ffmpeg (and, for `local`,
    /// pocketsphinx and its model) are installed, so a broken host fails at start-up.
    pub fn new(
        settings: &TranscribeSettings,
        store: Arc<dyn ObjectStore>,
    ) -> Result<TranscribeStage, TranscribeError> {
        settings.validate()?;
        let client = || {
            http::client(settings).map_err(|source| TranscribeError::HttpClient {
                provider: settings.provider.as_str(),
                source,
            })
        };
        let provider: Box<dyn Provider> = match settings.provider {
            ProviderKind::Local => {
                require_program(
                    "transcribe.local.pocketsphinx_bin",
                    &settings.local.pocketsphinx_bin,
                    "pocketsphinx",
                )?;
                let local = LocalProvider::new(settings);
                for (key, path) in local.model_files() {
                    if !path.exists() {
                        return Err(TranscribeError::MissingModel {
                            key,
                            path: path.to_path_buf(),
                        });
                    }
                }
                Box::new(local)
            }
            ProviderKind::Openai => Box::new(openai::OpenAiProvider::new(settings, client()?)),
            ProviderKind::Google => Box::new(google::GoogleProvider::new(settings, client()?)),
        };
        TranscribeStage::with_provider(settings, store, provider)
    }

    /// The stage with any provider (a test double, or one this crate does not ship) behind
    /// the same limits, retries and breaker; `settings.provider` is not consulted.
    pub fn with_provider(
        settings: &TranscribeSettings,
        store: Arc<dyn ObjectStore>,
        provider: Box<dyn Provider>,
    ) -> Result<TranscribeStage, TranscribeError> {
        settings.validate()?;
        require_program("transcribe.ffmpeg_bin", &settings.ffmpeg_bin, "ffmpeg")?;
        Ok(TranscribeStage {
            store,
            decoder: Decoder::new(
                &settings.ffmpeg_bin,
                settings.decode_timeout,
                settings.max_audio_duration,
            ),
            provider: Resilient::new(
                provider,
                settings.effective_concurrency(),
                settings.retry.clone(),
                &settings.breaker,
            ),
            max_object_bytes: settings.max_object_bytes,
            batch_limit: settings.effective_concurrency() * 4,
        })
    }

    /// The provider with its limits (for admin views and tests).
    pub fn provider(&self) -> &Resilient {
        &self.provider
    }

    #[instrument(
        name = "transcribe.media",
        skip_all,
        fields(
            message_sid = %media.message_sid,
            media_index = media.media_index,
            sender = %crate::phones::mask_phone(&media.sender),
            provider = self.provider.name(),
            outcome = field::Empty,
        )
    )]
    async fn transcribe(&self, media: &MediaStored) -> Result<Vec<Output>, StageError> {
        let provider = self.provider.name();
        let verdict = match self.verdict(media).await {
            Ok(v) => v,
            Err(e) => {
                metrics::outcome(provider, Outcome::Transient);
                Span::current().record("outcome", "transient");
                return Err(e);
            }
        };
        let output = match verdict {
            Verdict::Ready(t, duration) => {
                metrics::outcome(provider, Outcome::Ready);
                Span::current().record("outcome", "ready");
                tracing::info!(
                    duration_ms = duration.as_millis() as u64,
                    words = t.text.split_whitespace().count(),
                    "audio transcribed"
                );
                Output::new(
                    crate::topics::TRANSCRIPTS,
                    media.partition_key(),
                    self.ready(media, t, duration),
                )
            }
            Verdict::Failed { reason, detail } => {
                metrics::outcome(provider, Outcome::Failed(reason));
                Span::current().record("outcome", reason);
                tracing::info!(reason, %detail, "audio not transcribed");
                Output::new(
                    crate::topics::TRANSCRIPTS,
                    media.partition_key(),
                    failed(media, provider, reason, detail),
                )
            }
        };
        Ok(vec![output])
    }

    async fn verdict(&self, media: &MediaStored) -> Result<Verdict, StageError> {
        // During an outage, hand the input back before reading or decoding anything.
        self.provider
            .check()
            .map_err(|e| StageError::Transient(e.to_string()))?;
        let path = ObjectPath::parse(&media.object_key).map_err(|e| {
            StageError::Poison(format!("object_key is not a valid media store path: {e}"))
        })?;
        let got = self.store.get(&path).await.map_err(store_error)?;
        if got.meta.size > self.max_object_bytes {
            return Ok(Verdict::failed(
                "too_long",
                format!(
                    "the stored file is {} bytes, above transcribe.max_object_bytes ({})",
                    got.meta.size, self.max_object_bytes
                ),
            ));
        }
        let bytes = got.bytes().await.map_err(store_error)?;
        let audio = match self.decoder.decode(bytes).await {
            Ok(audio) => audio,
            Err(e @ DecodeError::TooLong { .. }) => {
                return Ok(Verdict::failed("too_long", e.to_string()))
            }
            Err(e @ DecodeError::Undecodable { .. }) => {
                return Ok(Verdict::failed("undecodable_audio", e.to_string()))
            }
            Err(e) => return Err(StageError::Transient(e.to_string())),
        };
        metrics::audio_length(audio.duration());
        match self.provider.transcribe(&audio).await {
            Ok(t) if t.text.trim().is_empty() => Ok(Verdict::failed(
                "empty",
                "the provider heard no words in the audio",
            )),
            Ok(t) => Ok(Verdict::Ready(t, audio.duration())),
            Err(e) if e.is_permanent() => Ok(Verdict::failed("provider_rejected", e.to_string())),
            Err(e) => Err(StageError::Transient(e.to_string())),
        }
    }

    fn ready(&self, media: &MediaStored, t: Transcript, duration: Duration) -> TranscriptReady {
        TranscriptReady {
            event_id: derived_event_id(TranscriptReady::NAME, &media.event_id),
            transcribed_at: crate::clock::now_micros(),
            message_sid: media.message_sid.clone(),
            media_index: media.media_index,
            sender: media.sender.clone(),
            user_id: media.user_id.clone(),
            received_at: media.received_at,
            provider: self.provider.name().to_owned(),
            model: self.provider.model().map(str::to_owned),
            language: t.language,
            text: t.text,
            confidence: t.confidence,
            audio_duration_ms: i64::try_from(duration.as_millis()).ok(),
            object_key: media.object_key.clone(),
        }
    }
}

impl Stage for TranscribeStage {
    const NAME: &'static str = "transcribe";
    // MediaRejected shares the topic and never reaches the stage.
    type Event = MediaStored;

    fn inputs(&self) -> Vec<&'static str> {
        vec![crate::topics::MEDIA]
    }

    // A local transcription takes about a third of real time: a few per provider slot keep a
    // batch far inside librdkafka's 5-minute poll interval.
    fn batch_limit(&self) -> Option<usize> {
        Some(self.batch_limit)
    }

    /// Audio is transcribed; other media (images, vCards) produce nothing.
    async fn handle(&self, input: &Input<MediaStored>) -> Result<Vec<Output>, StageError> {
        if is_audio(&input.event.content_type) {
            self.transcribe(&input.event).await
        } else {
            Ok(Vec::new())
        }
    }
}

fn failed(media: &MediaStored, provider: &str, reason: &str, detail: String) -> TranscriptFailed {
    TranscriptFailed {
        event_id: derived_event_id(TranscriptFailed::NAME, &media.event_id),
        failed_at: crate::clock::now_micros(),
        message_sid: media.message_sid.clone(),
        media_index: media.media_index,
        sender: media.sender.clone(),
        user_id: media.user_id.clone(),
        received_at: media.received_at,
        provider: provider.to_owned(),
        reason: reason.to_owned(),
        detail,
    }
}

fn store_error(e: object_store::Error) -> StageError {
    match e {
        object_store::Error::NotFound { path, .. } => StageError::Permanent(format!(
            "stored media {path} is missing from the media store; it cannot be transcribed"
        )),
        other => StageError::Transient(format!("reading from the media store failed: {other}")),
    }
}

fn require_program(
    key: &'static str,
    program: &str,
    package: &'static str,
) -> Result<(), TranscribeError> {
    match process::resolve(program) {
        Some(_) => Ok(()),
        None => Err(TranscribeError::MissingProgram {
            key,
            program: program.to_owned(),
            package,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::encode;
    use crate::kafka::consume::Record;
    use crate::kafka::stage_runner::handle_record;

    fn media(content_type: &str) -> MediaStored {
        MediaStored {
            event_id: "01900000-0000-7000-8000-000000000001".into(),
            stored_at: 1,
            message_sid: "MM1".into(),
            media_index: 0,
            sender: "+15105550142".into(),
            user_id: None,
            received_at: 1,
            content_type: content_type.into(),
            size_bytes: 3,
            sha256: "00".into(),
            object_key: "media/MM1/0".into(),
            source_url: "https://api.twilio.com/x".into(),
        }
    }

    fn record(event_type: Option<&str>, payload: Vec<u8>) -> Record {
        Record {
            topic: crate::topics::MEDIA.into(),
            partition: 0,
            offset: 0,
            log_time_ms: 0,
            key: None,
            payload: Some(payload),
            event_type: event_type.map(str::to_owned),
            headers: Vec::new(),
            trace: opentelemetry::Context::new(),
        }
    }

    fn stage() -> TranscribeStage {
        struct Never;
        impl Provider for Never {
            fn name(&self) -> &'static str {
                "never"
            }
            fn model(&self) -> Option<&str> {
                None
            }
            fn transcribe<'a>(
                &'a self,
                _: &'a audio::Audio,
            ) -> futures::future::BoxFuture<'a, Result<Transcript, provider::ProviderError>>
            {
                Box::pin(async { panic!("no audio reaches the provider in these tests") })
            }
        }
        let settings = TranscribeSettings {
            ffmpeg_bin: "true".into(),
            ..TranscribeSettings::default()
        };
        let store = Arc::new(object_store::memory::InMemory::new());
        TranscribeStage::with_provider(&settings, store, Box::new(Never)).unwrap()
    }

    #[tokio::test]
    async fn media_rejected_and_images_yield_nothing() {
        let stage = stage();
        let img = encode(&media("image/png")).unwrap();
        let out = handle_record(&stage, &record(Some("MediaStored"), img)).await;
        assert!(out.unwrap().is_empty());
        let rejected = crate::events::MediaRejected {
            event_id: "e".into(),
            rejected_at: 1,
            message_sid: "MM1".into(),
            media_index: 0,
            sender: "+15105550142".into(),
            user_id: None,
            received_at: 1,
            declared_content_type: "audio/ogg".into(),
            reason: "too_large".into(),
            detail: "big".into(),
        };
        let bytes = encode(&rejected).unwrap();
        let out = handle_record(&stage, &record(Some("MediaRejected"), bytes.clone())).await;
        assert!(out.unwrap().is_empty());
        let out = handle_record(&stage, &record(None, bytes)).await;
        assert!(out.unwrap().is_empty(), "recognised by its bytes");
    }

    #[tokio::test]
    async fn garbage_claiming_to_be_media_stored_is_poison() {
        let e = handle_record(&stage(), &record(Some("MediaStored"), b"garbage".to_vec()))
            .await
            .unwrap_err();
        assert!(matches!(e, StageError::Poison(_)), "{e}");
    }
}
