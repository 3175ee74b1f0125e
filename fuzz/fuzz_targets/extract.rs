//! The enrichment extractors on arbitrary text: never panic, spans point at their values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smsflow::stages::enrich::{extract, span_text, Context, Source};

fuzz_target!(
    // libphonenumber's metadata (hundreds of regexes) is compiled on first use: 10+ s under
    // ASan, which libFuzzer would report as a timeout of whichever input came first.
    init: {
        let _ = phonenumber::parse(None, "+14155550100");
    },
    |input: (u8, i64, String)| {
    let (sel, micros, text) = input;
    use phonenumber::country::Id;
    let region = [None, Some(Id::US), Some(Id::GB), Some(Id::DE)][usize::from(sel & 3)];
    let source = [Source::Body, Source::Transcript, Source::Vcard][usize::from(sel >> 2) % 3];
    let ctx = Context::new(region, micros, chrono_tz::America::Los_Angeles);
    for item in extract(&text, source, &ctx) {
        assert_eq!(
            span_text(&text, item.span),
            Some(item.value.as_str()),
            "{item:?}"
        );
    }
}
);
