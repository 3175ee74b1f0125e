//! Webhook failures and the HTTP answers Twilio gets for them.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::ingress::form::FormError;
use crate::kafka::ProduceError;
use crate::metrics::{self, RefusedReason};

/// Why a webhook was not accepted. Nothing was appended in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    #[error("X-Twilio-Signature is missing or does not match this URL and body")]
    BadSignature,
    #[error("Content-Type must be application/x-www-form-urlencoded")]
    WrongContentType,
    #[error("request body is larger than the configured http.body_limit_bytes")]
    BodyTooLarge,
    #[error("request body could not be read: {0}")]
    BadBody(String),
    #[error("webhook parameters are invalid: {0}")]
    Form(#[from] FormError),
    #[error("event not stored, retry later: {0}")]
    Unavailable(#[from] ProduceError),
    #[error("this message is being appended by another request; retry later")]
    InFlight,
    #[error(transparent)]
    DedupeUnavailable(#[from] crate::ingress::dedupe::DedupeUnavailable),
    #[error(transparent)]
    RateLimitUnavailable(#[from] crate::ingress::rate_limit::RateLimitUnavailable),
    #[error("the phone registry cannot be read or changed, retry later: {0}")]
    Registry(String),
}

impl IngressError {
    fn reason(&self) -> RefusedReason {
        match self {
            IngressError::BadSignature => RefusedReason::BadSignature,
            IngressError::WrongContentType => RefusedReason::WrongContentType,
            IngressError::BodyTooLarge => RefusedReason::BodyTooLarge,
            IngressError::BadBody(_) | IngressError::Form(_) => RefusedReason::MalformedForm,
            IngressError::Unavailable(_) => RefusedReason::KafkaUnavailable,
            IngressError::InFlight => RefusedReason::InFlight,
            IngressError::DedupeUnavailable(_) | IngressError::RateLimitUnavailable(_) => {
                RefusedReason::RedisUnavailable
            }
            IngressError::Registry(_) => RefusedReason::RegistryUnavailable,
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            IngressError::BadSignature => StatusCode::FORBIDDEN,
            IngressError::WrongContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IngressError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            IngressError::BadBody(_) | IngressError::Form(_) => StatusCode::BAD_REQUEST,
            IngressError::Unavailable(_)
            | IngressError::InFlight
            | IngressError::DedupeUnavailable(_)
            | IngressError::RateLimitUnavailable(_)
            | IngressError::Registry(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Label for the latency histogram.
    pub fn outcome(&self) -> &'static str {
        self.reason().as_str()
    }

    /// Record this refusal as a span that every sampler keeps (`telemetry::KEEP_ATTRIBUTE`):
    /// head sampling drops most webhook traces, and a refused or failed one must still be
    /// found in Jaeger, by its outcome, status or Twilio idempotency token. It carries the
    /// trace id of the request, which the log line of the refusal carries too.
    pub(super) fn keep_span(&self, route: &'static str, headers: &HeaderMap) {
        let token = headers
            .get("i-twilio-idempotency-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let request_trace_id = crate::telemetry::current_trace_id().unwrap_or_default();
        let _span = tracing::info_span!(
            parent: None,
            "webhook.refused",
            otel.name = "webhook refused",
            sampling.priority = 1i64,
            http.route = route,
            http.response.status_code = i64::from(self.status().as_u16()),
            outcome = self.outcome(),
            error.message = %self,
            request.trace_id = request_trace_id,
            twilio.idempotency_token = token,
        );
    }
}

impl IntoResponse for IngressError {
    fn into_response(self) -> Response {
        metrics::webhook_refused(self.reason());
        let status = self.status();
        let trace_id = crate::telemetry::current_trace_id().unwrap_or_default();
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), error = %self, trace_id, "webhook not accepted");
        } else {
            tracing::info!(status = status.as_u16(), error = %self, trace_id, "webhook refused");
        }
        let mut resp = (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{self}\n"),
        )
            .into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        resp
    }
}
