//! Places: street addresses ("1200 Broadway, Oakland, CA 94612", "123 Main St", spoken
//! "twelve hundred broadway") and `at <Place>` ("at the Oakland expo", "at Blue Bottle").
//!
//! "at 5pm" is a time and "dana at acme dot io" an email: typed "at" needs a capitalized word
//! after it; in transcripts it needs "the" and a venue noun ("at the oakland expo"), so
//! "at blue bottle" is missed there. Hand-written: address-parsing crates (libpostal bindings)
//! need a large native model. Normalized value: the words as written with first letters
//! upper-cased and whitespace collapsed, without a leading "the".

use std::sync::OnceLock;

use regex::Regex;

use super::item::{Item, ItemKind, Source};
use super::lex::{self, Tok};

/// Street suffixes, typed and spoken.
const SUFFIXES: &[&str] = &[
    "street",
    "st",
    "avenue",
    "ave",
    "av",
    "boulevard",
    "blvd",
    "road",
    "rd",
    "drive",
    "dr",
    "lane",
    "ln",
    "way",
    "court",
    "ct",
    "place",
    "pl",
    "parkway",
    "pkwy",
    "highway",
    "hwy",
    "square",
    "sq",
    "terrace",
    "ter",
    "circle",
    "cir",
    "plaza",
    "alley",
    "trail",
    "broadway",
];

/// Nouns that make "at the <words> <noun>" a place even in lowercase.
const VENUES: &[&str] = &[
    "expo",
    "conference",
    "office",
    "offices",
    "cafe",
    "café",
    "coffee",
    "hotel",
    "airport",
    "park",
    "center",
    "centre",
    "hq",
    "booth",
    "store",
    "shop",
    "library",
    "gym",
    "festival",
    "fair",
    "summit",
    "meetup",
    "restaurant",
    "bar",
    "pub",
    "station",
    "mall",
    "hospital",
    "school",
    "university",
    "campus",
    "stadium",
    "arena",
    "church",
    "museum",
    "market",
    "club",
    "building",
    "tower",
    "lobby",
    "bakery",
    "diner",
    "theater",
    "theatre",
    "convention",
    "warehouse",
    "clinic",
    "studio",
    "showroom",
    "terminal",
    "hall",
    "kitchen",
    "grill",
    "show",
];

/// Words that never start or fill a place name.
const PLACE_STOP: &[&str] = &[
    "the", "a", "an", "i", "me", "you", "him", "her", "them", "us", "it", "this", "that", "least",
    "last", "first", "all", "once", "home", "work", "some", "my", "your", "our", "his", "their",
    "and", "or", "to", "for", "of", "on", "in", "at", "around", "about", "noon", "midnight", "dot",
    "latest", "most", "best", "moment", "end", "same", "time",
];

