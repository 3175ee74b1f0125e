//! The notify stage: each `OutboundRequested` on `sms.outbound.v1` is sent once through the
//! Twilio Messages API, unless its recipient opted out, and its fate is appended as
//! `OutboundStatusChanged` on the same topic, keyed like the request.
//!
//! Sending is a side effect outside Kafka's transaction, so the runner's exactly-once does not
//! cover it. The send ledger in Redis (`ledger`) does: a request is claimed by its `event_id`
//! before anything is sent, and the decision is recorded after; a retried or replayed request
//! gets the recorded decision back and is not sent again. What remains is documented in
//! `docs/guarantees.md` ("Notify: each request is sent at most once").

pub mod config;
pub mod ledger;
pub mod opt_out;
pub mod retry;
pub mod twilio;

use std::sync::Arc;

use scylla::client::session::Session;
use tracing::{field, instrument, Span};

use crate::config::Settings;
use crate::events::{decode, encode, Event, OutboundRequested, OutboundStatusChanged};
use crate::stages::{Input, Output, Stage, StageError};
use crate::store::StoreError;
use crate::telemetry::mask_phone;
use crate::topics;

pub use config::{InvalidNotifySetting, NotifyConfig};
use ledger::{Claim, Ledger};
use opt_out::OptOuts;
use twilio::{Message, SendError, Sender, TwilioClient};

/// The path of the status callback route served by ingress.
pub const STATUS_CALLBACK_PATH: &str = "/webhooks/twilio/status";

