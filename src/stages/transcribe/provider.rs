//! The provider trait, its error taxonomy, and the wrapper every call goes through: a
//! concurrency limit, retries of 429/5xx with backoff that honours `Retry-After`, and the
//! circuit breaker.

use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::audio::Audio;
use super::breaker::Breaker;
use super::config::{BreakerSettings, RetrySettings};
use super::metrics;

/// What a provider heard.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    /// The words, as the provider wrote them (may be empty for silence).
    pub text: String,
    /// 0..1 when the provider reports one.
    pub confidence: Option<f64>,
    /// The language the provider used or detected.
    pub language: Option<String>,
}

/// A speech-to-text backend.
pub trait Provider: Send + Sync {
    /// `local`, `openai` or `google`: written into events and metric labels.
    fn name(&self) -> &'static str;
    /// The model written into `TranscriptReady.model`.
    fn model(&self) -> Option<&str>;
    /// One call, no retries (the wrapper owns those).
    fn transcribe<'a>(
        &'a self,
        audio: &'a Audio,
    ) -> BoxFuture<'a, Result<Transcript, ProviderError>>;
}

/// Why a provider call did not produce a transcript.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider refused this audio (a 4xx other than 401/403/404/408/429): retrying the
    /// same audio cannot help.
    #[error("{provider} refused the audio with HTTP {status}: {detail}")]
    Rejected {
        provider: &'static str,
        status: u16,
        detail: String,
    },
    /// HTTP 429.
    #[error("{provider} is rate limiting (HTTP 429); retry later")]
    RateLimited {
        provider: &'static str,
        retry_after: Option<Duration>,
    },
    /// 5xx or 408: the provider is struggling.
    #[error("{provider} answered HTTP {status}: {detail}")]
    Unavailable {
        provider: &'static str,
        status: u16,
        retry_after: Option<Duration>,
        detail: String,
    },
    /// 401, 403 or 404: our key, URL or model is wrong. Every input would fail the same way,
    /// so this is not the audio's fault: the input is retried and then dead-lettered, to be
    /// replayed once the setting is fixed.
    #[error("{provider} answered HTTP {status} ({detail}): check transcribe.{provider}.api_key, base_url and model")]
    Misconfigured {
        provider: &'static str,
        status: u16,
        detail: String,
    },
    /// Connection refused, reset, TLS failure or timeout.
    #[error("{provider} could not be reached: {detail}")]
    Transport {
        provider: &'static str,
        detail: String,
    },
    /// A 2xx whose body is not the documented JSON.
    #[error("{provider} answered with a body that is not its documented JSON ({detail}); check that transcribe.{provider}.base_url points at a compatible API")]
    BadResponse {
        provider: &'static str,
        detail: String,
    },
    /// The local recognizer could not run or crashed.
    #[error("the local recognizer failed: {detail}")]
    Local { detail: String },
    /// The breaker is open: the provider is not called at all.
    #[error("the {provider} circuit breaker is open after repeated failures; calls resume in {retry_in:?}")]
    CircuitOpen {
        provider: &'static str,
        retry_in: Duration,
    },
}

impl ProviderError {
    /// Only a refusal of the audio itself is final; everything else may pass later.
    pub fn is_permanent(&self) -> bool {
        matches!(self, ProviderError::Rejected { .. })
    }

    /// Worth another call within the same stage attempt.
    fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProviderError::RateLimited { .. }
                | ProviderError::Unavailable { .. }
                | ProviderError::Transport { .. }
        )
    }

    /// Counts towards opening the breaker: the provider, or our access to it, is failing.
    fn trips_breaker(&self) -> bool {
        !matches!(
            self,
            ProviderError::Rejected { .. } | ProviderError::CircuitOpen { .. }
        )
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::RateLimited { retry_after, .. }
            | ProviderError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    fn label(&self) -> &'static str {
        if self.is_permanent() {
            "rejected"
        } else {
            "error"
        }
    }
}

