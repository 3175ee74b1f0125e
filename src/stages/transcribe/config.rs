//! `[transcribe]` settings: which provider, its endpoint and key, limits, retries and breaker.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::secrets::SecretString;

/// Debian's `pocketsphinx-en-us` model folder.
const DEBIAN_MODEL: &str = "/usr/share/pocketsphinx/model/en-us";

/// Everything the transcribe stage reads (section `[transcribe]`, env `SMSFLOW_TRANSCRIBE__…`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TranscribeSettings {
    /// `local` (pocketsphinx, no account), `openai` or `google`.
    pub provider: ProviderKind,
    /// Longer audio is not sent anywhere; it becomes `TranscriptFailed{reason: "too_long"}`.
    #[serde(with = "humantime_serde")]
    pub max_audio_duration: Duration,
    /// Larger stored objects are not read; they become `TranscriptFailed{reason: "too_long"}`.
    pub max_object_bytes: u64,
    /// Most provider calls in flight at once. Default: 2 for `local`, 8 otherwise.
    pub max_concurrency: Option<usize>,
    /// Whole provider call: one HTTP request; the local recognizer gets this plus the audio's
    /// duration.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// TCP and TLS connection set-up to a remote provider.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest silence between two reads of a remote provider's answer.
    #[serde(with = "humantime_serde")]
    pub read_timeout: Duration,
    /// One ffmpeg run that turns the stored audio into 16 kHz mono PCM.
    #[serde(with = "humantime_serde")]
    pub decode_timeout: Duration,
    /// The ffmpeg program: a name looked up on `PATH`, or a path.
    pub ffmpeg_bin: String,
    /// Retries of one provider call inside one stage attempt.
    pub retry: RetrySettings,
    /// The circuit breaker in front of the provider.
    pub breaker: BreakerSettings,
    /// The offline provider.
    pub local: LocalSettings,
    /// The OpenAI-compatible provider.
    pub openai: OpenAiSettings,
    /// The Google Speech-to-Text provider.
    pub google: GoogleSettings,
}

/// Which speech-to-text provider the stage calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Debian's pocketsphinx with its en-US model, run as a subprocess.
    Local,
    /// `POST {base_url}/v1/audio/transcriptions` (OpenAI, or a local Whisper server).
    Openai,
    /// Google Speech-to-Text v1 `speech:recognize`.
    Google,
}

impl ProviderKind {
    /// The name written into `TranscriptReady.provider` and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Local => "local",
            ProviderKind::Openai => "openai",
            ProviderKind::Google => "google",
        }
    }
}

/// Retries of 429 and 5xx answers, honouring `Retry-After`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// Calls per stage attempt, the first included; then the stage reports a transient failure
    /// and the runner's own bounded retries take over.
    pub max_attempts: u32,
    /// First backoff; doubles per attempt, with jitter.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Longest wait between two calls. A `Retry-After` longer than this is not waited for.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
}

/// Circuit breaker: after `failure_threshold` consecutive transient failures the provider is
/// not called for `open_for`; then one trial call decides whether it closes again.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    /// Consecutive transient failures that open the breaker.
    pub failure_threshold: u32,
    /// How long an open breaker refuses calls before it lets one trial through.
    #[serde(with = "humantime_serde")]
    pub open_for: Duration,
}

/// The offline provider: `pocketsphinx_continuous` and its model files.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalSettings {
    /// The recognizer program: a name looked up on `PATH`, or a path.
    pub pocketsphinx_bin: String,
    /// Acoustic model folder (`-hmm`).
    pub hmm: PathBuf,
    /// Language model (`-lm`).
    pub lm: PathBuf,
    /// Pronunciation dictionary (`-dict`).
    pub dict: PathBuf,
}

/// An OpenAI-compatible `/v1/audio/transcriptions` endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenAiSettings {
    /// Scheme, host and optional port (and path prefix), without `/v1`.
    pub base_url: String,
    /// Bearer key; required by api.openai.com, optional for local Whisper servers.
    #[serde(serialize_with = "crate::secrets::serialize_option")]
    pub api_key: Option<SecretString>,
    /// The `model` form field, e.g. `whisper-1`.
    pub model: String,
    /// ISO-639-1 hint sent as `language`; unset lets the provider detect it.
    pub language: Option<String>,
}

