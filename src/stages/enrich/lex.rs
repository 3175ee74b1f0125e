//! A small lexer shared by the date, name and place extractors: words, numbers with their
//! separators ("3:30pm", "12/5", "2026-06-03", "3rd") and sentence punctuation, each with its
//! byte range in the text. Hand-written because the extractors need the same token stream for
//! typed text and transcripts, and no crate lexes spoken numbers.

use std::sync::OnceLock;

use regex::Regex;

/// One token: its lower-cased text, byte range, and whether it was written capitalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tok {
    /// Lower-cased text ("a.m." becomes "am").
    pub w: String,
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset past the last byte.
    pub end: usize,
    /// The first character is upper case (typed names and places).
    pub cap: bool,
    /// Sentence or clause punctuation (`,` `.` `;` `!` `?` `:` `(` `)`), which names never cross.
    pub punct: bool,
}

fn token_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?x)
            \b[aApP]\.\s?[mM]\.?                                    # a.m. / p.m.
          | \b2(?:mor+o+w?|mor+ow|mr+w|moz|day|nite|night)\b           # 2moro, 2day, 2nite
          | \d{1,4}(?:[:/.\-]\d{1,4}){0,2}(?:st|nd|rd|th|am|pm|a|p|ish)?\b  # 3:30pm 12/5 3rd 5ish
          | \d+                                                     # long digit runs
          | \p{L}[\p{L}\p{M}]*(?:['’\-][\p{L}\p{M}]+)*               # words, o'clock, twenty-first
          | [,.;!?:()@\#]                                            # punctuation
        ",
        )
        .expect("static regex")
    })
}

/// The tokens of `text`.
pub fn lex(text: &str) -> Vec<Tok> {
    token_re()
        .find_iter(text)
        .map(|m| {
            let raw = m.as_str();
            let first = raw.chars().next().unwrap_or(' ');
            let mut w = raw.to_lowercase().replace('’', "'");
            if w.len() <= 5 && (w.starts_with("a.") || w.starts_with("p.")) && w.contains('m') {
                w = format!("{}m", &w[..1]);
            }
            if let Some(c) = canonical(&w) {
                w = c.to_owned();
            }
            Tok {
                punct: raw.len() == 1 && ",.;!?:()".contains(first),
                cap: first.is_uppercase(),
                w,
                start: m.start(),
                end: m.end(),
            }
        })
        .collect()
}

/// The word that SMS shorthand or a common misspelling stands for ("thrusday", "tmrw",
/// "2moro"); extractors see the canonical word.
pub fn canonical(w: &str) -> Option<&'static str> {
    Some(match w {
        "thrusday" | "thursdy" | "thurday" | "thirsday" | "thursady" | "thrursday" => "thursday",
        "wensday" | "wendsday" | "wednsday" | "wedensday" | "wednesay" | "wedsday"
        | "wednessday" => "wednesday",
        "teusday" | "tuseday" | "tuesdy" | "tueday" => "tuesday",
        "firday" | "fryday" | "fridy" => "friday",
        "monady" | "mondy" | "monay" => "monday",
        "saterday" | "satruday" | "saturdy" => "saturday",
        "sundy" | "sunady" => "sunday",
        "tmrw" | "tmr" | "tmw" | "tmrow" | "tomorow" | "tommorow" | "tommorrow" | "tomoro"
        | "tomorro" | "tomoz" | "2moro" | "2morro" | "2morow" | "2morrow" | "2mrw" | "2moz" => {
            "tomorrow"
        }
        "2day" => "today",
        "tonite" | "2nite" | "2night" | "tonight's" => "tonight",
        "noonish" => "noon",
        _ => return None,
    })
}

/// A number word's value: "zero".."nineteen", "twenty".."ninety", hyphenated "forty-five".
pub fn number_word(w: &str) -> Option<u32> {
    if let Some((tens, unit)) = w.split_once('-') {
        let (t, u) = (number_word(tens)?, number_word(unit)?);
        return (t >= 20 && t % 10 == 0 && (1..10).contains(&u)).then_some(t + u);
    }
    Some(match w {
        "zero" | "oh" | "o" => 0,
        "one" => 1,
        "two" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        "ten" => 10,
        "eleven" => 11,
        "twelve" => 12,
        "thirteen" => 13,
        "fourteen" => 14,
        "fifteen" => 15,
        "sixteen" => 16,
        "seventeen" => 17,
        "eighteen" => 18,
        "nineteen" => 19,
        "twenty" => 20,
        "thirty" => 30,
        "forty" => 40,
        "fifty" => 50,
        "sixty" => 60,
        "seventy" => 70,
        "eighty" => 80,
        "ninety" => 90,
        _ => return None,
    })
}

/// An ordinal word's value: "first".."thirtieth", hyphenated "twenty-first".
pub fn ordinal_word(w: &str) -> Option<u32> {
    if let Some((tens, unit)) = w.split_once('-') {
        let (t, u) = (number_word(tens)?, ordinal_word(unit)?);
        return (t >= 20 && t % 10 == 0 && (1..10).contains(&u)).then_some(t + u);
    }
    Some(match w {
        "first" => 1,
        "second" => 2,
        "third" => 3,
        "fourth" => 4,
        "fifth" => 5,
        "sixth" => 6,
        "seventh" => 7,
        "eighth" => 8,
        "ninth" => 9,
        "tenth" => 10,
        "eleventh" => 11,
        "twelfth" => 12,
        "thirteenth" => 13,
        "fourteenth" => 14,
        "fifteenth" => 15,
        "sixteenth" => 16,
        "seventeenth" => 17,
        "eighteenth" => 18,
        "nineteenth" => 19,
        "twentieth" => 20,
        "thirtieth" => 30,
        _ => return None,
    })
}

