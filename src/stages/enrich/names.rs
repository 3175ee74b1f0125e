//! Contact names around cues ("met Dana Reyes", "this is Priya", "my name is dana reyes").
//!
//! Typed text: one to three capitalized words right after a cue; two or more words score
//! higher than one. Transcripts are lowercase, so only the cue tells a name: one or two words
//! after it that are not on a stop-list of function words, with lower confidence. Hand-written:
//! name-finding crates are trained models (too heavy for this stage) or need capitals.
//! Normalized value: the words with their first letters upper-cased ("Dana Reyes").

use super::item::{Item, ItemKind, Source};
use super::lex::{self, Tok};

/// Cues after which a name follows, with the confidence they lend: the explicit ones first.
const CUES: &[(&[&str], f32)] = &[
    (&["my", "name", "is"], 0.9),
    (&["her", "name", "is"], 0.9),
    (&["his", "name", "is"], 0.9),
    (&["their", "name", "is"], 0.9),
    (&["name", "is"], 0.85),
    (&["name's"], 0.85),
    (&["this", "is"], 0.8),
    (&["it's"], 0.7),
    (&["its"], 0.6),
    (&["i'm"], 0.7),
    (&["talk", "to"], 0.8),
    (&["talked", "to"], 0.8),
    (&["talk", "with"], 0.8),
    (&["spoke", "with"], 0.8),
    (&["spoke", "to"], 0.8),
    (&["speak", "to"], 0.8),
    (&["speak", "with"], 0.8),
    (&["reach", "out", "to"], 0.8),
    (&["follow", "up", "with"], 0.8),
    (&["meeting", "with"], 0.8),
    (&["met", "with"], 0.8),
    (&["ask", "for"], 0.8),
    (&["intro", "to"], 0.75),
    (&["introduce", "you", "to"], 0.8),
    (&["met"], 0.8),
    (&["meet"], 0.75),
    (&["call"], 0.75),
    (&["called"], 0.75),
    (&["text"], 0.7),
    (&["texted"], 0.7),
    (&["email"], 0.7),
    (&["emailed"], 0.7),
    (&["ask"], 0.75),
    (&["asked"], 0.75),
    (&["tell"], 0.7),
    (&["told"], 0.7),
    (&["ping"], 0.7),
    (&["contact"], 0.7),
    (&["from"], 0.6),
    (&["with"], 0.6),
    (&["cc"], 0.7),
    (&["thanks"], 0.6),
    (&["hi"], 0.6),
    (&["hey"], 0.6),
    (&["dear"], 0.7),
    // "w/ Marcus": SMS shorthand for "with" (the lexer drops the slash).
    (&["w"], 0.6),
];

/// Cues strong enough to read a lowercase transcript word as a name.
const SPOKEN_CUES: &[&str] = &[
    "my name is",
    "her name is",
    "his name is",
    "their name is",
    "name is",
    "name's",
    "this is",
    "its",
    "it's",
    "i'm",
    "met",
    "met with",
    "call",
    "talk to",
    "talked to",
    "spoke with",
    "spoke to",
    "speak to",
    "speak with",
    "ask",
    "ask for",
    "meeting with",
    "follow up with",
    "reach out to",
    "text",
    "email",
];

/// Capitalized words that still are not names (sentence starts, pronouns, titles handled apart).
const CAP_STOP: &[&str] = &[
    "i", "i'm", "i'll", "i'd", "me", "you", "him", "her", "them", "us", "we", "they", "it", "the",
    "a", "an", "this", "that", "back", "asap", "re", "about", "ok", "okay", "thanks", "please",
    "mom", "dad", "everyone", "team", "all", "guys", "there", "here", "hello", "hi", "hey", "call",
    "text", "email", "meet", "met", "at", "and", "or", "my", "your", "our", "his", "their", "soon",
    "later", "now", "again", "when", "if", "to", "for", "on", "in",
];