/// Google Speech-to-Text v1.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GoogleSettings {
    /// Scheme and host, without `/v1`.
    pub base_url: String,
    /// API key sent as `?key=`.
    #[serde(serialize_with = "crate::secrets::serialize_option")]
    pub api_key: Option<SecretString>,
    /// BCP-47 language, e.g. `en-US`.
    pub language_code: String,
}

impl Default for TranscribeSettings {
    fn default() -> Self {
        TranscribeSettings {
            provider: ProviderKind::Local,
            max_audio_duration: Duration::from_secs(600),
            max_object_bytes: 32 * 1024 * 1024,
            max_concurrency: None,
            request_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
            decode_timeout: Duration::from_secs(60),
            ffmpeg_bin: "ffmpeg".into(),
            retry: RetrySettings::default(),
            breaker: BreakerSettings::default(),
            local: LocalSettings::default(),
            openai: OpenAiSettings::default(),
            google: GoogleSettings::default(),
        }
    }
}

impl RetrySettings {
    /// The schedule between calls.
    pub fn backoff(&self) -> crate::backoff::Backoff {
        crate::backoff::Backoff::new(self.initial_backoff, self.max_backoff)
    }
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
        }
    }
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            failure_threshold: 5,
            open_for: Duration::from_secs(30),
        }
    }
}

impl Default for LocalSettings {
    fn default() -> Self {
        LocalSettings {
            pocketsphinx_bin: "pocketsphinx_continuous".into(),
            hmm: PathBuf::from(format!("{DEBIAN_MODEL}/en-us")),
            lm: PathBuf::from(format!("{DEBIAN_MODEL}/en-us.lm.bin")),
            dict: PathBuf::from(format!("{DEBIAN_MODEL}/cmudict-en-us.dict")),
        }
    }
}

impl Default for OpenAiSettings {
    fn default() -> Self {
        OpenAiSettings {
            base_url: "https://api.openai.com".into(),
            api_key: None,
            model: "whisper-1".into(),
            language: None,
        }
    }
}

impl Default for GoogleSettings {
    fn default() -> Self {
        GoogleSettings {
            base_url: "https://speech.googleapis.com".into(),
            api_key: None,
            language_code: "en-US".into(),
        }
    }
}

pub use crate::validation::InvalidSetting;

/// Google's synchronous `speech:recognize` accepts at most one minute of audio.
pub const GOOGLE_SYNC_LIMIT: Duration = Duration::from_secs(60);

