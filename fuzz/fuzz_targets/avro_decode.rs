//! Avro decoding of arbitrary bytes as every event type. The first byte chooses whether the
//! input gets a valid header (so the body decoder sees it) and of which type.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smsflow::events::*;

fn decode_all(bytes: &[u8]) {
    let _ = decode::<MessageReceived>(bytes);
    let _ = decode::<SenderRejected>(bytes);
    let _ = decode::<MediaStored>(bytes);
    let _ = decode::<MediaRejected>(bytes);
    let _ = decode::<TranscriptReady>(bytes);
    let _ = decode::<TranscriptFailed>(bytes);
    let _ = decode::<ItemsProposed>(bytes);
    let _ = decode::<PartEnriched>(bytes);
    let _ = decode::<ItemReviewed>(bytes);
    let _ = decode::<PhoneLinked>(bytes);
    let _ = decode::<PhoneVerified>(bytes);
    let _ = decode::<PhoneUnlinked>(bytes);
    let _ = decode::<OptOutChanged>(bytes);
    let _ = decode::<OutboundRequested>(bytes);
    let _ = decode::<OutboundStatusChanged>(bytes);
    let _ = decode::<DeadLetter>(bytes);
}

/// The 10-byte single-object header of each registered schema.
fn headers() -> &'static [Vec<u8>] {
    static H: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    H.get_or_init(|| {
        let names = [
            "MessageReceived",
            "SenderRejected",
            "MediaStored",
            "MediaRejected",
            "TranscriptReady",
            "TranscriptFailed",
            "ItemsProposed",
            "PartEnriched",
            "ItemReviewed",
            "PhoneLinked",
            "PhoneVerified",
            "PhoneUnlinked",
            "OptOutChanged",
            "OutboundRequested",
            "OutboundStatusChanged",
            "DeadLetter",
        ];
        let reg = registry();
        names
            .iter()
            .filter_map(|n| reg.by_name(&format!("smsflow.events.{n}")))
            .map(|(fp, _)| {
                let mut h = vec![0xC3, 0x01];
                h.extend_from_slice(fp);
                h
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    decode_all(data);
    let hs = headers();
    if !hs.is_empty() {
        let mut framed = hs[usize::from(selector) % hs.len()].clone();
        framed.extend_from_slice(rest);
        decode_all(&framed);
    }
});
