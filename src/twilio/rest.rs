//! A small Twilio REST client for our own configuration: read and update an
//! IncomingPhoneNumber (`/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json`)
//! and a Messaging Service (`/v1/Services/{Sid}`). Form-encoded POSTs, HTTP basic auth with
//! the account SID and auth token, JSON answers; errors arrive as Twilio's error object
//! `{"code", "message", "more_info", "status"}`.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tracing::instrument;

use super::WebhookSettings;

/// Most bytes of an answer that are read (a resource is a few KiB).
const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// Why a REST call failed.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    #[error("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must both be set to call Twilio's REST API")]
    MissingCredentials,
    #[error("Twilio answered HTTP {status} (code {code:?}): {message}{hint}")]
    Twilio {
        status: u16,
        code: Option<i64>,
        message: String,
        hint: &'static str,
    },
    #[error("no phone number {0} in this Twilio account (IncomingPhoneNumbers)")]
    NumberNotFound(String),
    #[error("cannot reach Twilio: {0}")]
    Transport(String),
    #[error("Twilio's answer was not the expected JSON: {0}")]
    Decode(String),
    #[error("{0} is not a valid base URL")]
    BadBase(String),
}

/// The messaging fields of an IncomingPhoneNumber (Twilio leaves unset ones `""` or null).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct IncomingPhoneNumber {
    pub sid: String,
    pub phone_number: String,
    pub sms_url: Option<String>,
    pub sms_method: Option<String>,
    pub sms_fallback_url: Option<String>,
    pub sms_fallback_method: Option<String>,
    pub sms_application_sid: Option<String>,
    /// The number's call status callback (voice); reported, never set by us.
    pub status_callback: Option<String>,
}

/// The inbound fields of a Messaging Service.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct MessagingService {
    pub sid: String,
    pub inbound_request_url: Option<String>,
    pub inbound_method: Option<String>,
    pub fallback_url: Option<String>,
    pub fallback_method: Option<String>,
    pub status_callback: Option<String>,
    pub use_inbound_webhook_on_number: Option<bool>,
}

#[derive(Deserialize)]
struct NumberPage {
    incoming_phone_numbers: Vec<IncomingPhoneNumber>,
}

#[derive(Deserialize)]
struct ErrorObject {
    code: Option<i64>,
    message: Option<String>,
}

/// The client: one pooled HTTP client with bounded timeouts, credentials kept secret.
pub struct TwilioRest {
    http: reqwest::Client,
    api_base: url::Url,
    messaging_base: url::Url,
    account_sid: String,
    auth_token: SecretString,
}

impl std::fmt::Debug for TwilioRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioRest")
            .field("api_base", &self.api_base.as_str())
            .field("messaging_base", &self.messaging_base.as_str())
            .field("account_sid", &self.account_sid)
            .finish_non_exhaustive()
    }
}

impl TwilioRest {
    /// Build from the account SID, the auth token and `[twilio.webhooks]`.
    pub fn new(
        account_sid: Option<&str>,
        auth_token: Option<SecretString>,
        settings: &WebhookSettings,
    ) -> Result<TwilioRest, RestError> {
        let account_sid = account_sid
            .filter(|s| !s.is_empty())
            .ok_or(RestError::MissingCredentials)?;
        let auth_token = auth_token
            .filter(|t| !t.expose_secret().is_empty())
            .ok_or(RestError::MissingCredentials)?;
        let http = reqwest::Client::builder()
            .connect_timeout(settings.request_timeout.min(Duration::from_secs(5)))
            .timeout(settings.request_timeout)
            // Twilio's REST API does not redirect; a redirect would carry our credentials.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| RestError::Transport(e.without_url().to_string()))?;
        Ok(TwilioRest {
            http,
            api_base: base(&settings.api_base)?,
            messaging_base: base(&settings.messaging_api_base)?,
            account_sid: account_sid.to_owned(),
            auth_token,
        })
    }