/// Words that follow a cue in speech without being a name.
const SPOKEN_STOP: &[&str] = &[
    "a",
    "about",
    "after",
    "again",
    "ago",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "anyone",
    "anything",
    "are",
    "around",
    "as",
    "asap",
    "at",
    "back",
    "be",
    "because",
    "been",
    "before",
    "but",
    "by",
    "bye",
    "call",
    "called",
    "calling",
    "can",
    "cell",
    "coffee",
    "could",
    "did",
    "didn't",
    "dinner",
    "do",
    "does",
    "doesn't",
    "don't",
    "dont",
    "down",
    "email",
    "even",
    "everyone",
    "everything",
    "first",
    "for",
    "from",
    "get",
    "going",
    "gonna",
    "good",
    "got",
    "great",
    "guys",
    "had",
    "has",
    "have",
    "he",
    "hello",
    "her",
    "here",
    "hey",
    "hi",
    "him",
    "his",
    "home",
    "how",
    "i",
    "if",
    "im",
    "important",
    "in",
    "into",
    "is",
    "it",
    "it's",
    "its",
    "just",
    "know",
    "later",
    "let",
    "let's",
    "lets",
    "like",
    "lunch",
    "me",
    "meeting",
    "message",
    "might",
    "more",
    "my",
    "need",
    "needs",
    "new",
    "next",
    "nice",
    "no",
    "not",
    "nothing",
    "now",
    "number",
    "of",
    "off",
    "office",
    "ok",
    "okay",
    "on",
    "one",
    "or",
    "our",
    "out",
    "over",
    "people",
    "phone",
    "please",
    "quick",
    "quickly",
    "re",
    "real",
    "really",
    "regarding",
    "reminder",
    "right",
    "said",
    "say",
    "says",
    "see",
    "send",
    "sent",
    "she",
    "should",
    "so",
    "some",
    "someone",
    "something",
    "soon",
    "sorry",
    "still",
    "sure",
    "team",
    "tell",
    "text",
    "than",
    "thank",
    "thanks",
    "that",
    "the",
    "their",
    "them",
    "then",
    "there",
    "they",
    "this",
    "those",
    "to",
    "too",
    "up",
    "us",
    "very",
    "voice",
    "wanted",
    "wants",
    "was",
    "we",
    "well",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "why",
    "will",
    "with",
    "would",
    "yeah",
    "yes",
    "you",
    "your",
    "you're",
    "calling",
    "just",
    "going",
    "again",
    "tomorrow",
    "today",
    "tonight",
    "message",
    "quick",
    "real",
    "regarding",
    "ring",
    "give",
    "gave",
    "here's",
    "heres",
    "speaking",
    "there's",
];

/// Titles kept out of the name ("Dr. Patel" is "Patel").
const TITLES: &[&str] = &["dr", "mr", "mrs", "ms", "miss", "prof", "mx"];

fn is_word(t: &Tok) -> bool {
    !t.punct
        && t.w
            .chars()
            .all(|c| c.is_alphabetic() || c == '\'' || c == '-')
}

/// Contact names in `text` (byte spans).
pub(crate) fn names(text: &str, source: Source) -> Vec<Item> {
    let toks = lex::lex(text);
    let mut items = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let Some((cue_len, conf, cue)) = cue_at(&toks, i) else {
            i += 1;
            continue;
        };
        let start = i + cue_len;
        // "Dana from Acme": after a name, "from" introduces an organisation.
        let after_name = i > 0 && toks[i - 1].cap && is_word(&toks[i - 1]);
        if cue == "from" && after_name {
            i = start;
            continue;
        }
        let found = if source == Source::Transcript {
            spoken_name(&toks, start, &cue)
        } else {
            typed_name(&toks, start)
        };
        match found {
            Some((first, end)) => {
                let (sb, eb) = (toks[first].start, toks[end - 1].end);
                let parts: Vec<&str> = toks[first..end]
                    .iter()
                    .map(|t| &text[t.start..t.end])
                    .collect();
                let count = parts.len();
                let confidence = if source == Source::Transcript {
                    if conf >= 0.85 {
                        0.6
                    } else {
                        0.4
                    }
                } else if count >= 2 {
                    conf
                } else {
                    conf - 0.15
                };
                items.push(Item {
                    kind: ItemKind::Contact,
                    value: text[sb..eb].to_owned(),
                    normalized: lex::title_case(parts),
                    confidence,
                    source,
                    span: (sb, eb),
                });
                i = end;
            }
            None => i = start,
        }
    }
    items
}

/// The longest cue at `i`: its length in tokens, confidence and text.
fn cue_at(toks: &[Tok], i: usize) -> Option<(usize, f32, String)> {
    CUES.iter()
        .filter(|(words, _)| {
            words
                .iter()
                .enumerate()
                .all(|(k, w)| toks.get(i + k).is_some_and(|t| t.w == *w))
        })
        .max_by_key(|(words, _)| words.len())
        .map(|(words, conf)| (words.len(), *conf, words.join(" ")))
}