/// A provider behind its concurrency limit, retries and circuit breaker.
pub struct Resilient {
    provider: Box<dyn Provider>,
    permits: Semaphore,
    breaker: Breaker,
    retry: RetrySettings,
}

impl Resilient {
    /// Wrap `provider` with at most `concurrency` calls in flight.
    pub fn new(
        provider: Box<dyn Provider>,
        concurrency: usize,
        retry: RetrySettings,
        breaker: &BreakerSettings,
    ) -> Resilient {
        let name = provider.name();
        Resilient {
            provider,
            permits: Semaphore::new(concurrency.max(1)),
            breaker: Breaker::new(name, breaker.failure_threshold, breaker.open_for),
            retry,
        }
    }

    /// The wrapped provider's name.
    pub fn name(&self) -> &'static str {
        self.provider.name()
    }

    /// The wrapped provider's model.
    pub fn model(&self) -> Option<&str> {
        self.provider.model()
    }

    /// The breaker (for tests and admin views).
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// Fail fast while the breaker is open, before any work is spent on the input.
    pub fn check(&self) -> Result<(), ProviderError> {
        match self.breaker.enter() {
            Ok(pass) => {
                drop(pass);
                Ok(())
            }
            Err(retry_in) => Err(ProviderError::CircuitOpen {
                provider: self.provider.name(),
                retry_in,
            }),
        }
    }

    /// Transcribe, retrying 429/5xx/transport failures up to `retry.max_attempts` calls.
    /// A `Retry-After` longer than `retry.max_backoff` is not slept through: the breaker is
    /// held open until then and the failure goes back to the runner.
    pub async fn transcribe(&self, audio: &Audio) -> Result<Transcript, ProviderError> {
        let name = self.provider.name();
        let open = |retry_in| ProviderError::CircuitOpen {
            provider: name,
            retry_in,
        };
        // Refuse at once while open, rather than queueing for a permit first.
        self.check()?;
        // The semaphore is never closed, so `acquire` cannot fail.
        let _permit = self.permits.acquire().await.ok();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let pass = self.breaker.enter().map_err(open)?;
            let started = Instant::now();
            let result = self.provider.transcribe(audio).await;
            let label = result.as_ref().map_or_else(ProviderError::label, |_| "ok");
            metrics::provider_call(name, label, started.elapsed());
            match &result {
                Err(e) if e.trips_breaker() => pass.failed(),
                _ => pass.succeeded(),
            }
            let e = match result {
                Err(e) if e.is_retryable() => e,
                other => return other,
            };
            let delay = e
                .retry_after()
                .unwrap_or_else(|| self.retry.backoff().delay(attempt));
            if delay > self.retry.max_backoff {
                self.breaker.hold_until(Instant::now() + delay);
                return Err(e);
            }
            if attempt >= self.retry.max_attempts {
                return Err(e);
            }
            metrics::provider_retry(name);
            tracing::warn!(provider = name, attempt, error = %e, retry_in = ?delay, "provider call failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::transcribe::breaker::BreakerState;
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};

    /// Answers from a script, then succeeds.
    struct Scripted {
        script: Mutex<VecDeque<ProviderError>>,
        calls: Arc<AtomicU32>,
    }

    impl Provider for Scripted {
        fn name(&self) -> &'static str {
            "scripted"
        }
        fn model(&self) -> Option<&str> {
            None
        }
        fn transcribe<'a>(
            &'a self,
            _: &'a Audio,
        ) -> BoxFuture<'a, Result<Transcript, ProviderError>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let next = self.script.lock().unwrap().pop_front();
            Box::pin(async move {
                match next {
                    Some(e) => Err(e),
                    None => Ok(Transcript {
                        text: "ok".into(),
                        confidence: None,
                        language: None,
                    }),
                }
            })
        }
    }

    fn unavailable() -> ProviderError {
        ProviderError::Unavailable {
            provider: "scripted",
            status: 503,
            retry_after: None,
            detail: "down".into(),
        }
    }

    /// The wrapped provider, and how many calls reached it.
    fn wrap(
        script: Vec<ProviderError>,
        attempts: u32,
        threshold: u32,
    ) -> (Resilient, Arc<AtomicU32>) {
        let calls = Arc::new(AtomicU32::new(0));
        let provider = Scripted {
            script: Mutex::new(script.into()),
            calls: calls.clone(),
        };
        let r = Resilient::new(
            Box::new(provider),
            2,
            RetrySettings {
                max_attempts: attempts,
                initial_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(10),
            },
            &BreakerSettings {
                failure_threshold: threshold,
                open_for: Duration::from_secs(30),
            },
        );
        (r, calls)
    }

    fn audio() -> Audio {
        Audio::from_pcm16(&[0; 320])
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_before_the_next_call() {
        let (r, calls) = wrap(
            vec![ProviderError::RateLimited {
                provider: "scripted",
                retry_after: Some(Duration::from_secs(7)),
            }],
            3,
            5,
        );
        let started = Instant::now();
        let t = r.transcribe(&audio()).await.unwrap();
        assert_eq!(t.text, "ok");
        assert_eq!(started.elapsed(), Duration::from_secs(7));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_beyond_max_backoff_holds_the_breaker_and_fails_fast() {
        let (r, _calls) = wrap(
            vec![ProviderError::RateLimited {
                provider: "scripted",
                retry_after: Some(Duration::from_secs(120)),
            }],
            3,
            5,
        );
        let started = Instant::now();
        let e = r.transcribe(&audio()).await.unwrap_err();
        assert!(matches!(e, ProviderError::RateLimited { .. }), "{e}");
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "no sleeping through two minutes"
        );
        let e = r.transcribe(&audio()).await.unwrap_err();
        assert!(matches!(e, ProviderError::CircuitOpen { .. }), "{e}");
        tokio::time::advance(Duration::from_secs(120)).await;
        assert_eq!(r.transcribe(&audio()).await.unwrap().text, "ok");
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_with_growing_backoff_then_given_up() {
        let (r, calls) = wrap(vec![unavailable(), unavailable(), unavailable()], 3, 10);
        let started = Instant::now();
        let e = r.transcribe(&audio()).await.unwrap_err();
        assert!(
            matches!(e, ProviderError::Unavailable { status: 503, .. }),
            "{e}"
        );
        // Two sleeps: [50, 100] ms then [100, 200] ms.
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(150) && waited <= Duration::from_millis(300),
            "{waited:?}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejection_is_not_retried_and_does_not_trip_the_breaker() {
        let (r, _calls) = wrap(
            vec![ProviderError::Rejected {
                provider: "scripted",
                status: 400,
                detail: "bad audio".into(),
            }],
            3,
            1,
        );
        let e = r.transcribe(&audio()).await.unwrap_err();
        assert!(e.is_permanent());
        assert_eq!(r.breaker().state(), BreakerState::Closed { failures: 0 });
    }

    #[tokio::test(start_paused = true)]
    async fn the_breaker_opens_after_n_failures_refuses_fast_and_half_opens_later() {
        // Threshold 4, one call per stage attempt: four failing inputs open it.
        let (r, calls) = wrap((0..4).map(|_| unavailable()).collect(), 1, 4);
        for _ in 0..4 {
            let e = r.transcribe(&audio()).await.unwrap_err();
            assert!(matches!(e, ProviderError::Unavailable { .. }), "{e}");
        }
        let started = Instant::now();
        let e = r.transcribe(&audio()).await.unwrap_err();
        assert!(
            matches!(e, ProviderError::CircuitOpen { retry_in, .. } if retry_in == Duration::from_secs(30)),
            "{e}"
        );
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            4,
            "an open breaker does not call the provider"
        );

        tokio::time::advance(Duration::from_secs(30)).await;
        // Half-open: the trial reaches the provider, which has recovered.
        assert_eq!(r.transcribe(&audio()).await.unwrap().text, "ok");
        assert_eq!(r.breaker().state(), BreakerState::Closed { failures: 0 });
    }
}
