//! A fake Twilio REST API on 127.0.0.1:0, speaking Twilio's wire format: form-encoded POSTs
//! with HTTP basic auth, JSON answers shaped like Twilio's resources, and Twilio's error object
//! (`{"code", "message", "more_info", "status"}`) for 400, 401 and 404.
//! - Messages: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` (201 with the Message
//!   resource); it records every message it created and can be scripted to fail the next ones.
//! - IncomingPhoneNumbers: list by `PhoneNumber`, fetch and update
//!   `/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json`.
//! - Messaging Services: fetch and update `/v1/Services/{Sid}` (messaging.twilio.com's paths).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::extract::{Query, RawQuery};
use axum::http::Method;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use serde_json::{json, Value};

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

/// One REST request the fake saw (any resource): method, path and form fields.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub form: BTreeMap<String, String>,
}

#[derive(Default)]
struct Inner {
    script: VecDeque<Scripted>,
    sent: Vec<Sent>,
    requests: usize,
    numbers: BTreeMap<String, Value>,
    services: BTreeMap<String, Value>,
    seen: Vec<Seen>,
    /// Form fields the fake accepts but does not store (a Twilio that does not keep a value).
    ignored: Vec<String>,
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
            .route(
                "/2010-04-01/Accounts/{account}/IncomingPhoneNumbers.json",
                get(list_numbers),
            )
            .route(
                "/2010-04-01/Accounts/{account}/IncomingPhoneNumbers/{file}",
                get(number).post(number),
            )
            .route("/v1/Services/{sid}", get(service).post(service))
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

    /// Provision a number (`PN…` SID, E.164) with Twilio's defaults: no SMS URL set.
    pub fn add_number(&self, sid: &str, e164: &str) {
        let resource = json!({
            "account_sid": ACCOUNT_SID,
            "address_requirements": "none",
            "address_sid": null,
            "api_version": "2010-04-01",
            "beta": false,
            "bundle_sid": null,
            "capabilities": {"fax": false, "mms": true, "sms": true, "voice": true},
            "date_created": "Thu, 30 Jul 2026 20:12:31 +0000",
            "date_updated": "Thu, 30 Jul 2026 20:12:33 +0000",
            "emergency_address_sid": null,
            "emergency_address_status": "unregistered",
            "emergency_status": "Active",
            "friendly_name": e164,
            "identity_sid": null,
            "origin": "twilio",
            "phone_number": e164,
            "sid": sid,
            "sms_application_sid": "",
            "sms_fallback_method": "POST",
            "sms_fallback_url": "",
            "sms_method": "POST",
            "sms_url": "",
            "status": "in-use",
            "status_callback": "",
            "status_callback_method": "POST",
            "subresource_uris": {"assigned_add_ons": format!("/2010-04-01/Accounts/{ACCOUNT_SID}/IncomingPhoneNumbers/{sid}/AssignedAddOns.json")},
            "trunk_sid": null,
            "uri": format!("/2010-04-01/Accounts/{ACCOUNT_SID}/IncomingPhoneNumbers/{sid}.json"),
            "voice_application_sid": null,
            "voice_caller_id_lookup": false,
            "voice_fallback_method": "POST",
            "voice_fallback_url": null,
            "voice_method": "POST",
            "voice_receive_mode": "voice",
            "voice_url": null,
        });
        self.inner
            .lock()
            .unwrap()
            .numbers
            .insert(sid.to_owned(), resource);
    }

    /// Create a Messaging Service (`MG…` SID) with Twilio's defaults: no inbound URL.
    pub fn add_service(&self, sid: &str) {
        let resource = json!({
            "account_sid": ACCOUNT_SID,
            "area_code_geomatch": true,
            "date_created": "Thu, 30 Jul 2026 20:12:31 +0000",
            "date_updated": "Thu, 30 Jul 2026 20:12:31 +0000",
            "fallback_method": "POST",
            "fallback_to_long_code": true,
            "fallback_url": null,
            "friendly_name": "smsflow",
            "inbound_method": "POST",
            "inbound_request_url": null,
            "links": {"phone_numbers": format!("https://messaging.twilio.com/v1/Services/{sid}/PhoneNumbers")},
            "mms_converter": true,
            "scan_message_content": "inherit",
            "sid": sid,
            "smart_encoding": true,
            "status_callback": null,
            "sticky_sender": true,
            "synchronous_validation": true,
            "url": format!("https://messaging.twilio.com/v1/Services/{sid}"),
            "us_app_to_person_registered": false,
            "use_inbound_webhook_on_number": true,
            "usecase": "undeclared",
            "validity_period": 14400,
        });
        self.inner
            .lock()
            .unwrap()
            .services
            .insert(sid.to_owned(), resource);
    }

    /// The number's resource as the fake holds it.
    pub fn number(&self, sid: &str) -> Value {
        self.inner.lock().unwrap().numbers[sid].clone()
    }

    /// The service's resource as the fake holds it.
    pub fn service(&self, sid: &str) -> Value {
        self.inner.lock().unwrap().services[sid].clone()
    }

    /// Overwrite one field of a number (as someone editing it in the Console would).
    pub fn set_number_field(&self, sid: &str, field: &str, value: Value) {
        self.inner.lock().unwrap().numbers.get_mut(sid).unwrap()[field] = value;
    }

    /// REST requests to numbers and services seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.inner.lock().unwrap().seen.clone()
    }

    /// Accept this form field from now on but do not store it.
    pub fn ignore_field(&self, form_name: &str) {
        self.inner
            .lock()
            .unwrap()
            .ignored
            .push(form_name.to_owned());
    }
}

