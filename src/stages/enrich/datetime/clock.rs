//! Times of day: "3pm", "3:30", "half past four", "three thirty", "noon", and the bare-hour
//! rule (see the parent module).

use chrono::NaiveTime;

use super::word;
use crate::stages::enrich::lex::{self, number_at, Tok};

/// am / pm as written or implied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mer {
    Am,
    Pm,
}

/// A time of day as written, before the bare-hour rule.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    pub(super) hour: u32,
    pub(super) minute: u32,
    pub(super) mer: Option<Mer>,
    /// Unmistakably a time (am/pm, "3:30", "o'clock", "noon", "half past"), not just a number.
    pub(super) strong: bool,
}

/// "in the morning", "in the evening", "at night", "tonight" right after a time.
pub(super) fn mer_after(toks: &[Tok], i: usize) -> Option<Mer> {
    let (a, b, c) = (word(toks, i), word(toks, i + 1), word(toks, i + 2));
    match (a, b, c) {
        ("in", "the", "morning") | ("this", "morning", _) | ("morning", _, _) => Some(Mer::Am),
        ("in", "the", "afternoon" | "evening")
        | ("at", "night", _)
        | ("tonight", _, _)
        | ("this", "afternoon" | "evening", _) => Some(Mer::Pm),
        _ => None,
    }
}

/// Past a trailing "in the morning" / "at night" that [`mer_after`] read.
pub(super) fn skip_part_of_day(toks: &[Tok], i: usize) -> usize {
    match (word(toks, i), word(toks, i + 1), word(toks, i + 2)) {
        ("in", "the", "morning" | "afternoon" | "evening") => i + 3,
        ("at", "night", _) => i + 2,
        _ => i,
    }
}

/// A time zone named after a time ("10am eastern", "3pm PT", "noon GMT"), and the index
/// after it (and after "time": "eastern time").
pub(super) fn zone_at(toks: &[Tok], i: usize) -> Option<(chrono_tz::Tz, usize)> {
    use chrono_tz::America;
    use chrono_tz::Europe;
    let zone = match word(toks, i) {
        "eastern" | "et" | "est" | "edt" => America::New_York,
        "central" | "ct" | "cst" | "cdt" => America::Chicago,
        "mountain" | "mt" | "mst" | "mdt" => America::Denver,
        "pacific" | "pt" | "pst" | "pdt" => America::Los_Angeles,
        "gmt" | "utc" | "zulu" => chrono_tz::UTC,
        "bst" => Europe::London,
        "cet" | "cest" => Europe::Berlin,
        _ => return None,
    };
    let end = if word(toks, i + 1) == "time" {
        i + 2
    } else {
        i + 1
    };
    Some((zone, end))
}

/// The 24-hour time of `c`, applying `hint` and then the bare-hour rule (1–6 pm, 7–11 am,
/// 12 noon). The flag says whether the bare-hour rule decided.
pub(super) fn resolve(c: Clock, hint: Option<Mer>) -> Option<(NaiveTime, bool)> {
    let mer = c.mer.or(if (1..=12).contains(&c.hour) {
        hint
    } else {
        None
    });
    let (hour, bare) = match mer {
        Some(_) if !(1..=12).contains(&c.hour) => return None,
        Some(Mer::Am) => (c.hour % 12, false),
        Some(Mer::Pm) => (c.hour % 12 + 12, false),
        None if c.hour == 0 || c.hour > 12 => (c.hour, false),
        None if c.hour == 12 => (12, c.minute == 0 && !c.strong),
        None if c.hour <= 6 => (c.hour + 12, true),
        None => (c.hour, true),
    };
    Some((NaiveTime::from_hms_opt(hour, c.minute, 0)?, bare))
}

/// am/pm at token `i` ("pm", "p", "a m"), and the index after it.
pub(super) fn meridiem_at(toks: &[Tok], i: usize) -> Option<(Mer, usize)> {
    match (word(toks, i), word(toks, i + 1)) {
        ("am", _) => Some((Mer::Am, i + 1)),
        ("pm", _) => Some((Mer::Pm, i + 1)),
        ("a", "m") => Some((Mer::Am, i + 2)),
        ("p", "m") => Some((Mer::Pm, i + 2)),
        _ => None,
    }
}

