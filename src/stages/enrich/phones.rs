//! Phone numbers in typed text and in transcripts.
//!
//! Typed text follows libphonenumber's `PhoneNumberMatcher` at leniency `VALID`, on the
//! `phonenumber` crate's metadata (the crate has no matcher of its own): a candidate pattern of
//! digit blocks and phone punctuation, the same exclusions (publication pages, slash dates,
//! time stamps, unmatched brackets, Latin letters touching the number), "inner matches" when
//! the whole candidate is not a number ("+49 170 1234567 3pm" keeps its number), and a valid
//! number that carries its national prefix where its country's format requires one.
//!
//! One addition: a national number that is not valid in the sender's region is read in the
//! region of a country or city named next to it ("Munich office: 089 …", "02 9374 4000
//! (Sydney)"), so a trunk prefix written for a foreign reader still resolves.
//!
//! Transcripts spell numbers out: "plus four four …", "one eight hundred …", "double five".

use std::sync::OnceLock;

use phonenumber::country::Id;
use regex::Regex;

use super::gazetteer;
use super::item::{Item, ItemKind, Source};
use super::spoken;

/// The E.164 form of `number` read in `region`, when it is a valid number.
pub(crate) fn e164(number: &str, region: Option<Id>) -> Option<String> {
    let n = parse(region, number)?;
    phonenumber::is_valid(&n).then(|| n.format().mode(phonenumber::Mode::E164).to_string())
}

/// `phonenumber::parse`, except that a number written with its "+" country code is parsed
/// without the default region: the crate strips the DEFAULT region's national prefix from it
/// ("+49 160 98765432" read from a US sender loses its "1" and becomes +496098765432;
/// libphonenumber and Python `phonenumbers` give +4916098765432). Pinned by the
/// `international_numbers_with_spaces` test.
fn parse(region: Option<Id>, number: &str) -> Option<phonenumber::PhoneNumber> {
    let international = number
        .trim_start_matches(|c: char| c.is_whitespace() || "([\u{FF08}\u{FF3B}".contains(c))
        .starts_with(['+', '\u{FF0B}']);
    phonenumber::parse(if international { None } else { region }, number).ok()
}

/// libphonenumber's `VALID_PUNCTUATION`.
const PUNCT: &str = r"\-x\u{2010}-\u{2015}\u{2212}\u{30FC}\u{FF0D}-\u{FF0F} \u{00A0}\u{00AD}\u{200B}\u{2060}\u{3000}()\u{FF08}\u{FF09}\u{FF3B}\u{FF3D}.\[\]/~\u{2053}\u{223C}\u{FF5E}";
const OPENING: &str = r"(\[\u{FF08}\u{FF3B}";
const CLOSING: &str = r")\]\u{FF09}\u{FF3D}";
const PLUS: &str = r"+\u{FF0B}";
/// Digits a national number plus a country code can have (17 + 3).
const DIGIT_BLOCK: usize = 20;
/// Inner candidates tried per candidate, as `maxTries` in libphonenumber: a bound on
/// degenerate input. (The text as a whole has no bound: every candidate is tried once, so a
/// long text full of other numbers still yields its phone numbers.)
const MAX_TRIES: usize = 16;

