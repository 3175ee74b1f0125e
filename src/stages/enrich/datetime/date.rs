//! Dates: weekdays, month names, ordinals, numeric dates and relative dates ("tomorrow",
//! "in 2 weeks"), each resolved against the received day (see the parent module).

use chrono::{Datelike, Days, Duration, Months, NaiveDate, NaiveTime, Weekday};

use super::clock::{clock_at, Mer};
use super::{minute_floor, word, DatePart, Env, TIME_CUES};
use crate::stages::enrich::lex::{number_at, ordinal_at, Tok};

pub(super) fn weekday(w: &str) -> Option<(Weekday, bool)> {
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

pub(super) fn month(w: &str) -> Option<u32> {
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
pub(super) fn part_of_day(w: &str) -> Option<(Mer, NaiveTime)> {
    let (mer, h) = match w {
        "morning" => (Mer::Am, 9),
        "afternoon" => (Mer::Pm, 14),
        "evening" => (Mer::Pm, 18),
        "night" => (Mer::Pm, 20),
        _ => return None,
    };
    Some((mer, NaiveTime::from_hms_opt(h, 0, 0)?))
}

pub(super) fn day_part(date: NaiveDate, confidence: f32) -> DatePart {
    DatePart {
        date,
        hint: None,
        default_time: None,
        exact: None,
        confidence,
        day_of_month_only: false,
    }
}

/// With "morning" etc. right after the day.
pub(super) fn with_part_of_day(toks: &[Tok], mut d: DatePart, j: usize) -> (DatePart, usize) {
    if let Some((mer, t)) = part_of_day(word(toks, j)) {
        d.hint = Some(mer);
        d.default_time = Some(t);
        return (d, j + 1);
    }
    (d, j)
}

/// `month`/`day` in the first year that puts it on or after `today`.
pub(super) fn next_month_day(today: NaiveDate, month: u32, day: u32) -> Option<NaiveDate> {
    let this = NaiveDate::from_ymd_opt(today.year(), month, day);
    match this {
        Some(d) if d >= today => Some(d),
        _ => NaiveDate::from_ymd_opt(today.year() + 1, month, day),
    }
}

pub(super) fn year_at(toks: &[Tok], i: usize) -> Option<(i32, usize)> {
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
pub(super) fn month_day_at(toks: &[Tok], i: usize) -> Option<(u32, usize)> {
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
pub(super) fn date_at(toks: &[Tok], i: usize, env: &Env) -> Option<(DatePart, usize)> {
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
        "tomorrow" => {
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
    // "Saturday's gig": the weekday itself.
    let day = word(toks, k);
    let day = day.strip_suffix("'s").unwrap_or(day);
    if let Some((wd, needs_prefix)) = weekday(day) {
        // "sat" and "sun" alone are weekdays before a time: "comes sat at 10".
        let timed = TIME_CUES.contains(&word(toks, k + 1))
            || clock_at(toks, k + 1).is_some_and(|(c, _)| c.strong);
        if prefixed || !needs_prefix || timed {
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
            let mut d = day_part(date, 0.8);
            d.day_of_month_only = true;
            return Some((d, j));
        }
    }
    numeric_date(word(toks, i), env).map(|d| (day_part(d, 0.85), i + 1))
}

/// "12/5", "12/5/26", "2026-06-03".
pub(super) fn numeric_date(w: &str, env: &Env) -> Option<NaiveDate> {
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
pub(super) fn relative_at(toks: &[Tok], i: usize, env: &Env) -> Option<(DatePart, usize)> {
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
