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

mod words;

use super::gazetteer;
use super::item::{Item, ItemKind, Source};
use super::lex::{self, Tok};
use words::{NOT_A_CITY, PLACE_STOP, SUFFIXES, VENUES};

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
            (?:,?\s+(?:(?:Suite|Ste|Apt|Unit|Room|Rm|\#)\.?\s*[A-Za-z0-9-]+|\d{{1,2}}(?:st|nd|rd|th)\s+(?i:floor)|(?i:floor)\s+\d{{1,2}}))?
            (?:,\s*[A-Z][\p{{L}}'’-]*\b(?:\s+[A-Z][\p{{L}}'’-]*\b){{0,2}}
                (?:\s+[A-Z]{{1,2}}\d[A-Z\d]?\s*\d[A-Z]{{2}}\b)?)?
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
    if source != Source::Transcript {
        items.extend(in_cities(text, &toks, source));
    }
    // An "at" place inside an address ("at 1200 Broadway") is the address: earlier finders
    // win. Kept spans never overlap, so the one starting last before an item's end is the only
    // one that can overlap it.
    let mut kept: std::collections::BTreeMap<usize, Item> = std::collections::BTreeMap::new();
    for it in items {
        let (start, end) = it.span;
        let clash = kept
            .range(..end)
            .next_back()
            .is_some_and(|(_, k)| k.span.1 > start);
        if !clash {
            kept.insert(start, it);
        }
    }
    kept.into_values().collect()
}

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
                let mut normalized = format!("{number} {}", lex::title_case(words));
                let mut k = k;
                if let Some((unit, end)) = spoken_unit(toks, k + 1) {
                    normalized.push(' ');
                    normalized.push_str(&unit);
                    k = end - 1;
                }
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

/// "3" → "3rd".
fn ordinal_suffix(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// A unit or floor spoken after a street: "suite b", "suite twelve hundred", "apartment six",
/// "third floor", "floor two". Returns its normalized form and the index after it.
fn spoken_unit(toks: &[Tok], i: usize) -> Option<(String, usize)> {
    let w = toks.get(i)?.w.as_str();
    if let Some((n, j)) = lex::ordinal_at(toks, i) {
        if toks.get(j).is_some_and(|t| t.w == "floor") {
            return Some((format!("{} Floor", ordinal_suffix(n)), j + 1));
        }
        return None;
    }
    let label = match w {
        "suite" | "ste" => "Suite",
        "unit" => "Unit",
        "apartment" | "apt" => "Apartment",
        "room" => "Room",
        "floor" => "Floor",
        _ => return None,
    };
    let next = toks.get(i + 1)?;
    // "suite b": one spelled letter.
    if next.w.chars().count() == 1 && next.w.chars().all(|c| c.is_ascii_alphabetic()) {
        return Some((format!("{label} {}", next.w.to_uppercase()), i + 2));
    }
    let (number, j) = house_number(toks, i + 1)?;
    Some((format!("{label} {number}"), j))
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
            // "at union station" needs no "the"; a venue noun still has to end it.
            spoken_venue(toks, first, the)
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

/// "in Oslo", "in Las Vegas", "in Rio": a country or a large city (the gazetteer) after "in".
fn in_cities(text: &str, toks: &[Tok], source: Source) -> Vec<Item> {
    let mut items = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        if t.w != "in" {
            continue;
        }
        let first = i + 1;
        let longest = (1..=3).rev().find(|n| {
            let words = toks.get(first..first + n);
            words.is_some_and(|ws| {
                ws.iter().all(|w| w.cap && plain_word(w))
                    && gazetteer::is_place(
                        &ws.iter()
                            .map(|w| w.w.as_str())
                            .collect::<Vec<_>>()
                            .join(" "),
                    )
            })
        });
        if let Some(n) = longest {
            let (sb, eb) = (toks[first].start, toks[first + n - 1].end);
            let words = toks[first..first + n].iter().map(|t| &text[t.start..t.end]);
            items.push(Item {
                kind: ItemKind::Place,
                value: text[sb..eb].to_owned(),
                normalized: lex::title_case(words),
                confidence: 0.6,
                source,
                span: (sb, eb),
            });
        }
    }
    items
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
        // "the Sacramento trade show": one lower-case word before a venue noun.
        let before_venue = caps > 0
            && plain_word(t)
            && !PLACE_STOP.contains(&t.w.as_str())
            && toks
                .get(end + 1)
                .is_some_and(|n| VENUES.contains(&n.w.as_str()));
        if place_word(t) {
            caps += 1;
        } else if !(joiner || before_venue || (caps > 0 && VENUES.contains(&t.w.as_str()))) {
            break;
        }
        end += 1;
        if end - first >= 5 {
            break;
        }
    }
    (caps > 0).then_some(end)
}

/// Words after a hotel or venue name that locate it ("the marriott downtown").
const LOCATORS: &[&str] = &["downtown", "uptown", "midtown"];

/// "<words> <venue noun>" in lowercase speech ("the blue heron cafe", "union station",
/// "the hyatt regency downtown"): the end index.
fn spoken_venue(toks: &[Tok], first: usize, the: bool) -> Option<usize> {
    let mut k = first;
    while let Some(t) = toks.get(k) {
        if k - first >= 4
            || !plain_word(t)
            || PLACE_STOP.contains(&t.w.as_str())
            || lex::is_calendar_word(&t.w)
            || lex::number_word(&t.w).is_some()
        {
            return None;
        }
        if the && k > first && LOCATORS.contains(&t.w.as_str()) {
            return Some(k + 1);
        }
        if VENUES.contains(&t.w.as_str()) {
            if k == first {
                // A venue noun alone ("at the office") is not a named place.
                return None;
            }
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
mod tests;
