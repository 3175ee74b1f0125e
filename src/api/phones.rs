//! `/v1/phones`: a user links numbers to their account and proves them with a code.
//!
//! Writes go through the registry (events on `sms.phones.v1`); `GET` reads the projected
//! `phones_by_user` (`projector::phones`), so a change shows there once the projector has
//! applied it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{self, Authenticator, Caller};
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path};
use super::params::{TimeZone, VerificationCode, E164};
use super::rfc3339_millis;
use crate::phones::registry::Actor;
use crate::phones::{PhoneRegistry, RegistryError};
use crate::projector::phones::PhoneReads;

/// What the phone routes share.
pub struct PhonesApi {
    pub registry: Arc<PhoneRegistry>,
    pub reads: PhoneReads,
}

/// The routes, behind bearer authentication.
pub fn router(api: Arc<PhonesApi>, auth: Arc<Authenticator>) -> Router {
    Router::new()
        .route("/v1/phones", get(list).post(link))
        .route("/v1/phones/{phone}", axum::routing::delete(unlink))
        .route("/v1/phones/{phone}/verify", post(verify))
        .route_layer(middleware::from_fn_with_state(auth, auth::require_user))
        .with_state(api)
}

/// `POST /v1/phones`. Unknown fields are refused (a misspelt `time_zone` would otherwise be
/// silently dropped).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LinkBody {
    /// The number to link.
    phone: E164,
    /// Dates in this number's messages are read in this zone; absent or null for the
    /// deployment's default.
    #[serde(default)]
    time_zone: Option<TimeZone>,
}

/// `POST /v1/phones/{phone}/verify`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyBody {
    /// The code texted to the number.
    code: VerificationCode,
}

/// What linking a number did.
#[derive(Serialize, ToSchema)]
pub(crate) struct Linked {
    #[schema(value_type = E164)]
    phone: String,
    verified: bool,
    /// Whether a verification code went out to the number.
    code_sent: bool,
}

/// A number's state after a verification attempt.
#[derive(Serialize, ToSchema)]
pub(crate) struct Verified {
    #[schema(value_type = E164)]
    phone: String,
    verified: bool,
}

/// The caller's numbers, as projected.
#[derive(Serialize, ToSchema)]
pub(crate) struct PhoneList {
    /// At most 1000.
    phones: Vec<PhoneView>,
}

/// One of the caller's numbers.
#[derive(Serialize, ToSchema)]
pub(crate) struct PhoneView {
    #[schema(value_type = E164)]
    phone: String,
    verified: bool,
    opted_out: bool,
    /// RFC 3339; null before the projector has the link time.
    #[schema(required = true, format = DateTime)]
    linked_at: Option<String>,
    /// Null for the deployment's default.
    #[schema(required = true, value_type = Option<TimeZone>)]
    time_zone: Option<String>,
}

/// A number in a path: E.164 exactly, like the body's.
fn path_phone(phone: &str) -> Result<E164, ApiError> {
    E164::parse(phone).map_err(|e| ApiError::invalid(e.to_string()))
}

#[utoipa::path(post, path = "/v1/phones", tag = "phones", operation_id = "linkPhone",
    summary = "Link a number to the caller; a code goes out to verify it",
    security(("bearer" = [])),
    request_body = LinkBody,
    responses(
        (status = 200, description = "Linked and verified already", body = Linked,
            links(
                ("unlinkPhone" = (operation_id = "unlinkPhone", parameters(("phone" = "$response.body#/phone")))),
            )),
        (status = 202, description = "Linked; a code went out to the number", body = Linked,
            links(
                ("verifyPhone" = (operation_id = "verifyPhone", parameters(("phone" = "$response.body#/phone")))),
                ("unlinkPhone" = (operation_id = "unlinkPhone", parameters(("phone" = "$response.body#/phone")))),
            )),
        (status = 400, description = "Not an E.164 number of a real country, not a time zone name, an unknown field, or malformed JSON", body = ErrorBody),
        (status = 409, description = "`phone_taken`: linked to another account (an unverified link expires after `phones.unverified_link_ttl`)", body = ErrorBody),
        (status = 429, description = "`too_many_codes`: a code limit (per number, per account, resend interval) or the number's wrong guesses are used up; `Retry-After` says when to try again", body = ErrorBody),
        (status = 503, description = "A dependency is down; retry later", body = ErrorBody),
    ))]
async fn link(
    State(api): State<Arc<PhonesApi>>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<LinkBody>,
) -> Result<Response, PhoneError> {
    let phone = String::from(body.phone);
    let time_zone = body.time_zone.map(String::from);
    let linked = api
        .registry
        .link(&phone, &caller.user_id, Actor::Api, true, time_zone)
        .await
        .map_err(registry_error)?;
    let status = if linked.state.verified {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((
        status,
        Json(Linked {
            phone,
            verified: linked.state.verified,
            code_sent: linked.code_sent,
        }),
    )
        .into_response())
}

#[utoipa::path(post, path = "/v1/phones/{phone}/verify", tag = "phones", operation_id = "verifyPhone",
    summary = "Prove a number with the texted code",
    security(("bearer" = [])),
    params(("phone" = E164, Path, description = "The number, E.164 (URL-encode the `+` as `%2B`)")),
    request_body = VerifyBody,
    responses(
        (status = 200, description = "The number's state", body = Verified),
        (status = 400, description = "Not an E.164 number, not a six-digit code, an unknown field, or malformed JSON", body = ErrorBody),
        (status = 404, description = "Not one of the caller's numbers", body = ErrorBody),
        (status = 410, description = "`no_pending_code`: expired or used; link again", body = ErrorBody),
        (status = 422, description = "`wrong_code`", body = ErrorBody),
        (status = 429, description = "`code_exhausted`: the number's wrong guesses are used up (across re-sent codes); `Retry-After` says when to try again", body = ErrorBody),
        (status = 503, description = "A dependency is down; retry later", body = ErrorBody),
    ))]
