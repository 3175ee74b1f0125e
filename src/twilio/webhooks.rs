//! What our Twilio webhook URLs must be, how they differ from what Twilio has, and the
//! configure/check run that sets them and reads them back.

use std::fmt;

use super::rest::{IncomingPhoneNumber, MessagingService, RestError, TwilioRest};
use super::{ConnectionOverrides, WebhookSettings};

/// The inbound message route ingress serves.
pub const MESSAGES_PATH: &str = "/webhooks/twilio/messages";
/// The status callback route ingress serves.
pub const STATUS_PATH: &str = "/webhooks/twilio/status";

/// The URLs Twilio must call, overrides fragment included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookPlan {
    /// `{http.public_url}/webhooks/twilio/messages#{overrides}`.
    pub inbound_url: String,
    /// `twilio.webhooks.fallback_url` with the overrides (unless it carries its own fragment).
    pub fallback_url: Option<String>,
    /// Delivery status of messages sent through a Messaging Service.
    pub status_callback_url: String,
}

/// The plan could not be made from the settings.
#[derive(Debug, thiserror::Error)]
#[error("configuration key `{key}` is invalid: {reason}")]
pub struct PlanError {
    pub key: &'static str,
    pub reason: String,
}

impl WebhookPlan {
    /// From `http.public_url`, `[twilio.webhooks]` and `notify.status_callback_url` (if set).
    pub fn new(
        public_url: &str,
        settings: &WebhookSettings,
        status_callback_url: Option<&str>,
    ) -> Result<WebhookPlan, PlanError> {
        let overrides = ConnectionOverrides::parse(&settings.overrides).map_err(|e| PlanError {
            key: "twilio.webhooks.overrides",
            reason: e.to_string(),
        })?;
        let base = public_url.trim_end_matches('/');
        if base.contains('#') || base.contains('?') {
            return Err(PlanError {
                key: "http.public_url",
                reason: "must not carry a query or a fragment: the route is appended to it, and the overrides go in twilio.webhooks.overrides".into(),
            });
        }
        let status = status_callback_url
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{base}{STATUS_PATH}"));
        Ok(WebhookPlan {
            inbound_url: with_fragment(&format!("{base}{MESSAGES_PATH}"), &overrides),
            fallback_url: settings
                .fallback_url
                .as_deref()
                .map(|u| with_fragment(u, &overrides)),
            status_callback_url: with_fragment(&status, &overrides),
        })
    }

    /// Every URL Twilio signs with, for the signature check of a received request.
    pub fn signed_urls(&self) -> Vec<String> {
        let mut out = vec![self.inbound_url.clone(), self.status_callback_url.clone()];
        out.extend(self.fallback_url.clone());
        out
    }
}

/// Append `#overrides` to a URL that has no fragment of its own.
pub fn with_fragment(url: &str, overrides: &ConnectionOverrides) -> String {
    if overrides.is_empty() || url.contains('#') {
        url.to_owned()
    } else {
        format!("{url}#{overrides}")
    }
}

/// Which Twilio resource holds our inbound URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A number, by E.164 spelling or `PN…` SID.
    Number(String),
    /// A Messaging Service, by `MG…` SID.
    Service(String),
}

impl Target {
    /// From the command line, else `[twilio.webhooks]`.
    pub fn choose(
        number: Option<&str>,
        service: Option<&str>,
        settings: &WebhookSettings,
    ) -> Option<Target> {
        match (number, service) {
            (Some(n), _) => Some(Target::Number(n.to_owned())),
            (None, Some(s)) => Some(Target::Service(s.to_owned())),
            (None, None) => match (&settings.phone_number, &settings.messaging_service_sid) {
                (Some(n), _) if !n.is_empty() => Some(Target::Number(n.clone())),
                (_, Some(s)) if !s.is_empty() => Some(Target::Service(s.clone())),
                _ => None,
            },
        }
    }
}

/// One field of the resource: Twilio's parameter name, what it has, what it should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub current: String,
    /// `None`: reported, not managed.
    pub desired: Option<String>,
}

impl Field {
    /// Does Twilio hold what we want (methods compare case-insensitively)?
    pub fn matches(&self) -> bool {
        match &self.desired {
            None => true,
            Some(d) if self.name.ends_with("Method") => d.eq_ignore_ascii_case(&self.current),
            Some(d) => *d == self.current,
        }
    }
}

/// What a run found (and, unless checking, changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// `number PN… (***00)` or `messaging service MG…`.
    pub resource: String,
    /// The fields as found before any change.
    pub before: Vec<Field>,
    /// Whether an update was sent.
    pub updated: bool,
}

