//! Unit tests of the name finder.

use super::*;

fn found(text: &str, source: Source) -> Vec<(String, f32)> {
    names(text, source)
        .into_iter()
        .map(|i| (i.normalized, i.confidence))
        .collect()
}

fn norms(text: &str, source: Source) -> Vec<String> {
    found(text, source).into_iter().map(|(n, _)| n).collect()
}

#[test]
fn typed_names_after_cues() {
    assert_eq!(
        norms(
            "met Dana Reyes at the Oakland expo, her cell is 510-555-0142",
            Source::Body
        ),
        vec!["Dana Reyes"]
    );
    assert_eq!(
        norms("Call Priya re pricing tomorrow", Source::Body),
        vec!["Priya"]
    );
    assert_eq!(
        norms("Hi, this is Marcus O'Neil from Acme", Source::Body),
        vec!["Marcus O'Neil"]
    );
    assert_eq!(norms("talk to Dr. Patel", Source::Body), vec!["Patel"]);
}

#[test]
fn two_words_score_higher_than_one_and_typed_higher_than_spoken() {
    let two = found("met Dana Reyes today", Source::Body);
    let one = found("met Dana today", Source::Body);
    let spoken = found("met dana reyes today", Source::Transcript);
    assert!(two[0].1 > one[0].1);
    assert!(two[0].1 > spoken[0].1);
}

#[test]
fn cues_without_a_name_give_nothing() {
    for t in [
        "met at the cafe",
        "call me tomorrow",
        "Call Me Maybe",
        "this is great",
        "text Monday",
        "from 9 to 5",
        "ask about pricing",
    ] {
        assert!(norms(t, Source::Body).is_empty(), "{t}");
    }
    for t in [
        "call me back tomorrow",
        "met at the cafe",
        "this is a reminder",
        "ask about the quote",
        "its five thirty",
    ] {
        assert!(norms(t, Source::Transcript).is_empty(), "{t}");
    }
}

#[test]
fn transcripts_need_a_cue_or_a_given_name_and_surname() {
    assert_eq!(
        norms(
            "hi my name is dana reyes and my number is five one zero",
            Source::Transcript
        ),
        vec!["Dana Reyes"]
    );
    assert_eq!(
        norms("hey its priya calling about the quote", Source::Transcript),
        vec!["Priya"]
    );
    assert_eq!(
        norms("remember to call marcus tomorrow", Source::Transcript),
        vec!["Marcus"]
    );
    // Without a cue: a given name and a surname from the gazetteer, neither an everyday word.
    assert_eq!(
        norms("so my colleague maya chen will call", Source::Transcript),
        vec!["Maya Chen"]
    );
    assert!(norms("dana will call", Source::Transcript).is_empty());
    assert!(norms("the rose garden park", Source::Transcript).is_empty());
    assert!(norms("we drove to san jose", Source::Transcript).is_empty());
}

#[test]
fn spoken_lists_titles_and_everyday_word_surnames() {
    assert_eq!(
        norms(
            "please ask for either nadia or luis in accounting",
            Source::Transcript
        ),
        vec!["Nadia", "Luis"]
    );
    assert_eq!(
        norms(
            "lunch with priya and george grey at the cafe",
            Source::Transcript
        ),
        vec!["Priya", "George Grey"]
    );
    assert_eq!(
        norms("hi its oliver ring me back", Source::Transcript),
        vec!["Oliver"]
    );
    assert_eq!(
        norms("two thirty with doctor ruiz", Source::Transcript),
        vec!["Ruiz"]
    );
    assert!(norms("this is the pharmacy", Source::Transcript).is_empty());
    assert!(norms("ready for pickup with the van", Source::Transcript).is_empty());
}

#[test]
fn typed_names_without_cues_titles_possessives_and_signatures() {
    for (t, want) in [
        ("Ingrid Solberg here, new number", vec!["Ingrid Solberg"]),
        (
            "Hannah Whitfield's new cell is 617",
            vec!["Hannah Whitfield"],
        ),
        ("Appt with Dr. Amara Osei tmrw", vec!["Amara Osei"]),
        ("Mrs. Alvarado called", vec!["Alvarado"]),
        (
            "Siobhan O'Malley | Account Manager | +353",
            vec!["Siobhan O'Malley"],
        ),
        ("Thanks! — Gabriela Ruiz", vec!["Gabriela Ruiz"]),
        (
            "Mary Beth Collins and Juan Carlos Ortega are in",
            vec!["Mary Beth Collins", "Juan Carlos Ortega"],
        ),
        (
            "Kickoff w/ Ravi Menon + Ellie Brooks",
            vec!["Ravi Menon", "Ellie Brooks"],
        ),
        (
            "ask for Katrin Vogt or Felix Brandt",
            vec!["Katrin Vogt", "Felix Brandt"],
        ),
        (
            "Zoë Lindqvist and Björn Haas land",
            vec!["Zoë Lindqvist", "Björn Haas"],
        ),
        ("Loop in Devon Ashby", vec!["Devon Ashby"]),
        (
            "call w/ Marisol Vega & Tom Becker",
            vec!["Marisol Vega", "Tom Becker"],
        ),
        ("Ring Aoife Brennan on 087", vec!["Aoife Brennan"]),
    ] {
        assert_eq!(norms(t, Source::Body), want, "{t}");
    }
}

#[test]
fn places_organisations_and_everyday_words_are_not_names() {
    for t in [
        "meet at Dolores Park on Saturday",
        "dinner at Sylvia's",
        "Greenway Supply 1.510.555.0166",
        "2250 W Fulton St, Unit 4",
        "Grace period ends Friday",
        "Will do, thanks",
        "Our Sydney rep is on it",
        "+49 151 4455 6677 is her German cell",
        "Sent the proposal to Acme.",
        "Demo for Brightline next Thursday",
        "the team at Lincoln High School",
    ] {
        assert!(
            norms(t, Source::Body).is_empty(),
            "{t}: {:?}",
            norms(t, Source::Body)
        );
    }
}

#[test]
fn organisation_after_from_is_not_a_name() {
    assert_eq!(norms("Hi it's Dana from Acme", Source::Body), vec!["Dana"]);
}

#[test]
fn odd_unicode_does_not_panic_and_keeps_spans() {
    for t in [
        "met Zoë Ngô 👋",
        "met",
        "met Ｄａｎａ",
        "call İlkay Gündoğan",
        "this is \u{0301}\u{0301}",
        "my name is",
    ] {
        for s in [Source::Body, Source::Transcript] {
            for i in names(t, s) {
                assert_eq!(&t[i.span.0..i.span.1], i.value);
            }
        }
    }
    assert_eq!(norms("met Zoë Ngô", Source::Body), vec!["Zoë Ngô"]);
}
