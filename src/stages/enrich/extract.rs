//! The one entry point: phone numbers, emails, URLs, #tags, dates and times, contact names
//! and places from typed text and from transcripts.

use std::sync::OnceLock;

use linkify::{LinkFinder, LinkKind};
use regex::Regex;

use super::context::Context;
use super::datetime;
pub use super::item::Source;
use super::item::{char_span, Item, ItemKind};
use super::names;
use super::phones;
use super::places;
use super::spoken;
use super::spoken_links;

/// Every item in `text`, with character spans. `ctx.region` (e.g. the sender's) resolves
/// national numbers; the received time and zone resolve relative dates. A `Source::Vcard`
/// text is read as a body: vCards go through `extract_vcard`.
pub fn extract(text: &str, source: Source, ctx: &Context) -> Vec<Item> {
    let region = ctx.region;
    let mut items = Vec::new();
    items.extend(phones::typed(text, region));
    items.extend(links(text));
    items.extend(tags(text));
    if source == Source::Transcript {
        items.extend(phones::spoken(text, region));
        items.extend(spoken_links::spoken_links(text));
        items.extend(spoken_tags(text));
    }
    items.extend(datetime::dates(text, source, ctx));
    items.extend(names::names(text, source));
    items.extend(places::places(text, source));
    // Words already read as a phone number or an address are not a time ("nine oh one two
    // ...", "three twenty five hudson street"), and words inside an email or URL are not a name
    // or a place ("Jenny.Wu@...").
    let claims = |kinds: &[ItemKind]| {
        Spans::new(
            items
                .iter()
                .filter(|i| kinds.contains(&i.kind))
                .map(|i| i.span),
        )
    };
    let not_a_time = claims(&[
        ItemKind::Phone,
        ItemKind::Place,
        ItemKind::Url,
        ItemKind::Email,
    ]);
    let not_a_name = claims(&[ItemKind::Email, ItemKind::Url]);
    items.retain(|i| match i.kind {
        ItemKind::DateTime => !not_a_time.overlaps(i.span),
        ItemKind::Contact | ItemKind::Place => !not_a_name.overlaps(i.span),
        _ => true,
    });
    for i in &mut items {
        i.source = source;
    }
    // One item per kind and normalized value; the first occurrence keeps its span.
    items.sort_by_key(|i| i.span.0);
    let mut seen = std::collections::HashSet::new();
    items.retain(|i| seen.insert((i.kind, i.normalized.clone())));
    // Extractors work in bytes; items carry character spans.
    to_char_spans(text, &mut items);
    tracing::debug!(
        count = items.len(),
        source = source.as_str(),
        "extracted items"
    );
    items
}

/// Byte ranges, for "does this range overlap any of them" in O(log n): sorted by start, with
/// the largest end so far, so text of any length stays linear-logarithmic.
pub(crate) struct Spans {
    starts: Vec<usize>,
    max_end: Vec<usize>,
}

impl Spans {
    pub(crate) fn new(spans: impl Iterator<Item = (usize, usize)>) -> Spans {
        let mut v: Vec<(usize, usize)> = spans.collect();
        v.sort_unstable();
        let mut max = 0;
        let max_end = v
            .iter()
            .map(|(_, e)| {
                max = max.max(*e);
                max
            })
            .collect();
        Spans {
            starts: v.into_iter().map(|(s, _)| s).collect(),
            max_end,
        }
    }

    /// Whether `(start, end)` overlaps one of the ranges.
    pub(crate) fn overlaps(&self, (start, end): (usize, usize)) -> bool {
        // The ranges that start before `end`; one of them overlaps iff the furthest end > start.
        let n = self.starts.partition_point(|s| *s < end);
        n > 0 && self.max_end[n - 1] > start
    }
}

/// Every item's byte span as a character span, in one pass over the text.
fn to_char_spans(text: &str, items: &mut [Item]) {
    let mut offsets: Vec<usize> = items.iter().flat_map(|i| [i.span.0, i.span.1]).collect();
    offsets.sort_unstable();
    offsets.dedup();
    let mut chars = Vec::with_capacity(offsets.len());
    let mut walk = text
        .char_indices()
        .map(|(b, _)| b)
        .chain(std::iter::once(text.len()));
    let mut count = 0;
    let mut at = walk.next();
    for &o in &offsets {
        while let Some(b) = at {
            if b >= o {
                break;
            }
            count += 1;
            at = walk.next();
        }
        chars.push(count);
    }
    let char_of = |b: usize| {
        offsets
            .binary_search(&b)
            .map_or_else(|_| char_span(text, (b, b)).0, |k| chars[k])
    };
    for i in items {
        i.span = (char_of(i.span.0), char_of(i.span.1));
    }
}

