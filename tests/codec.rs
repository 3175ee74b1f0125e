//! The Avro single-object codec: round trips, schema evolution, and bad bytes.

use std::collections::BTreeMap;

use apache_avro::Schema;
use smsflow::events::{
    decode, decode_with_reader, encode, fingerprint, legacy_fingerprint, registry, CodecError, Geo,
    MediaRef, MessageReceived, SchemaRegistry,
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
fn records_written_with_the_old_wrong_fingerprint_stay_readable() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schemas/MessageReceived.avsc"
    ))
    .unwrap();
    let schema = Schema::parse_str(&text).unwrap();
    let mut bytes = encode(&sample()).unwrap();
    // What smsflow wrote before the fix (quoted in issue 12): c3 01 95 37 59 4d 30 b3 92 8f.
    bytes[2..10].copy_from_slice(&legacy_fingerprint(&schema));
    assert_eq!(hex::encode(&bytes[..10]), "c3019537594d30b3928f");
    assert_eq!(decode::<MessageReceived>(&bytes).unwrap(), sample());
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
    bytes[0] = 0x7F;
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
fn a_confluent_frame_with_an_id_never_learned_is_a_typed_error() {
    let body = &encode(&sample()).unwrap()[10..];
    let mut bytes = vec![0x00, 0x7F, 0xFF, 0xFF, 0xFE];
    bytes.extend_from_slice(body);
    assert!(matches!(
        decode::<MessageReceived>(&bytes),
        Err(CodecError::UnknownSchemaId { id: 0x7FFF_FFFE })
    ));
    assert!(matches!(
        decode::<MessageReceived>(&[0x00, 0x01]),
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

#[test]
fn every_event_type_round_trips() {
    use smsflow::events::{
        DeadLetter, DeadLetterHeader, MediaRejected, MediaStored, TranscriptFailed, TranscriptReady,
    };
    let stored = MediaStored {
        event_id: "e".into(),
        stored_at: 2,
        message_sid: "MM1".into(),
        media_index: 0,
        sender: "+15105550142".into(),
        user_id: Some("u1".into()),
        received_at: 1,
        content_type: "audio/ogg".into(),
        size_bytes: 10,
        sha256: "ab".into(),
        object_key: "media/MM1/0".into(),
        source_url: "https://api.twilio.com/x".into(),
    };
    assert_eq!(
        decode::<MediaStored>(&encode(&stored).unwrap()).unwrap(),
        stored
    );
    let rejected = MediaRejected {
        event_id: "e".into(),
        rejected_at: 2,
        message_sid: "MM1".into(),
        media_index: 1,
        sender: "+1".into(),
        user_id: None,
        received_at: 1,
        declared_content_type: "image/png".into(),
        reason: "too_large".into(),
        detail: "over 5 MiB".into(),
    };
    assert_eq!(
        decode::<MediaRejected>(&encode(&rejected).unwrap()).unwrap(),
        rejected
    );
    let ready = TranscriptReady {
        event_id: "e".into(),
        transcribed_at: 3,
        message_sid: "MM1".into(),
        media_index: 0,
        sender: "+1".into(),
        user_id: None,
        received_at: 1,
        provider: "local".into(),
        model: None,
        language: Some("en-US".into()),
        text: "go forward ten meters".into(),
        confidence: Some(0.9),
        audio_duration_ms: Some(1500),
        object_key: "media/MM1/0".into(),
    };
    assert_eq!(
        decode::<TranscriptReady>(&encode(&ready).unwrap()).unwrap(),
        ready
    );
    let failed = TranscriptFailed {
        event_id: "e".into(),
        failed_at: 3,
        message_sid: "MM1".into(),
        media_index: 0,
        sender: "+1".into(),
        user_id: None,
        received_at: 1,
        provider: "openai".into(),
        reason: "too_long".into(),
        detail: "over 10 minutes".into(),
    };
    assert_eq!(
        decode::<TranscriptFailed>(&encode(&failed).unwrap()).unwrap(),
        failed
    );
    let letter = DeadLetter {
        event_id: "e".into(),
        failed_at: 1,
        stage: "media".into(),
        error_kind: "poison".into(),
        error: "x".into(),
        attempts: 1,
        source_topic: "t".into(),
        source_partition: 0,
        source_offset: 5,
        original_key: None,
        original_value: Some(vec![0, 1]),
        original_headers: vec![DeadLetterHeader {
            key: "k".into(),
            value: None,
        }],
    };
    assert_eq!(
        decode::<DeadLetter>(&encode(&letter).unwrap()).unwrap(),
        letter
    );
    // A MediaStored body is not a MediaRejected, even on the same topic.
    assert!(matches!(
        decode::<MediaRejected>(&encode(&stored).unwrap()),
        Err(CodecError::WrongType { .. })
    ));
}
