//! The Twilio Messages API client: one pooled HTTP client, a bounded number of requests in
//! flight, and retries of 429, 5xx and unreachable with backoff and jitter.
//!
//! `POST {api_base}/2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded, HTTP basic
//! auth. Twilio answers `201` with the Message resource (`sid`, `status`, `error_code`,
//! `error_message`, ...) or an error object `{"code", "message", "more_info", "status"}`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;
use reqwest::StatusCode;
use serde::Deserialize;
use tokio::sync::Semaphore;
use tracing::{field, instrument, Span};

use super::config::NotifyConfig;
use super::retry::{Next, RetryPolicy};
use crate::phones::mask_phone;
use crate::stages::shared::http::retry_after;

/// Most bytes of an answer that are read (a Message resource is about 1 KiB).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Who the message is from: a number, or a Messaging Service that picks one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender<'a> {
    From(&'a str),
    MessagingService(&'a str),
}

/// One message to create.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub to: &'a str,
    pub sender: Sender<'a>,
    pub body: &'a str,
    pub status_callback: &'a str,
}

/// Twilio created the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub sid: String,
    /// `queued`, or `accepted` when a Messaging Service picks the sender.
    pub status: String,
    pub error_code: Option<i32>,
    pub error_message: Option<String>,
}

/// Why a message was not (known to be) created.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Twilio refused this message (a 4xx other than 429 and the auth errors): final.
    #[error("Twilio refused the message (HTTP {status}, code {code:?}): {message}")]
    Refused {
        status: u16,
        code: Option<i32>,
        message: String,
    },
    /// Credentials or account are wrong (401, 403, 404): no message can be sent until an
    /// operator fixes `TWILIO_ACCOUNT_SID` / `TWILIO_AUTH_TOKEN` or `notify.api_base`.
    #[error("Twilio refused our credentials or account (HTTP {status}, code {code:?}): {message}; check TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and notify.api_base")]
    Misconfigured {
        status: u16,
        code: Option<i32>,
        message: String,
    },
    /// Every call got 429, 5xx or no connection: Twilio did not create the message.
    #[error("Twilio unavailable after {attempts} call(s): {last}")]
    Unavailable { attempts: u32, last: String },
    /// The request may have reached Twilio but no usable answer came back (timeout, cut
    /// connection, unreadable 2xx): the message may or may not exist.
    #[error("outcome unknown: {0}")]
    Unknown(String),
}

/// Twilio's error object.
#[derive(Debug, Deserialize)]
struct TwilioError {
    code: Option<i32>,
    message: Option<String>,
}

/// The fields of the Message resource the stage uses.
#[derive(Debug, Deserialize)]
struct MessageResource {
    sid: String,
    status: String,
    error_code: Option<i32>,
    error_message: Option<String>,
}

/// A pooled, concurrency-limited Messages API client.
#[derive(Clone)]
pub struct TwilioClient {
    http: reqwest::Client,
    url: String,
    account_sid: String,
    auth_token: crate::secrets::SecretString,
    permits: Arc<Semaphore>,
    retry: RetryPolicy,
}