    fn number_url(&self, tail: &str) -> String {
        format!(
            "{}2010-04-01/Accounts/{}/IncomingPhoneNumbers{tail}",
            self.api_base, self.account_sid
        )
    }

    /// The number with this E.164 spelling.
    #[instrument(skip_all, fields(otel.kind = "client"))]
    pub async fn find_number(&self, e164: &str) -> Result<IncomingPhoneNumber, RestError> {
        let req = self
            .http
            .get(self.number_url(".json"))
            .query(&[("PhoneNumber", e164), ("PageSize", "20")]);
        let page: NumberPage = self.send(req).await?;
        page.incoming_phone_numbers
            .into_iter()
            .find(|n| n.phone_number == e164)
            .ok_or_else(|| RestError::NumberNotFound(crate::telemetry::mask_phone(e164)))
    }

    /// The number with this `PN…` SID.
    #[instrument(skip_all, fields(otel.kind = "client"))]
    pub async fn fetch_number(&self, sid: &str) -> Result<IncomingPhoneNumber, RestError> {
        let req = self
            .http
            .get(self.number_url(&format!("/{}.json", segment(sid))));
        self.send(req).await
    }

    /// Set these form fields on the number; Twilio answers with the updated resource.
    #[instrument(skip_all, fields(otel.kind = "client"))]
    pub async fn update_number(
        &self,
        sid: &str,
        form: &[(&str, String)],
    ) -> Result<IncomingPhoneNumber, RestError> {
        let req = self
            .http
            .post(self.number_url(&format!("/{}.json", segment(sid))))
            .form(form);
        self.send(req).await
    }

    fn service_url(&self, sid: &str) -> String {
        format!("{}v1/Services/{}", self.messaging_base, segment(sid))
    }

    /// The Messaging Service with this `MG…` SID.
    #[instrument(skip_all, fields(otel.kind = "client"))]
    pub async fn fetch_service(&self, sid: &str) -> Result<MessagingService, RestError> {
        let req = self.http.get(self.service_url(sid));
        self.send(req).await
    }

    /// Set these form fields on the service; Twilio answers with the updated resource.
    #[instrument(skip_all, fields(otel.kind = "client"))]
    pub async fn update_service(
        &self,
        sid: &str,
        form: &[(&str, String)],
    ) -> Result<MessagingService, RestError> {
        let req = self.http.post(self.service_url(sid)).form(form);
        self.send(req).await
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, RestError> {
        let resp = req
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .send()
            .await
            .map_err(|e| RestError::Transport(e.without_url().to_string()))?;
        let status = resp.status();
        let body = read_limited(resp).await?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| RestError::Decode(e.to_string()));
        }
        let err: Option<ErrorObject> = serde_json::from_slice(&body).ok();
        let hint = match status.as_u16() {
            401 | 403 => "; check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN",
            404 => "; check the number or Messaging Service SID and the account",
            _ => "",
        };
        Err(RestError::Twilio {
            status: status.as_u16(),
            code: err.as_ref().and_then(|e| e.code),
            message: err
                .and_then(|e| e.message)
                .unwrap_or_else(|| "no error object in the answer".into()),
            hint,
        })
    }
}

fn base(text: &str) -> Result<url::Url, RestError> {
    // A trailing slash makes `join`-free formatting above correct for bases with a path.
    let with_slash = if text.ends_with('/') {
        text.to_owned()
    } else {
        format!("{text}/")
    };
    url::Url::parse(&with_slash).map_err(|_| RestError::BadBase(text.to_owned()))
}

/// A SID goes into a path segment: anything but letters and digits is refused by Twilio
/// anyway, so it is percent-encoded rather than trusted.
fn segment(sid: &str) -> String {
    form_urlencoded::byte_serialize(sid.as_bytes()).collect()
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, RestError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| RestError::Transport(e.without_url().to_string()))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(RestError::Decode(format!(
                "answer larger than {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
