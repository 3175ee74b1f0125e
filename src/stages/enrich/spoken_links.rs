//! Emails and URLs as a speech recognizer writes them: "m rossi at mail dot rossidesign dot
//! it", "w w w dot bayview dash homes dot com slash listings slash four one two".
//!
//! - "dot", "dash" (or "hyphen"), "underscore", "slash" and "at" stand for their characters;
//! - letters spelled one by one join ("t k o" → "tko", "w w w" → "www"), and so do spoken
//!   digits in a path ("four one two" → "412");
//! - a domain is one or more labels joined by "dot" that ends in a known top-level domain
//!   (so "the dot com party" and "meet me at five" are not addresses);
//! - in a mailbox's domain, two or three words before the first "dot" join ("studio nine dot
//!   com" → "studionine.com"); a URL's first label is one word, so "go to reservations dot …"
//!   does not take "go to" into the host.

use super::item::{Item, ItemKind, Source};
use super::spoken::{self, Token};

/// Top-level domains recognised in spoken URLs and emails ("acme dot io", "co dot uk").
const TLDS: &[&str] = &[
    "com", "org", "net", "io", "co", "ai", "dev", "app", "us", "uk", "ca", "de", "fr", "it", "es",
    "ie", "au", "nz", "in", "jp", "nl", "be", "ch", "at", "se", "no", "dk", "fi", "pl", "br", "mx",
    "edu", "gov", "info", "biz", "me", "tv", "ly", "xyz", "tech", "studio", "design", "shop",
    "store", "online", "site", "health", "law", "agency",
];

/// Words that are never a mailbox or the first label of a host.
const STOP_WORDS: &[&str] = &[
    "the",
    "a",
    "an",
    "my",
    "me",
    "you",
    "him",
    "her",
    "us",
    "them",
    "this",
    "that",
    "it",
    "is",
    "at",
    "dot",
    "dash",
    "slash",
    "and",
    "or",
    "to",
    "of",
    "in",
    "on",
    "see",
    "for",
    "go",
    "our",
    "your",
    "their",
    "his",
    "its",
    "it's",
    "by",
    "from",
    "with",
    "email",
    // Words that precede "at <domain>" in speech without being a mailbox ("our site at acme dot io").
    "site",
    "website",
    "online",
    "page",
    "link",
    "look",
    "find",
    "visit",
    "check",
    "out",
    "store",
    "shop",
    "here",
    "there",
    "reach",
    "contact",
    "address",
    "send",
    "write",
    "message",
    // Verbs and nouns that precede "at <site>" ("book at tickets dot …", "apply at …").
    "book",
    "apply",
    "register",
    "order",
    "buy",
    "sign",
    "log",
    "up",
    "more",
    "info",
    "details",
    "available",
    "listed",
    "posted",
    "live",
    "all",
    "everything",
    "menu",
    "form",
];

/// The most labels in a domain and dash-joined parts in a label: bounds the work on any
/// input ("a dot a dot a …").
const MAX_LABELS: usize = 8;

/// The most tokens a spoken mailbox spans ("j o h n dot s m i t h" is 10).
const MAX_MAILBOX_TOKENS: usize = 16;

/// The lower-case words of a transcript with their byte ranges.
struct Words<'a> {
    toks: Vec<Token<'a>>,
    lower: Vec<String>,
}

impl Words<'_> {
    fn get(&self, i: usize) -> Option<&str> {
        self.lower.get(i).map(String::as_str)
    }

    fn is(&self, i: usize, w: &str) -> bool {
        self.get(i) == Some(w)
    }

    /// A plain word that can be part of a label: letters and digits only.
    fn plain(&self, i: usize) -> Option<&str> {
        self.get(i).filter(|w| {
            !w.is_empty()
                && w.chars().all(|c| c.is_alphanumeric())
                && !matches!(
                    *w,
                    "dot" | "dash" | "hyphen" | "underscore" | "slash" | "at"
                )
        })
    }

    fn letter(&self, i: usize) -> Option<char> {
        let w = self.get(i)?;
        let mut chars = w.chars();
        let c = chars.next()?;
        (chars.next().is_none() && c.is_ascii_lowercase()).then_some(c)
    }
}

