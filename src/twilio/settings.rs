//! `[twilio.webhooks]`: the webhook URLs `smsflow twilio configure` sets on Twilio, and where
//! its REST API is.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The overrides that make Twilio retry a 503 (see `docs/guarantees.md`): three retries on
/// connect failure, read timeout and 5xx, each attempt bounded, all within Twilio's 15 s.
pub const RECOMMENDED_OVERRIDES: &str = "ct=3000&rt=5000&tt=15000&rc=3&rp=ct,rt,5xx";

/// How our Twilio webhooks are configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// Connection overrides appended as the URL fragment of every webhook URL we configure
    /// (without `#`). Without `rp` naming `5xx`, Twilio does not retry a 503.
    pub overrides: String,
    /// Where Twilio posts an inbound message after the inbound URL failed (all its retries
    /// spent): an independent path to an ingress (another load balancer or region, the same
    /// Kafka). Unset: the fallback is left as it is on Twilio.
    pub fallback_url: Option<String>,
    /// The Twilio number (E.164, or its `PN…` SID) whose messaging URLs are ours.
    pub phone_number: Option<String>,
    /// Or the Messaging Service (`MG…`) whose inbound URLs are ours.
    pub messaging_service_sid: Option<String>,
    /// Twilio's REST API (IncomingPhoneNumbers); tests point it at a stand-in.
    pub api_base: String,
    /// Twilio's Messaging API (Services).
    pub messaging_api_base: String,
    /// One REST call, connection included.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// At start-up, ingress reads the configured target's URLs back and warns on drift.
    pub check_on_start: bool,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            overrides: RECOMMENDED_OVERRIDES.into(),
            fallback_url: None,
            phone_number: None,
            messaging_service_sid: None,
            api_base: "https://api.twilio.com".into(),
            messaging_api_base: "https://messaging.twilio.com".into(),
            request_timeout: Duration::from_secs(10),
            check_on_start: true,
        }
    }
}

impl WebhookSettings {
    /// Refuse settings that cannot work, naming the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        super::ConnectionOverrides::parse(&self.overrides)
            .map_err(|e| ("twilio.webhooks.overrides", e.to_string()))?;
        if let Some(u) = &self.fallback_url {
            match url::Url::parse(u) {
                Ok(p) if matches!(p.scheme(), "http" | "https") && p.host().is_some() => {}
                _ => {
                    return Err((
                        "twilio.webhooks.fallback_url",
                        format!("{u:?} is not an absolute http(s) URL"),
                    ))
                }
            }
        }
        for (key, base) in [
            ("twilio.webhooks.api_base", &self.api_base),
            (
                "twilio.webhooks.messaging_api_base",
                &self.messaging_api_base,
            ),
        ] {
            let ok = url::Url::parse(base).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                return Err((key, format!("{base:?} is not an http(s) URL")));
            }
        }
        if self.request_timeout.is_zero() || self.request_timeout > Duration::from_secs(60) {
            return Err((
                "twilio.webhooks.request_timeout",
                "must be above 0 and at most 60 s".into(),
            ));
        }
        Ok(())
    }
}
