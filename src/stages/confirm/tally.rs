//! What the confirm stage knows about one message, as the fields of its Redis hash, and the
//! pure decisions taken on them: is every part enriched, how many items, what to text.
//!
//! Fields: `expected` (parts), `to` (the sender, who gets the reply), `from` (our number the
//! message came in on), `user` (the owner, when known) from `MessageReceived`; `p:{part}` (that
//! part's item count) from each `PartEnriched`; `emitter` (the position of the record that
//! emitted the reply).
//! Every write sets a field to a value fixed by its event, so a redelivered event rewrites the
//! same value and nothing is counted twice.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::events::{MessageReceived, OutboundRequested, PartEnriched};

/// Purpose of the reply, as notify and the outbound read model see it.
pub const PURPOSE: &str = "items_ready";

const EXPECTED: &str = "expected";
const TO: &str = "to";
const FROM: &str = "from";
const USER: &str = "user";
const PART_PREFIX: &str = "p:";
/// The field naming the input that emitted the reply.
pub const EMITTER: &str = "emitter";

/// The hash fields a `MessageReceived` sets.
pub fn message_fields(m: &MessageReceived) -> Vec<(String, String)> {
    let mut fields = vec![
        (EXPECTED.to_owned(), m.parts_expected().to_string()),
        (TO.to_owned(), m.from.clone()),
        (FROM.to_owned(), m.to.clone()),
    ];
    if let Some(user) = m.user_id.as_deref().filter(|u| !u.is_empty()) {
        fields.push((USER.to_owned(), user.to_owned()));
    }
    fields
}

/// The hash field a `PartEnriched` sets.
pub fn part_fields(p: &PartEnriched) -> Vec<(String, String)> {
    vec![(
        format!("{PART_PREFIX}{}", p.part),
        p.item_count.max(0).to_string(),
    )]
}

/// Where a message stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tally {
    /// The message or some of its parts have not been seen yet.
    Waiting,
    /// Every part is enriched and none had an item: no reply.
    NoItems,
    /// Every part is enriched: reply to `to` about `count` items.
    Ready(Ready),
}

/// A message ready for its reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    pub count: u64,
    pub to: String,
    pub from: Option<String>,
    pub user_id: Option<String>,
}

/// A hash field holds something this stage never writes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("confirm state field `{field}` holds {value:?}, not a count; delete the key to reset it")]
pub struct BadField {
    pub field: String,
    pub value: String,
}

fn count(field: &str, value: &str) -> Result<u64, BadField> {
    value.parse().map_err(|_| BadField {
        field: field.to_owned(),
        value: value.to_owned(),
    })
}

/// Decide from the hash. "Done" is as in `message_status`: as many distinct parts enriched
/// as the message has (the body plus each attachment).
pub fn evaluate(fields: &HashMap<String, String>) -> Result<Tally, BadField> {
    let (Some(expected), Some(to)) = (fields.get(EXPECTED), fields.get(TO)) else {
        return Ok(Tally::Waiting);
    };
    let expected = count(EXPECTED, expected)?;
    let mut parts = 0u64;
    let mut items = 0u64;
    for (field, value) in fields {
        if field.starts_with(PART_PREFIX) {
            parts += 1;
            items = items.saturating_add(count(field, value)?);
        }
    }
    if parts < expected {
        return Ok(Tally::Waiting);
    }
    if items == 0 {
        return Ok(Tally::NoItems);
    }
    let non_empty = |k: &str| fields.get(k).filter(|v| !v.is_empty()).cloned();
    Ok(Tally::Ready(Ready {
        count: items,
        to: to.clone(),
        from: non_empty(FROM),
        user_id: non_empty(USER),
    }))
}

/// The reply text: `one` for a single item, `many` otherwise, with `{count}` filled in.
pub fn render(count: u64, one: &str, many: &str) -> String {
    let template = if count == 1 { one } else { many };
    template.replace("{count}", &count.to_string())
}