struct Patterns {
    candidate: Regex,
    pub_pages: Regex,
    slash_dates: Regex,
    time_stamp: Regex,
    time_suffix: Regex,
    brackets: Regex,
    lead: Regex,
    second_number: Regex,
    unwanted_end: Regex,
    inner: Vec<Regex>,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        let re = |s: &str| Regex::new(s).expect("static regex");
        let punct = format!("[{PUNCT}]{{0,4}}");
        let digits = format!(r"\p{{Nd}}{{1,{DIGIT_BLOCK}}}");
        let ext = r"(?:[ \u{00A0}\t,]*(?:(?i:ext(?:ension)?|extn)\.?|x|\#)[:. \u{00A0}\t-]*\p{Nd}{1,7}\#?)";
        let non_parens = format!("[^{OPENING}{CLOSING}]");
        Patterns {
            candidate: re(&format!(
                "(?:[{OPENING}{PLUS}]{punct}){{0,2}}{digits}(?:{punct}{digits}){{0,{DIGIT_BLOCK}}}{ext}?"
            )),
            pub_pages: re(r"\d{1,5}-+\d{1,5}\s{0,4}\(\d{1,4}"),
            slash_dates: re(r"(?:(?:[0-3]?\d/[01]?\d)|(?:[01]?\d/[0-3]?\d))/(?:[12]\d)?\d{2}"),
            time_stamp: re(r"[12]\d{3}[-/]?[01]\d[-/]?[0-3]\d [0-2]\d$"),
            time_suffix: re(r"^:[0-5]\d"),
            brackets: re(&format!(
                "^(?:[{OPENING}])?(?:{non_parens}+[{CLOSING}])?{non_parens}+(?:[{OPENING}]{non_parens}+[{CLOSING}]){{0,3}}{non_parens}*$"
            )),
            lead: re(&format!("^[{OPENING}{PLUS}]")),
            second_number: re(r"[\\/] *x"),
            unwanted_end: re(r"[^\p{N}\p{L}#]+$"),
            inner: [
                r"/+(.*)",
                r"(\([^(]*)",
                r"(?:\p{Z}-|-\p{Z})\p{Z}*(.+)",
                r"[\u{2012}-\u{2015}\u{FF0D}]\p{Z}*(.+)",
                r"\.+\p{Z}*([^.]+)",
                r"\p{Z}+(\P{Z}+)",
            ]
            .into_iter()
            .map(re)
            .collect(),
        }
    })
}

/// A number found in typed text: its byte range and E.164 form.
struct Found {
    start: usize,
    end: usize,
    e164: String,
}

/// Phone numbers in typed text (byte spans).
pub(crate) fn typed(text: &str, region: Option<Id>) -> Vec<Item> {
    let p = patterns();
    let mut out = Vec::new();
    let mut index = 0;
    while index < text.len() {
        let mut tries = 0;
        let Some(m) = p.candidate.find_at(text, index) else {
            break;
        };
        let mut candidate = m.as_str();
        if let Some(s) = p.second_number.find(candidate) {
            candidate = &candidate[..s.start()];
        }
        match extract_match(text, candidate, m.start(), region, &mut tries) {
            Some(f) => {
                index = f.end.max(m.start() + 1);
                out.push(Item {
                    kind: ItemKind::Phone,
                    value: text[f.start..f.end].to_owned(),
                    normalized: f.e164,
                    confidence: 0.95,
                    source: Source::Body,
                    span: (f.start, f.end),
                });
            }
            None => {
                index = (m.start() + candidate.len()).max(m.start() + 1);
            }
        }
        // Stay on a character boundary.
        while index < text.len() && !text.is_char_boundary(index) {
            index += 1;
        }
    }
    out
}

fn extract_match(
    text: &str,
    candidate: &str,
    offset: usize,
    region: Option<Id>,
    tries: &mut usize,
) -> Option<Found> {
    let p = patterns();
    // Publication pages are checked per inner candidate (in `parse_and_verify`), as in the
    // current matcher: "(510) 555-0142 (415) 555-0199" holds two numbers.
    if p.slash_dates.is_match(candidate) {
        return None;
    }
    if p.time_stamp.is_match(candidate)
        && text
            .get(offset + candidate.len()..)
            .is_some_and(|rest| p.time_suffix.is_match(rest))
    {
        return None;
    }
    parse_and_verify(text, candidate, offset, region)
        .or_else(|| inner_match(text, candidate, offset, region, tries))
}

