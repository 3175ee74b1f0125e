//! `POST /webhooks/twilio/messages`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{OriginalUri, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::{field, instrument, Instrument, Span};

use super::admission::{Admission, Budgets};
use super::dedupe::Claim;
use super::rate_limit::Decision;
use super::{form, signature, IngressError, IngressState};
use crate::events::{MessageReceived, PhoneState, SenderRejected};
use crate::metrics;
use crate::phones::mask_phone;
use crate::phones::{codes, keywords, Keyword, RegistryError};
use crate::secrets::ExposeSecret;
use crate::telemetry::sampled_child;

/// The empty TwiML document: "received, nothing to reply".
const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>";

#[instrument(
    name = "webhook.message",
    skip_all,
    fields(
        otel.name = "POST /webhooks/twilio/messages",
        otel.kind = "server",
        http.request.method = "POST",
        http.route = "/webhooks/twilio/messages",
        http.response.status_code = field::Empty,
        outcome = field::Empty,
        message_sid = field::Empty,
        from = field::Empty,
    )
)]
pub(super) async fn receive_message(
    State(state): State<Arc<IngressState>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let _in_flight = InFlight::enter();
    let result = accept(&state, &uri, &headers, body).await;
    let outcome = match &result {
        Ok(Accepted::Recorded { .. }) => "accepted",
        Ok(Accepted::Duplicate) => "duplicate",
        Err(e) => e.outcome(),
    };
    metrics::webhook_latency(outcome, started.elapsed());
    let response = match result {
        Ok(Accepted::Recorded { reply }) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/xml")],
            twiml(&reply),
        )
            .into_response(),
        Ok(Accepted::Duplicate) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/xml")],
            EMPTY_TWIML,
        )
            .into_response(),
        Err(e) => {
            e.keep_span("/webhooks/twilio/messages", &headers);
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
) -> Result<Accepted, IngressError> {
    // The parsed form is freed here, not held while Kafka acknowledges the event.
    let event = {
        let pairs = signed_form(state, uri, headers, body)?;
        let received_at = crate::clock::now_micros();
        let token = headers
            .get("i-twilio-idempotency-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        form::message_received(&pairs, uuid::Uuid::now_v7().to_string(), received_at, token)?
    };
    let span = Span::current();
    span.record("message_sid", event.message_sid.as_str());
    span.record("from", mask_phone(&event.from).as_str());

    // Everything the one Redis round trip needs is known before it: keywords take from no
    // budget, and the registry (a cache in front of the projection) says whether the sender
    // opted out and which verified user it belongs to.
    let opt_out_type = event
        .extra
        .get("OptOutType")
        .and_then(|v| v.first())
        .cloned();
    let keyword = keywords::classify(&event.body, opt_out_type.as_deref());
    let found = match keyword {
        Some(_) => None,
        None => Box::pin(lookup(state, &event.from)).await?,
    };
    let verified_user = match &found {
        Some(PhoneState {
            user_id: Some(user),
            verified: true,
            ..
        }) => Some(user.clone()),
        _ => None,
    };
    let budgets = match (&keyword, &found, &verified_user) {
        (Some(_), _, _) => Budgets::None,
        // Never reply to (nor count) an opted-out number.
        (_, Some(s), _) if s.opted_out => Budgets::None,
        (_, _, Some(user)) => Budgets::SenderAndUser {
            sender: &event.from,
            user,
        },
        _ => Budgets::Sender {
            sender: &event.from,
        },
    };
    let admission = Box::pin(state.admitter.admit(
        state.dedupe.as_ref(),
        state.rate_limit.as_ref(),
        &event.message_sid,
        event.idempotency_token.as_deref(),
        budgets,
    ))
    .await?;
    let Admission {
        claim,
        decision,
        window,
    } = admission;
    let keys = match claim {
        Claim::Duplicate => {
            metrics::webhook_duplicate();
            tracing::info!("repeated delivery of an appended message; nothing appended");
            return Ok(Accepted::Duplicate);
        }
        Claim::InFlight => return Err(IngressError::InFlight),
        Claim::Fresh(keys) => Some(keys),
        Claim::Unchecked => None,
    };

    let sender = Sender {
        keyword,
        opt_out_type,
        found,
        verified_user,
        decision,
        window,
    };
    let routed = route(state, event, sender).await;
    if let (Some(d), Some(keys)) = (&state.dedupe, keys) {
        match &routed {
            Ok(_) => Box::pin(d.confirm(keys)).await,
            // Nothing was stored: let Twilio's retry try again.
            Err(_) => Box::pin(d.release(&keys)).await,
        }
    }
    routed
}

/// The sender's registry state. With `sender_policy = "any"` (single tenant) anyone is
/// enriched except a number that opted out; if the registry cannot say, the message goes on
/// (notify still never texts an opted-out number: it checks `phones` itself). With
/// `"registered"` it is a 503.
async fn lookup(state: &IngressState, from: &str) -> Result<Option<PhoneState>, IngressError> {
    let started = Instant::now();
    let found = state
        .directory
        .lookup(from)
        .instrument(sampled_child(|| tracing::info_span!("webhook.lookup")))
        .await;
    metrics::webhook_step("lookup", started.elapsed());
    match found {
        Ok(found) => Ok(found),
        Err(e) if state.registered_only => Err(IngressError::Registry(e.to_string())),
        Err(e) => {
            metrics::registry_unavailable();
            tracing::warn!(error = %e, "phone registry unavailable; opt-out not checked (sender_policy = any)");
            Ok(None)
        }
    }
}

/// What is known about a message's sender once it is admitted.
struct Sender {
    keyword: Option<Keyword>,
    opt_out_type: Option<String>,
    found: Option<PhoneState>,
    verified_user: Option<String>,
    /// The rate limits' answer.
    decision: Decision,
    /// When limited, the window of at most one rate-limit reply.
    window: Duration,
}

/// Decide what the message is (a keyword, a code, a rejected or an accepted message), and
/// append the one event that records it.
async fn route(
    state: &IngressState,
    mut event: MessageReceived,
    sender: Sender,
) -> Result<Accepted, IngressError> {
    let Sender {
        keyword,
        opt_out_type,
        found,
        verified_user,
        decision,
        window,
    } = sender;
    // Keywords first, from any sender: an opt-out belongs to the number, registered or not.
    if let Some(keyword) = keyword {
        return Box::pin(opt_out(state, &event, keyword, opt_out_type.as_deref())).await;
    }
    if let Some(s) = found.as_ref().filter(|s| s.opted_out) {
        let user = s.user_id.clone();
        return Box::pin(reject(state, &event, user, "opted_out", None, "")).await;
    }

    // Every sender took from its budget before anything else was decided: a stranger's or an
    // unverified number's flood is limited (and not answered) like anyone's.
    if let Decision::Limited { retry_after } = decision {
        // Recorded, answered 200 so Twilio does not retry, and never enriched.
        metrics::rate_limited();
        let retry_ms = i64::try_from(retry_after.as_millis()).unwrap_or(i64::MAX);
        let user = verified_user.or_else(|| found.and_then(|s| s.user_id));
        let recorded = Box::pin(reject(
            state,
            &event,
            user,
            "rate_limited",
            Some(retry_ms),
            "",
        ))
        .await?;
        // The reply is claimed only once the rejection is stored: a 503 retried by Twilio
        // must not have used up the window's one reply.
        let text = &state.replies.rate_limited;
        if !text.is_empty() && Box::pin(state.reply_gate.claim(&event.from, window)).await {
            return Ok(Accepted::Recorded {
                reply: text.clone(),
            });
        }
        return Ok(recorded);
    }

    match found {
        Some(PhoneState {
            user_id: Some(user),
            verified: true,
            ..
        }) => event.user_id = Some(user),
        _ if !state.registered_only => {}
        Some(PhoneState {
            user_id: Some(user),
            verified: false,
            ..
        }) => {
            if codes::looks_like_code(&event.body) {
                let verified = state.registry.verify_code(
                    &event.from,
                    &event.body,
                    None,
                    Some(&event.message_sid),
                );
                match Box::pin(verified).await {
                    Ok(_) => {
                        tracing::info!("number verified by a texted code");
                        return Ok(Accepted::Recorded {
                            reply: state.replies.verified.clone(),
                        });
                    }
                    Err(
                        e @ (RegistryError::Codes(_)
                        | RegistryError::Store(_)
                        | RegistryError::Produce(_)),
                    ) => return Err(IngressError::Registry(e.to_string())),
                    Err(e) => tracing::info!(error = %e, "texted code not accepted"),
                }
            }
            let recorded =
                Box::pin(reject(state, &event, Some(user), "unverified", None, "")).await?;
            return Ok(Box::pin(stranger_reply(
                state,
                &event.from,
                &state.replies.unverified,
                recorded,
            ))
            .await);
        }
        _ => {
            let recorded = Box::pin(reject(state, &event, None, "unknown", None, "")).await?;
            let reply = stranger_reply(state, &event.from, &state.replies.unknown, recorded);
            return Ok(Box::pin(reply).await);
        }
    }

    // Boxed like every other step, so that this function's own state stays small: only the
    // step in progress is allocated while the webhook waits for Kafka.
    let started = Instant::now();
    let produced = Box::pin(state.producer.send(
        &state.messages_topic,
        event.partition_key(),
        &event,
    ))
    .await;
    metrics::produce_latency(started.elapsed());
    produced?;
    Ok(Accepted::Recorded {
        reply: String::new(),
    })
}

/// The reply to an unknown or unverified sender, at most once per sender per
/// `ingress.replies.stranger_interval`; claimed only once the rejection is stored, so a 503
/// retried by Twilio does not use it up.
async fn stranger_reply(
    state: &IngressState,
    from: &str,
    text: &str,
    recorded: Accepted,
) -> Accepted {
    if text.is_empty()
        || !state
            .reply_gate
            .claim(from, state.replies.stranger_interval)
            .await
    {
        return recorded;
    }
    Accepted::Recorded {
        reply: text.to_owned(),
    }
}

/// Record a message that will not be enriched, as `SenderRejected`, and answer 200.
async fn reject(
    state: &IngressState,
    event: &MessageReceived,
    user_id: Option<String>,
    reason: &'static str,
    retry_after_ms: Option<i64>,
    reply: &str,
) -> Result<Accepted, IngressError> {
    metrics::sender_rejected(reason);
    tracing::info!(reason, "sender rejected; recorded, not enriched");
    let rejected = SenderRejected {
        event_id: event.event_id.clone(),
        received_at: event.received_at,
        message_sid: event.message_sid.clone(),
        from: event.from.clone(),
        to: event.to.clone(),
        user_id,
        reason: reason.into(),
        retry_after_ms,
    };
    let started = Instant::now();
    let produced = state
        .producer
        .send(&state.messages_topic, rejected.partition_key(), &rejected)
        .await;
    metrics::produce_latency(started.elapsed());
    produced?;
    Ok(Accepted::Recorded {
        reply: reply.to_owned(),
    })
}

/// STOP, START, HELP and their synonyms: record `OptOutChanged` and confirm. When Twilio's
/// Advanced Opt-Out handled the keyword (it sent `OptOutType`), Twilio already replied.
async fn opt_out(
    state: &IngressState,
    event: &MessageReceived,
    keyword: Keyword,
    opt_out_type: Option<&str>,
) -> Result<Accepted, IngressError> {
    let (opted_out, word, kind, reply) = match keyword {
        Keyword::OptOut(w) => (Some(true), w, "opt_out", &state.replies.opted_out),
        Keyword::OptIn(w) => (Some(false), w, "opt_in", &state.replies.opted_in),
        Keyword::Help => (None, "HELP", "help", &state.replies.help),
    };
    metrics::opt_out_keyword(kind);
    state
        .registry
        .set_opt_out(
            &event.from,
            opted_out,
            word,
            opt_out_type,
            &event.message_sid,
        )
        .await
        .map_err(|e| match e {
            RegistryError::Produce(p) => IngressError::Unavailable(p),
            e => IngressError::Registry(e.to_string()),
        })?;
    tracing::info!(kind, "opt-out keyword recorded");
    let reply = if opt_out_type.is_some() {
        String::new()
    } else {
        reply.clone()
    };
    Ok(Accepted::Recorded { reply })
}

/// The parameters of a form POST whose Twilio signature checks out; every Twilio webhook
/// route starts here.
pub(super) fn signed_form(
    state: &IngressState,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Vec<(String, String)>, IngressError> {
    if !is_form(headers) {
        return Err(IngressError::WrongContentType);
    }
    let body = body.map_err(|rej| {
        if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            IngressError::BodyTooLarge
        } else {
            IngressError::BadBody(rej.body_text())
        }
    })?;
    if std::str::from_utf8(&body).is_err() {
        return Err(IngressError::BadBody("form body is not UTF-8".into()));
    }
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    check_signature(state, uri, headers, &pairs)?;
    Ok(pairs)
}

/// How an accepted webhook was handled.
enum Accepted {
    /// One event appended; `reply` is the TwiML message text (empty: none).
    Recorded {
        reply: String,
    },
    Duplicate,
}

/// TwiML answering with `text`, or with nothing when it is empty.
fn twiml(text: &str) -> String {
    if text.is_empty() {
        return EMPTY_TWIML.to_owned();
    }
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            c => escaped.push(c),
        }
    }
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>{escaped}</Message></Response>")
}