/// Why the stage cannot start.
#[derive(Debug, thiserror::Error)]
pub enum NotifyStageError {
    #[error(transparent)]
    Invalid(#[from] InvalidNotifySetting),
    #[error("the notify role needs Twilio credentials: set {0}")]
    MissingCredentials(&'static str),
    #[error(transparent)]
    Client(#[from] twilio::ClientError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Sends outbound SMS through Twilio, each request once.
pub struct NotifyStage {
    twilio: TwilioClient,
    ledger: Ledger,
    opt_outs: OptOuts,
    config: NotifyConfig,
    status_callback: url::Url,
}

/// A request that could not be decided now; the runner retries it.
enum Undecided {
    /// Twilio certainly has no message for it: the claim is released.
    NotSent(String),
    /// Twilio may have created the message: the claim stays until `claim_ttl` passes.
    Unknown(String),
}

impl NotifyStage {
    /// Build from settings, the shared Redis pool and a CQL session (for `phones`).
    pub async fn new(
        settings: &Settings,
        redis: deadpool_redis::Pool,
        session: Arc<Session>,
    ) -> Result<NotifyStage, NotifyStageError> {
        let config = settings.notify.clone();
        config.validate()?;
        let account_sid = non_empty(&settings.twilio.account_sid)
            .ok_or(NotifyStageError::MissingCredentials("TWILIO_ACCOUNT_SID"))?;
        let auth_token = non_empty(&settings.twilio.auth_token)
            .ok_or(NotifyStageError::MissingCredentials("TWILIO_AUTH_TOKEN"))?;
        if config.from.is_none() && config.messaging_service_sid.is_none() {
            tracing::warn!("neither notify.from nor notify.messaging_service_sid is set: requests without their own sender will fail with reason no_sender");
        }
        let mut status_callback = status_callback_base(&config, &settings.http.public_url)?;
        // The same connection overrides as the inbound URL, so that Twilio retries a callback
        // that ingress answers 503 (the fragment stays after the per-request query).
        if status_callback.fragment().is_none() && !settings.twilio.webhooks.overrides.is_empty() {
            status_callback.set_fragment(Some(&settings.twilio.webhooks.overrides));
        }
        Ok(NotifyStage {
            twilio: TwilioClient::new(&config, account_sid, auth_token)?,
            ledger: Ledger::new(
                redis,
                &settings.kafka.topic_prefix,
                config.claim_ttl(),
                config.record_ttl,
            ),
            opt_outs: OptOuts::new(session, &settings.cql.keyspace).await?,
            config,
            status_callback,
        })
    }

    async fn decide(&self, req: &OutboundRequested) -> Result<OutboundStatusChanged, Undecided> {
        let opted_out = self
            .opt_outs
            .is_opted_out(&req.to)
            .await
            .map_err(|e| Undecided::NotSent(e.to_string()))?;
        if !opt_out::may_send(&req.purpose, opted_out) {
            return Ok(status_event(req, "suppressed", None, Some("opted_out")));
        }
        let sender = match (
            req.from.as_deref().filter(|f| !f.is_empty()),
            self.config.from.as_deref(),
            self.config.messaging_service_sid.as_deref(),
        ) {
            (Some(f), _, _) | (None, Some(f), _) => Sender::From(f),
            (None, None, Some(mg)) => Sender::MessagingService(mg),
            (None, None, None) => {
                return Ok(status_event(req, "failed", None, Some("no_sender")));
            }
        };
        let callback = self.status_callback_for(req);
        let msg = Message {
            to: &req.to,
            sender,
            body: &req.body,
            status_callback: callback.as_str(),
        };
        let from = match sender {
            Sender::From(f) => Some(f.to_owned()),
            Sender::MessagingService(_) => None,
        };
        match self.twilio.send(&msg).await {
            Ok(created) => {
                let mut ev = status_event(req, &created.status, from, None);
                ev.twilio_sid = Some(created.sid);
                ev.error_code = created.error_code;
                ev.error_message = created.error_message;
                Ok(ev)
            }
            Err(SendError::Refused { code, message, .. }) => {
                let mut ev = status_event(req, "failed", from, None);
                ev.error_code = code;
                ev.error_message = Some(message);
                Ok(ev)
            }
            Err(e @ (SendError::Misconfigured { .. } | SendError::Unavailable { .. })) => {
                Err(Undecided::NotSent(e.to_string()))
            }
            Err(e @ SendError::Unknown(_)) => Err(Undecided::Unknown(e.to_string())),
        }
    }

    /// The callback URL for one request: its `event_id` (and owner) ride in the query, which
    /// Twilio signs, so a callback is tied to its request and keyed like it.
    fn status_callback_for(&self, req: &OutboundRequested) -> url::Url {
        let mut url = self.status_callback.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("event_id", &req.event_id);
            if let Some(user) = &req.user_id {
                q.append_pair("user_id", user);
            }
        }
        url
    }

    async fn record(&self, event_id: &str, ev: &OutboundStatusChanged) {
        for attempt in 1..=3 {
            match self.ledger.record(event_id, ev).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::error!(attempt, error = %e, "could not record a send decision; a replay after the claim expires could send it again");
                }
            }
        }
    }
}

impl Stage for NotifyStage {
    const NAME: &'static str = "notify";

    fn inputs(&self) -> Vec<&'static str> {
        vec![topics::OUTBOUND]
    }

    fn batch_limit(&self) -> Option<usize> {
        // Sends can wait on Twilio's Retry-After; keep a batch well inside the poll interval.
        Some(self.config.max_in_flight.saturating_mul(4))
    }