/// The client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the Twilio HTTP client: {0}")]
pub struct ClientError(#[from] reqwest::Error);

impl TwilioClient {
    /// Build the one client every send shares.
    pub fn new(
        config: &NotifyConfig,
        account_sid: &str,
        auth_token: &str,
    ) -> Result<TwilioClient, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.request_timeout.min(Duration::from_secs(5)))
            .timeout(config.request_timeout)
            .pool_max_idle_per_host(config.max_in_flight)
            // Twilio never redirects the Messages API; a redirect would carry credentials.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("smsflow/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(TwilioClient {
            http,
            url: format!(
                "{}/2010-04-01/Accounts/{account_sid}/Messages.json",
                config.api_base.trim_end_matches('/')
            ),
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.into(),
            permits: Arc::new(Semaphore::new(config.max_in_flight)),
            retry: RetryPolicy::from_config(config),
        })
    }

    /// Create the message, retrying what Twilio says is retryable.
    #[instrument(
        name = "twilio.messages.create",
        skip_all,
        fields(
            otel.kind = "client",
            http.request.method = "POST",
            to = %mask_phone(msg.to),
            attempts = field::Empty,
            http.response.status_code = field::Empty,
        )
    )]
    pub async fn send(&self, msg: &Message<'_>) -> Result<Created, SendError> {
        // The semaphore is never closed, so `acquire` cannot fail.
        let _permit = self.permits.acquire().await.ok();
        let mut attempt = 0;
        loop {
            attempt += 1;
            Span::current().record("attempts", attempt);
            let started = Instant::now();
            let result = self.call(msg).await;
            crate::metrics::notify_call(
                match &result {
                    Ok(_) => "created",
                    Err(Call::Final(SendError::Refused { .. })) => "refused",
                    Err(Call::Final(SendError::Misconfigured { .. })) => "misconfigured",
                    Err(Call::Final(_)) => "unknown",
                    Err(Call::Retryable { .. }) => "retryable",
                },
                started.elapsed(),
            );
            let (detail, retry_after) = match result {
                Ok(created) => return Ok(created),
                Err(Call::Final(e)) => return Err(e),
                Err(Call::Retryable {
                    detail,
                    retry_after,
                }) => (detail, retry_after),
            };
            match self
                .retry
                .after_failure(attempt, retry_after, fastrand::f64())
            {
                Next::GiveUp => {
                    return Err(SendError::Unavailable {
                        attempts: attempt,
                        last: detail,
                    })
                }
                Next::RetryIn(delay) => {
                    crate::metrics::notify_retry();
                    tracing::warn!(attempt, error = %detail, retry_in = ?delay, "Twilio call failed; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    async fn call(&self, msg: &Message<'_>) -> Result<Created, Call> {
        let mut form: Vec<(&str, &str)> = vec![("To", msg.to), ("Body", msg.body)];
        match msg.sender {
            Sender::From(f) => form.push(("From", f)),
            Sender::MessagingService(s) => form.push(("MessagingServiceSid", s)),
        }
        form.push(("StatusCallback", msg.status_callback));
        let sent = self
            .http
            .post(&self.url)
            .basic_auth(
                &self.account_sid,
                Some(crate::secrets::ExposeSecret::expose_secret(
                    &self.auth_token,
                )),
            )
            .form(&form)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            // No connection means no request reached Twilio: safe to try again.
            Err(e) if e.is_connect() => {
                return Err(Call::Retryable {
                    detail: describe(&e),
                    retry_after: None,
                })
            }
            Err(e) => return Err(Call::Final(SendError::Unknown(describe(&e)))),
        };
        let status = resp.status();
        Span::current().record("http.response.status_code", status.as_u16());
        let retry_after = retry_after(resp.headers(), SystemTime::now());
        let body = match read_limited(resp).await {
            Ok(b) => b,
            Err(detail) if status.is_success() => {
                return Err(Call::Final(SendError::Unknown(detail)))
            }
            Err(detail) => BytesMut::from(detail.as_bytes()),
        };
        classify(status, &body, retry_after)
    }
}

/// One call's outcome, before the retry decision.
enum Call {
    Retryable {
        detail: String,
        retry_after: Option<Duration>,
    },
    Final(SendError),
}

/// Sort Twilio's answer into created, retryable or final.
fn classify(
    status: StatusCode,
    body: &[u8],
    retry_after: Option<Duration>,
) -> Result<Created, Call> {
    if status.is_success() {
        return serde_json::from_slice::<MessageResource>(body)
            .map(|m| Created {
                sid: m.sid,
                status: m.status,
                error_code: m.error_code,
                error_message: m.error_message,
            })
            .map_err(|e| {
                Call::Final(SendError::Unknown(format!(
                    "HTTP {status} with an unreadable Message resource: {e}"
                )))
            });
    }
    let err = serde_json::from_slice::<TwilioError>(body).ok();
    let code = err.as_ref().and_then(|e| e.code);
    let message = err
        .and_then(|e| e.message)
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(300).collect());
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        return Err(Call::Retryable {
            detail: format!("HTTP {status}, code {code:?}: {message}"),
            retry_after,
        });
    }
    let status = status.as_u16();
    Err(Call::Final(match status {
        401 | 403 | 404 => SendError::Misconfigured {
            status,
            code,
            message,
        },
        _ => SendError::Refused {
            status,
            code,
            message,
        },
    }))
}

async fn read_limited(mut resp: reqwest::Response) -> Result<BytesMut, String> {
    let mut body = BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| describe(&e))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(format!("answer larger than {MAX_RESPONSE_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A transport error with its cause chain, without the URL (it names the account).
fn describe(e: &reqwest::Error) -> String {
    let mut detail = e.to_string();
    if let Some(url) = e.url() {
        detail = detail.replace(url.as_str(), "<twilio>");
    }
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    detail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_message_yields_its_sid_and_status() {
        let body = br#"{"account_sid":"AC00000000000000000000000000000000","api_version":"2010-04-01","body":"hi","date_created":"Sat, 28 Nov 2026 21:00:00 +0000","direction":"outbound-api","error_code":null,"error_message":null,"from":"+14155550100","messaging_service_sid":null,"num_media":"0","num_segments":"1","price":null,"sid":"SM0123456789abcdef0123456789abcdef","status":"queued","to":"+15105550142","uri":"/2010-04-01/Accounts/AC00000000000000000000000000000000/Messages/SM0123456789abcdef0123456789abcdef.json"}"#;
        let created = classify(StatusCode::CREATED, body, None).ok().unwrap();
        assert_eq!(created.sid, "SM0123456789abcdef0123456789abcdef");
        assert_eq!(created.status, "queued");
    }

    #[test]
    fn a_twilio_error_object_is_final_with_its_code() {
        let body = br#"{"code": 21211, "message": "The 'To' number 123 is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}"#;
        match classify(StatusCode::BAD_REQUEST, body, None) {
            Err(Call::Final(SendError::Refused { status, code, .. })) => {
                assert_eq!((status, code), (400, Some(21211)));
            }
            _ => panic!("a 400 must be final"),
        }
        let auth = br#"{"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401}"#;
        assert!(matches!(
            classify(StatusCode::UNAUTHORIZED, auth, None),
            Err(Call::Final(SendError::Misconfigured {
                code: Some(20003),
                ..
            }))
        ));
    }

    #[test]
    fn too_many_requests_and_server_errors_are_retryable() {
        let body = br#"{"code": 20429, "message": "Too Many Requests", "more_info": "https://www.twilio.com/docs/errors/20429", "status": 429}"#;
        match classify(
            StatusCode::TOO_MANY_REQUESTS,
            body,
            Some(Duration::from_secs(1)),
        ) {
            Err(Call::Retryable { retry_after, .. }) => {
                assert_eq!(retry_after, Some(Duration::from_secs(1)))
            }
            _ => panic!("429 must be retryable"),
        }
        assert!(matches!(
            classify(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>", None),
            Err(Call::Retryable { .. })
        ));
    }

    #[test]
    fn an_unreadable_success_is_an_unknown_outcome_not_a_retry() {
        assert!(matches!(
            classify(StatusCode::CREATED, b"{\"truncated", None),
            Err(Call::Final(SendError::Unknown(_)))
        ));
    }
}