impl TranscribeSettings {
    /// Refuse settings that cannot work, naming the key at fault.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let invalid = |key, reason: &str| {
            Err(InvalidSetting {
                key,
                reason: reason.to_owned(),
            })
        };
        if self.max_audio_duration.is_zero() {
            return invalid(
                "transcribe.max_audio_duration",
                "must be above 0, e.g. \"10m\"",
            );
        }
        if self.max_object_bytes == 0 {
            return invalid("transcribe.max_object_bytes", "must be positive");
        }
        if self.max_concurrency == Some(0) {
            return invalid("transcribe.max_concurrency", "must be at least 1");
        }
        for (key, d) in [
            ("transcribe.request_timeout", self.request_timeout),
            ("transcribe.connect_timeout", self.connect_timeout),
            ("transcribe.read_timeout", self.read_timeout),
            ("transcribe.decode_timeout", self.decode_timeout),
            ("transcribe.breaker.open_for", self.breaker.open_for),
        ] {
            if d.is_zero() {
                return invalid(key, "must be above 0, e.g. \"30s\"");
            }
        }
        if self.ffmpeg_bin.trim().is_empty() {
            return invalid("transcribe.ffmpeg_bin", "must name the ffmpeg program");
        }
        if self.retry.max_attempts == 0 {
            return invalid("transcribe.retry.max_attempts", "must be at least 1");
        }
        if self.retry.initial_backoff > self.retry.max_backoff {
            return invalid(
                "transcribe.retry.initial_backoff",
                "must not exceed transcribe.retry.max_backoff",
            );
        }
        if self.breaker.failure_threshold == 0 {
            return invalid("transcribe.breaker.failure_threshold", "must be at least 1");
        }
        match self.provider {
            ProviderKind::Local => self.validate_local(),
            ProviderKind::Openai => self.validate_openai(),
            ProviderKind::Google => self.validate_google(),
        }
    }

    /// Provider calls allowed in flight at once.
    pub fn effective_concurrency(&self) -> usize {
        self.max_concurrency.unwrap_or(match self.provider {
            ProviderKind::Local => 2,
            ProviderKind::Openai | ProviderKind::Google => 8,
        })
    }

    fn validate_local(&self) -> Result<(), InvalidSetting> {
        if self.local.pocketsphinx_bin.trim().is_empty() {
            return Err(InvalidSetting {
                key: "transcribe.local.pocketsphinx_bin",
                reason: "must name the pocketsphinx_continuous program".into(),
            });
        }
        Ok(())
    }

    fn validate_openai(&self) -> Result<(), InvalidSetting> {
        let url = check_base_url("transcribe.openai.base_url", &self.openai.base_url)?;
        let key_missing = crate::secrets::non_empty(&self.openai.api_key).is_none();
        if key_missing && url.host_str() == Some("api.openai.com") {
            return Err(InvalidSetting {
                key: "transcribe.openai.api_key",
                reason: "api.openai.com needs a key: set SMSFLOW_TRANSCRIBE__OPENAI__API_KEY"
                    .into(),
            });
        }
        if self.openai.model.trim().is_empty() {
            return Err(InvalidSetting {
                key: "transcribe.openai.model",
                reason: "must name a model, e.g. whisper-1".into(),
            });
        }
        Ok(())
    }

    fn validate_google(&self) -> Result<(), InvalidSetting> {
        check_base_url("transcribe.google.base_url", &self.google.base_url)?;
        if crate::secrets::non_empty(&self.google.api_key).is_none() {
            return Err(InvalidSetting {
                key: "transcribe.google.api_key",
                reason: "Google Speech-to-Text needs an API key: set \
                         SMSFLOW_TRANSCRIBE__GOOGLE__API_KEY"
                    .into(),
            });
        }
        if self.google.language_code.trim().is_empty() {
            return Err(InvalidSetting {
                key: "transcribe.google.language_code",
                reason: "must be a BCP-47 code, e.g. en-US".into(),
            });
        }
        if self.max_audio_duration > GOOGLE_SYNC_LIMIT {
            return Err(InvalidSetting {
                key: "transcribe.max_audio_duration",
                reason: "Google's synchronous speech:recognize takes at most 1 minute of audio: \
                         set it to \"1m\" or less with provider = \"google\""
                    .into(),
            });
        }
        Ok(())
    }
}