fn street_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        let suffix = "Street|St|Avenue|Ave|Boulevard|Blvd|Road|Rd|Drive|Dr|Lane|Ln|Way|Court|Ct|Place|Pl|Parkway|Pkwy|Highway|Hwy|Square|Sq|Terrace|Ter|Circle|Cir|Plaza|Alley|Trail";
        Regex::new(&format!(
            r"(?x)
            \b\d{{1,6}}[A-Za-z]?\s+
            (?:
                Broadway
              | (?:(?:[NSEW]|North|South|East|West)\.?\s+)?
                (?:(?:\d{{1,3}}(?:st|nd|rd|th)|[A-Z][\p{{L}}'’-]*)\s+){{1,3}}
                (?:{suffix})\b\.?
            )
            (?:,?\s+(?:Suite|Ste|Apt|Unit|\#)\.?\s*[A-Za-z0-9-]+)?
            (?:,\s*[A-Z][\p{{L}}'’-]*(?:\s+[A-Z][\p{{L}}'’-]*){{0,2}})?
            (?:,?\s+[A-Z]{{2}}\b(?:\s+\d{{5}}(?:-\d{{4}})?)?)?
            "
        ))
        .expect("static regex")
    })
}

/// Places in `text` (byte spans).
pub(crate) fn places(text: &str, source: Source) -> Vec<Item> {
    let mut items = typed_streets(text, source);
    let toks = lex::lex(text);
    if source == Source::Transcript {
        items.extend(spoken_streets(text, &toks, source));
    }
    items.extend(at_places(text, &toks, source));
    // An "at" place inside an address ("at 1200 Broadway") is the address.
    let mut kept: Vec<Item> = Vec::new();
    for it in items {
        if !kept
            .iter()
            .any(|k| it.span.0 < k.span.1 && k.span.0 < it.span.1)
        {
            kept.push(it);
        }
    }
    kept
}

/// Capitalized words after an address's comma that are a time, not a city ("600 Guerrero St,
/// Friday noon"): the address ends before them.
const NOT_A_CITY: &[&str] = &[
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "mon",
    "tue",
    "tues",
    "wed",
    "thu",
    "thur",
    "thurs",
    "fri",
    "sat",
    "sun",
    "today",
    "tomorrow",
    "tonight",
    "yesterday",
    "noon",
    "midnight",
    "january",
    "february",
    "march",
    "april",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "next",
    "this",
    "call",
    "see",
    "thanks",
];

/// `value` cut before the first comma-separated part that starts with a time word.
fn without_time_tail(value: &str) -> &str {
    let mut end = value.len();
    let mut from = 0;
    while let Some(comma) = value[from..].find(',') {
        let at = from + comma;
        let first = value[at + 1..]
            .split(|c: char| !c.is_alphanumeric())
            .find(|w| !w.is_empty())
            .unwrap_or("");
        if NOT_A_CITY.contains(&first.to_lowercase().as_str()) {
            end = at;
            break;
        }
        from = at + 1;
    }
    value[..end].trim_end_matches([',', ' '])
}

fn typed_streets(text: &str, source: Source) -> Vec<Item> {
    street_re()
        .find_iter(text)
        .map(|m| {
            let value = without_time_tail(m.as_str().trim_end_matches([',', ' ']));
            let normalized = value.split_whitespace().collect::<Vec<_>>().join(" ");
            let with_city = value.contains(',');
            Item {
                kind: ItemKind::Place,
                value: value.to_owned(),
                normalized,
                confidence: if with_city { 0.85 } else { 0.75 },
                source,
                span: (m.start(), m.start() + value.len()),
            }
        })
        .collect()
}

/// A spoken house number: "twelve hundred" 1200, "one twenty three" 123, "four oh five" 405.
fn house_number(toks: &[Tok], mut i: usize) -> Option<(String, usize)> {
    let mut out = String::new();
    while let Some(t) = toks.get(i) {
        let w = t.w.as_str();
        if !w.is_empty() && w.len() <= 6 && w.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(w);
            i += 1;
            continue;
        }
        let Some((n, j)) = lex::number_at(toks, i) else {
            break;
        };
        if toks.get(j).is_some_and(|t| t.w == "hundred") {
            let mut v = n * 100;
            let mut k = j + 1;
            if let Some((rest, k2)) = lex::number_at(toks, k).filter(|(r, _)| *r < 100) {
                v += rest;
                k = k2;
            }
            out.push_str(&v.to_string());
            i = k;
        } else {
            out.push_str(&n.to_string());
            i = j;
        }
        if out.len() > 6 {
            return None;
        }
    }
    (!out.is_empty() && !out.starts_with('0')).then_some((out, i))
}

fn spoken_streets(text: &str, toks: &[Tok], source: Source) -> Vec<Item> {
    let mut items = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let Some((number, j)) = house_number(toks, i) else {
            i += 1;
            continue;
        };
        // One to three street-name words, then a suffix ("broadway" is both).
        let mut k = j;
        let mut found = None;
        while k < toks.len() && k - j < 4 {
            let w = toks[k].w.as_str();
            if SUFFIXES.contains(&w) && (k > j || w == "broadway") {
                found = Some(k);
                break;
            }
            if toks[k].punct || PLACE_STOP.contains(&w) || lex::number_word(w).is_some() {
                break;
            }
            k += 1;
        }
        match found {
            Some(k) => {
                let words = toks[j..=k].iter().map(|t| t.w.as_str());
                let normalized = format!("{number} {}", lex::title_case(words));
                let (sb, eb) = (toks[i].start, toks[k].end);
                items.push(Item {
                    kind: ItemKind::Place,
                    value: text[sb..eb].to_owned(),
                    normalized,
                    confidence: 0.6,
                    source,
                    span: (sb, eb),
                });
                i = k + 1;
            }
            None => i = j.max(i + 1),
        }
    }
    items
}

fn at_places(text: &str, toks: &[Tok], source: Source) -> Vec<Item> {
    let mut items = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        if t.w != "at" {
            continue;
        }
        let the = toks.get(i + 1).is_some_and(|t| t.w == "the");
        let first = if the { i + 2 } else { i + 1 };
        let end = if source == Source::Transcript {
            if !the {
                continue;
            }
            spoken_venue(toks, first)
        } else {
            typed_venue(toks, first)
        };
        if let Some(end) = end {
            let (sb, eb) = (toks[first].start, toks[end - 1].end);
            let words = toks[first..end].iter().map(|t| &text[t.start..t.end]);
            items.push(Item {
                kind: ItemKind::Place,
                value: text[sb..eb].to_owned(),
                normalized: lex::title_case(words),
                confidence: if source == Source::Transcript {
                    0.5
                } else {
                    0.7
                },
                source,
                span: (sb, eb),
            });
        }
    }
    items
}