/// Emails and URLs spoken in `text` (byte spans).
pub(crate) fn spoken_links(text: &str) -> Vec<Item> {
    let toks = spoken::tokens(text);
    let lower = toks.iter().map(|t| t.text.to_lowercase()).collect();
    let w = Words { toks, lower };
    let mut items = Vec::new();
    let mut taken: Vec<(usize, usize)> = Vec::new();
    for a in 0..w.toks.len() {
        if !w.is(a, "at") {
            continue;
        }
        let Some((user, first)) = mailbox_before(&w, a) else {
            continue;
        };
        if w.plain(a + 1).is_none_or(|d| STOP_WORDS.contains(&d)) {
            continue;
        }
        let Some((domain, end)) = domain_at(&w, a + 1, 3).filter(|(d, _)| !d.starts_with("www."))
        else {
            continue;
        };
        taken.push((first, end));
        items.push(item(
            text,
            &w,
            first,
            end,
            ItemKind::Email,
            format!("{user}@{domain}"),
        ));
    }
    let mut i = 0;
    while i < w.toks.len() {
        if taken.iter().any(|(s, e)| (*s..*e).contains(&i)) {
            i += 1;
            continue;
        }
        let starts =
            w.plain(i).is_some_and(|t| !STOP_WORDS.contains(&t)) || w.letter(i) == Some('w');
        let Some((domain, mut end)) = starts.then(|| domain_at(&w, i, 1)).flatten() else {
            i += 1;
            continue;
        };
        let mut url = domain;
        while w.is(end, "slash") {
            let Some((segment, next)) = path_segment(&w, end + 1) else {
                break;
            };
            url.push('/');
            url.push_str(&segment);
            end = next;
        }
        items.push(item(text, &w, i, end, ItemKind::Url, url));
        i = end;
    }
    items
}

fn item(
    text: &str,
    w: &Words,
    first: usize,
    end: usize,
    kind: ItemKind,
    normalized: String,
) -> Item {
    let (start, stop) = (w.toks[first].start, w.toks[end - 1].end);
    Item {
        kind,
        value: text[start..stop].to_owned(),
        normalized,
        confidence: 0.7,
        source: Source::Transcript,
        span: (start, stop),
    }
}

/// The mailbox that ends just before "at" (token `a`): "dana", "jon dot smith", "t k o",
/// "m rossi", "mary underscore lee". Returns it and its first token.
fn mailbox_before(w: &Words, a: usize) -> Option<(String, usize)> {
    let last = a.checked_sub(1)?;
    let mut first = last;
    let mut user = if let Some(c) = w.letter(last) {
        c.to_string()
    } else {
        let word = w.plain(last)?;
        if STOP_WORDS.contains(&word) || spoken::digit(word).is_some() {
            return None;
        }
        word.to_owned()
    };
    // "jon dot smith", "mary underscore lee", "ann dash marie" (a few parts: the scan back
    // stays short on any input).
    let stop = last.saturating_sub(MAX_MAILBOX_TOKENS);
    while first >= stop + 2 {
        let sep = match w.get(first - 1) {
            Some("dot") => '.',
            Some("underscore") => '_',
            Some("dash" | "hyphen") => '-',
            _ => break,
        };
        let Some(part) = w.plain(first - 2).filter(|p| !STOP_WORDS.contains(p)) else {
            break;
        };
        user = format!("{part}{sep}{user}");
        first -= 2;
    }
    // Letters spelled before it: "t k o", "m rossi".
    while first > stop {
        let Some(c) = w.letter(first - 1) else {
            break;
        };
        user.insert(0, c);
        first -= 1;
    }
    Some((user, first))
}

/// One label at `i`: a word, "w w w", or words joined by "dash" ("bayview dash homes"); with
/// `max_words` > 1, up to that many plain words joined ("studio nine").
fn label_at(w: &Words, i: usize, max_words: usize) -> Option<(String, usize)> {
    if w.letter(i) == Some('w') && w.letter(i + 1) == Some('w') && w.letter(i + 2) == Some('w') {
        return Some(("www".into(), i + 3));
    }
    let mut label = w.plain(i)?.to_owned();
    let mut j = i + 1;
    let mut words = 1;
    let mut parts = 1;
    loop {
        if parts < MAX_LABELS && matches!(w.get(j), Some("dash" | "hyphen")) {
            if let Some(next) = w.plain(j + 1) {
                label.push('-');
                label.push_str(next);
                j += 2;
                parts += 1;
                continue;
            }
        }
        if words < max_words && !w.is(j + 1, "at") {
            if let Some(next) = w.plain(j).filter(|n| !STOP_WORDS.contains(n)) {
                // Only when the joined words reach a "dot": "studio nine dot com".
                if (j + 1..=i + max_words).any(|k| w.is(k, "dot")) {
                    label.push_str(next);
                    j += 1;
                    words += 1;
                    continue;
                }
            }
        }
        break;
    }
    Some((label, j))
}