fn check_base_url(key: &'static str, raw: &str) -> Result<url::Url, InvalidSetting> {
    let bad = |reason: &str| InvalidSetting {
        key,
        reason: reason.to_owned(),
    };
    let url = url::Url::parse(raw)
        .map_err(|_| bad("must be an absolute http(s) URL such as https://api.example.com"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(bad(
            "must be an absolute http(s) URL such as https://api.example.com",
        ));
    }
    if url.path().trim_end_matches('/').ends_with("/v1") {
        return Err(bad("must not end in /v1: the stage adds /v1/… itself"));
    }
    if url.query().is_some() {
        return Err(bad("must not carry a query string"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_use_the_local_provider() {
        let s = TranscribeSettings::default();
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(s.provider, ProviderKind::Local);
        assert_eq!(s.effective_concurrency(), 2);
        assert_eq!(s.max_audio_duration, Duration::from_secs(600));
    }

    #[test]
    fn api_keys_never_appear_in_debug_output() {
        let mut s = TranscribeSettings::default();
        s.openai.api_key = Some("sk-very-secret".into());
        s.google.api_key = Some("AIza-very-secret".into());
        let shown = format!("{s:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("[REDACTED]"), "{shown}");
    }

    #[test]
    fn google_without_a_key_names_the_key() {
        let mut s = TranscribeSettings {
            provider: ProviderKind::Google,
            max_audio_duration: Duration::from_secs(60),
            ..Default::default()
        };
        let e = s.validate().unwrap_err();
        assert_eq!(e.key, "transcribe.google.api_key");
        s.google.api_key = Some("k".into());
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn google_refuses_more_than_a_minute_of_audio() {
        let mut s = TranscribeSettings {
            provider: ProviderKind::Google,
            ..Default::default()
        };
        s.google.api_key = Some("k".into());
        let e = s.validate().unwrap_err();
        assert_eq!(e.key, "transcribe.max_audio_duration");
    }

    #[test]
    fn openai_base_url_with_v1_is_refused() {
        let mut s = TranscribeSettings {
            provider: ProviderKind::Openai,
            ..Default::default()
        };
        s.openai.api_key = Some("k".into());
        s.openai.base_url = "https://api.openai.com/v1".into();
        assert_eq!(s.validate().unwrap_err().key, "transcribe.openai.base_url");
        s.openai.base_url = "http://127.0.0.1:9000".into();
        s.openai.api_key = None;
        assert_eq!(s.validate(), Ok(()), "a local whisper server needs no key");
        s.openai.base_url = "https://api.openai.com".into();
        assert_eq!(s.validate().unwrap_err().key, "transcribe.openai.api_key");
    }

    #[test]
    fn unknown_keys_are_refused_and_durations_are_humantime() {
        let ok: TranscribeSettings = toml::from_str(
            "provider = \"openai\"\nmax_audio_duration = \"2m\"\n[breaker]\nopen_for = \"5s\"",
        )
        .unwrap();
        assert_eq!(ok.provider, ProviderKind::Openai);
        assert_eq!(ok.max_audio_duration, Duration::from_secs(120));
        assert_eq!(ok.breaker.open_for, Duration::from_secs(5));
        assert!(toml::from_str::<TranscribeSettings>("provder = \"local\"").is_err());
        assert!(toml::from_str::<TranscribeSettings>("provider = \"azure\"").is_err());
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
    fn layers_like_the_top_level_settings_with_env_overrides() {
        use figment::providers::{Env, Serialized};
        figment::Jail::expect_with(|jail| {
            jail.set_env("SMSFLOW_TRANSCRIBE__PROVIDER", "openai");
            jail.set_env("SMSFLOW_TRANSCRIBE__OPENAI__API_KEY", "sk-env");
            jail.set_env("SMSFLOW_TRANSCRIBE__RETRY__MAX_ATTEMPTS", "7");
            jail.set_env("SMSFLOW_TRANSCRIBE__MAX_AUDIO_DURATION", "90s");
            let s: TranscribeSettings =
                figment::Figment::from(Serialized::defaults(TranscribeSettings::default()))
                    .merge(Env::prefixed("SMSFLOW_TRANSCRIBE__").split("__"))
                    .extract()?;
            assert_eq!(s.provider, ProviderKind::Openai);
            assert_eq!(crate::secrets::non_empty(&s.openai.api_key), Some("sk-env"));
            assert_eq!(s.retry.max_attempts, 7);
            assert_eq!(s.max_audio_duration, Duration::from_secs(90));
            assert_eq!(s.max_concurrency, None);
            assert_eq!(s.validate(), Ok(()));
            Ok(())
        });
    }

    #[test]
    fn zero_limits_are_refused_by_name() {
        let s = TranscribeSettings {
            max_concurrency: Some(0),
            ..Default::default()
        };
        assert_eq!(s.validate().unwrap_err().key, "transcribe.max_concurrency");
        let mut s = TranscribeSettings::default();
        s.retry.max_attempts = 0;
        assert_eq!(
            s.validate().unwrap_err().key,
            "transcribe.retry.max_attempts"
        );
    }
}
