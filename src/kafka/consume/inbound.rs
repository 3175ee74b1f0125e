//! Typed input: a consumer names the event (or the union of events) it reads, and the runner
//! decodes every record into it, so no stage or projection decodes bytes itself.
//!
//! A record is routed by its `event-type` header. A record without one (written before the
//! header existed) is decoded by the schema its bytes name; bytes of another event are not for
//! this consumer.

use crate::events::{decode, CodecError, Event, PhoneEvent};

/// An event type a consumer reads: one [`Event`], or a union made with [`inbound_union!`].
pub trait Inbound: Sized + Send + Sync + 'static {
    /// Decode a record. `Ok(None)`: the record holds an event this consumer does not read.
    /// `Err`: the record claims to be one it reads but its bytes are not (poison).
    fn decode(event_type: Option<&str>, payload: &[u8]) -> Result<Option<Self>, CodecError>;
}

/// Is `event_type` (a header value) the name of `E`?
pub fn names<E: Event>(event_type: &str) -> bool {
    event_type == E::NAME || event_type == E::FULL_NAME
}

/// Decode bytes without a header as `E`; `Ok(None)` when they hold another event.
pub fn decode_unlabelled<E: Event>(payload: &[u8]) -> Result<Option<E>, CodecError> {
    match decode::<E>(payload) {
        Ok(e) => Ok(Some(e)),
        Err(CodecError::WrongType { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

impl<E: Event + Send + Sync + 'static> Inbound for E {
    fn decode(event_type: Option<&str>, payload: &[u8]) -> Result<Option<E>, CodecError> {
        match event_type {
            Some(t) if !names::<E>(t) => Ok(None),
            Some(_) => decode::<E>(payload).map(Some),
            None => decode_unlabelled::<E>(payload),
        }
    }
}

impl Inbound for PhoneEvent {
    fn decode(event_type: Option<&str>, payload: &[u8]) -> Result<Option<PhoneEvent>, CodecError> {
        match event_type {
            Some(t) => PhoneEvent::decode(t, payload).transpose(),
            None => Ok(None),
        }
    }
}

/// An enum of the events one consumer reads, with its [`Inbound`] decoding:
///
/// ```ignore
/// inbound_union! {
///     /// What the items projection reads.
///     pub enum ItemsEvent { Proposed(ItemsProposed), Reviewed(ItemReviewed) }
/// }
/// ```
#[macro_export]
macro_rules! inbound_union {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($variant:ident($ty:ty)),+ $(,)? }) => {
        $(#[$meta])*
        // One value per record in flight, moved once from decoding into the handler: boxing
        // the larger events would cost an allocation per record and save nothing that lasts.
        #[allow(clippy::large_enum_variant)]
        $vis enum $name { $($variant($ty)),+ }

        impl $crate::kafka::consume::Inbound for $name {
            fn decode(
                event_type: Option<&str>,
                payload: &[u8],
            ) -> Result<Option<Self>, $crate::events::CodecError> {
                use $crate::kafka::consume::inbound::{decode_unlabelled, names};
                match event_type {
                    Some(t) => {
                        $(
                            if names::<$ty>(t) {
                                return $crate::events::decode::<$ty>(payload)
                                    .map(|e| Some($name::$variant(e)));
                            }
                        )+
                        Ok(None)
                    }
                    None => {
                        $(
                            if let Some(e) = decode_unlabelled::<$ty>(payload)? {
                                return Ok(Some($name::$variant(e)));
                            }
                        )+
                        Ok(None)
                    }
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{encode, ItemReviewed, MessageReceived, SenderRejected};

    crate::inbound_union! {
        #[derive(Debug)]
        enum Either { Message(MessageReceived), Review(ItemReviewed) }
    }

    fn review() -> ItemReviewed {
        ItemReviewed {
            event_id: "e".into(),
            item_id: "i".into(),
            user_id: "u".into(),
            decision: "approve".into(),
            reviewed_at: 1,
            message_sid: "SM1".into(),
            item_created_at: 1,
            kind: "email".into(),
            value: "a@b.c".into(),
            normalized: "a@b.c".into(),
        }
    }

    #[test]
    fn a_single_event_is_read_by_header_or_by_its_bytes() {
        let bytes = encode(&review()).unwrap();
        let got = <ItemReviewed as Inbound>::decode(Some("ItemReviewed"), &bytes).unwrap();
        assert_eq!(got.unwrap().item_id, "i");
        assert!(<ItemReviewed as Inbound>::decode(Some("Other"), &bytes)
            .unwrap()
            .is_none());
        assert!(<ItemReviewed as Inbound>::decode(None, &bytes)
            .unwrap()
            .is_some());
        assert!(
            <MessageReceived as Inbound>::decode(None, &bytes)
                .unwrap()
                .is_none(),
            "another event's bytes are not for this consumer"
        );
        assert!(
            <ItemReviewed as Inbound>::decode(Some("ItemReviewed"), b"garbage").is_err(),
            "bytes that are not the event the header names are poison"
        );
        assert!(
            <SenderRejected as Inbound>::decode(Some("ItemReviewed"), &bytes)
                .unwrap()
                .is_none(),
            "an event type can never be read as another's"
        );
    }

    #[test]
    fn a_union_routes_by_header_and_falls_back_to_the_bytes() {
        let bytes = encode(&review()).unwrap();
        assert!(matches!(
            Either::decode(Some("ItemReviewed"), &bytes),
            Ok(Some(Either::Review(r))) if r.item_id == "i"
        ));
        assert!(matches!(
            Either::decode(None, &bytes),
            Ok(Some(Either::Review(r))) if r.item_id == "i"
        ));
        let message = crate::ingress::form::message_received(
            &[
                ("MessageSid".to_owned(), "SM1".to_owned()),
                ("AccountSid".to_owned(), "AC1".to_owned()),
                ("From".to_owned(), "+15105550142".to_owned()),
                ("To".to_owned(), "+14155550100".to_owned()),
                ("Body".to_owned(), "hi".to_owned()),
            ],
            "e".into(),
            1,
            None,
        )
        .unwrap();
        assert!(matches!(
            Either::decode(None, &encode(&message).unwrap()),
            Ok(Some(Either::Message(m))) if m.message_sid == "SM1"
        ));
        assert!(matches!(
            Either::decode(Some("PartEnriched"), &bytes),
            Ok(None)
        ));
        assert!(Either::decode(Some("MessageReceived"), &bytes).is_err());
        assert!(Either::decode(None, b"\x00garbage").is_err());
    }
}
