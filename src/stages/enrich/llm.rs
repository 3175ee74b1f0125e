//! Optional LLM extractor (off by default, never required): asks an OpenAI-compatible chat
//! completions endpoint (`POST {base_url}/v1/chat/completions`) for items under a strict JSON
//! schema, and [`merge`]s them with the rule extractors' items.
//!
//! Rules:
//! - An LLM item needs its `value` in the text: its span is the first exact occurrence, else
//!   the first case-insensitive one; an item whose value is not in the text is DROPPED (a
//!   pending item the user cannot see in the message is a hallucination risk).
//! - Its normalized value is re-normalized where a rule exists (E.164 phones, lower-case
//!   emails and tags, URLs without scheme); a phone that does not parse is dropped.
//! - Its confidence is clamped to 0.0..=0.8, below what rule extractors give explicit matches.
//! - [`merge`]: rule items all stay; an LLM item is added only if no rule item has the same
//!   kind and normalized value and none of the same kind overlaps its span (rule spans win).
//!
//! Never logs message text or model output: only counts and status codes.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use thiserror::Error;

use crate::secrets::{ExposeSecret, SecretString};

use super::context::Context;
use super::extract::normalize_url;
use super::item::{Item, ItemKind, Source};
use super::phones::e164;

/// LLM extractor settings, e.g. from the `[enrich.llm]` config section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// Off unless set: the rule extractors work alone.
    pub enabled: bool,
    /// Scheme, host and port of the server; "/v1/chat/completions" is appended.
    pub base_url: String,
    /// Model name sent in the request.
    pub model: String,
    /// Environment variable holding the API key (read when the client is built).
    pub api_key_env: Option<String>,
    /// The API key itself; wins over `api_key_env`. Local servers may need none.
    #[serde(skip_serializing)]
    pub api_key: Option<SecretString>,
    /// Whole-request timeout in milliseconds.
    pub timeout_ms: u64,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            enabled: false,
            base_url: "http://127.0.0.1:8080".to_owned(),
            model: "gpt-4o-mini".to_owned(),
            api_key_env: Some("OPENAI_API_KEY".to_owned()),
            api_key: None,
            timeout_ms: 10_000,
        }
    }
}

/// Why the LLM gave no items.
#[derive(Debug, Error)]
pub enum LlmError {
    /// Building the client, connecting, sending or reading failed (timeouts included).
    #[error("LLM request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The server answered with a non-success status.
    #[error("LLM server answered {status}")]
    Status {
        /// The HTTP status code.
        status: u16,
    },
    /// The response is not the chat completions wire format (no choices, no content).
    #[error("LLM response is not a chat completion: {0}")]
    BadResponse(String),
    /// The model declined to answer.
    #[error("LLM refused the request")]
    Refused,
    /// The message content is not the items JSON the schema asks for.
    #[error("LLM content is not the items JSON: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// A client for one configured endpoint.
#[derive(Debug, Clone)]
pub struct LlmClient {
    http: reqwest::Client,
    url: String,
    model: String,
    key: Option<SecretString>,
}

/// The system prompt: what to extract and how to normalize it.
const PROMPT: &str = "You extract actionable items from one text message or voice-note \
transcript written by a salesperson or small-business owner. Return every phone number, email, \
URL, #tag, contact (person) name, date or time, place or street address and organisation that \
appears in the text. `value` is the exact text as it appears in the message (copy it \
character for character). `normalized`: phone in E.164; email lower case; url without scheme; \
tag without '#', lower case; contact as 'Given Family'; datetime as RFC 3339 local time with \
offset in the user's time zone, or YYYY-MM-DD for a date only, resolved against the received \
time; bare hours 1-6 mean pm, 7-11 am, 12 noon; place and org as written. `confidence` from 0 \
to 1. Return no item that is not in the text.";

/// The strict JSON schema of the answer.
fn schema() -> Value {
    let kinds: Vec<&str> = ItemKind::ALL.iter().map(|k| k.as_str()).collect();
    json!({
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "kind": { "type": "string", "enum": kinds },
                        "value": { "type": "string" },
                        "normalized": { "type": "string" },
                        "confidence": { "type": "number" }
                    },
                    "required": ["kind", "value", "normalized", "confidence"],
                    "additionalProperties": false
                }
            }
        },
        "required": ["items"],
        "additionalProperties": false
    })
}

#[derive(Deserialize)]
struct ChatResponse {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
}

#[derive(Deserialize)]
struct Message {
    content: Option<String>,
    refusal: Option<String>,
}