/// A time of day at token `i`.
pub(super) fn clock_at(toks: &[Tok], i: usize) -> Option<(Clock, usize)> {
    let w = word(toks, i);
    if matches!(w, "noon" | "midday") {
        let c = Clock {
            hour: 12,
            minute: 0,
            mer: Some(Mer::Pm),
            strong: true,
        };
        return Some((c, i + 1));
    }
    // "half past four", "quarter past four", "quarter to five", "ten past six".
    if let Some((c, j)) = past_to_at(toks, i) {
        return Some(with_suffix(toks, c, j));
    }
    // Typed: "3", "3pm", "3:30", "15:00", "3:30p".
    if let Some(c) = typed_clock(w) {
        return Some(with_suffix(toks, c, i + 1));
    }
    // Spoken: "three", "three thirty", "three oh five", "eleven forty five".
    if !toks.get(i)?.w.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let (hour, mut j) = number_at(toks, i)?;
    // "four hundred north michigan" is a house number.
    if !(1..=12).contains(&hour) || matches!(word(toks, j), "hundred" | "thousand") {
        return None;
    }
    let mut minute = 0;
    let mut strong = false;
    if matches!(word(toks, j), "oh" | "o") {
        if let Some(d) = lex::number_word(word(toks, j + 1)).filter(|d| (1..10).contains(d)) {
            minute = d;
            j += 2;
            strong = true;
        }
    } else if let Some((m, k)) = number_at(toks, j).filter(|(m, _)| (10..60).contains(m)) {
        // Only spoken minutes ("three thirty"): "at 3 15 people" stays a bare 3.
        if toks[j].w.bytes().all(|b| b.is_ascii_alphabetic()) {
            minute = m;
            j = k;
            strong = true;
        }
    }
    let c = Clock {
        hour,
        minute,
        mer: None,
        strong,
    };
    Some(with_suffix(toks, c, j))
}

/// am/pm, "o'clock" or "ish" after a clock.
pub(super) fn with_suffix(toks: &[Tok], mut c: Clock, mut j: usize) -> (Clock, usize) {
    while word(toks, j) == "ish" {
        c.strong = true;
        j += 1;
    }
    if c.mer.is_none() {
        if let Some((m, k)) = meridiem_at(toks, j) {
            if (1..=12).contains(&c.hour) {
                c.mer = Some(m);
                c.strong = true;
                return (c, k);
            }
        }
    }
    if matches!(word(toks, j), "o'clock" | "oclock") {
        c.strong = true;
        return (c, j + 1);
    }
    (c, j)
}

pub(super) fn typed_clock(w: &str) -> Option<Clock> {
    // "5ish", "6:30ish": a time, roughly.
    let (w, ish) = match w.strip_suffix("ish") {
        Some(b) => (b, true),
        None => (w, false),
    };
    let (body, mer) = if let Some(b) = w.strip_suffix("am").or_else(|| w.strip_suffix('a')) {
        (b, Some(Mer::Am))
    } else if let Some(b) = w.strip_suffix("pm").or_else(|| w.strip_suffix('p')) {
        (b, Some(Mer::Pm))
    } else {
        (w, None)
    };
    let (h, m) = match body.split_once(':').or_else(|| body.split_once('.')) {
        Some((h, m)) if m.len() == 2 => (h, Some(m)),
        Some(_) => return None,
        None => (body, None),
    };
    if h.is_empty() || h.len() > 2 || !h.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // "3.30" is a time only with am/pm; "3.5" never.
    if body.contains('.') && mer.is_none() {
        return None;
    }
    let hour: u32 = h.parse().ok()?;
    let minute: u32 = match m {
        Some(m) if m.bytes().all(|b| b.is_ascii_digit()) => m.parse().ok()?,
        Some(_) => return None,
        None => 0,
    };
    if hour > 23 || minute > 59 || (mer.is_some() && !(1..=12).contains(&hour)) {
        return None;
    }
    Some(Clock {
        hour,
        minute,
        mer,
        strong: mer.is_some() || m.is_some() || ish,
    })
}

pub(super) fn past_to_at(toks: &[Tok], i: usize) -> Option<(Clock, usize)> {
    let (minutes, j) = match word(toks, i) {
        "half" => (30, i + 1),
        "quarter" => (15, i + 1),
        "a" if word(toks, i + 1) == "quarter" => (15, i + 2),
        _ => {
            let (m, j) = number_at(toks, i)?;
            if !(1..30).contains(&m) || !matches!(word(toks, j), "past" | "after" | "to" | "til") {
                return None;
            }
            (m, j)
        }
    };
    let before = match word(toks, j) {
        "past" | "after" => false,
        "to" | "til" | "till" => true,
        _ => return None,
    };
    let (hour, k) = number_at(toks, j + 1)?;
    if !(1..=12).contains(&hour) {
        return None;
    }
    let (hour, minute) = if before {
        (if hour == 1 { 12 } else { hour - 1 }, 60 - minutes)
    } else {
        (hour, minutes)
    };
    let c = Clock {
        hour,
        minute,
        mer: None,
        strong: true,
    };
    Some((c, k))
}