fn check_signature(
    state: &IngressState,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    pairs: &[(String, String)],
) -> Result<(), IngressError> {
    let _span = sampled_child(|| tracing::info_span!("webhook.signature")).entered();
    let Some(token) = state.auth_token.as_ref().map(ExposeSecret::expose_secret) else {
        return Ok(());
    };
    let sig = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or(IngressError::BadSignature)?;
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{}", state.public_url, path_and_query);
    let candidates = signature::candidate_urls(&url, &state.signed_urls);
    if signature::is_valid_for_any(token, &candidates, pairs, sig) {
        Ok(())
    } else {
        Err(IngressError::BadSignature)
    }
}

/// Counts a webhook as in flight until dropped, also when the client goes away mid-request.
struct InFlight;

impl InFlight {
    fn enter() -> InFlight {
        metrics::webhooks_in_flight(1.0);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::webhooks_in_flight(-1.0);
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `f` returns, without calling it.
    fn returned_size<F, A, B, C, D, R>(_: &F) -> usize
    where
        F: Fn(A, B, C, D) -> R,
    {
        std::mem::size_of::<R>()
    }

    /// Every webhook in flight holds this future (boxed once by axum's handler) for as long as
    /// Kafka takes to acknowledge it. `cargo test --lib ingress::webhook -- --nocapture`.
    #[test]
    fn the_webhook_future_is_small() {
        let size = returned_size(&receive_message);
        eprintln!("receive_message future {size} B");
        // 17,632 B in a debug build before each step was boxed (3,104 B after); release
        // builds are smaller still. A step awaited inline again would show here.
        assert!(size <= 4096, "receive_message future is {size} B");
    }
}
