//! The API's error body: `{"error": {"code": "...", "message": "..."}}` with a stable code,
//! so clients branch on the code and show the message.
//!
//! A server-side failure (5xx) keeps its cause for the operator: it is logged once, with its
//! whole cause chain, when the response is made, and never sent to the client (no CQL or
//! Kafka error text leaves the server).

use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
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

    /// 500: a bug on our side; `message` goes to the log, the client gets no detail.
    pub fn internal(message: impl Into<String>) -> ApiError {
        let cause: Cause = message.into().into();
        ApiError {
            cause: Some(cause),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the server failed to handle the request; this is a bug, please report it",
            )
        }
    }
}

/// `router` with the rest of its answers in the error shape: a path no route serves (404), a
/// method a route does not take (405, with `Allow`), and a request not answered within
/// `request_timeout` (408). Call it on a listener's finished router: the 405 answer reaches
/// only the routes added before.
pub fn in_error_shape(router: Router, request_timeout: Duration) -> Router {
    router
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(
            move |req: Request, next: Next| async move {
                match tokio::time::timeout(request_timeout, next.run(req)).await {
                    Ok(resp) => resp,
                    Err(_) => request_timeout_error().into_response(),
                }
            },
        ))
}

/// The answer to a path no route serves (on every listener: users, operators and Twilio get
/// the same shape).
async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        format!(
            "no route for {method} {}; the API is described at /v1/openapi.json",
            uri.path()
        ),
    )
}

/// The answer to a method a route does not take; axum adds the `Allow` header.
async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} does not take {method}; the `Allow` header lists what it takes",
            uri.path()
        ),
    )
}

/// The answer to a request that outlived `http.request_timeout`.
fn request_timeout_error() -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        "the request was not answered within http.request_timeout; retry",
    )
}

/// The body of every API error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What failed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable: `invalid_request`, `unauthorized`, `forbidden`,
    /// `not_found`, `no_route`, `method_not_allowed`, `request_timeout`, `payload_too_large`,
    /// `unsupported_media_type`, `unavailable`, `internal`, `phone_taken`, `wrong_code`,
    /// `code_exhausted`, `too_many_codes`, `no_pending_code`.
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

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("CQL statement failed: Database returned an error: keyspace t_1 does not exist")]
    struct CqlFailure;

    async fn answer(router: Router, req: Request) -> (StatusCode, axum::http::HeaderMap, Value) {
        use tower::ServiceExt as _;
        let resp = router.oneshot(req).await.unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let body = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
        (
            status,
            headers,
            serde_json::from_slice(&body).unwrap_or(Value::Null),
        )
    }

    fn listener() -> Router {
        use axum::routing::get;
        let slow = || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            "late"
        };
        in_error_shape(
            Router::new()
                .route("/v1/things", get(|| async { "ok" }).post(|| async { "ok" }))
                .route("/slow", get(slow)),
            Duration::from_secs(10),
        )
    }

    fn request(method: &str, uri: &str) -> Request {
        Request::builder()
            .method(method)
            .uri(uri)
            .body(axum::body::Body::empty())
            .unwrap()
    }

    #[tokio::test]
    async fn an_unknown_path_is_a_404_in_the_error_shape() {
        let (status, headers, body) = answer(listener(), request("GET", "/v2/nothing")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(body["error"]["code"], "no_route", "{body}");
    }

    #[tokio::test]
    async fn a_method_the_route_does_not_take_is_a_405_with_allow_in_the_error_shape() {
        let (status, headers, body) = answer(listener(), request("DELETE", "/v1/things")).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
        let allow = headers[header::ALLOW].to_str().unwrap();
        assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_over_the_timeout_is_a_408_in_the_error_shape() {
        let (status, headers, body) = answer(listener(), request("GET", "/slow")).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(body["error"]["code"], "request_timeout", "{body}");
    }

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