    #[instrument(
        name = "notify.handle",
        skip_all,
        fields(event_id = field::Empty, purpose = field::Empty, to = field::Empty, outcome = field::Empty)
    )]
    async fn handle(&self, input: &Input) -> Result<Vec<Output>, StageError> {
        if input
            .event_type
            .as_deref()
            .is_some_and(|t| t != OutboundRequested::NAME)
        {
            return Ok(Vec::new()); // our own OutboundStatusChanged share the topic
        }
        let bytes = input
            .payload
            .as_deref()
            .ok_or_else(|| StageError::Poison("record without a payload".into()))?;
        let req: OutboundRequested =
            decode(bytes).map_err(|e| StageError::Poison(e.to_string()))?;
        if req.event_id.is_empty() || req.to.is_empty() {
            return Err(StageError::Poison(
                "OutboundRequested needs an event_id and a recipient".into(),
            ));
        }
        let span = Span::current();
        span.record("event_id", req.event_id.as_str());
        span.record("purpose", req.purpose.as_str());
        span.record("to", mask_phone(&req.to).as_str());

        let claim = self
            .ledger
            .claim(&req.event_id)
            .await
            .map_err(|e| StageError::Transient(e.to_string()))?;
        match claim {
            Claim::Fresh => {}
            Claim::Decided(ev) => {
                crate::metrics::notify_outcome("replayed");
                span.record("outcome", "replayed");
                tracing::info!(status = %ev.status, "request decided before; returning the recorded decision");
                return Ok(vec![output(req.partition_key(), &ev)?]);
            }
            Claim::Pending => {
                return Err(StageError::Transient(
                    "a send of this request is under way, or its outcome was never recorded; retrying later".into(),
                ))
            }
        }
        match self.decide(&req).await {
            Ok(ev) => {
                self.record(&req.event_id, &ev).await;
                let outcome = outcome_label(&ev.status);
                crate::metrics::notify_outcome(outcome);
                span.record("outcome", outcome);
                tracing::info!(status = %ev.status, error_code = ?ev.error_code, reason = ?ev.reason, "outbound request decided");
                Ok(vec![output(req.partition_key(), &ev)?])
            }
            Err(Undecided::NotSent(e)) => {
                self.ledger.release(&req.event_id).await;
                Err(StageError::Transient(e))
            }
            Err(Undecided::Unknown(e)) => Err(StageError::Transient(format!(
                "{e}; not sent again before notify's claim expires"
            ))),
        }
    }
}

/// A status event for `req`, from the stage.
fn status_event(
    req: &OutboundRequested,
    status: &str,
    from: Option<String>,
    reason: Option<&str>,
) -> OutboundStatusChanged {
    OutboundStatusChanged {
        event_id: uuid::Uuid::now_v7().to_string(),
        changed_at: crate::clock::now_micros(),
        request_event_id: Some(req.event_id.clone()),
        source: "notify".into(),
        status: status.to_owned(),
        twilio_sid: None,
        error_code: None,
        error_message: None,
        reason: reason.map(str::to_owned),
        user_id: req.user_id.clone(),
        to: Some(req.to.clone()),
        from,
        purpose: Some(req.purpose.clone()),
    }
}

fn outcome_label(status: &str) -> &'static str {
    match status {
        "queued" => "queued",
        "accepted" => "accepted",
        "suppressed" => "suppressed",
        "failed" => "failed",
        _ => "other",
    }
}

fn output(key: &str, ev: &OutboundStatusChanged) -> Result<Output, StageError> {
    let payload = encode(ev).map_err(|e| {
        StageError::Permanent(format!(
            "cannot encode {}: {e}",
            OutboundStatusChanged::NAME
        ))
    })?;
    Ok(Output {
        topic: topics::OUTBOUND,
        key: key.to_owned(),
        event_type: OutboundStatusChanged::NAME,
        payload,
    })
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// `notify.status_callback_url`, or the status route under `http.public_url`.
fn status_callback_base(
    config: &NotifyConfig,
    public_url: &str,
) -> Result<url::Url, InvalidNotifySetting> {
    let text = match &config.status_callback_url {
        Some(u) => u.clone(),
        None => format!("{}{STATUS_CALLBACK_PATH}", public_url.trim_end_matches('/')),
    };
    url::Url::parse(&text).map_err(|e| InvalidNotifySetting {
        key: "notify.status_callback_url",
        reason: format!("{text:?} is not a URL: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callback_defaults_to_the_status_route_under_the_public_url() {
        let c = NotifyConfig::default();
        let url = status_callback_base(&c, "https://sms.example.com/").unwrap();
        assert_eq!(
            url.as_str(),
            "https://sms.example.com/webhooks/twilio/status"
        );
        let c = NotifyConfig {
            status_callback_url: Some(
                "https://hooks.example.com/webhooks/twilio/status?k=1".into(),
            ),
            ..NotifyConfig::default()
        };
        let url = status_callback_base(&c, "https://sms.example.com").unwrap();
        assert_eq!(url.query(), Some("k=1"));
    }
}
