//! The confirm stage: once every part of a message is enriched, text its sender how many items
//! wait for review ("3 new items to review"), as one `OutboundRequested` on `sms.outbound.v1`
//! that notify sends (and suppresses for opted-out numbers). Off unless `confirm.enabled`.
//!
//! It reads `MessageReceived` (sms.messages.v1: how many parts, who sent it, to which of our
//! numbers) and `PartEnriched` (sms.enrichments.v1: each part's item count). The two topics
//! are not ordered with each other, so each input is folded into a per-message Redis hash
//! whatever the order, and the input whose write completes the hash emits the request.
//!
//! Why it sends once: the hash's fields are idempotent (a redelivered event rewrites the same
//! value); the request is emitted in the runner's Kafka transaction with the input's offset;
//! only the record that claimed the message (by its topic, partition and offset) emits, again
//! on its own retry or replay, so an aborted transaction loses nothing, while redelivered
//! copies and the message's other events do not; and the request's `event_id` is derived
//! from the message SID, so a replay that emits it again is sent once by notify's send
//! ledger. Inputs older
//! than `confirm.max_age` are skipped: a replay of old history neither fills Redis nor texts
//! anyone about old messages.

pub mod state;
pub mod tally;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{field, instrument, Span};

use crate::events::{MessageReceived, PartEnriched};
use crate::stages::{Input, Output, Stage, StageError};
use crate::topics;
use crate::validation::InvalidSetting;
use state::MessageState;
use tally::Tally;

/// `[confirm]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConfirmSettings {
    /// Send the reply at all (the `confirm` role does nothing while this is false).
    pub enabled: bool,
    /// Reply for several items; `{count}` is replaced by their number.
    pub template: String,
    /// Reply for exactly one item.
    pub template_one: String,
    /// Inputs about messages received longer ago than this are ignored; also how long a
    /// message's progress is kept in Redis after its last event.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
}

impl Default for ConfirmSettings {
    fn default() -> Self {
        ConfirmSettings {
            enabled: false,
            template: "{count} new items to review".into(),
            template_one: "{count} new item to review".into(),
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

impl ConfirmSettings {
    /// Check values; the error names the key.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if !self.template.contains("{count}") {
            return Err(InvalidSetting::new(
                "confirm.template",
                "must contain {count}, e.g. \"{count} new items to review\"",
            ));
        }
        if self.template_one.trim().is_empty() {
            return Err(InvalidSetting::new(
                "confirm.template_one",
                "must not be empty, e.g. \"1 new item to review\"",
            ));
        }
        if self.max_age < Duration::from_secs(60) {
            return Err(InvalidSetting::new(
                "confirm.max_age",
                "must be at least 1m (enrichment of voice notes takes a while)",
            ));
        }
        Ok(())
    }
}

/// Texts each sender the number of new items once their message is fully enriched.
pub struct ConfirmStage {
    state: MessageState,
    settings: ConfirmSettings,
}

/// The part of an input that concerns one message.
struct Update {
    message_sid: String,
    received_at: i64,
    claimant: String,
    fields: Vec<(String, String)>,
}

impl ConfirmStage {
    /// Build on the shared Redis pool; `prefix` is the Kafka topic prefix (isolates keys).
    pub fn new(
        settings: &ConfirmSettings,
        redis: deadpool_redis::Pool,
        prefix: &str,
    ) -> Result<ConfirmStage, InvalidSetting> {
        settings.validate()?;
        Ok(ConfirmStage {
            state: MessageState::new(redis, prefix, settings.max_age),
            settings: settings.clone(),
        })
    }

    fn update(input: &Input<ConfirmInput>) -> Update {
        // A retry or replay of this record reads the same position; a copy of the same event
        // appended again (a redelivery) has another one.
        let claimant = format!("{}/{}/{}", input.topic, input.partition, input.offset);
        match &input.event {
            ConfirmInput::Message(m) => Update {
                fields: tally::message_fields(m),
                message_sid: m.message_sid.clone(),
                received_at: m.received_at,
                claimant,
            },
            ConfirmInput::Part(p) => Update {
                fields: tally::part_fields(p),
                message_sid: p.message_sid.clone(),
                received_at: p.received_at,
                claimant,
            },
        }
    }
}

crate::inbound_union! {
    /// What confirm counts: each message's parts, and each part's items. SenderRejected and
    /// ItemsProposed share the topics and never reach the stage.
    #[derive(Debug, Clone)]
    pub enum ConfirmInput {
        Message(MessageReceived),
        Part(PartEnriched),
    }
}

/// Was the message received more than `max_age` before `now` (both UTC microseconds)?
fn too_old(max_age: Duration, received_at: i64, now: i64) -> bool {
    let age = now.saturating_sub(received_at);
    age > i64::try_from(max_age.as_micros()).unwrap_or(i64::MAX)
}

impl Stage for ConfirmStage {
    const NAME: &'static str = "confirm";
    type Event = ConfirmInput;

