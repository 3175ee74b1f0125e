//! The registry's write side: every change reads the phone's current state through the
//! directory ([`PhoneDirectory::latest`]), applies the change, and appends the new whole state
//! as an event on `sms.phones.v1`.
//!
//! Changes to one phone are serialized by a short Redis lock, and the directory remembers the
//! state each change wrote, so the next change starts from it even before the projector has
//! applied the event. Without Redis, changes still go through from the projected state (a
//! change racing another within the projection lag could then be lost; opt-outs are
//! re-checked by notify before any send).

use std::sync::Arc;
use std::time::Duration;

use super::codes::{CodeCheck, CodeLimits, CodeStoreError, Codes, Issued, SendLimit};
use super::directory::PhoneDirectory;
use super::PhoneSettings;
use crate::clock::now_micros;
use crate::events::{
    Event, OptOutChanged, OutboundRequested, PhoneLinked, PhoneState, PhoneUnlinked, PhoneVerified,
};
use crate::kafka::{EventProducer, KafkaSettings, ProduceError};
use crate::store::StoreError;

/// Why a registry change was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("the number is linked to another account; it must be unlinked there first")]
    OwnedByOther,
    #[error("the number is not linked to this account")]
    NotLinked,
    #[error("the code is wrong; {attempts_left} attempt(s) left")]
    WrongCode { attempts_left: u32 },
    #[error("too many wrong codes for this number; try again in {} s", retry_after.as_secs().max(1))]
    CodeExhausted { retry_after: Duration },
    #[error("{}; a new code can be sent in {} s", limit.describe(), retry_after.as_secs().max(1))]
    TooManyCodes {
        limit: SendLimit,
        retry_after: Duration,
    },
    #[error("no code is pending for this number (expired or never sent); link it again")]
    NoPendingCode,
    #[error(transparent)]
    Codes(#[from] CodeStoreError),
    #[error("cannot read the phone registry: {0}")]
    Store(#[from] Arc<StoreError>),
    #[error("cannot append the registry event: {0}")]
    Produce(#[from] ProduceError),
}

/// Who asked for a change: a user through the API, or an operator on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Api,
    Cli,
    /// No one: an unverified link outlived `phones.unverified_link_ttl` and another account
    /// linked the number.
    Expiry,
}

impl Actor {
    fn as_str(self) -> &'static str {
        match self {
            Actor::Api => "api",
            Actor::Cli => "cli",
            Actor::Expiry => "expiry",
        }
    }
}

/// What linking did.
#[derive(Debug, Clone, PartialEq)]
pub struct Linked {
    pub state: PhoneState,
    /// True when a verification code went out through `sms.outbound.v1`.
    pub code_sent: bool,
}

/// Appends registry changes.
pub struct PhoneRegistry {
    directory: Arc<PhoneDirectory>,
    producer: EventProducer,
    phones_topic: String,
    outbound_topic: String,
    redis: deadpool_redis::Pool,
    prefix: String,
    codes: Codes,
    code_message: String,
    unverified_link_ttl: Duration,
}

const LOCK_TTL: Duration = Duration::from_secs(5);
const LOCK_WAIT: Duration = Duration::from_secs(2);

impl PhoneRegistry {
    /// Build from `[phones]`, reading through the process's directory.
    pub fn new(
        settings: &PhoneSettings,
        kafka: &KafkaSettings,
        directory: Arc<PhoneDirectory>,
        producer: EventProducer,
        redis: deadpool_redis::Pool,
    ) -> PhoneRegistry {
        let prefix = kafka.topic_prefix.clone();
        PhoneRegistry {
            directory,
            producer,
            phones_topic: kafka.topic(crate::topics::PHONES),
            outbound_topic: kafka.topic(crate::topics::OUTBOUND),
            codes: Codes::new(redis.clone(), &prefix, CodeLimits::from(settings)),
            redis,
            prefix,
            code_message: settings.code_message.clone(),
            unverified_link_ttl: settings.unverified_link_ttl,
        }
    }

    /// The current state of `phone` as the write side sees it. `None` for a number never
    /// registered.
    pub async fn current(&self, phone: &str) -> Result<Option<PhoneState>, RegistryError> {
        Ok(self.directory.latest(phone).await.map_err(Arc::new)?)
    }

