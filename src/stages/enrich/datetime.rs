//! Dates and times, typed ("next Tue 3pm", "June 3rd", "12/5", "3:30pm", "in 2 weeks") and
//! spoken ("next tuesday at three pm", "half past four", "the fifteenth", "three thirty"),
//! resolved against the message's received time in the user's time zone.
//!
//! Hand-written on the shared lexer: date crates parse whole strings, not dates inside prose,
//! and none reads spoken numbers.
//!
//! Rules, chosen for working notes:
//! - **Bare hours** ("call her at 5", "tomorrow at three") have no am/pm: 1–6 means pm, 7–11 am,
//!   12 noon. "tonight", "evening", "afternoon" make them pm, "morning" am. A bare number is a
//!   time only after "at", "@", "around", "by" or "about" (so "3 boxes" is not a time).
//! - A **weekday** ("tue", "this friday", "next tuesday") is the first such day after the
//!   received day (never the received day itself).
//! - A **month and day** without a year is the next such date on or after the received day;
//!   "the 15th" is this month's, or next month's if it has passed.
//! - Numeric "12/5" reads month first for US, CA, PH or unknown regions, day first elsewhere.
//! - A **time without a date** is the next such time after the received time.
//! - "tonight" alone is 20:00 today; "tomorrow morning" 09:00, "afternoon" 14:00,
//!   "evening" 18:00, "night" 20:00.
//! - "in N minutes/hours" is a date-time (received time plus N, to the minute); "in N
//!   days/weeks/months" a date.
//!
//! Normalized value: RFC 3339 local time with offset for a date-time
//! ("2026-12-01T15:00:00-08:00"), ISO date for a date only ("2026-06-03").

use chrono::{
    DateTime, Datelike, Days, Duration, Months, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat,
    TimeZone, Timelike, Weekday,
};
use chrono_tz::Tz;

use super::context::Context;
use super::item::{Item, ItemKind, Source};
use super::lex::{self, number_at, ordinal_at, Tok};

/// am / pm as written or implied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mer {
    Am,
    Pm,
}

/// A time of day as written, before the bare-hour rule.
#[derive(Debug, Clone, Copy)]
struct Clock {
    hour: u32,
    minute: u32,
    mer: Option<Mer>,
    /// Unmistakably a time (am/pm, "3:30", "o'clock", "noon", "half past"), not just a number.
    strong: bool,
}

/// A date as written, with what it implies about the time.
#[derive(Debug, Clone, Copy)]
struct DatePart {
    date: NaiveDate,
    /// "tonight", "morning": am/pm for a bare hour.
    hint: Option<Mer>,
    /// The time when none is given ("tonight" = 20:00).
    default_time: Option<NaiveTime>,
    /// "in 2 hours": a complete date-time.
    exact: Option<NaiveDateTime>,
    /// The weekday was a guess from "next" etc; lower confidence.
    confidence: f32,
}

/// The received time, seen from the user's zone.
struct Env {
    now: DateTime<Tz>,
    today: NaiveDate,
    month_first: bool,
}

/// Words between a date and its time ("tomorrow at 5") that make a bare number a time.
const TIME_CUES: &[&str] = &[
    "at", "@", "around", "by", "about", "till", "until", "til", "before", "after", "between",
    "from",
];

/// Every date and time in `text` (byte spans; `extract` converts them).
pub(crate) fn dates(text: &str, source: Source, ctx: &Context) -> Vec<Item> {
    let toks = lex::lex(text);
    let now = ctx.received_local();
    let env = Env {
        today: now.date_naive(),
        now,
        month_first: ctx.month_first(),
    };
    let mut items = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        match parse_at(&toks, i, &env) {
            Some((found, end)) => {
                let (start_b, end_b) = (toks[i].start, toks[end - 1].end);
                if let Some(normalized) = found.normalize(ctx.tz) {
                    let conf = if source == Source::Transcript {
                        found.confidence() * 0.9
                    } else {
                        found.confidence()
                    };
                    items.push(Item {
                        kind: ItemKind::DateTime,
                        value: text[start_b..end_b].to_owned(),
                        normalized,
                        confidence: conf,
                        source,
                        span: (start_b, end_b),
                    });
                }
                i = end;
            }
            None => i += 1,
        }
    }
    items
}