/// The items JSON the schema describes.
#[derive(Debug, Deserialize)]
struct LlmItems {
    items: Vec<LlmItem>,
}

/// One item as the model returns it.
#[derive(Debug, Deserialize)]
struct LlmItem {
    kind: String,
    value: String,
    normalized: String,
    confidence: f64,
}

impl LlmClient {
    /// A client for `cfg`, or `None` when the LLM extractor is disabled.
    pub fn new(cfg: &LlmConfig) -> Result<Option<LlmClient>, LlmError> {
        if !cfg.enabled {
            return Ok(None);
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.timeout_ms))
            .build()?;
        let key = cfg.api_key.clone().or_else(|| {
            cfg.api_key_env
                .as_deref()
                .and_then(|name| std::env::var(name).ok())
                .map(SecretString::from)
        });
        Ok(Some(LlmClient {
            http,
            url: format!("{}/v1/chat/completions", cfg.base_url.trim_end_matches('/')),
            model: cfg.model.clone(),
            key: key.filter(|k| !k.expose_secret().is_empty()),
        }))
    }

    /// The model's items for `text` (character spans, `source` set), ready for [`merge`].
    pub async fn extract(
        &self,
        text: &str,
        source: Source,
        ctx: &Context,
    ) -> Result<Vec<Item>, LlmError> {
        let received = ctx
            .received_local()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
        let body = json!({
            "model": self.model,
            "temperature": 0,
            "messages": [
                { "role": "system", "content": PROMPT },
                { "role": "user", "content": format!(
                    "Received: {received}\nTime zone: {}\nSource: {}\n\n{text}",
                    ctx.tz.name(), source.as_str()) }
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": { "name": "extracted_items", "strict": true, "schema": schema() }
            }
        });
        let mut req = self.http.post(&self.url).json(&body);
        if let Some(key) = &self.key {
            req = req.bearer_auth(key.expose_secret());
        }
        let resp = req.send().await?;
        let status = resp.status();
        if !status.is_success() {
            tracing::warn!(
                status = status.as_u16(),
                "LLM extractor got an error status"
            );
            return Err(LlmError::Status {
                status: status.as_u16(),
            });
        }
        let bytes = resp.bytes().await?;
        let chat: ChatResponse =
            serde_json::from_slice(&bytes).map_err(|e| LlmError::BadResponse(e.to_string()))?;
        let message = chat
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| LlmError::BadResponse("no choices".to_owned()))?
            .message;
        let content = match (message.content, message.refusal) {
            (Some(c), _) => c,
            (None, Some(_)) => return Err(LlmError::Refused),
            (None, None) => return Err(LlmError::BadResponse("no content".to_owned())),
        };
        let parsed: LlmItems = serde_json::from_str(&content)?;
        let returned = parsed.items.len();
        let items = to_items(text, source, ctx, parsed.items);
        tracing::debug!(returned, kept = items.len(), "LLM extractor answered");
        Ok(items)
    }
}

/// The model's items that are found in `text`, re-normalized.
fn to_items(text: &str, source: Source, ctx: &Context, raw: Vec<LlmItem>) -> Vec<Item> {
    raw.into_iter()
        .filter_map(|r| {
            let kind = ItemKind::parse(r.kind.trim())?;
            let value = r.value.trim();
            let span = find_span(text, value)?;
            let norm = r.normalized.trim();
            let normalized = match kind {
                ItemKind::Phone => e164(norm, ctx.region).or_else(|| e164(value, ctx.region))?,
                ItemKind::Email => norm.to_lowercase(),
                ItemKind::Tag => norm.trim_start_matches('#').to_lowercase(),
                ItemKind::Url => normalize_url(norm),
                _ => norm.split_whitespace().collect::<Vec<_>>().join(" "),
            };
            if normalized.is_empty() {
                return None;
            }
            let confidence = if r.confidence.is_finite() {
                r.confidence.clamp(0.0, 0.8) as f32
            } else {
                0.5
            };
            Some(Item {
                kind,
                value: value.to_owned(),
                normalized,
                confidence,
                source,
                span,
            })
        })
        .collect()
}

/// Character span of `needle` in `text`: exact first, then case-insensitive.
fn find_span(text: &str, needle: &str) -> Option<(usize, usize)> {
    if needle.is_empty() {
        return None;
    }
    let len = needle.chars().count();
    if let Some(b) = text.find(needle) {
        let start = text[..b].chars().count();
        return Some((start, start + len));
    }
    let hay: Vec<char> = text.chars().collect();
    let pat: Vec<char> = needle.chars().collect();
    let same = |a: char, b: char| a == b || a.to_lowercase().eq(b.to_lowercase());
    (0..hay.len().saturating_sub(len - 1))
        .find(|&s| hay[s..s + len].iter().zip(&pat).all(|(a, b)| same(*a, *b)))
        .map(|s| (s, s + len))
}