    /// Link `phone` to `user_id` (unverified) and, when asked, text it a code.
    /// `time_zone` (an IANA name, checked by the caller) replaces the number's zone when
    /// given; linking again is also how an owner changes it. A number linked to another
    /// account but never verified within `phones.unverified_link_ttl` is taken over.
    ///
    /// The code limits are checked before anything is appended: a refused code
    /// ([`RegistryError::TooManyCodes`]) leaves the registry as it was.
    pub async fn link(
        &self,
        phone: &str,
        user_id: &str,
        actor: Actor,
        send_code: bool,
        time_zone: Option<String>,
    ) -> Result<Linked, RegistryError> {
        let _lock = self.lock(phone).await;
        let mut state = self.current(phone).await?.unwrap_or_default();
        let expired = match state.user_id.as_deref() {
            Some(owner) if owner != user_id => {
                if !self.squatted(&state) {
                    return Err(RegistryError::OwnedByOther);
                }
                true
            }
            _ => false,
        };
        // The code is issued (and counted) first: over a limit, nothing changes.
        let code = match send_code && (expired || !state.verified) {
            false => None,
            true => match self.codes.issue(phone, user_id).await? {
                Issued::Code(code) => Some(code),
                Issued::Limited { retry_after, limit } => {
                    return Err(RegistryError::TooManyCodes { limit, retry_after })
                }
            },
        };
        if expired {
            state = self.release_expired(phone, state).await?;
        }
        match state.user_id.as_deref() {
            Some(_) => {}
            None => {
                state.user_id = Some(user_id.to_owned());
                state.verified = false;
                state.verified_at = None;
                state.linked_at = Some(now_micros());
            }
        }
        if time_zone.is_some() {
            state.time_zone = time_zone;
        }
        let event = PhoneLinked {
            event_id: uuid::Uuid::now_v7().to_string(),
            occurred_at: now_micros(),
            phone: phone.to_owned(),
            state: state.clone(),
            actor: actor.as_str().to_owned(),
        };
        self.append(phone, &event, &state).await?;
        let mut code_sent = false;
        if let Some(code) = code.filter(|_| !state.verified) {
            let request = OutboundRequested {
                event_id: uuid::Uuid::now_v7().to_string(),
                requested_at: now_micros(),
                user_id: Some(user_id.to_owned()),
                to: phone.to_owned(),
                from: None,
                body: self.code_message.replace("{code}", &code),
                purpose: "verification_code".into(),
                message_sid: None,
            };
            self.producer
                .send(&self.outbound_topic, request.partition_key(), &request)
                .await?;
            code_sent = true;
        }
        Ok(Linked { state, code_sent })
    }

    /// Whether an unverified link has outlived `phones.unverified_link_ttl` (a link without
    /// a link time is treated as old).
    fn squatted(&self, state: &PhoneState) -> bool {
        if state.verified {
            return false;
        }
        let ttl = i64::try_from(self.unverified_link_ttl.as_micros()).unwrap_or(i64::MAX);
        state
            .linked_at
            .is_none_or(|at| now_micros().saturating_sub(at) > ttl)
    }

    /// Unlink an expired, unverified link (recorded as `PhoneUnlinked` by `expiry`), so the
    /// previous account's listing loses it; returns the state without an owner.
    async fn release_expired(
        &self,
        phone: &str,
        mut state: PhoneState,
    ) -> Result<PhoneState, RegistryError> {
        let previous = state.user_id.clone();
        self.append_unlinked(phone, &mut state, previous, Actor::Expiry)
            .await?;
        tracing::info!(phone = %super::mask_phone(phone), "unverified link expired; another account takes the number");
        Ok(state)
    }

    /// Check a code for `phone`; on success the number is verified for the user the code
    /// was issued to. `expected_user` (API callers) must match that user. The code is
    /// consumed only once `PhoneVerified` is stored: if the append fails, it stays usable.
    pub async fn verify_code(
        &self,
        phone: &str,
        code: &str,
        expected_user: Option<&str>,
        message_sid: Option<&str>,
    ) -> Result<PhoneState, RegistryError> {
        let _lock = self.lock(phone).await;
        let state = self.current(phone).await?.unwrap_or_default();
        let owner = state.user_id.clone().ok_or(RegistryError::NotLinked)?;
        if expected_user.is_some_and(|u| u != owner) {
            return Err(RegistryError::NotLinked);
        }
        match self.codes.check(phone, code).await? {
            CodeCheck::Valid { user_id } if user_id == owner => {}
            // A code issued before the number changed hands is void.
            CodeCheck::Valid { .. } | CodeCheck::Missing => {
                return Err(RegistryError::NoPendingCode)
            }
            CodeCheck::Wrong { attempts_left } => {
                return Err(RegistryError::WrongCode { attempts_left })
            }
            CodeCheck::Exhausted { retry_after } => {
                return Err(RegistryError::CodeExhausted { retry_after })
            }
        }
        let method = if message_sid.is_some() {
            "code_sms"
        } else {
            "code_api"
        };
        let verified = self.set_verified(phone, state, method, message_sid).await?;
        if let Err(e) = self.codes.consume(phone).await {
            // Verified already; a code left behind expires with its TTL.
            tracing::warn!(error = %e, "number verified; its code could not be removed and expires on its own");
        }
        Ok(verified)
    }

    /// Mark a linked number verified on an operator's word (`smsflow phones link --verified`).
    pub async fn verify_by_operator(&self, phone: &str) -> Result<PhoneState, RegistryError> {
        let _lock = self.lock(phone).await;
        let state = self.current(phone).await?.unwrap_or_default();
        if state.user_id.is_none() {
            return Err(RegistryError::NotLinked);
        }
        self.set_verified(phone, state, "operator", None).await
    }