/// A resolved date or date-time.
#[derive(Debug, Clone, Copy)]
enum Found {
    Date(NaiveDate, f32),
    DateTime(NaiveDateTime, f32),
}

impl Found {
    fn confidence(&self) -> f32 {
        match self {
            Found::Date(_, c) | Found::DateTime(_, c) => *c,
        }
    }

    fn normalize(&self, tz: Tz) -> Option<String> {
        match self {
            Found::Date(d, _) => Some(d.format("%Y-%m-%d").to_string()),
            Found::DateTime(dt, _) => {
                Some(localize(tz, *dt)?.to_rfc3339_opts(SecondsFormat::Secs, false))
            }
        }
    }
}

/// `dt` in `tz`; a local time in a DST gap moves forward an hour.
fn localize(tz: Tz, dt: NaiveDateTime) -> Option<DateTime<Tz>> {
    tz.from_local_datetime(&dt).earliest().or_else(|| {
        tz.from_local_datetime(&(dt + Duration::hours(1)))
            .earliest()
    })
}

fn word(toks: &[Tok], i: usize) -> &str {
    toks.get(i).map_or("", |t| t.w.as_str())
}

/// A date or time starting at token `i`, and the index after it.
fn parse_at(toks: &[Tok], i: usize, env: &Env) -> Option<(Found, usize)> {
    let today = env.today;
    if let Some((d, j)) = date_at(toks, i, env) {
        if let Some(exact) = d.exact {
            return Some((Found::DateTime(exact, d.confidence), j));
        }
        // A time after the date: "tomorrow at 5", "next tue 3pm", "june 3rd, 2:30".
        let mut k = j;
        while word(toks, k) == "," {
            k += 1;
        }
        let cued = TIME_CUES.contains(&word(toks, k));
        if cued {
            k += 1;
        }
        if let Some((c, end)) = clock_at(toks, k) {
            if c.strong || cued {
                let (t, bare) = resolve(c, d.hint.or_else(|| mer_after(toks, end)))?;
                let conf = if bare { 0.7 } else { d.confidence };
                let end = skip_part_of_day(toks, end);
                return Some((Found::DateTime(d.date.and_time(t), conf), end));
            }
        }
        return Some(match d.default_time {
            Some(t) => (Found::DateTime(d.date.and_time(t), d.confidence * 0.9), j),
            None => (Found::Date(d.date, d.confidence), j),
        });
    }
    let (c, j) = clock_at(toks, i)?;
    let cued = i > 0 && TIME_CUES.contains(&word(toks, i - 1));
    if !(c.strong || cued) {
        return None;
    }
    // A date after the time: "3pm tomorrow", "at 5 on friday", "at eight tonight".
    let mut k = j;
    while matches!(word(toks, k), "," | "on" | "this") {
        k += 1;
    }
    if let Some((d, end)) = date_at(toks, k, env).filter(|(d, _)| d.exact.is_none()) {
        let (t, bare) = resolve(c, d.hint.or_else(|| mer_after(toks, j)))?;
        let conf = if bare { 0.65 } else { d.confidence };
        return Some((Found::DateTime(d.date.and_time(t), conf), end));
    }
    let (t, bare) = resolve(c, mer_after(toks, j))?;
    // No date: the next such time after the message arrived.
    let mut dt = today.and_time(t);
    if dt <= env.now.naive_local() {
        dt = dt.checked_add_days(Days::new(1))?;
    }
    let conf = if bare { 0.6 } else { 0.8 };
    Some((Found::DateTime(dt, conf), skip_part_of_day(toks, j)))
}