fn links(text: &str) -> Vec<Item> {
    let mut finder = LinkFinder::new();
    finder.url_must_have_scheme(false);
    finder
        .links(text)
        .filter_map(|l| {
            let (kind, normalized) = match l.kind() {
                LinkKind::Email => (ItemKind::Email, l.as_str().to_ascii_lowercase()),
                // "1.415.555.0100" is a phone number, not a host.
                LinkKind::Url if !has_scheme(l.as_str()) && !host_has_letter(l.as_str()) => {
                    return None
                }
                LinkKind::Url => (ItemKind::Url, normalize_url(l.as_str())),
                _ => return None,
            };
            Some(Item {
                kind,
                value: l.as_str().to_owned(),
                normalized,
                confidence: 0.95,
                source: Source::Body,
                span: (l.start(), l.end()),
            })
        })
        .collect()
}

fn has_scheme(u: &str) -> bool {
    u.split_once("://").is_some_and(|(s, _)| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    })
}

fn host_has_letter(u: &str) -> bool {
    u.split(['/', '?', '#'])
        .next()
        .is_some_and(|host| host.chars().any(char::is_alphabetic))
}

pub(crate) fn normalize_url(u: &str) -> String {
    let trimmed = u.trim_end_matches(['.', ',', ')']);
    let lower_scheme = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"))
        .unwrap_or(trimmed);
    match lower_scheme.split_once('/') {
        // "acme.io/" is the site itself.
        Some((host, "")) => host.to_ascii_lowercase(),
        Some((host, path)) => format!("{}/{}", host.to_ascii_lowercase(), path),
        None => lower_scheme.to_ascii_lowercase(),
    }
}

fn tags(text: &str) -> Vec<Item> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re =
        RE.get_or_init(|| Regex::new(r"(?:^|\s)#([\p{L}\p{N}_]{1,64})").expect("static regex"));
    re.captures_iter(text)
        .filter_map(|c| {
            let m = c.get(0)?;
            let tag = c.get(1)?;
            // "#4471" is an order or ticket number, not a tag.
            if !tag.as_str().chars().any(char::is_alphabetic) {
                return None;
            }
            let start = m.start() + m.as_str().find('#').unwrap_or(0);
            Some(Item {
                kind: ItemKind::Tag,
                value: text[start..tag.end()].to_owned(),
                normalized: tag.as_str().to_lowercase(),
                confidence: 1.0,
                source: Source::Body,
                span: (start, tag.end()),
            })
        })
        .collect()
}

