//! The vCard parser on arbitrary bytes: an error or items whose spans lie inside the card.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smsflow::stages::enrich::{extract_vcard, span_text, Context};

fuzz_target!(
    // libphonenumber's metadata (hundreds of regexes) is compiled on first use: 10+ s under
    // ASan, which libFuzzer would report as a timeout of whichever input came first.
    init: {
        let _ = phonenumber::parse(None, "+14155550100");
    },
    |data: &[u8]| {
    let ctx = Context::new(
        Some(phonenumber::country::Id::US),
        1_795_888_800_000_000,
        chrono_tz::America::Los_Angeles,
    );
    if let Ok(items) = extract_vcard(data, &ctx) {
        let text = std::str::from_utf8(data).expect("items only from UTF-8");
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for i in items {
            assert!(span_text(text, i.span).is_some(), "{i:?}");
        }
    }
}
);