/// A number inside a candidate that is not one as a whole ("(650) 223 3345 (754) 223 3321",
/// "12345 - 332-445-1234").
fn inner_match(
    text: &str,
    candidate: &str,
    offset: usize,
    region: Option<Id>,
    tries: &mut usize,
) -> Option<Found> {
    let p = patterns();
    let trim = |s: &str| -> usize { p.unwanted_end.find(s).map_or(s.len(), |m| m.start()) };
    for inner in &p.inner {
        let mut first = true;
        for caps in inner.captures_iter(candidate) {
            if *tries >= MAX_TRIES {
                return None;
            }
            let (Some(all), Some(group)) = (caps.get(0), caps.get(1)) else {
                continue;
            };
            if first {
                let before = &candidate[..all.start()];
                let before = &before[..trim(before)];
                if let Some(f) = parse_and_verify(text, before, offset, region) {
                    return Some(f);
                }
                *tries += 1;
                first = false;
            }
            let g = group.as_str();
            let g = &g[..trim(g)];
            if let Some(f) = parse_and_verify(text, g, offset + group.start(), region) {
                return Some(f);
            }
            *tries += 1;
        }
    }
    // The older matcher's "without the last group", kept because SMS runs a time or a count
    // into the number ("+49 160 98765432 3pm"): drop up to two trailing groups.
    let mut rest = candidate;
    for _ in 0..2 {
        let Some(cut) = rest.trim_end().rfind(char::is_whitespace) else {
            break;
        };
        rest = &rest[..cut];
        let rest = &rest[..trim(rest)];
        if let Some(f) = parse_and_verify(text, rest, offset, region) {
            return Some(f);
        }
        *tries += 1;
    }
    None
}

/// Latin letters (and the combining marks that follow them), which a number never touches.
fn is_latin_letter(c: char) -> bool {
    let combining = ('\u{0300}'..='\u{036F}').contains(&c);
    // Basic Latin to Latin Extended-B, and Latin Extended Additional.
    let latin = c < '\u{0250}' || ('\u{1E00}'..='\u{1EFF}').contains(&c);
    combining || (c.is_alphabetic() && latin)
}

/// '%' and currency symbols: "$5,000,000" or "15%" is not a phone number.
fn is_invalid_punctuation(c: char) -> bool {
    c == '%'
        || matches!(
            c,
            '$' | '€' | '£' | '¥' | '₹' | '¢' | '₩' | '₽' | '₺' | '₪' | '฿'
        )
}

fn parse_and_verify(
    text: &str,
    candidate: &str,
    offset: usize,
    region: Option<Id>,
) -> Option<Found> {
    let p = patterns();
    if candidate.is_empty() || !p.brackets.is_match(candidate) || p.pub_pages.is_match(candidate) {
        return None;
    }
    if offset > 0 && !p.lead.is_match(candidate) {
        let prev = text.get(..offset)?.chars().next_back()?;
        if is_invalid_punctuation(prev) || is_latin_letter(prev) {
            return None;
        }
    }
    let end = offset + candidate.len();
    if let Some(next) = text.get(end..).and_then(|r| r.chars().next()) {
        if is_invalid_punctuation(next) || is_latin_letter(next) {
            return None;
        }
    }
    // A national number next to a place name ("Paris number: 01 45 67 89 10") is read in that
    // place's region first, then in the sender's.
    let hinted = || {
        let hint = hinted_region(text, offset, end)?;
        (Some(hint) != region).then(|| verified(candidate, Some(hint)))?
    };
    let e164 = hinted().or_else(|| verified(candidate, region))?;
    Some(Found {
        start: offset,
        end,
        e164,
    })
}

/// Leniency `VALID`: a valid number, written with its national prefix when its country's
/// format requires one.
fn verified(candidate: &str, region: Option<Id>) -> Option<String> {
    let n = parse(region, candidate)?;
    if !phonenumber::is_valid(&n) || !national_prefix_present_if_required(&n, candidate) {
        return None;
    }
    Some(n.format().mode(phonenumber::Mode::E164).to_string())
}