impl Report {
    /// Fields that differ from the plan.
    pub fn drift(&self) -> impl Iterator<Item = &Field> {
        self.before.iter().filter(|f| !f.matches())
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.desired {
            None => write!(f, "{} = {:?} (not managed)", self.name, self.current),
            Some(d) if self.matches() => write!(f, "{} = {:?}", self.name, d),
            Some(d) => write!(f, "{}: {:?} -> {:?}", self.name, self.current, d),
        }
    }
}

/// A configure or check run failed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigureError {
    #[error(transparent)]
    Rest(#[from] RestError),
    #[error("Twilio did not keep what was set on {resource}: {fields}")]
    NotApplied { resource: String, fields: String },
}

fn text(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

/// The number's fields against the plan. An SMS application on the number would take over
/// its SMS URLs, so it must be empty.
pub fn number_fields(n: &IncomingPhoneNumber, plan: &WebhookPlan) -> Vec<Field> {
    vec![
        Field {
            name: "SmsUrl",
            current: text(&n.sms_url),
            desired: Some(plan.inbound_url.clone()),
        },
        Field {
            name: "SmsMethod",
            current: text(&n.sms_method),
            desired: Some("POST".into()),
        },
        Field {
            name: "SmsFallbackUrl",
            current: text(&n.sms_fallback_url),
            desired: plan.fallback_url.clone(),
        },
        Field {
            name: "SmsFallbackMethod",
            current: text(&n.sms_fallback_method),
            desired: plan.fallback_url.as_ref().map(|_| "POST".into()),
        },
        Field {
            name: "SmsApplicationSid",
            current: text(&n.sms_application_sid),
            desired: Some(String::new()),
        },
        // The number's StatusCallback reports *call* status; message status comes from each
        // message's own StatusCallback (notify sets it) or the Messaging Service's.
        Field {
            name: "StatusCallback",
            current: text(&n.status_callback),
            desired: None,
        },
    ]
}

/// The service's fields against the plan. `UseInboundWebhookOnNumber` would hand inbound
/// messages to each number's own URL instead, so it must be off.
pub fn service_fields(s: &MessagingService, plan: &WebhookPlan) -> Vec<Field> {
    vec![
        Field {
            name: "InboundRequestUrl",
            current: text(&s.inbound_request_url),
            desired: Some(plan.inbound_url.clone()),
        },
        Field {
            name: "InboundMethod",
            current: text(&s.inbound_method),
            desired: Some("POST".into()),
        },
        Field {
            name: "FallbackUrl",
            current: text(&s.fallback_url),
            desired: plan.fallback_url.clone(),
        },
        Field {
            name: "FallbackMethod",
            current: text(&s.fallback_method),
            desired: plan.fallback_url.as_ref().map(|_| "POST".into()),
        },
        Field {
            name: "StatusCallback",
            current: text(&s.status_callback),
            desired: Some(plan.status_callback_url.clone()),
        },
        Field {
            name: "UseInboundWebhookOnNumber",
            current: s
                .use_inbound_webhook_on_number
                .map(|b| b.to_string())
                .unwrap_or_default(),
            desired: Some("false".into()),
        },
    ]
}

fn form(fields: &[Field]) -> Vec<(&'static str, String)> {
    fields
        .iter()
        .filter(|f| !f.matches())
        .filter_map(|f| f.desired.clone().map(|d| (f.name, d)))
        .collect()
}

fn describe_drift(fields: &[Field]) -> String {
    fields
        .iter()
        .filter(|f| !f.matches())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Read the target; unless `check_only`, set what differs, then read it back and compare.
pub async fn configure(
    client: &TwilioRest,
    target: &Target,
    plan: &WebhookPlan,
    check_only: bool,
) -> Result<Report, ConfigureError> {
    match target {
        Target::Number(id) => {
            let number = if id.starts_with("PN") {
                client.fetch_number(id).await?
            } else {
                client.find_number(id).await?
            };
            let resource = format!(
                "number {} ({})",
                number.sid,
                crate::telemetry::mask_phone(&number.phone_number)
            );
            let before = number_fields(&number, plan);
            let changes = form(&before);
            let updated = !check_only && !changes.is_empty();
            if updated {
                client.update_number(&number.sid, &changes).await?;
                let after = number_fields(&client.fetch_number(&number.sid).await?, plan);
                if after.iter().any(|f| !f.matches()) {
                    return Err(ConfigureError::NotApplied {
                        resource,
                        fields: describe_drift(&after),
                    });
                }
            }
            Ok(Report {
                resource,
                before,
                updated,
            })
        }
        Target::Service(sid) => {
            let service = client.fetch_service(sid).await?;
            let resource = format!("messaging service {}", service.sid);
            let before = service_fields(&service, plan);
            let changes = form(&before);
            let updated = !check_only && !changes.is_empty();
            if updated {
                client.update_service(&service.sid, &changes).await?;
                let after = service_fields(&client.fetch_service(&service.sid).await?, plan);
                if after.iter().any(|f| !f.matches()) {
                    return Err(ConfigureError::NotApplied {
                        resource,
                        fields: describe_drift(&after),
                    });
                }
            }
            Ok(Report {
                resource,
                before,
                updated,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(overrides: &str, fallback: Option<&str>) -> WebhookSettings {
        WebhookSettings {
            overrides: overrides.into(),
            fallback_url: fallback.map(str::to_owned),
            ..WebhookSettings::default()
        }
    }

    #[test]
    fn the_plan_puts_the_overrides_after_path_and_query() {
        let s = settings(
            "rc=3&rp=ct,rt,5xx",
            Some("https://b.example.com/webhooks/twilio/messages?via=fallback"),
        );
        let plan = WebhookPlan::new("https://sms.example.com/", &s, None).unwrap();
        assert_eq!(
            plan.inbound_url,
            "https://sms.example.com/webhooks/twilio/messages#rc=3&rp=ct,rt,5xx"
        );
        assert_eq!(
            plan.fallback_url.as_deref(),
            Some("https://b.example.com/webhooks/twilio/messages?via=fallback#rc=3&rp=ct,rt,5xx")
        );
        assert_eq!(
            plan.status_callback_url,
            "https://sms.example.com/webhooks/twilio/status#rc=3&rp=ct,rt,5xx"
        );
    }

    #[test]
    fn a_url_with_its_own_fragment_keeps_it_and_no_overrides_means_no_fragment() {
        let s = settings("", Some("https://b.example.com/hook#rc=1&rp=5xx"));
        let plan = WebhookPlan::new("https://sms.example.com", &s, None).unwrap();
        assert_eq!(
            plan.inbound_url,
            "https://sms.example.com/webhooks/twilio/messages"
        );
        assert_eq!(
            plan.fallback_url.as_deref(),
            Some("https://b.example.com/hook#rc=1&rp=5xx")
        );
    }

    #[test]
    fn a_public_url_with_a_fragment_or_bad_overrides_is_refused() {
        let s = settings("rc=3&rp=5xx", None);
        assert!(WebhookPlan::new("https://sms.example.com#rc=1", &s, None).is_err());
        let bad = settings("rc=9", None);
        let err = WebhookPlan::new("https://sms.example.com", &bad, None).unwrap_err();
        assert_eq!(err.key, "twilio.webhooks.overrides");
    }

    #[test]
    fn drift_is_what_differs_and_methods_ignore_case() {
        let plan = WebhookPlan::new(
            "https://sms.example.com",
            &settings("rc=1&rp=5xx", None),
            None,
        )
        .unwrap();
        let number = IncomingPhoneNumber {
            sid: "PN1".into(),
            phone_number: "+14155550100".into(),
            sms_url: Some(plan.inbound_url.clone()),
            sms_method: Some("post".into()),
            sms_fallback_url: Some("https://elsewhere.example.com/".into()),
            sms_application_sid: None,
            status_callback: Some("https://calls.example.com/".into()),
            ..IncomingPhoneNumber::default()
        };
        let fields = number_fields(&number, &plan);
        // No fallback configured: the existing one is reported, not changed.
        assert!(fields.iter().all(Field::matches), "{fields:?}");
        let stale = IncomingPhoneNumber {
            sms_url: Some("https://sms.example.com/webhooks/twilio/messages".into()),
            sms_application_sid: Some("AP123".into()),
            ..number
        };
        let fields = number_fields(&stale, &plan);
        let changes = form(&fields);
        assert_eq!(
            changes,
            vec![
                ("SmsUrl", plan.inbound_url.clone()),
                ("SmsApplicationSid", String::new())
            ]
        );
    }

    #[test]
    fn targets_come_from_the_command_line_first() {
        let s = WebhookSettings {
            messaging_service_sid: Some("MG1".into()),
            ..WebhookSettings::default()
        };
        assert_eq!(
            Target::choose(Some("+14155550100"), None, &s),
            Some(Target::Number("+14155550100".into()))
        );
        assert_eq!(
            Target::choose(None, None, &s),
            Some(Target::Service("MG1".into()))
        );
        assert_eq!(
            Target::choose(None, None, &WebhookSettings::default()),
            None
        );
    }
}
