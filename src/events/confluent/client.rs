//! A small client for the Confluent Schema Registry REST API (Confluent's own, Apicurio's
//! `/apis/ccompat/v7`, Karapace, Redpanda): only the calls smsflow makes.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::secrets::{redact_url as redact, ExposeSecret, SecretString};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Where the registry is and how long a call may take.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaRegistrySettings {
    /// Base URL of the Confluent-compatible API. Apicurio serves it under `/apis/ccompat/v7`;
    /// Confluent Schema Registry at its root. Credentials may sit in the URL
    /// (`https://key:secret@host`): they are sent as HTTP basic auth and never logged, so
    /// the whole URL is held as a secret.
    #[serde(serialize_with = "crate::secrets::serialize")]
    pub url: SecretString,
    /// Most time one registry call may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for SchemaRegistrySettings {
    fn default() -> Self {
        SchemaRegistrySettings {
            url: "http://127.0.0.1:8081/apis/ccompat/v7".into(),
            timeout: Duration::from_secs(5),
        }
    }
}

/// Why a registry call failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("schema_registry.url {url:?} is not a valid URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("the schema registry at {url} did not answer: {source}; is it running (deploy/local/stack.sh up registry)?")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the schema registry at {url} answered {status} to {call}: {message}")]
    Status {
        url: String,
        call: String,
        status: u16,
        message: String,
    },
    #[error("subject {subject} does not hold this schema yet: run `smsflow schemas register` before producing in confluent mode")]
    NotRegistered { subject: String },
    #[error("the registry refused the schema for {subject} as incompatible: {reason}")]
    Incompatible { subject: String, reason: String },
    #[error("the registry's schema {id} is not usable Avro: {reason}")]
    BadSchema { id: u32, reason: String },
}

impl RegistryError {
    /// True when trying again later can succeed (the registry is down or overloaded).
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Unreachable { .. } => true,
            RegistryError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// One version of a subject.
#[derive(Debug, Clone, Deserialize)]
pub struct SubjectVersion {
    pub subject: String,
    pub version: i32,
    pub id: u32,
    pub schema: String,
}

/// The registry's verdict on a candidate schema.
#[derive(Debug, Clone)]
pub struct Compatibility {
    pub is_compatible: bool,
    /// The registry's reasons (Confluent gives them with `verbose=true`; Apicurio does not).
    pub messages: Vec<String>,
}

/// A thread-safe, cheaply cloned registry client.
#[derive(Clone)]
pub struct RegistryClient {
    http: reqwest::Client,
    base: url::Url,
    /// The URL without credentials, for messages.
    shown: String,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("url", &self.shown)
            .finish()
    }
}

#[derive(Deserialize)]
struct IdOnly {
    id: u32,
}

#[derive(Deserialize)]
struct SchemaOnly {
    schema: String,
    #[serde(default, rename = "schemaType")]
    schema_type: Option<String>,
}

#[derive(Deserialize)]
struct CompatAnswer {
    is_compatible: bool,
    #[serde(default)]
    messages: Vec<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error_code: i64,
    #[serde(default)]
    message: String,
}