/// One to three capitalized words at `i` (after an optional title): their token range.
fn typed_name(toks: &[Tok], i: usize) -> Option<(usize, usize)> {
    // "Contact: Luis Hernández".
    let mut first = if toks.get(i).is_some_and(|t| t.w == ":") {
        i + 1
    } else {
        i
    };
    if toks
        .get(first)
        .is_some_and(|t| t.cap && TITLES.contains(&t.w.as_str()))
    {
        first += 1;
        if toks.get(first).is_some_and(|t| t.w == ".") {
            first += 1;
        }
    }
    let mut end = first;
    while end < toks.len() && end - first < 3 {
        let t = &toks[end];
        if !(t.cap && is_word(t)) || CAP_STOP.contains(&t.w.as_str()) || lex::is_calendar_word(&t.w)
        {
            break;
        }
        end += 1;
    }
    (end > first).then_some((first, end))
}

/// One or two lowercase words after a spoken cue.
fn spoken_name(toks: &[Tok], i: usize, cue: &str) -> Option<(usize, usize)> {
    if !SPOKEN_CUES.contains(&cue) {
        return None;
    }
    let ok = |t: &Tok| {
        is_word(t)
            && t.w.chars().count() >= 2
            && !SPOKEN_STOP.contains(&t.w.as_str())
            && !lex::is_calendar_word(&t.w)
            && lex::number_word(&t.w).is_none()
            && lex::ordinal_word(&t.w).is_none()
    };
    let mut end = i;
    while end < toks.len() && end - i < 2 && ok(&toks[end]) {
        end += 1;
    }
    (end > i).then_some((i, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str, source: Source) -> Vec<(String, f32)> {
        names(text, source)
            .into_iter()
            .map(|i| (i.normalized, i.confidence))
            .collect()
    }

    fn norms(text: &str, source: Source) -> Vec<String> {
        found(text, source).into_iter().map(|(n, _)| n).collect()
    }

    #[test]
    fn typed_names_after_cues() {
        assert_eq!(
            norms(
                "met Dana Reyes at the Oakland expo, her cell is 510-555-0142",
                Source::Body
            ),
            vec!["Dana Reyes"]
        );
        assert_eq!(
            norms("Call Priya re pricing tomorrow", Source::Body),
            vec!["Priya"]
        );
        assert_eq!(
            norms("Hi, this is Marcus O'Neil from Acme", Source::Body),
            vec!["Marcus O'Neil"]
        );
        assert_eq!(norms("talk to Dr. Patel", Source::Body), vec!["Patel"]);
    }

    #[test]
    fn two_words_score_higher_than_one_and_typed_higher_than_spoken() {
        let two = found("met Dana Reyes today", Source::Body);
        let one = found("met Dana today", Source::Body);
        let spoken = found("met dana reyes today", Source::Transcript);
        assert!(two[0].1 > one[0].1);
        assert!(two[0].1 > spoken[0].1);
    }

    #[test]
    fn cues_without_a_name_give_nothing() {
        for t in [
            "met at the cafe",
            "call me tomorrow",
            "Call Me Maybe",
            "this is great",
            "text Monday",
            "from 9 to 5",
            "ask about pricing",
        ] {
            assert!(norms(t, Source::Body).is_empty(), "{t}");
        }
        for t in [
            "call me back tomorrow",
            "met at the cafe",
            "this is a reminder",
            "ask about the quote",
            "its five thirty",
        ] {
            assert!(norms(t, Source::Transcript).is_empty(), "{t}");
        }
    }

    #[test]
    fn transcripts_use_cues_only() {
        assert_eq!(
            norms(
                "hi my name is dana reyes and my number is five one zero",
                Source::Transcript
            ),
            vec!["Dana Reyes"]
        );
        assert_eq!(
            norms("hey its priya calling about the quote", Source::Transcript),
            vec!["Priya"]
        );
        assert_eq!(
            norms("remember to call marcus tomorrow", Source::Transcript),
            vec!["Marcus"]
        );
        // Capitalized words without a cue are not read as names in transcripts either.
        assert!(norms("dana reyes", Source::Transcript).is_empty());
    }

    #[test]
    fn organisation_after_from_is_not_a_name() {
        assert_eq!(norms("Hi it's Dana from Acme", Source::Body), vec!["Dana"]);
    }

    #[test]
    fn odd_unicode_does_not_panic_and_keeps_spans() {
        for t in [
            "met Zoë Ngô 👋",
            "met",
            "met Ｄａｎａ",
            "call İlkay Gündoğan",
            "this is \u{0301}\u{0301}",
            "my name is",
        ] {
            for s in [Source::Body, Source::Transcript] {
                for i in names(t, s) {
                    assert_eq!(&t[i.span.0..i.span.1], i.value);
                }
            }
        }
        assert_eq!(norms("met Zoë Ngô", Source::Body), vec!["Zoë Ngô"]);
    }
}
