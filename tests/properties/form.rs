//! The webhook form parser (`ingress::form`): any parameters give an event or a typed error,
//! and a well-formed inbound SMS keeps every field it was sent.

use proptest::prelude::*;
use smsflow::ingress::form::{message_received, status_changed, FormError};

/// Parameter names the parser treats specially, mixed with arbitrary ones.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "MessageSid",
            "AccountSid",
            "From",
            "To",
            "Body",
            "NumMedia",
            "NumSegments",
            "MediaUrl0",
            "MediaUrl1",
            "MediaUrl10",
            "MediaContentType0",
            "MediaContentType1",
            "MediaUrl",
            "MediaUrlx",
            "FromCity",
            "SmsStatus",
            "MessageStatus",
            "ErrorCode",
            "MessagingServiceSid",
            "OptOutType",
        ])
        .prop_map(str::to_owned),
        any::<String>(),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            "0",
            "1",
            "2",
            "10",
            "11",
            "-1",
            " 3 ",
            "99999999999999999999",
            "x",
            "https://api.twilio.com/m/0",
            "http://[::1]/",
            "javascript:alert(1)",
            "image/jpeg",
        ])
        .prop_map(str::to_owned),
        any::<String>(),
    ]
}

fn pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((name(), value()), 0..24)
}

/// A valid inbound SMS with `n` attachments and arbitrary text fields.
fn valid_sms() -> impl Strategy<Value = (Vec<(String, String)>, String, usize)> {
    (
        any::<String>(),
        0usize..=10,
        "[A-Za-z]{1,12}",
        any::<String>(),
    )
        .prop_map(|(body, n, extra_name, extra_value)| {
            let mut p: Vec<(String, String)> = vec![
                (
                    "MessageSid".into(),
                    "SM0123456789abcdef0123456789abcdef".into(),
                ),
                (
                    "AccountSid".into(),
                    "AC0123456789abcdef0123456789abcdef".into(),
                ),
                ("From".into(), "+15105550142".into()),
                ("To".into(), "+14155550100".into()),
                ("Body".into(), body.clone()),
                ("NumMedia".into(), n.to_string()),
            ];
            for i in 0..n {
                p.push((
                    format!("MediaUrl{i}"),
                    format!("https://api.twilio.com/m/{i}"),
                ));
                p.push((format!("MediaContentType{i}"), "image/jpeg".into()));
            }
            // An unknown parameter is kept in `extra` (prefixed so it never names a known one).
            p.push((format!("Zz{extra_name}"), extra_value));
            (p, body, n)
        })
}

proptest! {
    #![proptest_config(crate::cases(512))]

    #[test]
    fn any_parameters_give_an_event_or_a_typed_error(p in pairs()) {
        match message_received(&p, "e".into(), 0, None) {
            Ok(ev) => {
                prop_assert!(ev.media.len() <= 10);
                prop_assert!(!ev.message_sid.is_empty() && !ev.from.is_empty());
            }
            Err(
                FormError::Missing(_)
                | FormError::Repeated(_)
                | FormError::NotANumber { .. }
                | FormError::MediaMismatch { .. },
            ) => {}
        }
        let _ = status_changed(&p, &p, "e".into(), 0);
    }

    #[test]
    fn a_well_formed_sms_keeps_its_body_media_and_unknown_parameters((p, body, n) in valid_sms()) {
        let ev = message_received(&p, "e".into(), 7, Some("tok".into())).expect("valid");
        prop_assert_eq!(&ev.body, &body);
        prop_assert_eq!(ev.media.len(), n);
        prop_assert_eq!(ev.parts_expected() as usize, n + 1);
        let (k, v) = p.last().unwrap();
        prop_assert_eq!(ev.extra.get(k), Some(&vec![v.clone()]));
        // Parameter order on the wire does not matter.
        let mut reversed = p.clone();
        reversed.reverse();
        let again = message_received(&reversed, "e".into(), 7, Some("tok".into())).expect("valid");
        prop_assert_eq!(again, ev);
    }
}
