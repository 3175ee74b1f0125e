//! Spoken forms, as a speech recognizer writes them: number words become digits ("five one
//! zero" → "510", "oh" counts as zero, "double five" → "55"), and "at", "dot", "slash" join
//! the words of addresses. Each token keeps its byte range in the transcript.

/// A word of the transcript with its byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token<'a> {
    pub text: &'a str,
    pub start: usize,
    pub end: usize,
}

/// Split on whitespace and light punctuation, keeping byte ranges.
pub fn tokens(text: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        let sep = c.is_whitespace() || matches!(c, ',' | ';' | '!' | '?');
        match (sep, start) {
            (true, Some(s)) => {
                out.push(Token {
                    text: text[s..i].trim_end_matches('.'),
                    start: s,
                    end: i,
                });
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(Token {
            text: text[s..].trim_end_matches('.'),
            start: s,
            end: text.len(),
        });
    }
    out.retain(|t| !t.text.is_empty());
    out
}

/// The digit a spoken word stands for.
pub fn digit(word: &str) -> Option<char> {
    Some(match word.to_ascii_lowercase().as_str() {
        "zero" | "oh" | "o" => '0',
        "one" => '1',
        "two" => '2',
        "three" => '3',
        "four" | "for" => '4',
        "five" => '5',
        "six" => '6',
        "seven" => '7',
        "eight" => '8',
        "nine" => '9',
        _ => return None,
    })
}

/// Digits a spoken number word stands for inside a phone number: "twenty one" 21, "forty" 40,
/// "fifteen" 15.
pub struct Group {
    /// The digits ("21").
    pub digits: String,
    /// "twenty one": the unit word belongs to the group.
    pub consumes_next: bool,
}

/// The digits of a teen or tens word, with the unit after it: "twenty one" 21, "forty" 40.
pub fn number_group(word: &str, next: Option<&str>) -> Option<Group> {
    const TEENS: &[&str] = &[
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: &[&str] = &[
        "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    if let Some(i) = TEENS.iter().position(|t| *t == word) {
        return Some(Group {
            digits: format!("{}", 10 + i),
            consumes_next: false,
        });
    }
    let tens = TENS.iter().position(|t| *t == word)? + 2;
    match next.and_then(digit).filter(|d| *d != '0') {
        Some(unit) => Some(Group {
            digits: format!("{tens}{unit}"),
            consumes_next: true,
        }),
        None => Some(Group {
            digits: format!("{tens}0"),
            consumes_next: false,
        }),
    }
}

/// Runs of spoken digits (at least `min` of them): the digits and the byte range they cover.
pub fn digit_runs(text: &str, min: usize) -> Vec<(String, usize, usize)> {
    let toks = tokens(text);
    let mut runs = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let mut digits = String::new();
        let (start, mut end) = (toks[i].start, toks[i].end);
        let mut j = i;
        while j < toks.len() {
            let w = toks[j].text.to_ascii_lowercase();
            if (w == "double" || w == "triple") && j + 1 < toks.len() {
                if let Some(d) = digit(toks[j + 1].text) {
                    let n = if w == "double" { 2 } else { 3 };
                    digits.extend(std::iter::repeat_n(d, n));
                    end = toks[j + 1].end;
                    j += 2;
                    continue;
                }
            }
            if let Some(d) = digit(&w) {
                digits.push(d);
                end = toks[j].end;
                j += 1;
            } else if let Some(group) = number_group(&w, toks.get(j + 1).map(|t| t.text)) {
                // "one eight hundred", "five five five twenty one forty two".
                if group.consumes_next {
                    end = toks[j + 1].end;
                    j += 2;
                } else {
                    end = toks[j].end;
                    j += 1;
                }
                digits.push_str(&group.digits);
            } else if (w == "hundred" || w == "thousand") && !digits.is_empty() {
                digits.push_str(if w == "hundred" { "00" } else { "000" });
                end = toks[j].end;
                j += 1;
            } else if w.chars().all(|c| c.is_ascii_digit()) {
                digits.push_str(&w);
                end = toks[j].end;
                j += 1;
            } else {
                break;
            }
        }
        if digits.len() >= min {
            runs.push((digits, start, end));
            i = j;
        } else {
            i += 1;
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spoken_digits_become_a_number_with_their_range() {
        let t = "my number is five one zero five five five zero one four two thanks";
        let runs = digit_runs(t, 7);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].0, "5105550142");
        assert_eq!(
            &t[runs[0].1..runs[0].2],
            "five one zero five five five zero one four two"
        );
    }

    #[test]
    fn oh_and_double_are_understood() {
        let runs = digit_runs("call four one five double five oh one nine nine", 7);
        assert_eq!(runs[0].0, "415550199");
    }

    #[test]
    fn hundreds_tens_and_teens_inside_numbers() {
        let runs = digit_runs("call one eight hundred five five five zero one one two", 7);
        assert_eq!(runs[0].0, "18005550112");
        let runs = digit_runs("four one five five five five twenty one forty", 7);
        assert_eq!(runs[0].0, "4155552140");
        let runs = digit_runs("seven one eight five five five nineteen oh five", 7);
        assert_eq!(runs[0].0, "7185551905");
    }

    #[test]
    fn short_runs_are_not_numbers() {
        assert!(digit_runs("meet at five", 7).is_empty());
    }
}
