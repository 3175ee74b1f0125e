//! `/v1/phones`: a user links numbers to their account and proves them with a code.
//!
//! Writes go through the registry (events on `sms.phones.v1`); `GET` reads the projected
//! `phones_by_user`, so a change shows there once the projector has applied it.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use serde::{Deserialize, Serialize};

use super::auth::{self, Authenticator, Caller};
use super::error::ApiError;
use crate::phones::registry::Actor;
use crate::phones::{normalize, PhoneRegistry, RegistryError};
use crate::store::StoreError;

/// What the phone routes share.
pub struct PhonesApi {
    pub registry: Arc<PhoneRegistry>,
    session: Arc<Session>,
    list: PreparedStatement,
}

impl PhonesApi {
    /// Prepare the read.
    pub async fn new(
        registry: Arc<PhoneRegistry>,
        session: Arc<Session>,
        keyspace: &str,
    ) -> Result<PhonesApi, StoreError> {
        let mut list = session
            .prepare(format!(
                "SELECT phone, verified, opted_out, linked_at, time_zone FROM {keyspace}.phones_by_user WHERE user_id = ?"
            ))
            .await
            .map_err(StoreError::prepare("select phones_by_user"))?;
        list.set_page_size(100);
        Ok(PhonesApi {
            registry,
            session,
            list,
        })
    }
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

#[derive(Deserialize)]
struct LinkBody {
    phone: String,
    /// IANA name; dates in this number's messages are read in it.
    time_zone: Option<String>,
}

#[derive(Deserialize)]
struct VerifyBody {
    code: String,
}

/// One of the caller's numbers.
#[derive(Serialize)]
struct PhoneView {
    phone: String,
    verified: bool,
    opted_out: bool,
    /// RFC 3339.
    linked_at: Option<String>,
    /// IANA name, or null for the deployment's default.
    time_zone: Option<String>,
}

async fn link(
    State(api): State<Arc<PhonesApi>>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<LinkBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let phone = normalize(&body.phone).map_err(|e| ApiError::invalid(e.to_string()))?;
    let time_zone = body
        .time_zone
        .as_deref()
        .map(crate::phones::time_zone)
        .transpose()
        .map_err(|e| ApiError::invalid(e.to_string()))?;
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
        Json(serde_json::json!({
            "phone": phone,
            "verified": linked.state.verified,
            "code_sent": linked.code_sent,
        })),
    )
        .into_response())
}

async fn verify(
    State(api): State<Arc<PhonesApi>>,
    Extension(caller): Extension<Caller>,
    Path(phone): Path<String>,
    body: Result<Json<VerifyBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(body) = body?;
    let phone = normalize(&phone).map_err(|_| ApiError::not_found("phone"))?;
    let state = api
        .registry
        .verify_code(&phone, &body.code, Some(&caller.user_id), None)
        .await
        .map_err(registry_error)?;
    Ok(Json(
        serde_json::json!({"phone": phone, "verified": state.verified}),
    ))
}

async fn unlink(
    State(api): State<Arc<PhonesApi>>,
    Extension(caller): Extension<Caller>,
    Path(phone): Path<String>,
) -> Result<StatusCode, ApiError> {
    let phone = normalize(&phone).map_err(|_| ApiError::not_found("phone"))?;
    api.registry
        .unlink(&phone, Some(&caller.user_id), Actor::Api)
        .await
        .map_err(registry_error)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list(
    State(api): State<Arc<PhonesApi>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<serde_json::Value>, ApiError> {
    use futures::{StreamExt, TryStreamExt};
    type Row = (
        String,
        Option<bool>,
        Option<bool>,
        Option<CqlTimestamp>,
        Option<String>,
    );
    let rows: Vec<Row> = api
        .session
        .execute_iter(api.list.clone(), (&caller.user_id,))
        .await
        .map_err(|e| ApiError::unavailable(format!("cannot read phones: {e}")))?
        .rows_stream::<Row>()
        .map_err(|e| ApiError::unavailable(format!("cannot read phones: {e}")))?
        .take(1000)
        .try_collect()
        .await
        .map_err(|e| ApiError::unavailable(format!("cannot read phones: {e}")))?;
    let phones: Vec<PhoneView> = rows
        .into_iter()
        .map(
            |(phone, verified, opted_out, linked_at, time_zone)| PhoneView {
                phone,
                verified: verified.unwrap_or(false),
                opted_out: opted_out.unwrap_or(false),
                linked_at: linked_at.and_then(|t| rfc3339_millis(t.0)),
                time_zone,
            },
        )
        .collect();
    Ok(Json(serde_json::json!({ "phones": phones })))
}

/// Milliseconds since the epoch as RFC 3339 UTC.
pub fn rfc3339_millis(ms: i64) -> Option<String> {
    let t = std::time::UNIX_EPOCH
        .checked_add(std::time::Duration::from_millis(u64::try_from(ms).ok()?))?;
    Some(humantime::format_rfc3339_millis(t).to_string())
}

fn registry_error(e: RegistryError) -> ApiError {
    match e {
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
        RegistryError::CodeExhausted => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "code_exhausted",
            "too many wrong codes; link the number again for a new code",
        ),
        RegistryError::NoPendingCode => ApiError::new(
            StatusCode::GONE,
            "no_pending_code",
            "no code is pending (expired or used); link the number again for a new code",
        ),
        e @ (RegistryError::Codes(_) | RegistryError::Store(_) | RegistryError::Produce(_)) => {
            tracing::warn!(error = %e, "phone registry change failed");
            ApiError::unavailable(e.to_string())
        }
    }
}
