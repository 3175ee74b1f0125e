//! Phone numbers, emails, URLs and #tags from typed text and from transcripts.

use std::sync::OnceLock;

use linkify::{LinkFinder, LinkKind};
use regex::Regex;

use super::item::{Item, ItemKind};
use super::spoken;

/// Where the text came from; transcripts get the spoken-form extractors too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Body,
    Transcript,
}

/// Top-level domains recognised in spoken URLs and emails ("acme dot io").
const SPOKEN_TLDS: &[&str] = &[
    "com", "io", "org", "net", "co", "ai", "dev", "app", "us", "edu", "gov", "me", "info", "biz",
];

/// Words that are never the user or host of a spoken address.
const STOP_WORDS: &[&str] = &[
    "the", "a", "an", "my", "me", "you", "him", "her", "us", "them", "this", "that", "it", "is",
    "at", "dot", "and", "or", "to", "of", "in", "on", "see",
];

/// Every item in `text`. `region` (ISO 3166 alpha-2, e.g. the sender's) resolves national numbers.
pub fn extract(text: &str, source: Source, region: Option<phonenumber::country::Id>) -> Vec<Item> {
    let mut items = Vec::new();
    items.extend(typed_phones(text, region));
    items.extend(links(text));
    items.extend(tags(text));
    if source == Source::Transcript {
        items.extend(spoken_phones(text, region));
        items.extend(spoken_addresses(text));
    }
    // One item per kind and normalized value; the first occurrence keeps its span.
    let mut seen = std::collections::HashSet::new();
    items.retain(|i| seen.insert((i.kind, i.normalized.clone())));
    items.sort_by_key(|i| i.span.0);
    items
}

fn phone_candidates() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\+?\(?\d[\d\s().-]{5,}\d").expect("static regex"))
}

fn e164(digits: &str, region: Option<phonenumber::country::Id>) -> Option<String> {
    let n = phonenumber::parse(region, digits).ok()?;
    phonenumber::is_valid(&n).then(|| n.format().mode(phonenumber::Mode::E164).to_string())
}

fn typed_phones(text: &str, region: Option<phonenumber::country::Id>) -> Vec<Item> {
    phone_candidates()
        .find_iter(text)
        .filter_map(|m| {
            let normalized = e164(m.as_str(), region)?;
            Some(Item {
                kind: ItemKind::Phone,
                value: m.as_str().to_owned(),
                normalized,
                confidence: 0.95,
                span: (m.start(), m.end()),
            })
        })
        .collect()
}

fn spoken_phones(text: &str, region: Option<phonenumber::country::Id>) -> Vec<Item> {
    spoken::digit_runs(text, 7)
        .into_iter()
        .filter_map(|(digits, start, end)| {
            let normalized = e164(&digits, region)?;
            Some(Item {
                kind: ItemKind::Phone,
                value: text[start..end].to_owned(),
                normalized,
                // Recognizers mishear digits: lower than typed numbers.
                confidence: 0.75,
                span: (start, end),
            })
        })
        .collect()
}

fn links(text: &str) -> Vec<Item> {
    let mut finder = LinkFinder::new();
    finder.url_must_have_scheme(false);
    finder
        .links(text)
        .filter_map(|l| {
            let (kind, normalized) = match l.kind() {
                LinkKind::Email => (ItemKind::Email, l.as_str().to_ascii_lowercase()),
                LinkKind::Url => (ItemKind::Url, normalize_url(l.as_str())),
                _ => return None,
            };
            Some(Item {
                kind,
                value: l.as_str().to_owned(),
                normalized,
                confidence: 0.95,
                span: (l.start(), l.end()),
            })
        })
        .collect()
}

fn normalize_url(u: &str) -> String {
    let trimmed = u.trim_end_matches(['.', ',', ')']);
    let lower_scheme = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"))
        .unwrap_or(trimmed);
    match lower_scheme.split_once('/') {
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
            let start = m.start() + m.as_str().find('#').unwrap_or(0);
            Some(Item {
                kind: ItemKind::Tag,
                value: text[start..tag.end()].to_owned(),
                normalized: tag.as_str().to_lowercase(),
                confidence: 1.0,
                span: (start, tag.end()),
            })
        })
        .collect()
}