/// Rule items plus the LLM items they do not already cover (see the module doc), by span.
pub fn merge(rule_items: Vec<Item>, llm_items: Vec<Item>) -> Vec<Item> {
    let mut out = rule_items;
    let rules = out.len();
    for it in llm_items {
        let covered = out.iter().any(|r| {
            r.kind == it.kind
                && (r.normalized == it.normalized || (r.span.0 < it.span.1 && it.span.0 < r.span.1))
        });
        if !covered {
            out.push(it);
        }
    }
    tracing::debug!(added = out.len() - rules, "merged LLM items");
    out.sort_by_key(|i| i.span.0);
    out
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;
    use axum::{Json, Router};

    use super::*;

    fn ctx() -> Context {
        Context::new(
            Some(phonenumber::country::Id::US),
            1_795_888_800_000_000,
            chrono_tz::America::Los_Angeles,
        )
    }

    /// The Authorization header and JSON body of one request.
    type Seen = (Option<String>, Value);

    /// What the fake server answers, and what it saw.
    #[derive(Clone, Default)]
    struct Fake {
        reply: Arc<Mutex<(u16, String)>>,
        seen: Arc<Mutex<Vec<Seen>>>,
    }

    async fn completions(
        State(f): State<Fake>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> (StatusCode, String) {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        f.seen.lock().unwrap().push((auth, body));
        let (status, reply) = f.reply.lock().unwrap().clone();
        (StatusCode::from_u16(status).unwrap(), reply)
    }

    /// A real HTTP server on loopback speaking the chat completions wire format.
    async fn serve() -> (String, Fake) {
        let fake = Fake::default();
        let app = Router::new()
            .route("/v1/chat/completions", post(completions))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (format!("http://{addr}"), fake)
    }

    fn completion(content: &str) -> String {
        json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": "m",
            "choices": [{ "index": 0, "finish_reason": "stop",
                "message": { "role": "assistant", "content": content } }]
        })
        .to_string()
    }

    fn client(base_url: &str) -> LlmClient {
        let cfg = LlmConfig {
            enabled: true,
            base_url: base_url.to_owned(),
            api_key: Some("test-key".into()),
            timeout_ms: 2_000,
            ..LlmConfig::default()
        };
        LlmClient::new(&cfg).unwrap().unwrap()
    }

    #[tokio::test]
    async fn items_come_back_with_spans_and_merge_with_rule_items() {
        let (url, fake) = serve().await;
        let content = json!({ "items": [
            { "kind": "contact", "value": "dana reyes", "normalized": "Dana Reyes", "confidence": 0.9 },
            { "kind": "phone", "value": "510-555-0142", "normalized": "+1 510 555 0142", "confidence": 0.99 },
            { "kind": "place", "value": "Atlantis", "normalized": "Atlantis", "confidence": 0.9 },
            { "kind": "weather", "value": "sunny", "normalized": "sunny", "confidence": 0.9 }
        ]})
        .to_string();
        *fake.reply.lock().unwrap() = (200, completion(&content));
        let text = "Zoë: met Dana Reyes, cell 510-555-0142";
        let items = client(&url)
            .extract(text, Source::Body, &ctx())
            .await
            .unwrap();
        // Atlantis is not in the text and "weather" is no kind: both dropped.
        let got: Vec<(&str, &str, (usize, usize), f32)> = items
            .iter()
            .map(|i| (i.kind.as_str(), i.normalized.as_str(), i.span, i.confidence))
            .collect();
        assert_eq!(
            got,
            vec![
                ("contact", "Dana Reyes", (9, 19), 0.8),
                ("phone", "+15105550142", (26, 38), 0.8),
            ]
        );
        let (auth, body) = fake.seen.lock().unwrap()[0].clone();
        assert_eq!(auth.as_deref(), Some("Bearer test-key"));
        assert_eq!(body["response_format"]["type"], "json_schema");
        assert_eq!(body["response_format"]["json_schema"]["strict"], true);
        assert!(body["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("America/Los_Angeles"));

        let rules = super::super::extract(text, Source::Body, &ctx());
        let merged = merge(rules.clone(), items);
        // The rule phone wins; the LLM's contact is kept only if no rule contact covers it.
        let phones: Vec<&Item> = merged
            .iter()
            .filter(|i| i.kind == ItemKind::Phone)
            .collect();
        assert_eq!(phones.len(), 1);
        assert_eq!(phones[0].confidence, 0.95);
        // The rules find "Zoë" and "Dana Reyes"; the LLM's "Dana Reyes" is not added again.
        let contacts =
            |items: &[Item]| items.iter().filter(|i| i.kind == ItemKind::Contact).count();
        assert_eq!(contacts(&rules), 2);
        assert_eq!(contacts(&merged), 2);
        assert!(merged.len() >= rules.len());
    }

    #[tokio::test]
    async fn server_errors_and_malformed_answers_are_typed() {
        let (url, fake) = serve().await;
        let c = client(&url);
        *fake.reply.lock().unwrap() = (500, "upstream exploded".to_owned());
        let e = c.extract("hi", Source::Body, &ctx()).await.unwrap_err();
        assert!(matches!(e, LlmError::Status { status: 500 }), "{e:?}");

        *fake.reply.lock().unwrap() = (200, completion("{\"items\": [ {\"kind\": "));
        let e = c.extract("hi", Source::Body, &ctx()).await.unwrap_err();
        assert!(matches!(e, LlmError::Malformed(_)), "{e:?}");

        *fake.reply.lock().unwrap() = (200, "<html>not json</html>".to_owned());
        let e = c.extract("hi", Source::Body, &ctx()).await.unwrap_err();
        assert!(matches!(e, LlmError::BadResponse(_)), "{e:?}");

        *fake.reply.lock().unwrap() = (200, json!({ "choices": [] }).to_string());
        let e = c.extract("hi", Source::Body, &ctx()).await.unwrap_err();
        assert!(matches!(e, LlmError::BadResponse(_)), "{e:?}");

        let refusal = json!({ "choices": [{ "message": { "content": null, "refusal": "no" } }] });
        *fake.reply.lock().unwrap() = (200, refusal.to_string());
        let e = c.extract("hi", Source::Body, &ctx()).await.unwrap_err();
        assert!(matches!(e, LlmError::Refused), "{e:?}");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_an_http_error() {
        // Bind then drop: nothing listens on that loopback port any more.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let e = client(&format!("http://{addr}"))
            .extract("hi", Source::Body, &ctx())
            .await
            .unwrap_err();
        assert!(matches!(e, LlmError::Http(_)), "{e:?}");
    }

    #[test]
    fn disabled_by_default_and_the_key_stays_out_of_debug() {
        assert!(LlmClient::new(&LlmConfig::default()).unwrap().is_none());
        let cfg: LlmConfig =
            serde_json::from_str(r#"{"enabled": true, "api_key": "sk-secret"}"#).unwrap();
        assert!(cfg.enabled);
        assert_eq!(cfg.timeout_ms, 10_000);
        assert!(!format!("{cfg:?}").contains("sk-secret"));
    }

    #[test]
    fn spans_are_found_case_insensitively_in_characters() {
        assert_eq!(find_span("Zoë met DANA", "dana"), Some((8, 12)));
        assert_eq!(find_span("Zoë met DANA", "Zoë"), Some((0, 3)));
        assert_eq!(find_span("short", "much longer needle"), None);
        assert_eq!(find_span("x", ""), None);
        assert_eq!(find_span("İİİ", "i̇"), None);
    }

    #[test]
    fn merge_keeps_rule_spans_and_adds_what_rules_missed() {
        let item = |kind, norm: &str, span, conf| Item {
            kind,
            value: norm.to_owned(),
            normalized: norm.to_owned(),
            confidence: conf,
            source: Source::Body,
            span,
        };
        let rules = vec![item(
            ItemKind::DateTime,
            "2026-12-01T15:00:00-08:00",
            (40, 56),
            0.9,
        )];
        let llm = vec![
            // Same kind over the same words, normalized differently: the rule wins.
            item(ItemKind::DateTime, "2026-12-01T15:00:00", (45, 56), 0.8),
            item(ItemKind::Place, "Blue Bottle", (10, 21), 0.7),
            item(ItemKind::Place, "Blue Bottle", (10, 21), 0.7),
        ];
        let merged = merge(rules, llm);
        let got: Vec<(&str, (usize, usize))> = merged
            .iter()
            .map(|i| (i.normalized.as_str(), i.span))
            .collect();
        assert_eq!(
            got,
            vec![
                ("Blue Bottle", (10, 21)),
                ("2026-12-01T15:00:00-08:00", (40, 56))
            ]
        );
    }
}