    async fn set_verified(
        &self,
        phone: &str,
        mut state: PhoneState,
        method: &str,
        message_sid: Option<&str>,
    ) -> Result<PhoneState, RegistryError> {
        let now = now_micros();
        state.verified = true;
        state.verified_at = Some(now);
        let event = PhoneVerified {
            event_id: uuid::Uuid::now_v7().to_string(),
            occurred_at: now,
            phone: phone.to_owned(),
            state: state.clone(),
            method: method.to_owned(),
            message_sid: message_sid.map(str::to_owned),
        };
        self.append(phone, &event, &state).await?;
        Ok(state)
    }

    /// Remove `phone` from its account. With `owner`, only that user's number is removed.
    pub async fn unlink(
        &self,
        phone: &str,
        owner: Option<&str>,
        actor: Actor,
    ) -> Result<PhoneState, RegistryError> {
        let _lock = self.lock(phone).await;
        let mut state = self.current(phone).await?.unwrap_or_default();
        let previous = state.user_id.clone().ok_or(RegistryError::NotLinked)?;
        if owner.is_some_and(|o| o != previous) {
            return Err(RegistryError::NotLinked);
        }
        self.append_unlinked(phone, &mut state, Some(previous), actor)
            .await?;
        Ok(state)
    }

    /// Clear the owner and verification from `state` and append `PhoneUnlinked`; the one
    /// way a link ends, whether a user, an operator or expiry ends it.
    async fn append_unlinked(
        &self,
        phone: &str,
        state: &mut PhoneState,
        previous_user_id: Option<String>,
        actor: Actor,
    ) -> Result<(), RegistryError> {
        state.user_id = None;
        state.verified = false;
        state.linked_at = None;
        state.verified_at = None;
        state.time_zone = None;
        let event = PhoneUnlinked {
            event_id: uuid::Uuid::now_v7().to_string(),
            occurred_at: now_micros(),
            phone: phone.to_owned(),
            state: state.clone(),
            previous_user_id,
            actor: actor.as_str().to_owned(),
        };
        self.append(phone, &event, &*state).await
    }

    /// Record an opt-out keyword (or HELP, which changes nothing but is recorded).
    pub async fn set_opt_out(
        &self,
        phone: &str,
        opted_out: Option<bool>,
        keyword: &str,
        opt_out_type: Option<&str>,
        message_sid: &str,
    ) -> Result<PhoneState, RegistryError> {
        let _lock = self.lock(phone).await;
        let mut state = self.current(phone).await?.unwrap_or_default();
        let now = now_micros();
        if let Some(out) = opted_out {
            if out != state.opted_out {
                state.opted_out = out;
                state.opted_out_at = out.then_some(now);
            }
        }
        let event = OptOutChanged {
            event_id: uuid::Uuid::now_v7().to_string(),
            occurred_at: now,
            phone: phone.to_owned(),
            opted_out: state.opted_out,
            state: state.clone(),
            keyword: Some(keyword.to_owned()),
            opt_out_type: opt_out_type.map(str::to_owned),
            message_sid: Some(message_sid.to_owned()),
        };
        self.append(phone, &event, &state).await?;
        Ok(state)
    }

    async fn append<E: Event>(
        &self,
        phone: &str,
        event: &E,
        state: &PhoneState,
    ) -> Result<(), RegistryError> {
        self.producer.send(&self.phones_topic, phone, event).await?;
        self.directory.record_change(phone, state).await;
        Ok(())
    }

    /// Serialize changes to one phone across instances, best effort: without Redis the
    /// change goes ahead unlocked (counted in the log), because an opt-out must never wait.
    async fn lock(&self, phone: &str) -> Option<Lock> {
        let key = format!("{}smsflow:phone-lock:{phone}", self.prefix);
        let token = uuid::Uuid::new_v4().to_string();
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
        loop {
            let mut conn = match self.redis.get().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "registry lock unavailable (Redis); changing unlocked");
                    return None;
                }
            };
            let got: Result<Option<String>, _> = deadpool_redis::redis::cmd("SET")
                .arg(&key)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(LOCK_TTL.as_millis() as u64)
                .query_async(&mut *conn)
                .await;
            match got {
                Ok(Some(_)) => {
                    return Some(Lock {
                        pool: self.redis.clone(),
                        key,
                        token,
                    })
                }
                Ok(None) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(None) => {
                    tracing::warn!(
                        "registry lock still held after {LOCK_WAIT:?}; changing unlocked"
                    );
                    return None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "registry lock unavailable (Redis); changing unlocked");
                    return None;
                }
            }
        }
    }
}

/// A held per-phone lock, released on drop (only by its holder: compare-and-delete).
struct Lock {
    pool: deadpool_redis::Pool,
    key: String,
    token: String,
}

const RELEASE: &str = r#"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"#;

impl Drop for Lock {
    fn drop(&mut self) {
        let (pool, key, token) = (
            self.pool.clone(),
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.token),
        );
        // Dropped inside the runtime; if it is shutting down, the TTL releases the lock.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Ok(mut conn) = pool.get().await {
                    let _: Result<i64, _> = deadpool_redis::redis::Script::new(RELEASE)
                        .key(key)
                        .arg(token)
                        .invoke_async(&mut *conn)
                        .await;
                }
            });
        }
    }
}