/// "dana at acme dot io" and "acme dot io slash pricing", as a recognizer writes them.
fn spoken_addresses(text: &str) -> Vec<Item> {
    let toks = spoken::tokens(text);
    let word = |i: usize| toks.get(i).map(|t| t.text.to_ascii_lowercase());
    // Prose is full of "at" and "dot": function words and number words are never an address part.
    let is_name = |w: &str| {
        !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !STOP_WORDS.contains(&w)
            && spoken::digit(w).is_none()
    };
    let mut items = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        // <host> dot <tld> (dot <tld>)* : the domain part, ending at `j` (exclusive).
        let domain_at = |k: usize| -> Option<(String, usize)> {
            let host = word(k)?;
            if !is_name(&host) || word(k + 1)? != "dot" {
                return None;
            }
            let tld = word(k + 2)?;
            if !SPOKEN_TLDS.contains(&tld.as_str()) {
                return None;
            }
            let mut domain = format!("{host}.{tld}");
            let mut j = k + 3;
            while word(j).as_deref() == Some("dot")
                && word(j + 1).is_some_and(|t| SPOKEN_TLDS.contains(&t.as_str()))
            {
                domain.push('.');
                domain.push_str(&word(j + 1).unwrap_or_default());
                j += 2;
            }
            Some((domain, j))
        };
        let user = word(i).unwrap_or_default();
        if is_name(&user) && word(i + 1).as_deref() == Some("at") {
            if let Some((domain, j)) = domain_at(i + 2) {
                let (start, end) = (toks[i].start, toks[j - 1].end);
                items.push(Item {
                    kind: ItemKind::Email,
                    value: text[start..end].to_owned(),
                    normalized: format!("{user}@{domain}"),
                    confidence: 0.7,
                    span: (start, end),
                });
                i = j;
                continue;
            }
        }
        if let Some((domain, mut j)) = domain_at(i) {
            let mut url = domain;
            while word(j).as_deref() == Some("slash") && word(j + 1).is_some_and(|w| is_name(&w)) {
                url.push('/');
                url.push_str(&word(j + 1).unwrap_or_default());
                j += 2;
            }
            let (start, end) = (toks[i].start, toks[j - 1].end);
            items.push(Item {
                kind: ItemKind::Url,
                value: text[start..end].to_owned(),
                normalized: url,
                confidence: 0.7,
                span: (start, end),
            });
            i = j;
            continue;
        }
        i += 1;
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us() -> Option<phonenumber::country::Id> {
        Some(phonenumber::country::Id::US)
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
        let items = extract(t, Source::Body, us());
        assert_eq!(find(&items, ItemKind::Phone), vec!["+15105550142"]);
        assert_eq!(find(&items, ItemKind::Tag), vec!["lead"]);
        let phone = items.iter().find(|i| i.kind == ItemKind::Phone).unwrap();
        assert_eq!(&t[phone.span.0..phone.span.1], "510-555-0142");
    }

    #[test]
    fn typed_emails_and_urls_are_normalized() {
        let items = extract(
            "call Priya re pricing, Priya@Acme.io, see https://Acme.io/pricing.",
            Source::Body,
            us(),
        );
        assert_eq!(find(&items, ItemKind::Email), vec!["priya@acme.io"]);
        assert_eq!(find(&items, ItemKind::Url), vec!["acme.io/pricing"]);
    }

    #[test]
    fn spoken_number_email_and_url_are_found_in_transcripts() {
        let t = "hi its dana my number is five one zero five five five zero one four two email me at dana at acme dot io or see acme dot io slash pricing";
        let items = extract(t, Source::Transcript, us());
        assert_eq!(find(&items, ItemKind::Phone), vec!["+15105550142"]);
        assert_eq!(find(&items, ItemKind::Email), vec!["dana@acme.io"]);
        assert_eq!(find(&items, ItemKind::Url), vec!["acme.io/pricing"]);
        for i in &items {
            assert_eq!(&t[i.span.0..i.span.1], i.value, "span points at the words");
        }
    }

    #[test]
    fn spoken_forms_are_not_read_into_typed_text_or_random_words() {
        // "at" and "dot" in prose are not addresses; a few number words are not a phone.
        let items = extract(
            "meet me at five at the dot com party",
            Source::Transcript,
            us(),
        );
        assert!(find(&items, ItemKind::Phone).is_empty());
        assert!(find(&items, ItemKind::Email).is_empty());
        let typed = extract(
            "five one zero five five five zero one four two",
            Source::Body,
            us(),
        );
        assert!(typed.is_empty(), "typed text is not parsed as speech");
    }

    #[test]
    fn invalid_numbers_and_duplicates_are_dropped() {
        let items = extract(
            "order 1234567 ships; call 510-555-0142 or (510) 555-0142",
            Source::Body,
            us(),
        );
        assert_eq!(
            find(&items, ItemKind::Phone),
            vec!["+15105550142"],
            "{items:?}"
        );
    }
}
