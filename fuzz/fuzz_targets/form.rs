//! The webhook body as it arrives: form-decoded, then turned into events.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smsflow::ingress::form::{message_received, status_changed};

fuzz_target!(|body: &[u8]| {
    // The query of a status callback and the body share one input, split at the first 0xff.
    let (query, form) = match body.iter().position(|&b| b == 0xff) {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (&[][..], body),
    };
    let pairs: Vec<(String, String)> = form_urlencoded::parse(form).into_owned().collect();
    let query: Vec<(String, String)> = form_urlencoded::parse(query).into_owned().collect();
    if let Ok(ev) = message_received(&pairs, "e".into(), 0, None) {
        assert!(ev.media.len() <= 10);
    }
    let _ = status_changed(&pairs, &query, "e".into(), 0);
});