fn not_found(path: &str) -> Response {
    twilio_error(
        StatusCode::NOT_FOUND,
        20404,
        &format!("The requested resource {path} was not found"),
    )
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

async fn list_numbers(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(account): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut inner = inner.lock().unwrap();
    inner.requests += 1;
    let path = format!("/2010-04-01/Accounts/{account}/IncomingPhoneNumbers.json");
    inner.seen.push(Seen {
        method: "GET".into(),
        path: path.clone(),
        form: query.clone(),
    });
    if account != ACCOUNT_SID || !authorized(&headers) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let matching: Vec<Value> = inner
        .numbers
        .values()
        .filter(|n| {
            query
                .get("PhoneNumber")
                .is_none_or(|p| n["phone_number"].as_str() == Some(p.as_str()))
        })
        .cloned()
        .collect();
    let uri = format!("{path}?{}", raw.unwrap_or_default());
    let page = json!({
        "end": matching.len().saturating_sub(1),
        "first_page_uri": uri,
        "incoming_phone_numbers": matching,
        "next_page_uri": null,
        "page": 0,
        "page_size": 50,
        "previous_page_uri": null,
        "start": 0,
        "uri": uri,
    });
    (StatusCode::OK, axum::Json(page)).into_response()
}

/// Apply Twilio's update rules for the form fields we know; unknown fields are ignored, as
/// Twilio does. `fields` maps a form name to the resource's JSON name. Returns Twilio's error
/// answer for a value it refuses.
fn apply(
    resource: &mut Value,
    form: &BTreeMap<String, String>,
    fields: &[(&str, &str)],
    ignored: &[String],
) -> Option<Response> {
    for (name, value) in form {
        if ignored.contains(name) {
            continue;
        }
        let Some((_, json_name)) = fields.iter().find(|(f, _)| f == name) else {
            continue;
        };
        if name.ends_with("Method")
            && !matches!(value.to_ascii_uppercase().as_str(), "GET" | "POST")
        {
            return Some(twilio_error(
                StatusCode::BAD_REQUEST,
                21403,
                &format!("{name} is not valid. It must be GET or POST"),
            ));
        }
        if name.ends_with("Url") || *name == "StatusCallback" {
            let ok = value.is_empty()
                || url::Url::parse(value).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                return Some(twilio_error(
                    StatusCode::BAD_REQUEST,
                    21502,
                    &format!("{name} is not a valid URL: {value}"),
                ));
            }
        }
        resource[*json_name] = if *name == "UseInboundWebhookOnNumber" {
            Value::Bool(value == "true")
        } else if name.ends_with("Method") {
            Value::String(value.to_ascii_uppercase())
        } else {
            Value::String(value.clone())
        };
    }
    None
}

async fn number(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path((account, file)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = inner.lock().unwrap();
    inner.requests += 1;
    let path = format!("/2010-04-01/Accounts/{account}/IncomingPhoneNumbers/{file}");
    let form: BTreeMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    inner.seen.push(Seen {
        method: method.to_string(),
        path: path.clone(),
        form: form.clone(),
    });
    if account != ACCOUNT_SID || !authorized(&headers) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let Some(sid) = file.strip_suffix(".json") else {
        return not_found(&path);
    };
    let ignored = inner.ignored.clone();
    let Some(resource) = inner.numbers.get_mut(sid) else {
        return not_found(&path);
    };
    if method == Method::POST {
        if !is_form(&headers) {
            return twilio_error(StatusCode::BAD_REQUEST, 20001, "expected a form body");
        }
        let mut updated = resource.clone();
        let fields = [
            ("SmsUrl", "sms_url"),
            ("SmsMethod", "sms_method"),
            ("SmsFallbackUrl", "sms_fallback_url"),
            ("SmsFallbackMethod", "sms_fallback_method"),
            ("SmsApplicationSid", "sms_application_sid"),
            ("StatusCallback", "status_callback"),
            ("StatusCallbackMethod", "status_callback_method"),
        ];
        if let Some(resp) = apply(&mut updated, &form, &fields, &ignored) {
            return resp;
        }
        let fallback_set = updated["sms_fallback_url"]
            .as_str()
            .is_some_and(|u| !u.is_empty());
        let primary_set = updated["sms_url"].as_str().is_some_and(|u| !u.is_empty());
        if fallback_set && !primary_set {
            return twilio_error(
                StatusCode::BAD_REQUEST,
                21406,
                "Cannot set SmsFallbackUrl without setting SmsUrl",
            );
        }
        updated["date_updated"] = json!("Thu, 30 Jul 2026 21:00:00 +0000");
        *resource = updated;
    }
    (StatusCode::OK, axum::Json(resource.clone())).into_response()
}

async fn service(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(sid): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = inner.lock().unwrap();
    inner.requests += 1;
    let path = format!("/v1/Services/{sid}");
    let form: BTreeMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    inner.seen.push(Seen {
        method: method.to_string(),
        path: path.clone(),
        form: form.clone(),
    });
    if !authorized(&headers) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let ignored = inner.ignored.clone();
    let Some(resource) = inner.services.get_mut(&sid) else {
        return not_found(&path);
    };
    if method == Method::POST {
        if !is_form(&headers) {
            return twilio_error(StatusCode::BAD_REQUEST, 20001, "expected a form body");
        }
        let fields = [
            ("InboundRequestUrl", "inbound_request_url"),
            ("InboundMethod", "inbound_method"),
            ("FallbackUrl", "fallback_url"),
            ("FallbackMethod", "fallback_method"),
            ("StatusCallback", "status_callback"),
            ("UseInboundWebhookOnNumber", "use_inbound_webhook_on_number"),
        ];
        let mut updated = resource.clone();
        if let Some(resp) = apply(&mut updated, &form, &fields, &ignored) {
            return resp;
        }
        *resource = updated;
    }
    (StatusCode::OK, axum::Json(resource.clone())).into_response()
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