impl RegistryClient {
    /// A client for `settings.url`; nothing is sent until the first call.
    pub fn new(settings: &SchemaRegistrySettings) -> Result<RegistryClient, RegistryError> {
        let bad = |reason: String| RegistryError::BadUrl {
            url: redact(settings.url.expose_secret()),
            reason,
        };
        let mut base =
            url::Url::parse(settings.url.expose_secret()).map_err(|e| bad(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(bad("must be http or https".into()));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(RegistryClient {
            http,
            shown: redact(base.as_str()),
            base,
        })
    }

    /// The registry URL without credentials.
    pub fn url(&self) -> &str {
        &self.shown
    }

    /// The schema text behind a global id (`GET /schemas/ids/{id}`); `None` when unknown.
    pub async fn schema_by_id(&self, id: u32) -> Result<Option<String>, RegistryError> {
        let call = format!("GET /schemas/ids/{id}");
        let resp = self
            .send(self.http.get(self.at(&format!("schemas/ids/{id}"))), &call)
            .await?;
        match resp {
            Answer::NotFound(_) => Ok(None),
            Answer::Ok(body) => {
                let s: SchemaOnly = self.parse(&call, &body)?;
                match s.schema_type.as_deref() {
                    None | Some("AVRO") => Ok(Some(s.schema)),
                    Some(other) => Err(RegistryError::BadSchema {
                        id,
                        reason: format!("it is {other}, not AVRO"),
                    }),
                }
            }
        }
    }

    /// The id of `schema` if `subject` already holds it (`POST /subjects/{subject}`).
    pub async fn lookup(&self, subject: &str, schema: &str) -> Result<Option<u32>, RegistryError> {
        let call = format!("POST /subjects/{subject}");
        let req = self
            .http
            .post(self.at(&format!("subjects/{}", enc(subject))))
            .json(&json!({ "schema": schema }));
        match self.send(req, &call).await? {
            Answer::NotFound(_) => Ok(None),
            Answer::Ok(body) => Ok(Some(self.parse::<IdOnly>(&call, &body)?.id)),
        }
    }

    /// Register `schema` under `subject` (a no-op returning the id when it is there already).
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let call = format!("POST /subjects/{subject}/versions");
        let req = self
            .http
            .post(self.at(&format!("subjects/{}/versions", enc(subject))))
            .json(&json!({ "schema": schema }));
        match self.send(req, &call).await {
            Ok(Answer::Ok(body)) => Ok(self.parse::<IdOnly>(&call, &body)?.id),
            Ok(Answer::NotFound(message)) => Err(RegistryError::Status {
                url: self.shown.clone(),
                call,
                status: 404,
                message,
            }),
            Err(RegistryError::Status {
                status: 409,
                message,
                ..
            }) => Err(RegistryError::Incompatible {
                subject: subject.to_owned(),
                reason: message,
            }),
            Err(e) => Err(e),
        }
    }

    /// Set a subject's compatibility level (`PUT /config/{subject}`).
    pub async fn set_compatibility(&self, subject: &str, level: &str) -> Result<(), RegistryError> {
        let call = format!("PUT /config/{subject}");
        let req = self
            .http
            .put(self.at(&format!("config/{}", enc(subject))))
            .json(&json!({ "compatibility": level }));
        match self.send(req, &call).await? {
            Answer::Ok(_) => Ok(()),
            Answer::NotFound(message) => Err(RegistryError::Status {
                url: self.shown.clone(),
                call,
                status: 404,
                message,
            }),
        }
    }

    /// A subject's compatibility level, `None` when it has no level of its own.
    pub async fn compatibility_level(
        &self,
        subject: &str,
    ) -> Result<Option<String>, RegistryError> {
        #[derive(Deserialize)]
        struct Level {
            #[serde(rename = "compatibilityLevel")]
            level: String,
        }
        let call = format!("GET /config/{subject}");
        match self
            .send(
                self.http.get(self.at(&format!("config/{}", enc(subject)))),
                &call,
            )
            .await?
        {
            Answer::NotFound(_) => Ok(None),
            Answer::Ok(body) => Ok(Some(self.parse::<Level>(&call, &body)?.level)),
        }
    }

    /// The latest version of a subject, `None` when the subject does not exist.
    pub async fn latest(&self, subject: &str) -> Result<Option<SubjectVersion>, RegistryError> {
        let call = format!("GET /subjects/{subject}/versions/latest");
        match self
            .send(
                self.http
                    .get(self.at(&format!("subjects/{}/versions/latest", enc(subject)))),
                &call,
            )
            .await?
        {
            Answer::NotFound(_) => Ok(None),
            Answer::Ok(body) => Ok(Some(self.parse(&call, &body)?)),
        }
    }

    /// Whether `schema` may become the next version of `subject` under its compatibility level.
    pub async fn check(&self, subject: &str, schema: &str) -> Result<Compatibility, RegistryError> {
        let call = format!("POST /compatibility/subjects/{subject}/versions/latest");
        let req = self
            .http
            .post(self.at(&format!(
                "compatibility/subjects/{}/versions/latest?verbose=true",
                enc(subject)
            )))
            .json(&json!({ "schema": schema }));
        match self.send(req, &call).await? {
            Answer::NotFound(message) => Err(RegistryError::Status {
                url: self.shown.clone(),
                call,
                status: 404,
                message,
            }),
            Answer::Ok(body) => {
                let a: CompatAnswer = self.parse(&call, &body)?;
                Ok(Compatibility {
                    is_compatible: a.is_compatible,
                    messages: a.messages,
                })
            }
        }
    }

    fn at(&self, path: &str) -> url::Url {
        // `path` holds only percent-encoded segments, so joining cannot fail.
        self.base.join(path).unwrap_or_else(|_| self.base.clone())
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        call: &str,
    ) -> Result<Answer, RegistryError> {
        let resp = req
            .header(reqwest::header::ACCEPT, CONTENT_TYPE)
            .send()
            .await
            .map_err(|source| RegistryError::Unreachable {
                url: self.shown.clone(),
                source: source.without_url(),
            })?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|source| RegistryError::Unreachable {
                url: self.shown.clone(),
                source: source.without_url(),
            })?;
        if status.is_success() {
            return Ok(Answer::Ok(body.to_vec()));
        }
        let message = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(e) if !e.message.is_empty() => {
                format!("{} (error_code {})", e.message, e.error_code)
            }
            _ => String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned(),
        };
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(Answer::NotFound(message));
        }
        Err(RegistryError::Status {
            url: self.shown.clone(),
            call: call.to_owned(),
            status: status.as_u16(),
            message,
        })
    }

    fn parse<T: serde::de::DeserializeOwned>(
        &self,
        call: &str,
        body: &[u8],
    ) -> Result<T, RegistryError> {
        serde_json::from_slice(body).map_err(|e| RegistryError::Status {
            url: self.shown.clone(),
            call: call.to_owned(),
            status: 200,
            message: format!("unexpected answer: {e}"),
        })
    }
}

enum Answer {
    Ok(Vec<u8>),
    NotFound(String),
}

/// Subjects hold dots and dashes only, but a prefix may hold anything: encode the segment.
fn enc(segment: &str) -> String {
    form_urlencoded::byte_serialize(segment.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_messages() {
        let c = RegistryClient::new(&SchemaRegistrySettings {
            url: "https://key:s3cret@registry.example.com/apis/ccompat/v7".into(),
            timeout: Duration::from_secs(1),
        })
        .unwrap();
        assert!(!c.url().contains("s3cret"), "{}", c.url());
        assert!(!format!("{c:?}").contains("s3cret"));
        assert_eq!(
            c.at("schemas/ids/7").path(),
            "/apis/ccompat/v7/schemas/ids/7",
            "the base path is kept"
        );
    }

    #[test]
    fn non_http_urls_are_refused() {
        let e = RegistryClient::new(&SchemaRegistrySettings {
            url: "ftp://127.0.0.1:8081".into(),
            timeout: Duration::from_secs(1),
        })
        .unwrap_err();
        assert!(e.to_string().contains("http"), "{e}");
    }
}
