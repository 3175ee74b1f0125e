//! Phone registry events on the compacted topic `sms.phones.v1`: `PhoneLinked`,
//! `PhoneVerified`, `PhoneUnlinked`, `OptOutChanged`. See the matching files in `schemas/`.
//!
//! Compaction keeps only the latest record per phone, so every event carries the phone's whole
//! state after the change ([`PhoneState`]); the change itself is the event type.

use serde::{Deserialize, Serialize};

use super::Event;

/// A phone's complete registry state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneState {
    pub user_id: Option<String>,
    pub verified: bool,
    pub opted_out: bool,
    /// UTC microseconds.
    pub linked_at: Option<i64>,
    pub verified_at: Option<i64>,
    pub opted_out_at: Option<i64>,
    /// IANA time zone the owner gave; enrichment resolves dates in it.
    #[serde(default)]
    pub time_zone: Option<String>,
}

/// A user linked a number (`schemas/PhoneLinked.avsc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhoneLinked {
    pub event_id: String,
    pub occurred_at: i64,
    pub phone: String,
    pub state: PhoneState,
    pub actor: String,
}

/// The owner proved control of the number (`schemas/PhoneVerified.avsc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhoneVerified {
    pub event_id: String,
    pub occurred_at: i64,
    pub phone: String,
    pub state: PhoneState,
    pub method: String,
    pub message_sid: Option<String>,
}

/// The number left its account (`schemas/PhoneUnlinked.avsc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhoneUnlinked {
    pub event_id: String,
    pub occurred_at: i64,
    pub phone: String,
    pub state: PhoneState,
    pub previous_user_id: Option<String>,
    pub actor: String,
}

/// The number opted out or back in (`schemas/OptOutChanged.avsc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptOutChanged {
    pub event_id: String,
    pub occurred_at: i64,
    pub phone: String,
    pub state: PhoneState,
    pub opted_out: bool,
    pub keyword: Option<String>,
    pub opt_out_type: Option<String>,
    pub message_sid: Option<String>,
}

macro_rules! event_names {
    ($($t:ident),*) => {$(
        impl Event for $t {
            const FULL_NAME: &'static str = concat!("smsflow.events.", stringify!($t));
            const NAME: &'static str = stringify!($t);
        }
    )*};
}
event_names!(PhoneLinked, PhoneVerified, PhoneUnlinked, OptOutChanged);

/// Any event of `sms.phones.v1`, decoded by its `event-type` header.
#[derive(Debug, Clone, PartialEq)]
pub enum PhoneEvent {
    Linked(PhoneLinked),
    Verified(PhoneVerified),
    Unlinked(PhoneUnlinked),
    OptOut(OptOutChanged),
}

impl PhoneEvent {
    /// Decode a record of `sms.phones.v1`; `None` for an event type this build does not know.
    pub fn decode(
        event_type: &str,
        payload: &[u8],
    ) -> Option<Result<PhoneEvent, super::CodecError>> {
        Some(match event_type {
            PhoneLinked::NAME => super::decode(payload).map(PhoneEvent::Linked),
            PhoneVerified::NAME => super::decode(payload).map(PhoneEvent::Verified),
            PhoneUnlinked::NAME => super::decode(payload).map(PhoneEvent::Unlinked),
            OptOutChanged::NAME => super::decode(payload).map(PhoneEvent::OptOut),
            _ => return None,
        })
    }

    /// The phone, E.164.
    pub fn phone(&self) -> &str {
        match self {
            PhoneEvent::Linked(e) => &e.phone,
            PhoneEvent::Verified(e) => &e.phone,
            PhoneEvent::Unlinked(e) => &e.phone,
            PhoneEvent::OptOut(e) => &e.phone,
        }
    }

    /// The state after the change.
    pub fn state(&self) -> &PhoneState {
        match self {
            PhoneEvent::Linked(e) => &e.state,
            PhoneEvent::Verified(e) => &e.state,
            PhoneEvent::Unlinked(e) => &e.state,
            PhoneEvent::OptOut(e) => &e.state,
        }
    }
}