/// "hashtag lead", as a recognizer writes "#lead".
fn spoken_tags(text: &str) -> Vec<Item> {
    let toks = spoken::tokens(text);
    toks.windows(2)
        .filter(|w| w[0].text.eq_ignore_ascii_case("hashtag"))
        .filter(|w| {
            let t = w[1].text;
            !t.is_empty()
                && t.chars().all(|c| c.is_alphanumeric() || c == '_')
                && t.chars().any(char::is_alphabetic)
        })
        .map(|w| Item {
            kind: ItemKind::Tag,
            value: text[w[0].start..w[1].end].to_owned(),
            normalized: w[1].text.to_lowercase(),
            confidence: 0.8,
            source: Source::Transcript,
            span: (w[0].start, w[1].end),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A US sender; Saturday 2026-11-28 10:00 in Los Angeles.
    fn us() -> Context {
        Context::new(
            Some(phonenumber::country::Id::US),
            1_795_888_800_000_000,
            chrono_tz::America::Los_Angeles,
        )
    }

    fn find(items: &[Item], kind: ItemKind) -> Vec<String> {
        items
            .iter()
            .filter(|i| i.kind == kind)
            .map(|i| i.normalized.clone())
            .collect()
    }

    #[test]
    fn a_typed_note_yields_its_number_and_tag() {
        let t = "met Dana Reyes at the Oakland expo, her cell is 510-555-0142, follow up next Tuesday 3pm #lead";
        let items = extract(t, Source::Body, &us());
        assert_eq!(find(&items, ItemKind::Phone), vec!["+15105550142"]);
        assert_eq!(find(&items, ItemKind::Tag), vec!["lead"]);
        let phone = items.iter().find(|i| i.kind == ItemKind::Phone).unwrap();
        assert_eq!(
            super::super::item::span_text(t, phone.span).unwrap(),
            "510-555-0142"
        );
    }

    #[test]
    fn typed_emails_and_urls_are_normalized() {
        let items = extract(
            "call Priya re pricing, Priya@Acme.io, see https://Acme.io/pricing.",
            Source::Body,
            &us(),
        );
        assert_eq!(find(&items, ItemKind::Email), vec!["priya@acme.io"]);
        assert_eq!(find(&items, ItemKind::Url), vec!["acme.io/pricing"]);
    }

    #[test]
    fn spoken_number_email_and_url_are_found_in_transcripts() {
        let t = "hi its dana my number is five one zero five five five zero one four two email me at dana at acme dot io or see acme dot io slash pricing";
        let items = extract(t, Source::Transcript, &us());
        assert_eq!(find(&items, ItemKind::Phone), vec!["+15105550142"]);
        assert_eq!(find(&items, ItemKind::Email), vec!["dana@acme.io"]);
        assert_eq!(find(&items, ItemKind::Url), vec!["acme.io/pricing"]);
        for i in &items {
            assert_eq!(
                super::super::item::span_text(t, i.span).unwrap(),
                i.value,
                "span points at the words"
            );
        }
    }

    #[test]
    fn spoken_forms_are_not_read_into_typed_text_or_random_words() {
        // "at" and "dot" in prose are not addresses; a few number words are not a phone.
        let items = extract(
            "meet me at five at the dot com party",
            Source::Transcript,
            &us(),
        );
        assert!(find(&items, ItemKind::Phone).is_empty());
        assert!(find(&items, ItemKind::Email).is_empty());
        let typed = extract(
            "five one zero five five five zero one four two",
            Source::Body,
            &us(),
        );
        assert!(typed.is_empty(), "typed text is not parsed as speech");
    }

    #[test]
    fn invalid_numbers_and_duplicates_are_dropped() {
        let items = extract(
            "order 1234567 ships; call 510-555-0142 or (510) 555-0142",
            Source::Body,
            &us(),
        );
        assert_eq!(
            find(&items, ItemKind::Phone),
            vec!["+15105550142"],
            "{items:?}"
        );
    }

    #[test]
    fn spoken_hashtags_plus_numbers_and_dotted_mailboxes() {
        let t = "my name is kenji and my cell is plus eight one nine oh one two three four five six seven eight email jon dot smith at gmail dot com hashtag lead";
        let items = extract(t, Source::Transcript, &us());
        assert_eq!(find(&items, ItemKind::Phone), vec!["+819012345678"]);
        assert_eq!(find(&items, ItemKind::Email), vec!["jon.smith@gmail.com"]);
        assert_eq!(find(&items, ItemKind::Tag), vec!["lead"]);
        // The digits of the phone number are not read as "nine oh one" = 9:01.
        assert!(find(&items, ItemKind::DateTime).is_empty(), "{items:?}");
        for i in &items {
            assert_eq!(
                super::super::item::span_text(t, i.span).unwrap(),
                i.value,
                "span points at the words"
            );
        }
    }

    #[test]
    fn numeric_tags_and_names_inside_addresses_are_not_items() {
        let items = extract(
            "Order #4471 for #acme, my email Jenny.Wu@Brightside.io",
            Source::Body,
            &us(),
        );
        assert_eq!(find(&items, ItemKind::Tag), vec!["acme"]);
        assert!(find(&items, ItemKind::Contact).is_empty(), "{items:?}");
        let site = extract(
            "see our site at acme dot io slash pricing",
            Source::Transcript,
            &us(),
        );
        assert!(find(&site, ItemKind::Email).is_empty(), "{site:?}");
        assert_eq!(find(&site, ItemKind::Url), vec!["acme.io/pricing"]);
    }

    #[test]
    fn the_issue_example_yields_every_kind_with_character_spans() {
        let t = "Zoë: met Dana Reyes at the Oakland expo, her cell is 510-555-0142, follow up next Tuesday 3pm #lead";
        let items = extract(t, Source::Body, &us());
        let got: Vec<(&str, &str)> = items
            .iter()
            .map(|i| (i.kind.as_str(), i.normalized.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                // The note is addressed to Zoë: a given name at the start is a contact too.
                ("contact", "Zoë"),
                ("contact", "Dana Reyes"),
                ("place", "Oakland Expo"),
                ("phone", "+15105550142"),
                ("datetime", "2026-12-01T15:00:00-08:00"),
                ("tag", "lead"),
            ]
        );
        // "Zoë" has a two-byte letter: character spans differ from byte spans after it.
        let contact = &items[1];
        assert_eq!(contact.span, (9, 19));
        assert_eq!(
            super::super::item::span_text(t, contact.span),
            Some("Dana Reyes")
        );
        assert!(items.iter().all(|i| i.source == Source::Body));
    }

    #[test]
    fn arbitrary_unicode_never_panics_and_spans_stay_in_range() {
        let samples = [
            "",
            "#",
            "# #",
            "@@@",
            "👋👋 at 5 👋",
            "met Ｄａｎａ at the 東京 expo ☎ ５１０-５５５-０１４２",
            "\u{202e}call 510-555-0142\u{202c}",
            "İİİ at İstanbul İstanbul tomorrow",
            "e\u{301}\u{301}\u{301} hashtag",
            "plus",
            "plus plus one",
            "dot at dot dot at",
            "ﷺ ﷽ 𒀱 at noon #𝔱𝔞𝔤",
            "\0\t\r\n met\tDana\r\nReyes",
        ];
        for t in samples {
            for s in [Source::Body, Source::Transcript] {
                for i in extract(t, s, &us()) {
                    let n = t.chars().count();
                    assert!(i.span.0 <= i.span.1 && i.span.1 <= n, "{t:?}: {i:?}");
                    assert_eq!(
                        super::super::item::span_text(t, i.span),
                        Some(i.value.as_str()),
                        "{t:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn random_mixes_of_tricky_fragments_never_panic() {
        // A fixed-seed generator: the same strings every run, so a failure reproduces.
        const PARTS: &[&str] = &[
            "at",
            "the",
            "next",
            "tue",
            "3pm",
            "12/5",
            "2026-06-03",
            "half",
            "past",
            "four",
            "plus",
            "one",
            "oh",
            "double",
            "five",
            "dot",
            "com",
            "io",
            "slash",
            "hashtag",
            "#",
            "@",
            "met",
            "Dana",
            "Reyes",
            "my",
            "name",
            "is",
            "Zoë",
            "👋",
            "İ",
            "\u{301}",
            ",",
            ".",
            ":",
            "510-555-0142",
            "+44",
            "1200",
            "Broadway",
            "St",
            "hundred",
            "in",
            "2",
            "weeks",
            "noon",
            "tonight",
            "quarter",
            "to",
            "twenty",
            "first",
            "o'clock",
            "a",
            "m",
            "BEGIN:VCARD",
            "\r\n",
            " ",
            "\t",
            "=",
            ";",
            "FN",
            "TEL",
            "expo",
            "+49",
            "(",
            ")",
            "ext",
            "x",
            "dash",
            "w",
            "suite",
            "floor",
            "third",
            "thrusday",
            "2moro",
            "5ish",
            "ish",
            "eastern",
            "—",
            "|",
            "'s",
            "Dr.",
            "in",
            "Oslo",
            "Munich",
            "089",
            "1.415.555.0100",
            "either",
            "or",
            "&",
            "hundred",
            "eighty",
            "room",
        ];
        let mut seed: u64 = 0x5eed;
        let mut next = || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize
        };
        for _ in 0..1500 {
            let n = next() % 12;
            let mut t = String::new();
            for _ in 0..n {
                t.push_str(PARTS[next() % PARTS.len()]);
                if next() % 3 > 0 {
                    t.push(' ');
                }
            }
            for s in [Source::Body, Source::Transcript] {
                for i in extract(&t, s, &us()) {
                    assert_eq!(
                        super::super::item::span_text(&t, i.span),
                        Some(i.value.as_str()),
                        "{t:?}"
                    );
                }
            }
            let _ = super::super::vcard::extract_vcard(t.as_bytes(), &us());
        }
    }
}