async fn verify(
    State(api): State<Arc<PhonesApi>>,
    Extension(caller): Extension<Caller>,
    Path(phone): Path<String>,
    Json(body): Json<VerifyBody>,
) -> Result<Json<Verified>, PhoneError> {
    let phone = String::from(path_phone(&phone)?);
    let state = api
        .registry
        .verify_code(&phone, body.code.as_str(), Some(&caller.user_id), None)
        .await
        .map_err(registry_error)?;
    Ok(Json(Verified {
        phone,
        verified: state.verified,
    }))
}

#[utoipa::path(delete, path = "/v1/phones/{phone}", tag = "phones", operation_id = "unlinkPhone",
    summary = "Unlink one of the caller's numbers",
    security(("bearer" = [])),
    params(("phone" = E164, Path, description = "The number, E.164 (URL-encode the `+` as `%2B`)")),
    responses(
        (status = 204, description = "Unlinked"),
        (status = 400, description = "Not an E.164 number", body = ErrorBody),
        (status = 404, description = "Not one of the caller's numbers", body = ErrorBody),
        (status = 503, description = "A dependency is down; retry later", body = ErrorBody),
    ))]
async fn unlink(
    State(api): State<Arc<PhonesApi>>,
    Extension(caller): Extension<Caller>,
    Path(phone): Path<String>,
) -> Result<StatusCode, PhoneError> {
    let phone = path_phone(&phone)?;
    api.registry
        .unlink(phone.as_str(), Some(&caller.user_id), Actor::Api)
        .await
        .map_err(registry_error)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/phones", tag = "phones", operation_id = "listPhones",
    summary = "The caller's numbers",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "At most 1000 numbers", body = PhoneList,
            links(
                ("verifyPhone" = (operation_id = "verifyPhone", parameters(("phone" = "$response.body#/phones/0/phone")))),
                ("unlinkPhone" = (operation_id = "unlinkPhone", parameters(("phone" = "$response.body#/phones/0/phone")))),
            )),
        (status = 503, description = "A dependency is down; retry later", body = ErrorBody),
    ))]
async fn list(
    State(api): State<Arc<PhonesApi>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<PhoneList>, ApiError> {
    let phones: Vec<PhoneView> = api
        .reads
        .of_user(&caller.user_id)
        .await?
        .into_iter()
        .map(|p| PhoneView {
            phone: p.phone,
            verified: p.verified,
            opted_out: p.opted_out,
            linked_at: p.linked_at_ms.and_then(rfc3339_millis),
            time_zone: p.time_zone,
        })
        .collect();
    Ok(Json(PhoneList { phones }))
}

/// An API error, with `Retry-After` when the client must wait before trying again.
pub(crate) struct PhoneError(ApiError, Option<Duration>);

impl From<ApiError> for PhoneError {
    fn from(e: ApiError) -> Self {
        PhoneError(e, None)
    }
}

impl IntoResponse for PhoneError {
    fn into_response(self) -> Response {
        let mut resp = self.0.into_response();
        if let Some(wait) = self.1 {
            // Whole seconds, rounded up: a client waiting that long finds the limit lifted.
            let secs = wait.as_millis().div_ceil(1000).max(1);
            if let Ok(v) = axum::http::HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

fn registry_error(e: RegistryError) -> PhoneError {
    let wait = match &e {
        RegistryError::CodeExhausted { retry_after }
        | RegistryError::TooManyCodes { retry_after, .. } => Some(*retry_after),
        _ => None,
    };
    let error = match e {
        RegistryError::OwnedByOther => ApiError::new(
            StatusCode::CONFLICT,
            "phone_taken",
            "the number is linked to another account",
        ),
        // Someone else's number and no number look the same from outside.
        RegistryError::NotLinked => ApiError::not_found("phone"),
        RegistryError::WrongCode { attempts_left } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_code",
            format!("the code is wrong; {attempts_left} attempt(s) left"),
        ),
        e @ RegistryError::CodeExhausted { .. } => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "code_exhausted",
            e.to_string(),
        ),
        e @ RegistryError::TooManyCodes { .. } => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_codes",
            e.to_string(),
        ),
        RegistryError::NoPendingCode => ApiError::new(
            StatusCode::GONE,
            "no_pending_code",
            "no code is pending (expired or used); link the number again for a new code",
        ),
        e @ (RegistryError::Codes(_) | RegistryError::Store(_) | RegistryError::Produce(_)) => {
            ApiError::dependency("the phone registry", e)
        }
    };
    PhoneError(error, wait)
}
