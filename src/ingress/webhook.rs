//! `POST /webhooks/twilio/messages`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{OriginalUri, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::{field, instrument, Span};

use super::dedupe::Claim;
use super::rate_limit::Decision;
use super::{form, signature, IngressError, IngressState};
use crate::events::SenderRejected;
use crate::metrics;
use crate::telemetry::mask_phone;

/// The empty TwiML document: "received, nothing to reply".
const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>";

#[instrument(
    name = "webhook.message",
    skip_all,
    fields(
        otel.name = "POST /webhooks/twilio/messages",
        otel.kind = "server",
        http.request.method = "POST",
        http.route = "/webhooks/twilio/messages",
        http.response.status_code = field::Empty,
        outcome = field::Empty,
        message_sid = field::Empty,
        from = field::Empty,
    )
)]
pub(super) async fn receive_message(
    State(state): State<Arc<IngressState>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let _in_flight = InFlight::enter();
    let result = accept(&state, &uri, &headers, body).await;
    let outcome = match &result {
        Ok(Accepted::Appended) => "accepted",
        Ok(Accepted::Duplicate) => "duplicate",
        Err(e) => e.outcome(),
    };
    metrics::webhook_latency(outcome, started.elapsed());
    let response = match result {
        Ok(_) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/xml")],
            EMPTY_TWIML,
        )
            .into_response(),
        Err(e) => e.into_response(),
    };
    let span = Span::current();
    span.record("outcome", outcome);
    span.record("http.response.status_code", response.status().as_u16());
    response
}

async fn accept(
    state: &IngressState,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Accepted, IngressError> {
    let pairs = signed_form(state, uri, headers, body)?;

    let received_at = crate::clock::now_micros();
    let token = headers
        .get("i-twilio-idempotency-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let event =
        form::message_received(&pairs, uuid::Uuid::now_v7().to_string(), received_at, token)?;
    let span = Span::current();
    span.record("message_sid", event.message_sid.as_str());
    span.record("from", mask_phone(&event.from).as_str());

    let claim = match &state.dedupe {
        Some(d) => {
            d.claim(&event.message_sid, event.idempotency_token.as_deref())
                .await?
        }
        None => Claim::Unchecked,
    };
    let keys = match claim {
        Claim::Duplicate => {
            metrics::webhook_duplicate();
            tracing::info!("repeated delivery of an appended message; nothing appended");
            return Ok(Accepted::Duplicate);
        }
        Claim::InFlight => return Err(IngressError::InFlight),
        Claim::Fresh(keys) => Some(keys),
        Claim::Unchecked => None,
    };

    let decision = match &state.rate_limit {
        Some(r) => r.check_sender(&event.from).await,
        None => Ok(Decision::Unchecked),
    };
    let decision = match decision {
        Ok(d) => d,
        Err(e) => {
            if let (Some(d), Some(keys)) = (&state.dedupe, &keys) {
                d.release(keys).await;
            }
            return Err(e.into());
        }
    };
    let started = Instant::now();
    let produced = match decision {
        Decision::Limited { retry_after } => {
            // Recorded, answered 200 so Twilio does not retry, and never enriched.
            metrics::rate_limited();
            let rejected = SenderRejected {
                event_id: event.event_id.clone(),
                received_at: event.received_at,
                message_sid: event.message_sid.clone(),
                from: event.from.clone(),
                to: event.to.clone(),
                user_id: event.user_id.clone(),
                reason: "rate_limited".into(),
                retry_after_ms: Some(i64::try_from(retry_after.as_millis()).unwrap_or(i64::MAX)),
            };
            state
                .producer
                .send(&state.messages_topic, rejected.partition_key(), &rejected)
                .await
        }
        Decision::Allowed | Decision::Unchecked => {
            state
                .producer
                .send(&state.messages_topic, event.partition_key(), &event)
                .await
        }
    };
    metrics::produce_latency(started.elapsed());
    match (produced, &state.dedupe, keys) {
        (Ok(_), Some(d), Some(keys)) => d.confirm(&keys).await,
        (Err(e), Some(d), Some(keys)) => {
            d.release(&keys).await;
            return Err(e.into());
        }
        (Err(e), _, _) => return Err(e.into()),
        (Ok(_), _, _) => {}
    }
    Ok(Accepted::Appended)
}

/// The parameters of a form POST whose Twilio signature checks out; every Twilio webhook
/// route starts here.
pub(super) fn signed_form(
    state: &IngressState,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Vec<(String, String)>, IngressError> {
    if !is_form(headers) {
        return Err(IngressError::WrongContentType);
    }
    let body = body.map_err(|rej| {
        if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            IngressError::BodyTooLarge
        } else {
            IngressError::BadBody(rej.body_text())
        }
    })?;
    if std::str::from_utf8(&body).is_err() {
        return Err(IngressError::BadBody("form body is not UTF-8".into()));
    }
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    check_signature(state, uri, headers, &pairs)?;
    Ok(pairs)
}

/// How an accepted webhook was handled.
enum Accepted {
    Appended,
    Duplicate,
}

#[instrument(name = "webhook.signature", skip_all)]
fn check_signature(
    state: &IngressState,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    pairs: &[(String, String)],
) -> Result<(), IngressError> {
    let Some(token) = state.auth_token.as_deref() else {
        return Ok(());
    };
    let sig = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or(IngressError::BadSignature)?;
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{}", state.public_url, path_and_query);
    if signature::is_valid(token, &url, pairs, sig) {
        Ok(())
    } else {
        Err(IngressError::BadSignature)
    }
}

/// Counts a webhook as in flight until dropped, also when the client goes away mid-request.
struct InFlight;

impl InFlight {
    fn enter() -> InFlight {
        metrics::webhooks_in_flight(1.0);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::webhooks_in_flight(-1.0);
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}