fn plain_word(t: &Tok) -> bool {
    !t.punct
        && t.w
            .chars()
            .all(|c| c.is_alphabetic() || c == '\'' || c == '-' || c == '&')
}

/// Capitalized words (with "of"/"&" between them) and trailing venue nouns: the end index.
fn typed_venue(toks: &[Tok], first: usize) -> Option<usize> {
    let place_word = |t: &Tok| {
        t.cap
            && plain_word(t)
            && !PLACE_STOP.contains(&t.w.as_str())
            && !lex::is_calendar_word(&t.w)
    };
    let mut end = first;
    let mut caps = 0;
    while let Some(t) = toks.get(end) {
        let joiner = matches!(t.w.as_str(), "of" | "&" | "on")
            && caps > 0
            && toks.get(end + 1).is_some_and(place_word);
        if place_word(t) {
            caps += 1;
        } else if !(joiner || (caps > 0 && VENUES.contains(&t.w.as_str()))) {
            break;
        }
        end += 1;
        if end - first >= 5 {
            break;
        }
    }
    (caps > 0).then_some(end)
}

/// "<words> <venue noun>" in lowercase speech: the end index.
fn spoken_venue(toks: &[Tok], first: usize) -> Option<usize> {
    let mut k = first;
    while let Some(t) = toks.get(k) {
        if k - first >= 4 || !plain_word(t) || PLACE_STOP.contains(&t.w.as_str()) {
            return None;
        }
        if VENUES.contains(&t.w.as_str()) {
            // Take a second venue noun too: "the convention center".
            let end = if toks
                .get(k + 1)
                .is_some_and(|n| VENUES.contains(&n.w.as_str()))
            {
                k + 2
            } else {
                k + 1
            };
            return Some(end);
        }
        k += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norms(text: &str, source: Source) -> Vec<String> {
        places(text, source)
            .into_iter()
            .map(|i| i.normalized)
            .collect()
    }

    #[test]
    fn typed_addresses() {
        assert_eq!(
            norms(
                "Office is 1200 Broadway, Oakland, CA 94612 - 3rd floor",
                Source::Body
            ),
            vec!["1200 Broadway, Oakland, CA 94612"]
        );
        assert_eq!(
            norms("drop it at 123 Main St. thx", Source::Body),
            vec!["123 Main St."]
        );
        // A weekday after the comma is the date, not the city.
        assert_eq!(
            norms(
                "lunch with Sam at Tartine, 600 Guerrero St, Friday noon #personal",
                Source::Body
            ),
            vec!["600 Guerrero St", "Tartine"]
        );
        assert_eq!(
            norms(
                "new office: 500 W 5th Street, Suite 200, Austin, TX",
                Source::Body
            ),
            vec!["500 W 5th Street, Suite 200, Austin, TX"]
        );
    }

    #[test]
    fn at_places_typed_and_spoken() {
        assert_eq!(
            norms("met Dana Reyes at the Oakland expo, her cell", Source::Body),
            vec!["Oakland Expo"]
        );
        assert_eq!(
            norms("coffee at Blue Bottle at 3", Source::Body),
            vec!["Blue Bottle"]
        );
        assert_eq!(
            norms("met dana at the oakland expo yesterday", Source::Transcript),
            vec!["Oakland Expo"]
        );
        assert_eq!(
            norms("its at twelve hundred broadway", Source::Transcript),
            vec!["1200 Broadway"]
        );
        assert_eq!(
            norms(
                "the shop is at one twenty three main street",
                Source::Transcript
            ),
            vec!["123 Main Street"]
        );
    }

    #[test]
    fn times_emails_and_prose_are_not_places() {
        for (t, s) in [
            ("see you at 5pm", Source::Body),
            ("at noon", Source::Body),
            ("dana at acme dot io", Source::Transcript),
            ("meet me at five at the dot com party", Source::Transcript),
            ("at the moment", Source::Body),
            ("at least 3", Source::Body),
            ("at Monday standup", Source::Body),
            ("i have 3 kids", Source::Transcript),
        ] {
            assert!(norms(t, s).is_empty(), "{t}: {:?}", norms(t, s));
        }
    }

    #[test]
    fn odd_unicode_does_not_panic() {
        for t in [
            "at",
            "at the",
            "at Café Olé",
            "12 ",
            "at Ｍain",
            "١٢٣ Main St",
            "99999999999 Main Street",
            "at \u{0301}",
        ] {
            for s in [Source::Body, Source::Transcript] {
                for i in places(t, s) {
                    assert_eq!(&t[i.span.0..i.span.1], i.value);
                }
            }
        }
        assert_eq!(norms("at Café Olé", Source::Body), vec!["Café Olé"]);
    }
}