/// "in the morning", "in the evening", "at night", "tonight" right after a time.
fn mer_after(toks: &[Tok], i: usize) -> Option<Mer> {
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
fn skip_part_of_day(toks: &[Tok], i: usize) -> usize {
    match (word(toks, i), word(toks, i + 1), word(toks, i + 2)) {
        ("in", "the", "morning" | "afternoon" | "evening") => i + 3,
        ("at", "night", _) => i + 2,
        _ => i,
    }
}

/// The 24-hour time of `c`, applying `hint` and then the bare-hour rule (1–6 pm, 7–11 am,
/// 12 noon). The flag says whether the bare-hour rule decided.
fn resolve(c: Clock, hint: Option<Mer>) -> Option<(NaiveTime, bool)> {
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
fn meridiem_at(toks: &[Tok], i: usize) -> Option<(Mer, usize)> {
    match (word(toks, i), word(toks, i + 1)) {
        ("am", _) => Some((Mer::Am, i + 1)),
        ("pm", _) => Some((Mer::Pm, i + 1)),
        ("a", "m") => Some((Mer::Am, i + 2)),
        ("p", "m") => Some((Mer::Pm, i + 2)),
        _ => None,
    }
}

/// A time of day at token `i`.
fn clock_at(toks: &[Tok], i: usize) -> Option<(Clock, usize)> {
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

/// am/pm or "o'clock" after a clock.
fn with_suffix(toks: &[Tok], mut c: Clock, j: usize) -> (Clock, usize) {
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

fn typed_clock(w: &str) -> Option<Clock> {
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
        strong: mer.is_some() || m.is_some(),
    })
}

fn past_to_at(toks: &[Tok], i: usize) -> Option<(Clock, usize)> {
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

fn weekday(w: &str) -> Option<(Weekday, bool)> {
    // The bool: the word is also an everyday word ("sat", "sun") and needs "on"/"next"/"this".
    Some(match w {
        "monday" | "mon" => (Weekday::Mon, false),
        "tuesday" | "tue" | "tues" => (Weekday::Tue, false),
        "wednesday" | "wed" | "weds" => (Weekday::Wed, false),
        "thursday" | "thu" | "thur" | "thurs" => (Weekday::Thu, false),
        "friday" | "fri" => (Weekday::Fri, false),
        "saturday" => (Weekday::Sat, false),
        "sunday" => (Weekday::Sun, false),
        "sat" => (Weekday::Sat, true),
        "sun" => (Weekday::Sun, true),
        _ => return None,
    })
}

fn month(w: &str) -> Option<u32> {
    Some(match w {
        "january" | "jan" => 1,
        "february" | "feb" => 2,
        "march" | "mar" => 3,
        "april" | "apr" => 4,
        "may" => 5,
        "june" | "jun" => 6,
        "july" | "jul" => 7,
        "august" | "aug" => 8,
        "september" | "sep" | "sept" => 9,
        "october" | "oct" => 10,
        "november" | "nov" => 11,
        "december" | "dec" => 12,
        _ => return None,
    })
}

/// Morning/afternoon/evening/night after a day: its hint and default time.
fn part_of_day(w: &str) -> Option<(Mer, NaiveTime)> {
    let (mer, h) = match w {
        "morning" => (Mer::Am, 9),
        "afternoon" => (Mer::Pm, 14),
        "evening" => (Mer::Pm, 18),
        "night" => (Mer::Pm, 20),
        _ => return None,
    };
    Some((mer, NaiveTime::from_hms_opt(h, 0, 0)?))
}

fn day_part(date: NaiveDate, confidence: f32) -> DatePart {
    DatePart {
        date,
        hint: None,
        default_time: None,
        exact: None,
        confidence,
    }
}

/// With "morning" etc. right after the day.
fn with_part_of_day(toks: &[Tok], mut d: DatePart, j: usize) -> (DatePart, usize) {
    if let Some((mer, t)) = part_of_day(word(toks, j)) {
        d.hint = Some(mer);
        d.default_time = Some(t);
        return (d, j + 1);
    }
    (d, j)
}

/// `month`/`day` in the first year that puts it on or after `today`.
fn next_month_day(today: NaiveDate, month: u32, day: u32) -> Option<NaiveDate> {
    let this = NaiveDate::from_ymd_opt(today.year(), month, day);
    match this {
        Some(d) if d >= today => Some(d),
        _ => NaiveDate::from_ymd_opt(today.year() + 1, month, day),
    }
}

fn year_at(toks: &[Tok], i: usize) -> Option<(i32, usize)> {
    let i = if word(toks, i) == "," { i + 1 } else { i };
    let w = word(toks, i);
    if w.len() == 4 && w.bytes().all(|b| b.is_ascii_digit()) {
        let y: i32 = w.parse().ok()?;
        if (1900..=2200).contains(&y) {
            return Some((y, i + 1));
        }
    }
    None
}

/// A day of the month at `i`: "3", "3rd", "third", "the third".
fn month_day_at(toks: &[Tok], i: usize) -> Option<(u32, usize)> {
    let i = if word(toks, i) == "the" { i + 1 } else { i };
    // "Feb 10-12": a range starts on its first day.
    if let Some((a, b)) = word(toks, i).split_once('-') {
        let short =
            |s: &str| !s.is_empty() && s.len() <= 2 && s.bytes().all(|c| c.is_ascii_digit());
        if short(a) && short(b) {
            let d: u32 = a.parse().ok()?;
            return (1..=31).contains(&d).then_some((d, i + 1));
        }
    }
    let (d, j) = ordinal_at(toks, i).or_else(|| {
        let w = word(toks, i);
        (w.bytes().all(|b| b.is_ascii_digit()) && w.len() <= 2)
            .then(|| number_at(toks, i))
            .flatten()
    })?;
    (1..=31).contains(&d).then_some((d, j))
}

/// A date at token `i`.
fn date_at(toks: &[Tok], i: usize, env: &Env) -> Option<(DatePart, usize)> {
    let today = env.today;
    let w = word(toks, i);
    match w {
        "today" => return Some(with_part_of_day(toks, day_part(today, 0.9), i + 1)),
        "tonight" => {
            let mut d = day_part(today, 0.85);
            d.hint = Some(Mer::Pm);
            d.default_time = NaiveTime::from_hms_opt(20, 0, 0);
            return Some((d, i + 1));
        }
        "tomorrow" | "tmrw" | "tmr" | "tomorow" | "tommorow" | "tommorrow" => {
            let d = day_part(today.checked_add_days(Days::new(1))?, 0.9);
            return Some(with_part_of_day(toks, d, i + 1));
        }
        "day" if word(toks, i + 1) == "after" && word(toks, i + 2) == "tomorrow" => {
            let d = day_part(today.checked_add_days(Days::new(2))?, 0.9);
            return Some((d, i + 3));
        }
        "in" => return relative_at(toks, i + 1, env),
        _ => {}
    }
    // "next tuesday", "this fri", "on sat", "tuesday".
    let (prefixed, k) = match w {
        "next" | "this" | "on" | "coming" => (true, i + 1),
        _ => (false, i),
    };
    if let Some((wd, needs_prefix)) = weekday(word(toks, k)) {
        if prefixed || !needs_prefix {
            let ahead =
                (7 + wd.num_days_from_monday() - today.weekday().num_days_from_monday()) % 7;
            let ahead = if ahead == 0 { 7 } else { ahead };
            // "Monday 11/30", "Fri, June 5": the written date is the date.
            let mut j = k + 1;
            while word(toks, j) == "," {
                j += 1;
            }
            let w = word(toks, j);
            if month(w).is_some() || w.starts_with(|c: char| c.is_ascii_digit()) || w == "the" {
                if let Some((mut d, end)) = date_at(toks, j, env) {
                    d.confidence = 0.9;
                    return Some((d, end));
                }
            }
            let d = day_part(today.checked_add_days(Days::new(u64::from(ahead)))?, 0.85);
            return Some(with_part_of_day(toks, d, k + 1));
        }
    }
    let k = if w == "on" { i + 1 } else { i };
    // "june 3rd", "june the third", "jun 3, 2027".
    if let Some(m) = month(word(toks, k)) {
        if let Some((day, j)) = month_day_at(toks, k + 1) {
            let (date, j) = match year_at(toks, j) {
                Some((y, j)) => (NaiveDate::from_ymd_opt(y, m, day)?, j),
                None => (next_month_day(today, m, day)?, j),
            };
            return Some((day_part(date, 0.9), j));
        }
    }
    // "3 june", "3rd of june", "the third of june", "the 15th", "on the fifteenth".
    let the = word(toks, k) == "the";
    if let Some((day, j)) = month_day_at(toks, k) {
        let j2 = if word(toks, j) == "of" { j + 1 } else { j };
        if let Some(m) = month(word(toks, j2)) {
            let (date, end) = match year_at(toks, j2 + 1) {
                Some((y, e)) => (NaiveDate::from_ymd_opt(y, m, day)?, e),
                None => (next_month_day(today, m, day)?, j2 + 1),
            };
            return Some((day_part(date, 0.9), end));
        }
        // "the first thing": a spoken ordinal alone is a date only after "on"/"by"/... or at
        // the end of a clause or before a time.
        let digits = word(toks, k + 1).starts_with(|c: char| c.is_ascii_digit());
        let before = matches!(
            word(toks, k.wrapping_sub(1)),
            "on" | "by" | "before" | "until" | "till" | "after" | "from"
        );
        let after = toks.get(j).is_none_or(|t| t.punct)
            || TIME_CUES.contains(&word(toks, j))
            || clock_at(toks, j).is_some_and(|(c, _)| c.strong);
        if the && ordinal_at(toks, k + 1).is_some() && (digits || before || after) {
            let this = today.with_day(day).filter(|d| *d >= today);
            let date = match this {
                Some(d) => d,
                None => {
                    let next = today.with_day(1)?.checked_add_months(Months::new(1))?;
                    next.with_day(day)?
                }
            };
            return Some((day_part(date, 0.8), j));
        }
    }
    numeric_date(word(toks, i), env).map(|d| (day_part(d, 0.85), i + 1))
}

/// "12/5", "12/5/26", "2026-06-03".
fn numeric_date(w: &str, env: &Env) -> Option<NaiveDate> {
    let parts: Vec<&str> = w.split(['/', '-']).collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let n: Vec<u32> = parts.iter().filter_map(|p| p.parse().ok()).collect();
    if w.contains('-') {
        // Only ISO with dashes: "510-555-0142" is a phone number.
        return match (parts.as_slice(), n.as_slice()) {
            ([y, _, _], [yy, m, d]) if y.len() == 4 => {
                NaiveDate::from_ymd_opt(i32::try_from(*yy).ok()?, *m, *d)
            }
            _ => None,
        };
    }
    let (a, b, y) = match n.as_slice() {
        [a, b] => (*a, *b, None),
        [a, b, y] => (*a, *b, Some(*y)),
        _ => return None,
    };
    let (m, d) = if env.month_first { (a, b) } else { (b, a) };
    match y {
        Some(y) => {
            let y = if y < 100 { 2000 + y } else { y };
            NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m, d)
        }
        None => next_month_day(env.today, m, d),
    }
}

/// "in 2 weeks", "in three days", "in an hour", "in 30 minutes", "in a couple of weeks";
/// `i` is the token after "in".
fn relative_at(toks: &[Tok], i: usize, env: &Env) -> Option<(DatePart, usize)> {
    let (n, j) = match (word(toks, i), word(toks, i + 1), word(toks, i + 2)) {
        ("a" | "an", "couple", "of") => (2, i + 3),
        ("a" | "an", "couple", _) => (2, i + 2),
        ("a" | "an", _, _) => (1, i + 1),
        ("half", "an", "hour") => {
            let exact = minute_floor(env.now.naive_local()) + Duration::minutes(30);
            let mut d = day_part(exact.date(), 0.85);
            d.exact = Some(exact);
            return Some((d, i + 3));
        }
        _ => number_at(toks, i)?,
    };
    if n == 0 || n > 1000 {
        return None;
    }
    let now = minute_floor(env.now.naive_local());
    let n64 = i64::from(n);
    let (exact, date) = match word(toks, j) {
        "minute" | "minutes" | "min" | "mins" => (Some(now + Duration::minutes(n64)), None),
        "hour" | "hours" | "hr" | "hrs" => (Some(now + Duration::hours(n64)), None),
        "day" | "days" => (None, env.today.checked_add_days(Days::new(u64::from(n)))),
        "week" | "weeks" | "wk" | "wks" => (
            None,
            env.today.checked_add_days(Days::new(7 * u64::from(n))),
        ),
        "month" | "months" => (None, env.today.checked_add_months(Months::new(n))),
        _ => return None,
    };
    let mut d = day_part(date.or(exact.map(|e| e.date()))?, 0.85);
    d.exact = exact;
    Some((d, j + 1))
}

fn minute_floor(t: NaiveDateTime) -> NaiveDateTime {
    t.with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Saturday 2026-11-28 10:00 in Los Angeles (18:00 UTC).
    fn ctx() -> Context {
        let micros = chrono::DateTime::parse_from_rfc3339("2026-11-28T10:00:00-08:00")
            .unwrap()
            .timestamp_micros();
        Context::new(
            Some(phonenumber::country::Id::US),
            micros,
            chrono_tz::America::Los_Angeles,
        )
    }

    fn norm(text: &str, source: Source) -> Vec<String> {
        dates(text, source, &ctx())
            .into_iter()
            .map(|i| i.normalized)
            .collect()
    }

    fn one(text: &str) -> String {
        let v = norm(text, Source::Body);
        assert_eq!(v.len(), 1, "{text}: {v:?}");
        v[0].clone()
    }

    #[test]
    fn the_issue_example_resolves_to_next_tuesday_3pm() {
        let t = "met Dana Reyes at the Oakland expo, her cell is 510-555-0142, follow up next Tuesday 3pm #lead";
        let items = dates(t, Source::Body, &ctx());
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(items[0].normalized, "2026-12-01T15:00:00-08:00");
        assert_eq!(items[0].value, "next Tuesday 3pm");
    }

    #[test]
    fn typed_shapes() {
        assert_eq!(one("tomorrow at 5"), "2026-11-29T17:00:00-08:00");
        assert_eq!(one("next Tue 3pm"), "2026-12-01T15:00:00-08:00");
        assert_eq!(one("June 3rd"), "2027-06-03");
        assert_eq!(one("dec 5"), "2026-12-05");
        assert_eq!(one("12/5"), "2026-12-05");
        assert_eq!(one("12/5/27"), "2027-12-05");
        assert_eq!(one("2026-06-03"), "2026-06-03");
        assert_eq!(one("in 2 weeks"), "2026-12-12");
        assert_eq!(one("tonight"), "2026-11-28T20:00:00-08:00");
        assert_eq!(one("noon"), "2026-11-28T12:00:00-08:00");
        assert_eq!(one("at 9:30am"), "2026-11-29T09:30:00-08:00");
        assert_eq!(one("3pm tomorrow"), "2026-11-29T15:00:00-08:00");
        assert_eq!(one("the 3rd of January"), "2027-01-03");
        assert_eq!(one("Friday, 10:15"), "2026-12-04T10:15:00-08:00");
        assert_eq!(one("in 2 hours"), "2026-11-28T12:00:00-08:00");
        assert_eq!(one("at 18:30"), "2026-11-28T18:30:00-08:00");
        assert_eq!(one("the 15th"), "2026-12-15");
    }

    #[test]
    fn bare_hours_follow_the_working_notes_rule() {
        // 1–6 pm, 7–11 am, 12 noon.
        assert_eq!(one("call her at 5"), "2026-11-28T17:00:00-08:00");
        assert_eq!(one("call her at 1"), "2026-11-28T13:00:00-08:00");
        assert_eq!(one("call her at 7"), "2026-11-29T07:00:00-08:00");
        assert_eq!(one("call her at 11"), "2026-11-28T11:00:00-08:00");
        assert_eq!(one("call her at 12"), "2026-11-28T12:00:00-08:00");
        // Cues override the rule.
        assert_eq!(one("at 8 tonight"), "2026-11-28T20:00:00-08:00");
        assert_eq!(one("tomorrow morning at 5"), "2026-11-29T05:00:00-08:00");
        // A bare-hour guess is less sure than a written am/pm.
        let bare = dates("at 5", Source::Body, &ctx());
        let written = dates("at 5pm", Source::Body, &ctx());
        assert!(bare[0].confidence < written[0].confidence);
    }

    #[test]
    fn spoken_shapes() {
        let t = |s: &str| {
            let v = norm(s, Source::Transcript);
            assert_eq!(v.len(), 1, "{s}: {v:?}");
            v[0].clone()
        };
        assert_eq!(
            t("lets meet next tuesday at three pm"),
            "2026-12-01T15:00:00-08:00"
        );
        assert_eq!(t("call me at three thirty"), "2026-11-28T15:30:00-08:00");
        assert_eq!(t("tomorrow at half past four"), "2026-11-29T16:30:00-08:00");
        assert_eq!(t("the fifteenth"), "2026-12-15");
        assert_eq!(t("on june third"), "2027-06-03");
        assert_eq!(t("in two weeks"), "2026-12-12");
        assert_eq!(t("friday at quarter to ten"), "2026-12-04T09:45:00-08:00");
        assert_eq!(t("around eleven forty five"), "2026-11-28T11:45:00-08:00");
        assert_eq!(
            t("january twenty first at nine a m"),
            "2027-01-21T09:00:00-08:00"
        );
        assert_eq!(t("at seven o'clock"), "2026-11-29T07:00:00-08:00");
    }

    #[test]
    fn numbers_that_are_not_times_are_left_alone() {
        assert!(norm("3 boxes of 12 for $5.50", Source::Body).is_empty());
        assert!(norm("call 510-555-0142 re order 1234", Source::Body).is_empty());
        assert!(norm("meet at 1200 Broadway", Source::Body).is_empty());
        assert!(norm("i may go", Source::Transcript).is_empty());
        assert!(norm("on the sun deck", Source::Body).is_empty());
        assert!(norm("the first thing", Source::Transcript).is_empty());
    }

    #[test]
    fn day_first_regions_read_numeric_dates_day_first() {
        let mut c = ctx();
        c.region = Some(phonenumber::country::Id::GB);
        let v: Vec<String> = dates("12/5", Source::Body, &c)
            .into_iter()
            .map(|i| i.normalized)
            .collect();
        assert_eq!(v, vec!["2027-05-12"]);
    }

    #[test]
    fn offsets_follow_daylight_saving_time() {
        assert_eq!(one("June 3rd at 2pm"), "2027-06-03T14:00:00-07:00");
        // 02:30 on 2027-03-14 does not exist in Los Angeles: it moves forward an hour.
        assert_eq!(one("3/14/27 at 2:30am"), "2027-03-14T03:30:00-07:00");
    }

    #[test]
    fn odd_input_does_not_panic() {
        for t in [
            "",
            "at",
            "in",
            "in a",
            "next",
            "the",
            "half past",
            "quarter to",
            "31/31/31",
            "2/30",
            "99:99pm",
            "at 0",
            "at 24",
            "at 13pm",
            "in 99999999 days",
            "𝔱𝔬𝔪𝔬𝔯𝔯𝔬𝔴 at ５",
            "İstanbul tomorrow at 5 ﷽",
            "e\u{301}\u{301} at 3:3",
            "june 31",
            "feb 29",
            "in 1000 months",
        ] {
            for s in [Source::Body, Source::Transcript] {
                let _ = dates(t, s, &ctx());
            }
        }
        let mut far = ctx();
        far.received_at_micros = i64::MAX;
        let _ = dates("tomorrow at 5", Source::Body, &far);
        far.received_at_micros = i64::MIN;
        let _ = dates("in 3 months", Source::Body, &far);
    }
}
