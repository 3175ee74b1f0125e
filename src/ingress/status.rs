//! `POST /webhooks/twilio/status`: Twilio's StatusCallback for messages the notify stage sent.
//! Checked like the message webhook, appended as `OutboundStatusChanged` on `sms.outbound.v1`,
//! and answered 200 only once Kafka has it (503 otherwise, so Twilio retries).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::{field, instrument, Span};

use super::webhook::signed_form;
use super::{form, IngressError, IngressState};
use crate::metrics;

#[instrument(
    name = "webhook.status",
    skip_all,
    fields(
        otel.name = "POST /webhooks/twilio/status",
        otel.kind = "server",
        http.request.method = "POST",
        http.route = "/webhooks/twilio/status",
        http.response.status_code = field::Empty,
        outcome = field::Empty,
        message_sid = field::Empty,
        message_status = field::Empty,
    )
)]
pub(super) async fn receive_status(
    State(state): State<Arc<IngressState>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let result = accept(&state, &uri, &headers, body).await;
    let outcome = match &result {
        Ok(()) => "status_accepted",
        Err(e) => e.outcome(),
    };
    metrics::webhook_latency(outcome, started.elapsed());
    let response = match result {
        // Twilio ignores the body of a status callback answer.
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => {
            e.keep_span("/webhooks/twilio/status", &headers);
            e.into_response()
        }
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
) -> Result<(), IngressError> {
    let pairs = signed_form(state, uri, headers, body)?;
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let event = form::status_changed(
        &pairs,
        &query,
        uuid::Uuid::now_v7().to_string(),
        crate::clock::now_micros(),
    )?;
    let span = Span::current();
    span.record(
        "message_sid",
        event.twilio_sid.as_deref().unwrap_or_default(),
    );
    span.record("message_status", event.status.as_str());
    let started = Instant::now();
    // Twilio may repeat a callback; a repeat projects to the same row and status, so no
    // duplicate check is spent on it.
    let produced = state
        .producer
        .send(&state.outbound_topic, event.partition_key(), &event)
        .await;
    metrics::produce_latency(started.elapsed());
    produced?;
    Ok(())
}
