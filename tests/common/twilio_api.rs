//! A fake Twilio Messages API on 127.0.0.1:0, speaking Twilio's wire format: form-encoded
//! `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` with HTTP basic auth, answered with
//! the Message resource (201) or Twilio's error object. It records every message it created and
//! every request it saw, and can be scripted to fail the next requests.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine;

/// Account the fake accepts.
pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
/// Its auth token is the harness's `AUTH_TOKEN`, the same that signs webhooks, as at Twilio.
use super::AUTH_TOKEN;

/// A scripted answer for one request.
#[derive(Debug, Clone)]
pub enum Scripted {
    /// 429 with `Retry-After: {0}` seconds and Twilio's 20429 error object.
    TooManyRequests(u64),
    /// 500 with Twilio's error object.
    ServerError,
    /// `status` with Twilio's error object carrying `code`.
    Error {
        status: u16,
        code: i32,
        message: String,
    },
}

/// One message the fake created.
#[derive(Debug, Clone)]
pub struct Sent {
    pub sid: String,
    pub form: BTreeMap<String, String>,
}

#[derive(Default)]
struct Inner {
    script: VecDeque<Scripted>,
    sent: Vec<Sent>,
    requests: usize,
}

/// The running fake.
#[derive(Clone)]
pub struct FakeTwilio {
    pub base_url: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeTwilio {
    /// Start it.
    pub async fn start() -> FakeTwilio {
        let inner: Arc<Mutex<Inner>> = Arc::default();
        let app = Router::new()
            .route(
                "/2010-04-01/Accounts/{account}/Messages.json",
                post(create_message),
            )
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeTwilio {
            base_url: format!("http://{addr}"),
            inner,
        }
    }

    /// Answer the next requests with these, in order, then normally again.
    pub fn script(&self, answers: impl IntoIterator<Item = Scripted>) {
        self.inner.lock().unwrap().script.extend(answers);
    }

    /// Messages created so far.
    pub fn sent(&self) -> Vec<Sent> {
        self.inner.lock().unwrap().sent.clone()
    }

    /// Requests seen so far, refused ones included.
    pub fn requests(&self) -> usize {
        self.inner.lock().unwrap().requests
    }
}

fn twilio_error(status: StatusCode, code: i32, message: &str) -> Response {
    let body = serde_json::json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    });
    (status, axum::Json(body)).into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"))
    );
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(expected.as_str())
}

async fn create_message(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = inner.lock().unwrap();
    inner.requests += 1;
    if account != ACCOUNT_SID || !authorized(&headers) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return twilio_error(StatusCode::BAD_REQUEST, 20001, "expected a form body");
    }
    let form: BTreeMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    if let Some(answer) = inner.script.pop_front() {
        return match answer {
            Scripted::TooManyRequests(secs) => {
                let mut resp =
                    twilio_error(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests");
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, secs.to_string().parse().unwrap());
                resp
            }
            Scripted::ServerError => twilio_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                20500,
                "An internal server error has occurred",
            ),
            Scripted::Error {
                status,
                code,
                message,
            } => twilio_error(StatusCode::from_u16(status).unwrap(), code, &message),
        };
    }
    let Some(to) = form.get("To").filter(|t| t.starts_with('+')) else {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21604,
            "A 'To' phone number is required.",
        );
    };
    if form.get("Body").is_none_or(|b| b.is_empty()) {
        return twilio_error(StatusCode::BAD_REQUEST, 21602, "Message body is required.");
    }
    let via_service = form.contains_key("MessagingServiceSid");
    if !via_service && !form.contains_key("From") {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21603,
            "A 'From' phone number is required.",
        );
    }
    let sid = format!("SM{:032x}", inner.sent.len() as u128 + 0xabc0_0000);
    let status = if via_service { "accepted" } else { "queued" };
    let resource = serde_json::json!({
        "account_sid": ACCOUNT_SID,
        "api_version": "2010-04-01",
        "body": form.get("Body"),
        "date_created": "Sat, 28 Nov 2026 21:00:00 +0000",
        "date_sent": null,
        "date_updated": "Sat, 28 Nov 2026 21:00:00 +0000",
        "direction": "outbound-api",
        "error_code": null,
        "error_message": null,
        "from": form.get("From"),
        "messaging_service_sid": form.get("MessagingServiceSid"),
        "num_media": "0",
        "num_segments": "1",
        "price": null,
        "price_unit": "USD",
        "sid": sid,
        "status": status,
        "subresource_uris": {"media": format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}/Media.json")},
        "to": to,
        "uri": format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json"),
    });
    inner.sent.push(Sent {
        sid: sid.clone(),
        form,
    });
    (StatusCode::CREATED, axum::Json(resource)).into_response()
}