/// A domain at `i`: labels joined by "dot", ending at the last label that is a top-level
/// domain. Returns it and the token after it.
fn domain_at(w: &Words, i: usize, first_label_words: usize) -> Option<(String, usize)> {
    let (first, mut j) = label_at(w, i, first_label_words)?;
    let mut labels = vec![first];
    let mut best = None;
    while w.is(j, "dot") && labels.len() < MAX_LABELS {
        let Some((label, next)) = label_at(w, j + 1, 1) else {
            break;
        };
        labels.push(label);
        j = next;
        if labels.last().is_some_and(|l| TLDS.contains(&l.as_str())) {
            best = Some((labels.join("."), j));
        }
    }
    best
}

/// A path segment after "slash": spoken digits ("four one two" → "412", "one twelve" →
/// "112"), or a label.
fn path_segment(w: &Words, i: usize) -> Option<(String, usize)> {
    let mut digits = String::new();
    let mut j = i;
    while let Some(word) = w.get(j) {
        if let Some(d) = spoken::digit(word) {
            digits.push(d);
            j += 1;
        } else if let Some(g) = spoken::number_group(word, w.get(j + 1)) {
            digits.push_str(&g.digits);
            j += if g.consumes_next { 2 } else { 1 };
        } else {
            break;
        }
    }
    if !digits.is_empty() {
        return Some((digits, j));
    }
    label_at(w, i, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(&'static str, String)> {
        spoken_links(text)
            .into_iter()
            .map(|i| (i.kind.as_str(), i.normalized))
            .collect()
    }

    #[test]
    fn multi_label_domains_dashes_and_spelled_letters() {
        assert_eq!(
            found("write to k lund at post dot nordvik dot example dot no"),
            vec![("email", "klund@post.nordvik.example.no".to_owned())]
        );
        assert_eq!(
            found("its c j at pine dash ridge dot co dot uk thanks"),
            vec![("email", "cj@pine-ridge.co.uk".to_owned())]
        );
        assert_eq!(
            found("the page is w w w dot oak dash lane dot org slash rooms slash three oh nine"),
            vec![("url", "www.oak-lane.org/rooms/309".to_owned())]
        );
        assert_eq!(
            found("book at tickets dot lakeside dot example dot com please"),
            vec![("url", "tickets.lakeside.example.com".to_owned())]
        );
    }

    #[test]
    fn dotted_mailboxes_and_words_joined_before_the_dot() {
        assert_eq!(
            found("email jon dot smith at gmail dot com"),
            vec![("email", "jon.smith@gmail.com".to_owned())]
        );
        assert_eq!(
            found("email rachel at rachel at studio nine dot com about it"),
            vec![("email", "rachel@studionine.com".to_owned())]
        );
    }

    #[test]
    fn a_site_after_at_is_a_url_not_a_mailbox() {
        assert_eq!(
            found("see the schedule at w w w dot metro dot org slash routes slash one twelve"),
            vec![("url", "www.metro.org/routes/112".to_owned())]
        );
    }

    #[test]
    fn prose_with_at_and_dot_is_not_an_address() {
        for t in [
            "meet me at five at the dot com party",
            "we are at the office",
            "dot at dot dot at",
            "see you at noon dot",
            "at",
            "w w w",
            "slash slash",
        ] {
            assert!(found(t).is_empty(), "{t}: {:?}", found(t));
        }
    }

    #[test]
    fn spans_cover_the_words() {
        let t =
            "send it to h r at acme dash labs dot com or visit acme dash labs dot com slash jobs";
        for i in spoken_links(t) {
            assert_eq!(&t[i.span.0..i.span.1], i.value);
        }
        assert_eq!(
            found(t),
            vec![
                ("email", "hr@acme-labs.com".to_owned()),
                ("url", "acme-labs.com/jobs".to_owned())
            ]
        );
    }
}