/// libphonenumber's `isNationalPrefixPresentIfRequired`: "20 7946 0018" (London without its
/// "0") is not taken for a British number.
fn national_prefix_present_if_required(n: &phonenumber::PhoneNumber, raw: &str) -> bool {
    if n.code().source() != phonenumber::country::Source::Default {
        return true;
    }
    let Some(meta) = n.metadata(&phonenumber::metadata::DATABASE) else {
        return true;
    };
    let Some(prefix) = meta.national_prefix() else {
        return true;
    };
    let national = n.national().to_string();
    let rule = meta.formats().iter().find(|f| {
        let leading_ok = f
            .leading_digits()
            .last()
            .is_none_or(|l| l.find(&national).is_some_and(|m| m.start() == 0));
        leading_ok
            && f.pattern()
                .find(&national)
                .is_some_and(|m| m.start() == 0 && m.end() == national.len())
    });
    let Some(rule) = rule else {
        return true;
    };
    let needs_prefix = rule
        .national_prefix()
        .is_some_and(|r| r.contains("$NP") && !rule.is_national_prefix_optional());
    if !needs_prefix {
        return true;
    }
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    digits.starts_with(prefix) && !national.starts_with(prefix)
        || digits.starts_with(&format!("{prefix}{national}"))
}

/// The region of a country, city or demonym written within a few words before or after a
/// number, on the same line ("Munich office: 089 …", "02 9374 4000 (Sydney)").
fn hinted_region(text: &str, start: usize, end: usize) -> Option<Id> {
    const WINDOW: usize = 48;
    let mut from = start.saturating_sub(WINDOW);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    let mut to = (end + WINDOW).min(text.len());
    while !text.is_char_boundary(to) {
        to -= 1;
    }
    let before = text.get(from..start)?;
    let before = before.rsplit('\n').next().unwrap_or(before);
    let after = text.get(end..to)?;
    let after = after.split('\n').next().unwrap_or(after);
    // Nearest first: the words just before the number, then those after it.
    let words_before: Vec<&str> = before
        .split(|c: char| !(c.is_alphabetic() || c == '\''))
        .filter(|w| w.chars().next().is_some_and(char::is_uppercase))
        .collect();
    let words_after: Vec<&str> = after
        .split(|c: char| !(c.is_alphabetic() || c == '\''))
        .filter(|w| w.chars().next().is_some_and(char::is_uppercase))
        .collect();
    let lookup = |words: &[&str], i: usize| -> Option<&'static str> {
        // Two-word names first ("New York", "Sao Paulo").
        let two = words
            .get(i + 1)
            .and_then(|next| gazetteer::region_of(&format!("{} {next}", words[i])));
        two.or_else(|| gazetteer::region_of(words[i]))
    };
    let found = (0..words_before.len())
        .rev()
        .find_map(|i| lookup(&words_before, i))
        .or_else(|| (0..words_after.len()).find_map(|i| lookup(&words_after, i)))?;
    found.parse().ok()
}

