//! Names in typed text: capitalized runs weighed by their cue and the gazetteer (see the
//! parent module).

use super::words::{CAP_STOP, ORG_WORDS, PARTICLES, TITLES};
use super::{bare, cue_before, flags, is_word, joined, possessive_stem, Found};
use crate::stages::enrich::gazetteer;
use crate::stages::enrich::lex::{self, Tok};

/// Longest name, in words (particles not counted).
const MAX_WORDS: usize = 3;

pub(super) fn names(text: &str, toks: &[Tok]) -> Vec<Found> {
    let mut out: Vec<Found> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let Some(run) = run_at(text, toks, i) else {
            i += 1;
            continue;
        };
        match judge(text, toks, run, &out) {
            Some(found) => {
                i = found.end;
                out.push(found);
            }
            // A run that starts with a word that is no name may still hold one ("Ask Maria
            // Lopez"); an organisation or a place does not ("San Francisco").
            None if retry_inside(toks, run) => i += 1,
            None => i = run.end.max(i + 1),
        }
    }
    out
}

/// A run of capitalized words: `first..end`, after an optional title at `start`.
#[derive(Debug, Clone, Copy)]
struct Run {
    start: usize,
    first: usize,
    end: usize,
}

fn name_word(t: &Tok) -> bool {
    t.cap
        && is_word(t)
        && !CAP_STOP.contains(&bare(t))
        && !lex::is_calendar_word(bare(t))
        && !TITLES.contains(&bare(t))
}

/// The run of name-like words at `i` ("Dr. Amara Osei", "Siobhan O'Malley", "Ludwig van
/// Beethoven"), cut at anything but spaces between words and after a possessive.
fn run_at(text: &str, toks: &[Tok], i: usize) -> Option<Run> {
    let start = i;
    let mut first = i;
    let t = toks.get(i)?;
    if t.cap && TITLES.contains(&t.w.as_str()) {
        first += 1;
        if toks.get(first).is_some_and(|t| t.w == ".") {
            first += 1;
        }
    }
    if !toks.get(first).is_some_and(name_word) {
        return None;
    }
    let mut end = first + 1;
    let mut words = 1;
    while words < MAX_WORDS && possessive_stem(&toks[end - 1].w).is_none() {
        let Some(next) = toks.get(end) else { break };
        if !joined(text, &toks[end - 1], next) {
            break;
        }
        if name_word(next) {
            words += 1;
            end += 1;
        } else if PARTICLES.contains(&next.w.as_str())
            && !next.cap
            && toks
                .get(end + 1)
                .is_some_and(|n| name_word(n) && joined(text, next, n))
        {
            end += 1;
        } else {
            break;
        }
    }
    Some(Run { start, first, end })
}

fn retry_inside(toks: &[Tok], run: Run) -> bool {
    let words = &toks[run.first..run.end];
    let head = flags(&words[0]);
    let names: Vec<&str> = words.iter().map(bare).collect();
    words.len() > 1
        && (!head.given && !head.surname || head.word)
        && !words.iter().any(|t| ORG_WORDS.contains(&bare(t)))
        && !gazetteer::is_place(&names.join(" "))
}

/// Whether the run is a name, and how sure that is.
fn judge(text: &str, toks: &[Tok], run: Run, found: &[Found]) -> Option<Found> {
    let words = &toks[run.first..run.end];
    let last = words.last()?;
    let head = flags(&words[0]);
    let titled = run.first > run.start;
    let possessive = possessive_stem(&last.w).is_some();
    // An organisation or a venue ("Rivera Roofing", "Dolores Park", "Lincoln High").
    if words.iter().any(|t| ORG_WORDS.contains(&bare(t))) {
        return None;
    }
    let before = run.start.checked_sub(1).map(|b| &toks[b]);
    // "Dana from Acme": after a name, "from" introduces an organisation.
    if before.is_some_and(|b| b.w == "from") && found.last().is_some_and(|f| f.end + 1 == run.start)
    {
        return None;
    }
    let cue = cue_before(toks, run.start).filter(|c| {
        // "w" is a cue only as "w/".
        c.words != ["w"]
            || text
                .get(toks[run.start - 1].end..)
                .is_some_and(|r| r.starts_with('/'))
    });
    // After "at"/"in"/"@" a capitalized run is a place ("at Sylvia's", "in Oslo"), unless
    // they end a cue ("loop in Devon").
    if cue.is_none() && before.is_some_and(|b| matches!(b.w.as_str(), "at" | "in" | "@" | "near")) {
        return None;
    }
    let listed = follows_a_name(text, toks, run, found);
    let single = words.len() == 1;
    // "her German cell": a nationality is not a lone name.
    let demonym = single
        && gazetteer::region_of(bare(&words[0])).is_some()
        && !gazetteer::is_place(bare(&words[0]));
    let owner = possessive && before_contact_detail(toks, run.end);
    let place = gazetteer::is_place(&words.iter().map(bare).collect::<Vec<_>>().join(" "));
    let confidence = if titled {
        0.85
    } else if let Some(c) = cue.filter(|c| c.explicit) {
        if single {
            c.confidence - 0.15
        } else {
            c.confidence
        }
    } else if owner {
        0.7
    } else if (cue.is_some() || listed) && head.given && !demonym {
        if single {
            0.6
        } else {
            0.75
        }
    } else if !head.given || (head.word && !possessive) || (place || demonym) && !possessive {
        return None;
    } else if single {
        // A lone given name with no cue: "Giulia usually answers", "— Lena", "Sofia's #".
        0.5
    } else {
        0.7
    };
    Some(Found {
        first: run.first,
        end: run.end,
        confidence,
    })
}

/// "Gwen or Tobias", "Marisol Vega & Tom Becker", "Noah + Priya": a run right after a name,
/// joined to it by "and", "or", "&", "+", "/" or a comma, is a name on the same footing.
fn follows_a_name(text: &str, toks: &[Tok], run: Run, found: &[Found]) -> bool {
    let Some(prev) = found.last() else {
        return false;
    };
    let between = run.start.saturating_sub(prev.end);
    let gap = toks
        .get(prev.end.saturating_sub(1))
        .zip(toks.get(run.start))
        .and_then(|(a, b)| text.get(a.end..b.start))
        .unwrap_or("");
    between <= 1
        && matches!(
            gap.trim().to_lowercase().as_str(),
            "and" | "or" | "&" | "+" | "," | "/"
        )
}

/// "Pat's cell", "Leo Grant's new number": a possessive name before a contact detail.
fn before_contact_detail(toks: &[Tok], mut k: usize) -> bool {
    const QUALIFIERS: &[&str] = &[
        "new", "old", "work", "home", "personal", "direct", "private",
    ];
    const DETAILS: &[&str] = &[
        "cell",
        "number",
        "phone",
        "mobile",
        "email",
        "address",
        "#",
        "line",
        "office",
        "extension",
        "ext",
    ];
    if toks
        .get(k)
        .is_some_and(|t| QUALIFIERS.contains(&t.w.as_str()))
    {
        k += 1;
    }
    toks.get(k).is_some_and(|t| DETAILS.contains(&t.w.as_str()))
}
