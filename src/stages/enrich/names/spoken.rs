//! Names in lower-case transcripts: a cue or a gazetteer given name + surname pair (see the
//! parent module).

use super::words::{SPOKEN_STOP, TITLES};
use super::{cue_before, flags, is_word, Found};
use crate::stages::enrich::gazetteer::{self, NameFlags};
use crate::stages::enrich::lex::{self, Tok};

/// Longest spoken name, in words ("ana sofia mendez").
const MAX_WORDS: usize = 3;

/// Words after which an everyday-word surname still ends a name ("george grey at the …"), as
/// opposed to a verb's object ("oliver ring me").
const AFTER_NAME: &[&str] = &[
    "at", "and", "or", "about", "from", "on", "in", "for", "is", "was", "will", "said", "says",
    "from", "tomorrow", "today", "tonight", "with", "who", "when", "please", "thanks",
];

fn candidate(t: &Tok) -> bool {
    is_word(t)
        && t.w.chars().count() >= 2
        && !SPOKEN_STOP.contains(&t.w.as_str())
        && !lex::is_calendar_word(&t.w)
        && lex::number_word(&t.w).is_none()
        && lex::ordinal_word(&t.w).is_none()
}

pub(super) fn names(_text: &str, toks: &[Tok]) -> Vec<Found> {
    let mut out: Vec<Found> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        match name_at(toks, i, &out) {
            Some(f) => {
                i = f.end;
                out.push(f);
            }
            None => i += 1,
        }
    }
    out
}

fn name_at(toks: &[Tok], i: usize, found: &[Found]) -> Option<Found> {
    let t = toks.get(i)?;
    if !candidate(t) {
        return None;
    }
    let head = flags(t);
    let titled = i > 0 && TITLES.contains(&toks[i - 1].w.as_str());
    let cue = cue_before(toks, i);
    let listed = i >= 2
        && matches!(toks[i - 1].w.as_str(), "and" | "or")
        && found.last().is_some_and(|f| f.end + 1 == i);
    let accepted_head = if titled {
        head.given || head.surname
    } else if cue.is_some_and(|c| c.explicit) {
        // "this is renee", "its walter": any given name, even one that is also a word; after
        // "my name is" / "this is", any word that is not a function word ("kenji").
        head.given
            || (head.surname && !head.word)
            || cue.is_some_and(|c| {
                c.confidence >= 0.8
                    && c.words
                        .iter()
                        .any(|w| matches!(*w, "name" | "name's" | "named" | "this"))
            })
    } else {
        (cue.is_some() || listed) && head.given && !head.word
    };
    let confidence = if accepted_head {
        if titled || cue.is_some_and(|c| c.confidence >= 0.85) {
            0.6
        } else {
            0.45
        }
    } else if head.given && !head.word {
        // No cue: only a given name followed by a surname ("maya chen").
        let next = toks.get(i + 1).filter(|n| candidate(n))?;
        let f = flags(next);
        if !f.surname || f.word {
            return None;
        }
        0.4
    } else {
        return None;
    };
    let mut end = i + 1;
    while end < toks.len() && end - i < MAX_WORDS {
        let next = &toks[end];
        if !candidate(next) || !extends(flags(next), toks.get(end + 1)) {
            break;
        }
        end += 1;
    }
    // A pair of words that is a city ("san jose") is a place.
    let words: Vec<&str> = toks[i..end].iter().map(|t| t.w.as_str()).collect();
    if words.len() > 1 && gazetteer::is_place(&words.join(" ")) {
        return None;
    }
    if end - i == 1 && !accepted_head {
        return None;
    }
    Some(Found {
        first: i,
        end,
        confidence,
    })
}

/// Whether a word continues a name: a surname or a second given name; one that is also an
/// everyday word ("grey", "ring") only when what follows it ends the name.
fn extends(f: NameFlags, after: Option<&Tok>) -> bool {
    if !(f.surname || f.given) {
        return false;
    }
    !f.word || after.is_none_or(|a| AFTER_NAME.contains(&a.w.as_str()))
}
