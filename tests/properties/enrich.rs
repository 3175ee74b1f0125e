//! The extractors (`stages::enrich::extract`) and the vCard parser never panic on arbitrary
//! text or bytes, every item's span lies inside its text, and extraction is deterministic.

use proptest::prelude::*;
use smsflow::stages::enrich::{extract, extract_vcard, span_text, Context, Source};

fn ctx(region: u8, micros: i64) -> Context {
    use phonenumber::country::Id;
    let region = match region % 4 {
        0 => None,
        1 => Some(Id::US),
        2 => Some(Id::GB),
        _ => Some(Id::DE),
    };
    Context::new(region, micros, chrono_tz::America::Los_Angeles)
}

/// Text shaped like messages: words, numbers, emails, URLs, tags and dates mixed with noise.
fn messagey() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        prop::sample::select(vec![
            "call",
            "Dana",
            "Reyes",
            "at",
            "dot",
            "com",
            "tomorrow",
            "3pm",
            "Tue",
            "next",
            "Friday",
            "noon",
            "510-555-0142",
            "+44 20 7946 0958",
            "(415) 555-0100",
            "#tag",
            "#",
            "@",
            "dana@acme.io",
            "https://acme.io/x?y=1",
            "www.example.com",
            "12/5",
            "2026-13-45",
            "31/02",
            "600 Guerrero St",
            "St,",
            "Ave",
            "San",
            "Francisco",
            "\u{200b}",
            "é",
            "日本",
            "🙂",
            "\r\n",
            "  ",
            "0",
            "99999999999999999999",
            "at 25:99",
        ])
        .prop_map(str::to_owned),
        any::<String>(),
    ];
    prop::collection::vec(token, 0..24).prop_map(|t| t.join(" "))
}

fn vcardy() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        prop::sample::select(vec![
            "BEGIN:VCARD",
            "END:VCARD",
            "VERSION:3.0",
            "VERSION:4.0",
            "N:Reyes;Dana;;;",
            "FN:Dana Reyes",
            "ORG:Acme;Sales",
            "TEL;type=CELL:(510) 555-0142",
            "EMAIL:dana@acme.io",
            "ADR:;;1200 Broadway;Oakland;CA;94612;USA",
            "URL:acme.io",
            "item1.TEL:+1 415",
            " folded",
            "\tfolded",
            "NOTE:a\\,b\\nc",
            "X-A;B=C:",
            ":",
            ";",
            "TEL;VALUE=uri:tel:+1-510-555-0142",
            "PHOTO;ENCODING=b:AAAA",
        ])
        .prop_map(str::to_owned),
        any::<String>(),
    ];
    (
        prop::collection::vec(line, 0..20),
        prop::sample::select(vec!["\r\n", "\n", "\r"]),
        prop::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(|(lines, eol, junk)| {
            let mut b = lines.join(eol).into_bytes();
            b.extend(junk);
            b
        })
}

proptest! {
    #![proptest_config(crate::cases(192))]

    #[test]
    fn extraction_never_panics_and_spans_point_at_their_values(
        text in messagey(),
        region in any::<u8>(),
        micros in prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0i64), any::<i64>(), 1_500_000_000_000_000i64..2_500_000_000_000_000],
        source in prop::sample::select(vec![Source::Body, Source::Transcript, Source::Vcard]),
    ) {
        let c = ctx(region, micros);
        let items = extract(&text, source, &c);
        for i in &items {
            let at = span_text(&text, i.span);
            prop_assert!(at.is_some(), "span {:?} outside {:?}", i.span, text);
            prop_assert_eq!(at.unwrap(), i.value.as_str(), "span of {:?}", i);
            prop_assert!((0.0..=1.0).contains(&i.confidence));
            prop_assert!(!i.normalized.is_empty());
        }
        prop_assert_eq!(extract(&text, source, &c), items, "deterministic");
    }

    #[test]
    fn the_vcard_parser_never_panics_and_keeps_spans_inside_the_card(
        bytes in prop_oneof![vcardy(), prop::collection::vec(any::<u8>(), 0..512)],
        region in any::<u8>(),
    ) {
        let c = ctx(region, 1_795_888_800_000_000);
        if let Ok(items) = extract_vcard(&bytes, &c) {
            let text = String::from_utf8_lossy(&bytes);
            let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
            for i in &items {
                prop_assert!(span_text(text, i.span).is_some(), "span {:?} of {:?}", i.span, i);
                prop_assert_eq!(i.source, Source::Vcard);
            }
        }
    }
}
