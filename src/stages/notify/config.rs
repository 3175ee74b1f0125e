//! Notify stage settings (`[notify]`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::validation::{is_http_url, InvalidSetting};

/// How outbound SMS are sent through the Twilio Messages API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Twilio REST API base URL; tests point it at a server in the harness.
    pub api_base: String,
    /// Default sender number when a request names none.
    pub from: Option<String>,
    /// Messaging Service used when neither the request nor `from` names a sender.
    pub messaging_service_sid: Option<String>,
    /// Where Twilio posts status changes. Default: `{http.public_url}/webhooks/twilio/status`.
    /// It must be served by ingress under `http.public_url`, which its signature is checked
    /// against.
    pub status_callback_url: Option<String>,
    /// Most Twilio requests in flight at once (per process).
    pub max_in_flight: usize,
    /// Calls per send when Twilio answers 429 or 5xx or cannot be reached, the first included.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt, with jitter.
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    /// Longest retry delay. A `Retry-After` longer than this ends the attempts at once; the
    /// stage runner retries the input later.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// One Twilio request, connect to last byte.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How long a send is remembered in Redis by the request's `event_id`; a request replayed
    /// within it is never sent again. Default: the 30-day retention of `sms.outbound.v1`.
    #[serde(with = "humantime_serde")]
    pub record_ttl: Duration,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            api_base: "https://api.twilio.com".into(),
            from: None,
            messaging_service_sid: None,
            status_callback_url: None,
            max_in_flight: 16,
            max_attempts: 4,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(10),
            request_timeout: Duration::from_secs(15),
            record_ttl: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl NotifyConfig {
    /// Check values; the error names the key.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let invalid = |key, reason: &str| Err(InvalidSetting::new(key, reason));
        if !is_http_url(&self.api_base) {
            return invalid(
                "notify.api_base",
                "must be an absolute http(s) URL such as https://api.twilio.com",
            );
        }
        if let Some(u) = &self.status_callback_url {
            if !is_http_url(u) {
                return invalid(
                    "notify.status_callback_url",
                    "must be an absolute http(s) URL ending in /webhooks/twilio/status",
                );
            }
        }
        if self.from.as_deref().is_some_and(str::is_empty) {
            return invalid("notify.from", "must not be empty; leave it unset instead");
        }
        if self
            .messaging_service_sid
            .as_deref()
            .is_some_and(|s| !s.starts_with("MG"))
        {
            return invalid(
                "notify.messaging_service_sid",
                "must be a Messaging Service SID (MG...)",
            );
        }
        if self.max_in_flight == 0 {
            return invalid("notify.max_in_flight", "must be positive");
        }
        if self.max_attempts == 0 {
            return invalid("notify.max_attempts", "must be positive");
        }
        if self.backoff_base.is_zero() || self.backoff_base > self.backoff_max {
            return invalid(
                "notify.backoff_base",
                "must be above 0 and not above notify.backoff_max",
            );
        }
        if self.request_timeout.is_zero() {
            return invalid("notify.request_timeout", "must be above 0");
        }
        if self.record_ttl < Duration::from_secs(3600) {
            return invalid(
                "notify.record_ttl",
                "must be at least 1h (replays within it are never sent twice)",
            );
        }
        Ok(())
    }

    /// How long a send may stay unconfirmed in Redis: every attempt and every wait between
    /// attempts, plus a margin. A record older than that belongs to a process that died.
    pub fn claim_ttl(&self) -> Duration {
        let attempts = self.max_attempts;
        self.request_timeout.saturating_mul(attempts)
            + self.backoff_max.saturating_mul(attempts)
            + Duration::from_secs(60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(NotifyConfig::default().validate(), Ok(()));
    }

    #[test]
    fn bad_values_name_their_key() {
        let bad = |c: NotifyConfig| c.validate().expect_err("must be refused").key;
        let d = NotifyConfig::default;
        assert_eq!(
            bad(NotifyConfig {
                api_base: "api.twilio.com".into(),
                ..d()
            }),
            "notify.api_base"
        );
        assert_eq!(
            bad(NotifyConfig {
                messaging_service_sid: Some("PN123".into()),
                ..d()
            }),
            "notify.messaging_service_sid"
        );
        assert_eq!(
            bad(NotifyConfig {
                max_in_flight: 0,
                ..d()
            }),
            "notify.max_in_flight"
        );
        assert_eq!(
            bad(NotifyConfig {
                backoff_base: Duration::from_secs(20),
                ..d()
            }),
            "notify.backoff_base"
        );
    }
}
