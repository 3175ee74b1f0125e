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
    DateTime, Datelike, Days, Duration, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat,
    TimeZone, Timelike,
};
use chrono_tz::Tz;

use super::context::Context;
use super::item::{Item, ItemKind, Source};
use super::lex::{self, Tok};

mod clock;
mod date;

use clock::{clock_at, mer_after, resolve, skip_part_of_day, zone_at, Mer};
use date::date_at;

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
    /// "the 15th": a day of this month, or of the next once it has passed.
    day_of_month_only: bool,
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

/// A resolved date or date-time; a date-time may name its own zone ("10am eastern").
#[derive(Debug, Clone, Copy)]
enum Found {
    Date(NaiveDate, f32),
    DateTime(NaiveDateTime, f32, Option<Tz>),
}

impl Found {
    fn confidence(&self) -> f32 {
        match self {
            Found::Date(_, c) | Found::DateTime(_, c, _) => *c,
        }
    }

    fn normalize(&self, tz: Tz) -> Option<String> {
        match self {
            Found::Date(d, _) => Some(d.format("%Y-%m-%d").to_string()),
            Found::DateTime(dt, _, zone) => {
                Some(localize(zone.unwrap_or(tz), *dt)?.to_rfc3339_opts(SecondsFormat::Secs, false))
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

/// Nouns after which a spoken or typed number is a label, not a time ("room five twelve",
/// "gate 4").
const NOT_A_TIME_AFTER: &[&str] = &[
    "room",
    "suite",
    "ste",
    "unit",
    "apt",
    "apartment",
    "floor",
    "gate",
    "code",
    "number",
    "#",
    "no",
    "box",
    "flight",
    "bus",
    "route",
    "highway",
    "exit",
    "platform",
    "booth",
    "table",
    "ext",
    "extension",
    "dock",
    "door",
    "building",
    "bay",
    "lot",
    "aisle",
    "row",
    "seat",
    "order",
    "invoice",
    "ticket",
    "case",
    "account",
    "pin",
    "zip",
    "level",
];

/// A date or time starting at token `i`, and the index after it.
fn parse_at(toks: &[Tok], i: usize, env: &Env) -> Option<(Found, usize)> {
    if let Some((d, j)) = date_at(toks, i, env) {
        if let Some(exact) = d.exact {
            return Some((Found::DateTime(exact, d.confidence, None), j));
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
                let (zone, end) = zone_at(toks, end).map_or((None, end), |(z, e)| (Some(z), e));
                let mut dt = d.date.and_time(t);
                // "the 15th at 2pm" on the 15th after 2pm: next month's.
                if d.day_of_month_only && dt <= env.now.naive_local() {
                    dt = next_month(dt)?;
                }
                return Some((Found::DateTime(dt, conf, zone), end));
            }
        }
        return Some(match d.default_time {
            Some(t) => (
                Found::DateTime(d.date.and_time(t), d.confidence * 0.9, None),
                j,
            ),
            None => (Found::Date(d.date, d.confidence), j),
        });
    }
    let (c, j) = clock_at(toks, i)?;
    let cued = i > 0 && TIME_CUES.contains(&word(toks, i - 1));
    if !(c.strong || cued) || (!cued && i > 0 && NOT_A_TIME_AFTER.contains(&word(toks, i - 1))) {
        return None;
    }
    let hint = mer_after(toks, j);
    let after = skip_part_of_day(toks, j);
    let (zone, after) = zone_at(toks, after).map_or((None, after), |(z, e)| (Some(z), e));
    // A date after the time: "3pm tomorrow", "at 5 on friday", "ten a m eastern on march
    // third".
    let mut k = after;
    while matches!(word(toks, k), "," | "on" | "this") {
        k += 1;
    }
    if let Some((d, end)) = date_at(toks, k, env).filter(|(d, _)| d.exact.is_none()) {
        let (t, bare) = resolve(c, d.hint.or(hint))?;
        let conf = if bare { 0.65 } else { d.confidence };
        return Some((Found::DateTime(d.date.and_time(t), conf, zone), end));
    }
    let (t, bare) = resolve(c, hint)?;
    // No date: the next such time after the message arrived (in the named zone, if any).
    let now = match zone {
        Some(z) => env.now.with_timezone(&z).naive_local(),
        None => env.now.naive_local(),
    };
    let mut dt = now.date().and_time(t);
    if dt <= now {
        dt = dt.checked_add_days(Days::new(1))?;
    }
    let conf = if bare { 0.6 } else { 0.8 };
    Some((Found::DateTime(dt, conf, zone), after))
}

/// The same day and time a month later (the 31st stays unresolved when next month is short).
fn next_month(dt: NaiveDateTime) -> Option<NaiveDateTime> {
    dt.checked_add_months(chrono::Months::new(1))
        .filter(|n| n.day() == dt.day())
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
    fn shorthand_misspellings_and_rough_times() {
        assert_eq!(one("thrusday 6ish"), "2026-12-03T18:00:00-08:00");
        assert_eq!(one("wensday 5pm"), "2026-12-02T17:00:00-08:00");
        assert_eq!(one("2moro 10am"), "2026-11-29T10:00:00-08:00");
        assert_eq!(one("tmrw at 9"), "2026-11-29T09:00:00-08:00");
        assert_eq!(one("pickup at 4ish"), "2026-11-28T16:00:00-08:00");
        assert_eq!(one("around noonish"), "2026-11-28T12:00:00-08:00");
        assert_eq!(one("comes sun at 10"), "2026-11-29T10:00:00-08:00");
        assert_eq!(one("about Tuesday's gig"), "2026-12-01");
        let spoken = norm("around five ish", Source::Transcript);
        assert_eq!(spoken, vec!["2026-11-28T17:00:00-08:00"]);
    }

    #[test]
    fn the_first_is_the_next_first_of_a_month() {
        assert_eq!(one("back on the 1st"), "2026-12-01");
        // On the 15th after 2pm, "the 15th at 2pm" is next month's.
        let mut c = ctx();
        c.received_at_micros = chrono::DateTime::parse_from_rfc3339("2026-11-15T16:00:00-08:00")
            .unwrap()
            .timestamp_micros();
        let v: Vec<String> = dates("on the 15th at 2pm", Source::Body, &c)
            .into_iter()
            .map(|i| i.normalized)
            .collect();
        assert_eq!(v, vec!["2026-12-15T14:00:00-08:00"]);
    }

    #[test]
    fn a_named_zone_makes_one_item_in_that_zone() {
        let v = norm(
            "the call is at ten a m eastern on march third",
            Source::Transcript,
        );
        assert_eq!(v, vec!["2027-03-03T10:00:00-05:00"]);
        assert_eq!(one("tomorrow at 3pm ET"), "2026-11-29T15:00:00-05:00");
        // Noon GMT has passed (it is 18:00 UTC): tomorrow's.
        assert_eq!(one("noon GMT"), "2026-11-29T12:00:00+00:00");
    }

    #[test]
    fn numbers_after_room_or_gate_are_not_times() {
        assert!(norm("room five twelve", Source::Transcript).is_empty());
        assert!(norm("gate 4:30", Source::Body).is_empty());
        assert_eq!(one("at 4:30"), "2026-11-28T16:30:00-08:00");
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