/// A number at token `i`: digits, one number word, or "forty five". Returns it and the next index.
pub fn number_at(toks: &[Tok], i: usize) -> Option<(u32, usize)> {
    let w = &toks.get(i)?.w;
    if !w.is_empty() && w.len() <= 4 && w.bytes().all(|b| b.is_ascii_digit()) {
        return Some((w.parse().ok()?, i + 1));
    }
    let n = number_word(w)?;
    if n >= 20 && n % 10 == 0 {
        if let Some(u) = toks.get(i + 1).and_then(|t| number_word(&t.w)) {
            if (1..10).contains(&u) {
                return Some((n + u, i + 2));
            }
        }
    }
    Some((n, i + 1))
}

/// An ordinal at token `i`: "3rd", "third", "twenty first", "twenty-first".
pub fn ordinal_at(toks: &[Tok], i: usize) -> Option<(u32, usize)> {
    let w = &toks.get(i)?.w;
    for suffix in ["st", "nd", "rd", "th"] {
        if let Some(d) = w.strip_suffix(suffix) {
            if !d.is_empty() && d.len() <= 2 && d.bytes().all(|b| b.is_ascii_digit()) {
                return Some((d.parse().ok()?, i + 1));
            }
        }
    }
    if let Some(n) = ordinal_word(w) {
        return Some((n, i + 1));
    }
    let tens = number_word(w)?;
    if tens >= 20 && tens % 10 == 0 {
        let u = ordinal_word(&toks.get(i + 1)?.w)?;
        if (1..10).contains(&u) {
            return Some((tens + u, i + 2));
        }
    }
    None
}

/// `words` joined by single spaces, each with its first letter upper-cased ("dana reyes" →
/// "Dana Reyes"); the rest of each word is kept ("McDonald", "CA").
pub fn title_case<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for w in words {
        if !out.is_empty() {
            out.push(' ');
        }
        let mut chars = w.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

/// Words that are a day or month name, or a date word: never a name or a place.
pub fn is_calendar_word(w: &str) -> bool {
    matches!(
        w,
        "monday"
            | "tuesday"
            | "wednesday"
            | "thursday"
            | "friday"
            | "saturday"
            | "sunday"
            | "mon"
            | "tue"
            | "tues"
            | "wed"
            | "thu"
            | "thur"
            | "thurs"
            | "fri"
            | "sat"
            | "sun"
            | "january"
            | "february"
            | "march"
            | "april"
            | "may"
            | "june"
            | "july"
            | "august"
            | "september"
            | "october"
            | "november"
            | "december"
            | "jan"
            | "feb"
            | "mar"
            | "apr"
            | "jun"
            | "jul"
            | "aug"
            | "sep"
            | "sept"
            | "oct"
            | "nov"
            | "dec"
            | "today"
            | "tonight"
            | "tomorrow"
            | "tmrw"
            | "yesterday"
            | "noon"
            | "midnight"
            | "morning"
            | "afternoon"
            | "evening"
            | "night"
            | "weekend"
            | "week"
            | "month"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(t: &str) -> Vec<String> {
        lex(t).into_iter().map(|t| t.w).collect()
    }

    #[test]
    fn numbers_times_and_dates_are_single_tokens() {
        assert_eq!(
            words("Call at 3:30pm, 12/5 or 2026-06-03 (3rd) 5 p.m. o'clock"),
            vec![
                "call",
                "at",
                "3:30pm",
                ",",
                "12/5",
                "or",
                "2026-06-03",
                "(",
                "3rd",
                ")",
                "5",
                "pm",
                "o'clock"
            ]
        );
    }

    #[test]
    fn spans_and_capitals_follow_the_text() {
        let t = "met Zoë Ngô 👋 at Café Olé";
        for tok in lex(t) {
            assert_eq!(t[tok.start..tok.end].to_lowercase(), tok.w);
        }
        let caps: Vec<bool> = lex(t).iter().map(|t| t.cap).collect();
        assert_eq!(caps, vec![false, true, true, false, true, true]);
    }

    #[test]
    fn shorthand_and_misspellings_read_as_their_word() {
        assert_eq!(
            words("thrusday 2moro tmrw wensday noonish 2nite"),
            vec![
                "thursday",
                "tomorrow",
                "tomorrow",
                "wednesday",
                "noon",
                "tonight"
            ]
        );
    }

    #[test]
    fn spoken_numbers_and_ordinals() {
        let toks = lex("forty five twenty first thirty-first the 15th");
        assert_eq!(number_at(&toks, 0), Some((45, 2)));
        assert_eq!(ordinal_at(&toks, 2), Some((21, 4)));
        assert_eq!(ordinal_at(&toks, 4), Some((31, 5)));
        assert_eq!(ordinal_at(&toks, 6), Some((15, 7)));
        assert_eq!(ordinal_at(&toks, 5), None);
    }
}
