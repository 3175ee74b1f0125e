//! Opt-out keywords. Carriers and Twilio treat a message whose whole body is one of these
//! words (any case) as an opt-out or opt-in; Twilio's Advanced Opt-Out also sends
//! `OptOutType` (STOP, START or HELP) with the webhook.

/// What an inbound message asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    /// Stop all messages; the matched keyword, upper-case.
    OptOut(&'static str),
    /// Messages welcome again.
    OptIn(&'static str),
    /// Asks who we are and how to stop.
    Help,
}

const OPT_OUT: &[&str] = &[
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "END",
    "CANCEL",
    "QUIT",
    "OPTOUT",
    "REVOKE",
];
const OPT_IN: &[&str] = &["START", "UNSTOP", "YES"];
const HELP: &[&str] = &["HELP", "INFO"];

/// Classify a message by Twilio's `OptOutType` when present, else by its body.
pub fn classify(body: &str, opt_out_type: Option<&str>) -> Option<Keyword> {
    if let Some(t) = opt_out_type {
        match t.trim().to_ascii_uppercase().as_str() {
            "STOP" => return Some(Keyword::OptOut("STOP")),
            "START" => return Some(Keyword::OptIn("START")),
            "HELP" => return Some(Keyword::Help),
            _ => {}
        }
    }
    // Whole body only: "please stop by at 5" is a note, not an opt-out.
    let word = body
        .trim()
        .trim_end_matches(['.', '!'])
        .trim()
        .to_ascii_uppercase();
    if let Some(k) = OPT_OUT.iter().find(|k| **k == word) {
        return Some(Keyword::OptOut(k));
    }
    if let Some(k) = OPT_IN.iter().find(|k| **k == word) {
        return Some(Keyword::OptIn(k));
    }
    HELP.contains(&word.as_str()).then_some(Keyword::Help)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_body_keywords_in_any_case() {
        for w in [
            "STOP",
            "stop",
            " Stop. ",
            "STOPALL",
            "unsubscribe",
            "End",
            "cancel",
            "QUIT",
        ] {
            assert!(matches!(classify(w, None), Some(Keyword::OptOut(_))), "{w}");
        }
        for w in ["START", "unstop", "Yes!"] {
            assert!(matches!(classify(w, None), Some(Keyword::OptIn(_))), "{w}");
        }
        assert_eq!(classify("help", None), Some(Keyword::Help));
        assert_eq!(classify("please stop by at 5", None), None);
        assert_eq!(classify("stopwatch", None), None);
        assert_eq!(classify("", None), None);
    }

    #[test]
    fn twilio_opt_out_type_wins() {
        assert_eq!(
            classify("arrêt", Some("STOP")),
            Some(Keyword::OptOut("STOP"))
        );
        assert_eq!(classify("hi", Some("START")), Some(Keyword::OptIn("START")));
        assert_eq!(classify("stop", Some("HELP")), Some(Keyword::Help));
        assert!(matches!(
            classify("stop", Some("")),
            Some(Keyword::OptOut("STOP"))
        ));
    }
}
