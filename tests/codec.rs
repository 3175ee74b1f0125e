//! The Avro single-object codec: round trips, schema evolution, and bad bytes.

use std::collections::BTreeMap;

use apache_avro::Schema;
use smsflow::events::{
    decode, decode_with_reader, encode, fingerprint, registry, CodecError, Geo, MediaRef,
    MessageReceived, SchemaRegistry,
};

fn sample() -> MessageReceived {
    MessageReceived {
        event_id: "0190f1c2-0000-7000-8000-000000000001".into(),
        received_at: 1_764_000_000_123_456,
        message_sid: "MM0123456789abcdef0123456789abcdef".into(),
        account_sid: "AC0123456789abcdef0123456789abcdef".into(),
        messaging_service_sid: Some("MG0123456789abcdef0123456789abcdef".into()),
        from: "+15105550142".into(),
        to: "+14155550100".into(),
        body: "met Dana Reyes at the Oakland expo 📇".into(),
        num_segments: 2,
        media: vec![MediaRef {
            url: "https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM/Media/ME1".into(),
            content_type: "audio/ogg".into(),
        }],
        geo: Some(Geo {
            from_city: Some("OAKLAND".into()),
            from_country: Some("US".into()),
            ..Geo::default()
        }),
        sms_status: Some("received".into()),
        api_version: Some("2010-04-01".into()),
        idempotency_token: None,
        user_id: None,
        extra: BTreeMap::from([("AddOns".to_string(), vec!["{}".to_string()])]),
    }
}

#[test]
fn message_received_round_trips_with_single_object_header() {
    let ev = sample();
    let bytes = encode(&ev).unwrap();
    assert_eq!(&bytes[..2], &[0xC3, 0x01]);
    let (fp, _) = registry()
        .by_name("smsflow.events.MessageReceived")
        .unwrap();
    assert_eq!(&bytes[2..10], fp);
    assert_eq!(decode::<MessageReceived>(&bytes).unwrap(), ev);
}

#[test]
fn header_fingerprint_is_that_of_the_checked_in_schema_file() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schemas/MessageReceived.avsc"
    ))
    .unwrap();
    let schema = Schema::parse_str(&text).unwrap();
    let bytes = encode(&sample()).unwrap();
    assert_eq!(&bytes[2..10], &fingerprint(&schema));
}

#[test]
fn newer_reader_with_a_defaulted_field_reads_old_bytes() {
    let old_bytes = encode(&sample()).unwrap();
    // v2 adds a field with a default, as a later issue might.
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schemas/MessageReceived.avsc"
    ))
    .unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!(
            {"name": "language", "type": "string", "default": "und"}
        ));
    let v2 = Schema::parse_str(&json.to_string()).unwrap();

    #[derive(Debug, serde::Deserialize, serde::Serialize)]
    struct MessageReceivedV2 {
        message_sid: String,
        body: String,
        language: String,
    }
    impl smsflow::events::Event for MessageReceivedV2 {
        const FULL_NAME: &'static str = "smsflow.events.MessageReceived";
        const NAME: &'static str = "MessageReceived";
    }
    let reg = SchemaRegistry::builtin();
    let read: MessageReceivedV2 = decode_with_reader(&reg, &v2, &old_bytes).unwrap();
    assert_eq!(read.language, "und");
    assert_eq!(read.body, sample().body);
    assert_eq!(read.message_sid, sample().message_sid);
}

#[test]
fn wrong_header_is_a_typed_error() {
    let mut bytes = encode(&sample()).unwrap();
    bytes[0] = 0x00;
    assert!(matches!(
        decode::<MessageReceived>(&bytes),
        Err(CodecError::BadHeader { .. })
    ));
    assert!(matches!(
        decode::<MessageReceived>(&[]),
        Err(CodecError::BadHeader { .. })
    ));
    assert!(matches!(
        decode::<MessageReceived>(b"{\"json\":true}"),
        Err(CodecError::BadHeader { .. })
    ));
}

#[test]
fn unknown_fingerprint_is_a_typed_error() {
    let mut bytes = encode(&sample()).unwrap();
    bytes[5] ^= 0xFF;
    assert!(matches!(
        decode::<MessageReceived>(&bytes),
        Err(CodecError::UnknownFingerprint { .. })
    ));
}

#[test]
fn truncated_or_garbage_body_is_an_error_not_a_panic() {
    let bytes = encode(&sample()).unwrap();
    for cut in [10, 11, 20, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            decode::<MessageReceived>(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    let mut garbage = bytes[..10].to_vec();
    garbage.extend(std::iter::repeat_n(0xFFu8, 64));
    assert!(decode::<MessageReceived>(&garbage).is_err());
}