    fn inputs(&self) -> Vec<&'static str> {
        vec![topics::MESSAGES, topics::ENRICHMENTS]
    }

    #[instrument(
        name = "confirm.handle",
        skip_all,
        fields(message_sid = field::Empty, outcome = field::Empty)
    )]
    async fn handle(&self, input: &Input<ConfirmInput>) -> Result<Vec<Output>, StageError> {
        let update = Self::update(input);
        let span = Span::current();
        span.record("message_sid", update.message_sid.as_str());
        let now = crate::clock::now_micros();
        if too_old(self.settings.max_age, update.received_at, now) {
            span.record("outcome", "too_old");
            return Ok(Vec::new());
        }
        let fields = self
            .state
            .record(&update.message_sid, &update.fields)
            .await
            .map_err(|e| StageError::Transient(e.to_string()))?;
        let ready = match tally::evaluate(&fields) {
            Err(e) => return Err(StageError::Permanent(e.to_string())),
            Ok(Tally::Waiting) => {
                span.record("outcome", "waiting");
                return Ok(Vec::new());
            }
            Ok(Tally::NoItems) => {
                span.record("outcome", "no_items");
                crate::metrics::confirm_outcome("no_items");
                return Ok(Vec::new());
            }
            Ok(Tally::Ready(ready)) => ready,
        };
        let mine = self
            .state
            .claim(&update.message_sid, &update.claimant)
            .await
            .map_err(|e| StageError::Transient(e.to_string()))?;
        if !mine {
            span.record("outcome", "already_requested");
            return Ok(Vec::new());
        }
        let body = tally::render(
            ready.count,
            &self.settings.template_one,
            &self.settings.template,
        );
        let request = tally::request(&update.message_sid, &ready, body, now);
        span.record("outcome", "requested");
        crate::metrics::confirm_outcome("requested");
        tracing::info!(
            items = ready.count,
            "message fully enriched; reply requested"
        );
        let key = request.partition_key().to_owned();
        Ok(vec![Output::new(topics::OUTBOUND, key, request)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(event_type: &str, payload: Vec<u8>) -> crate::kafka::consume::Record {
        crate::kafka::consume::Record {
            topic: "sms.enrichments.v1".into(),
            partition: 0,
            offset: 0,
            log_time_ms: 0,
            key: Some(b"u1".to_vec()),
            payload: Some(payload),
            event_type: Some(event_type.into()),
            headers: Vec::new(),
            trace: opentelemetry::Context::new(),
        }
    }

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_key() {
        assert_eq!(ConfirmSettings::default().validate(), Ok(()));
        let bad = |s: ConfirmSettings| s.validate().expect_err("must be refused").key;
        assert_eq!(
            bad(ConfirmSettings {
                template: "new items".into(),
                ..ConfirmSettings::default()
            }),
            "confirm.template"
        );
        assert_eq!(
            bad(ConfirmSettings {
                template_one: " ".into(),
                ..ConfirmSettings::default()
            }),
            "confirm.template_one"
        );
        assert_eq!(
            bad(ConfirmSettings {
                max_age: Duration::from_secs(1),
                ..ConfirmSettings::default()
            }),
            "confirm.max_age"
        );
    }

    #[test]
    fn inputs_are_read_by_event_type_and_garbage_is_poison() {
        use crate::events::encode;
        use crate::kafka::consume::Inbound;
        let part = PartEnriched {
            event_id: "pe-1".into(),
            message_sid: "SM1".into(),
            user_id: "u1".into(),
            part: "media:0".into(),
            received_at: 5,
            enriched_at: 6,
            item_count: 2,
            outcome: "extracted".into(),
            text: None,
        };
        let r = record("PartEnriched", encode(&part).unwrap());
        let event = ConfirmInput::decode(r.event_type.as_deref(), r.payload.as_deref().unwrap())
            .unwrap()
            .expect("a part is an input");
        let u = ConfirmStage::update(&Input {
            event,
            topic: r.topic.clone(),
            partition: 0,
            offset: 0,
            key: None,
        });
        assert_eq!(u.message_sid, "SM1");
        assert_eq!(u.claimant, "sms.enrichments.v1/0/0");
        assert_eq!(u.received_at, 5);
        assert_eq!(u.fields, vec![("p:media:0".to_owned(), "2".to_owned())]);

        assert!(ConfirmInput::decode(Some("ItemsProposed"), &[1, 2])
            .unwrap()
            .is_none());
        assert!(ConfirmInput::decode(Some("PartEnriched"), &[0xC3, 0x01, 9]).is_err());
    }

    #[test]
    fn inputs_older_than_max_age_are_skipped() {
        let max_age = Duration::from_secs(3600);
        let hour = 3_600_000_000;
        assert!(!too_old(max_age, 10 * hour, 11 * hour));
        assert!(too_old(max_age, 10 * hour, 11 * hour + 1));
        assert!(
            !too_old(max_age, 11 * hour, 10 * hour),
            "clock skew is not age"
        );
    }
}