/// The reply's event id: fixed by the message, so however often it is emitted, notify's send
/// ledger sends it once.
pub fn request_event_id(message_sid: &str) -> String {
    let digest = Sha256::digest(format!("smsflow/confirm/{PURPOSE}/{message_sid}"));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// The `OutboundRequested` for a ready message.
pub fn request(message_sid: &str, ready: &Ready, body: String, now: i64) -> OutboundRequested {
    OutboundRequested {
        event_id: request_event_id(message_sid),
        requested_at: now,
        user_id: ready.user_id.clone(),
        to: ready.to.clone(),
        from: ready.from.clone(),
        body,
        purpose: PURPOSE.to_owned(),
        message_sid: Some(message_sid.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::MediaRef;

    fn message(media: usize, user: Option<&str>) -> MessageReceived {
        MessageReceived {
            event_id: "ev-1".into(),
            received_at: 1,
            message_sid: "SM1".into(),
            account_sid: "AC1".into(),
            messaging_service_sid: None,
            from: "+15105550142".into(),
            to: "+14155550100".into(),
            body: "hi".into(),
            num_segments: 1,
            media: (0..media)
                .map(|i| MediaRef {
                    url: format!("https://api.twilio.com/m/{i}"),
                    content_type: "image/jpeg".into(),
                })
                .collect(),
            geo: None,
            sms_status: None,
            api_version: None,
            idempotency_token: None,
            user_id: user.map(str::to_owned),
            extra: Default::default(),
        }
    }

    fn part(name: &str, items: i32) -> PartEnriched {
        PartEnriched {
            event_id: format!("pe-{name}"),
            message_sid: "SM1".into(),
            user_id: "u1".into(),
            part: name.into(),
            received_at: 1,
            enriched_at: 2,
            item_count: items,
            outcome: "extracted".into(),
            text: None,
        }
    }

    /// Apply events in the given order, as HSET would.
    fn hash(writes: &[Vec<(String, String)>]) -> HashMap<String, String> {
        writes.iter().flatten().cloned().collect()
    }

    #[test]
    fn ready_only_once_every_part_is_in_whatever_the_order() {
        let m = message_fields(&message(2, Some("u1")));
        let (b, m0, m1) = (
            part_fields(&part("body", 2)),
            part_fields(&part("media:0", 1)),
            part_fields(&part("media:1", 0)),
        );
        assert_eq!(
            evaluate(&hash(&[b.clone(), m0.clone()])),
            Ok(Tally::Waiting)
        );
        assert_eq!(
            evaluate(&hash(&[b.clone(), m0.clone(), m1.clone()])),
            Ok(Tally::Waiting),
            "parts without their message: the expected count and the recipient are unknown"
        );
        assert_eq!(
            evaluate(&hash(&[m.clone(), b.clone(), m1.clone()])),
            Ok(Tally::Waiting)
        );
        let ready = Tally::Ready(Ready {
            count: 3,
            to: "+15105550142".into(),
            from: Some("+14155550100".into()),
            user_id: Some("u1".into()),
        });
        assert_eq!(
            evaluate(&hash(&[b.clone(), m1.clone(), m0.clone(), m.clone()])),
            Ok(ready.clone())
        );
        // A redelivered part rewrites its own field: still 3, not 5.
        assert_eq!(
            evaluate(&hash(&[m.clone(), b.clone(), m0, b, m1, m])),
            Ok(ready)
        );
    }

    #[test]
    fn no_items_means_no_reply_and_no_user_means_none_in_the_request() {
        let m = message_fields(&message(0, None));
        let b = part_fields(&part("body", 0));
        assert_eq!(evaluate(&hash(&[m.clone(), b])), Ok(Tally::NoItems));
        let b = part_fields(&part("body", 1));
        match evaluate(&hash(&[m, b])) {
            Ok(Tally::Ready(r)) => {
                assert_eq!(r.count, 1);
                assert_eq!(r.user_id, None);
                let req = request("SM1", &r, render(r.count, "one", "many"), 7);
                assert_eq!(req.partition_key(), "+15105550142");
                assert_eq!(req.body, "one");
                assert_eq!(req.purpose, PURPOSE);
                assert_eq!(req.message_sid.as_deref(), Some("SM1"));
            }
            other => panic!("expected a ready message, got {other:?}"),
        }
    }

    #[test]
    fn a_corrupt_count_is_an_error_naming_the_field() {
        let mut h = hash(&[message_fields(&message(0, None))]);
        h.insert("p:body".into(), "many".into());
        let err = evaluate(&h).expect_err("garbage is not a count");
        assert_eq!(err.field, "p:body");
    }

    #[test]
    fn singular_and_plural() {
        let (one, many) = ("{count} new item to review", "{count} new items to review");
        assert_eq!(render(1, one, many), "1 new item to review");
        assert_eq!(render(3, one, many), "3 new items to review");
        assert_eq!(render(12, one, many), "12 new items to review");
    }

    #[test]
    fn the_request_id_is_fixed_by_the_message() {
        assert_eq!(request_event_id("SM1"), request_event_id("SM1"));
        assert_ne!(request_event_id("SM1"), request_event_id("SM2"));
        assert!(uuid::Uuid::parse_str(&request_event_id("SM1")).is_ok());
    }
}
