//! Contact names, typed and spoken.
//!
//! A name is found from two kinds of evidence, weighed together:
//! - **cues** around it: "met Dana Reyes", "ask for either Gwen or Tobias", "cc'd Priyanka
//!   Rao", "Dr. Amara Osei", "Hannah Whitfield's cell", a signature after "—" or "|";
//! - a **gazetteer** of given names and surnames ([`super::gazetteer`]), which tells "Noor
//!   Haddad" (a given name, then a capitalized word) from "Greenway Supply", and is the only
//!   way to tell a name in a lower-case transcript ("with tamsin and george grey").
//!
//! Typed text ([`typed`]): runs of one to three capitalized words (particles such as "van"
//! and "de" inside), cut at punctuation, "|", "—", "+" and possessives. A run is a name after
//! an explicit cue or a title, after a weaker cue ("to", "for", "with") when it starts with a
//! known given name, or with no cue when it starts with a given name that is not also an
//! everyday word and does not end in an organisation or venue word ("Dolores Park"). After
//! "at" or "in" a run is a place, not a name.
//!
//! Transcripts ([`spoken`]): lower case, so a cue is needed ("this is renee", "ask for
//! nadia"), or two gazetteer words in a row that are a given name and a surname and neither is
//! also an everyday word ("maya chen"). Confidence is lower than for typed names.
//!
//! Normalized value: the words with their first letters upper-cased, without a title or a
//! possessive "'s" ("Dana Reyes").

mod spoken;
mod typed;
mod words;

use super::item::{Item, ItemKind, Source};
use super::lex::{self, Tok};

/// Contact names in `text` (byte spans).
pub(crate) fn names(text: &str, source: Source) -> Vec<Item> {
    let toks = lex::lex(text);
    let found = if source == Source::Transcript {
        spoken::names(text, &toks)
    } else {
        typed::names(text, &toks)
    };
    found
        .into_iter()
        .filter_map(|n| {
            let first = toks.get(n.first)?;
            let last = toks.get(n.end.checked_sub(1)?)?;
            let (sb, mut eb) = (first.start, last.end);
            // "Whitfield's": the name ends before the possessive.
            if let Some(stem) = possessive_stem(&text[last.start..last.end]) {
                eb = last.start + stem.len();
            }
            let value = text.get(sb..eb)?.to_owned();
            let words = value.split_whitespace();
            Some(Item {
                kind: ItemKind::Contact,
                normalized: lex::title_case(words),
                value,
                confidence: n.confidence,
                source,
                span: (sb, eb),
            })
        })
        .collect()
}

/// A name the finders chose: its token range and confidence.
#[derive(Debug, Clone, Copy)]
struct Found {
    first: usize,
    end: usize,
    confidence: f32,
}

/// "Whitfield's" / "Whitfield’s" without the "'s"; `None` when the word is not possessive.
fn possessive_stem(word: &str) -> Option<&str> {
    word.strip_suffix("'s")
        .or_else(|| word.strip_suffix("’s"))
        .or_else(|| word.strip_suffix("'S"))
        .filter(|s| !s.is_empty())
}

/// A word that can be part of a name: letters, apostrophes, hyphens.
fn is_word(t: &Tok) -> bool {
    !t.punct
        && !t.w.is_empty()
        && t.w
            .chars()
            .all(|c| c.is_alphabetic() || c == '\'' || c == '-')
}

/// The token's text without a possessive "'s", lower case.
fn bare(t: &Tok) -> &str {
    possessive_stem(&t.w).unwrap_or(&t.w)
}

/// What the gazetteer says about a token; a hyphenated one ("Wen-Li", "Morgan-Reid") by its
/// first part.
fn flags(t: &Tok) -> super::gazetteer::NameFlags {
    let w = bare(t);
    let f = super::gazetteer::name(w);
    if f.given || f.surname {
        return f;
    }
    match w.split_once('-') {
        Some((head, _)) => super::gazetteer::name(head),
        None => f,
    }
}

/// Whether only spaces separate tokens `a` and `b` (no "|", "—", "+", "/", line break).
fn joined(text: &str, a: &Tok, b: &Tok) -> bool {
    text.get(a.end..b.start)
        .is_some_and(|gap| gap.chars().all(|c| c == ' ' || c == '\t'))
}

/// The longest cue that ends just before token `i`, if any.
fn cue_before(toks: &[Tok], i: usize) -> Option<&'static words::Cue> {
    words::CUES
        .iter()
        .filter(|c| {
            let n = c.words.len();
            i >= n
                && c.words
                    .iter()
                    .enumerate()
                    .all(|(k, w)| toks[i - n + k].w == *w)
        })
        .max_by_key(|c| c.words.len())
}

#[cfg(test)]
mod tests;