/// Phone numbers spoken in a transcript (byte spans).
pub(crate) fn spoken(text: &str, region: Option<Id>) -> Vec<Item> {
    spoken::digit_runs(text, 7)
        .into_iter()
        .filter_map(|(digits, start, end)| {
            // "plus four four ...": an international number.
            let before = text[..start].trim_end();
            let plus = before.len().checked_sub(4).and_then(|p| {
                before
                    .get(p..)
                    .filter(|w| w.eq_ignore_ascii_case("plus"))
                    .map(|_| p)
            });
            let (normalized, start) = match plus {
                Some(p) => (e164(&format!("+{digits}"), region)?, p),
                None => (e164(&digits, region)?, start),
            };
            Some(Item {
                kind: ItemKind::Phone,
                value: text[start..end].to_owned(),
                normalized,
                // Recognizers mishear digits: lower than typed numbers.
                confidence: 0.75,
                source: Source::Body,
                span: (start, end),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str, region: Option<Id>) -> Vec<String> {
        typed(text, region)
            .into_iter()
            .map(|i| i.normalized)
            .collect()
    }

    #[test]
    fn international_numbers_with_spaces() {
        for (t, want) in [
            ("cell +49 160 98765432 after 6", "+4916098765432"),
            ("+33 1 53 43 43 00, room 812", "+33153434300"),
            ("ring +353 87 765 4321 today", "+353877654321"),
            ("+44 20 7946 0321", "+442079460321"),
            ("+55 21 99876 5432 wants", "+5521998765432"),
            ("Milan: +39 02 8901 2345 (ask)", "+390289012345"),
            ("+39 333 765 4321", "+393337654321"),
        ] {
            assert_eq!(found(t, Some(Id::US)), vec![want], "{t}");
        }
    }

    #[test]
    fn a_number_followed_by_more_digits_keeps_its_own() {
        assert_eq!(
            found("+49 160 98765432 3pm", Some(Id::US)),
            vec!["+4916098765432"]
        );
        assert_eq!(
            found("(510) 555-0142 (415) 555-0199", Some(Id::US)),
            vec!["+15105550142", "+14155550199"]
        );
    }

    #[test]
    fn trunk_prefix_numbers_read_in_the_named_region() {
        assert_eq!(
            found("Munich office: 089 2180 3344, ask for Katrin", Some(Id::US)),
            vec!["+498921803344"]
        );
        assert_eq!(
            found("our rep is on 02 9374 4000 (Sydney)", Some(Id::US)),
            vec!["+61293744000"]
        );
        assert_eq!(
            found("Brazil contact: Thiago, (11) 98123-4567", Some(Id::GB)),
            vec!["+5511981234567"]
        );
        // No hint: a national number that is not valid here stays unread.
        assert!(found("call 089 2180 3344", Some(Id::US)).is_empty());
    }

    #[test]
    fn dates_pages_money_and_words_are_not_numbers() {
        for t in [
            "due 3/10/2011 sharp",
            "Chen Li. VLDB J. 12(3): 211-227 (2003).",
            "order 1234567 ships",
            "abc8005550199",
            "8005550199def",
            "$4155550199",
            "4155550199%",
            "at 2026-06-03 10:30",
        ] {
            assert!(found(t, Some(Id::US)).is_empty(), "{t}");
        }
    }

    #[test]
    fn dotted_toll_free_and_extensions() {
        assert_eq!(found("1.312.555.0147", Some(Id::US)), vec!["+13125550147"]);
        assert_eq!(
            found("Toll free: 1 (888) 555-0172, have", Some(Id::US)),
            vec!["+18885550172"]
        );
        let items = typed("Tomasz 1-877-555-0148 ext 3 — ask", Some(Id::US));
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].normalized, "+18775550148");
        assert_eq!(items[0].value, "1-877-555-0148 ext 3");
    }

    #[test]
    fn a_national_prefix_is_required_where_the_format_requires_it() {
        assert_eq!(found("020 7946 0018", Some(Id::GB)), vec!["+442079460018"]);
        assert!(found("20 7946 0018", Some(Id::GB)).is_empty());
    }

    #[test]
    fn odd_input_does_not_panic() {
        for t in [
            "",
            "+",
            "++++",
            "((((((1",
            "5".repeat(500).as_str(),
            "１２３４５６７８９０",
            "+\u{FF0B}1 (",
            "𝟙𝟚𝟛𝟜𝟝𝟞𝟟𝟠𝟡𝟘",
            "ext 1",
            "1 ext",
            "#1#2#3",
            "\u{0301}5551234567\u{0301}",
        ] {
            for r in [None, Some(Id::US), Some(Id::DE)] {
                for i in typed(t, r) {
                    assert_eq!(&t[i.span.0..i.span.1], i.value);
                }
            }
        }
    }
}
