//! The API's error body: `{"error": {"code": "...", "message": "..."}}` with a stable code,
//! so clients branch on the code and show the message.
//!
//! A server-side failure (5xx) keeps its cause for the operator: it is logged once, with its
//! whole cause chain, when the response is made, and never sent to the client (no CQL or
//! Kafka error text leaves the server).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

type Cause = Box<dyn std::error::Error + Send + Sync>;

/// An API failure with its HTTP status and stable code.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// What failed inside, for the log only.
    cause: Option<Cause>,
}

impl ApiError {
    /// Build one.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            cause: None,
        }
    }

    /// 503 because `what` (e.g. "the read model") failed with `cause`: the client is told to
    /// retry, the operator's log gets the cause.
    pub fn dependency(
        what: &str,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> ApiError {
        ApiError {
            cause: Some(Box::new(cause)),
            ..Self::unavailable(format!("{what} is unavailable; retry later"))
        }
    }

    /// 401: no token, or not a valid one.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: a valid token without the needed role.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404: absent, or someone else's (which must not be told apart).
    pub fn not_found(what: &str) -> ApiError {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    /// 400: the request itself is wrong.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 503: a dependency is down; retrying later may work.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

/// The body of every API error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What failed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable: `unauthorized`, `forbidden`, `not_found`,
    /// `invalid_request`, `unavailable`, `phone_taken`, `wrong_code`, `code_exhausted`,
    /// `too_many_codes`, `no_pending_code`.
    #[schema(example = "not_found")]
    pub code: &'static str,
    /// For people: what failed and what to do about it.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            // The one place a server-side failure is logged.
            match &self.cause {
                Some(cause) => tracing::warn!(
                    status = self.status.as_u16(),
                    code = self.code,
                    error = %ErrorChain(cause.as_ref()),
                    "API request failed"
                ),
                None => tracing::warn!(
                    status = self.status.as_u16(),
                    code = self.code,
                    message = %self.message,
                    "API request failed"
                ),
            }
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        resp
    }
}

/// An error with every cause after it: `a: b: c`.
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// A read model that cannot be read: 503, cause logged.
impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        ApiError::dependency("the read model", e)
    }
}

/// Turn a JSON body rejection into the API's error shape.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> ApiError {
        ApiError::invalid(r.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("CQL statement failed: Database returned an error: keyspace t_1 does not exist")]
    struct CqlFailure;

    #[tokio::test]
    async fn a_dependency_failure_is_a_503_without_its_cause_in_the_body() {
        let resp = ApiError::dependency("the read model", CqlFailure).into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
        let body = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(text.contains("\"unavailable\""), "{text}");
        assert!(text.contains("the read model is unavailable"), "{text}");
        assert!(
            !text.contains("CQL") && !text.contains("keyspace"),
            "{text}"
        );
    }
}
