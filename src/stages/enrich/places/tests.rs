//! Unit tests of the place finder.

use super::*;

fn norms(text: &str, source: Source) -> Vec<String> {
    places(text, source)
        .into_iter()
        .map(|i| i.normalized)
        .collect()
}

#[test]
fn typed_addresses() {
    assert_eq!(
        norms(
            "Office is 1200 Broadway, Oakland, CA 94612 - 3rd floor",
            Source::Body
        ),
        vec!["1200 Broadway, Oakland, CA 94612"]
    );
    assert_eq!(
        norms("drop it at 123 Main St. thx", Source::Body),
        vec!["123 Main St."]
    );
    // A weekday after the comma is the date, not the city.
    assert_eq!(
        norms(
            "lunch with Sam at Tartine, 600 Guerrero St, Friday noon #personal",
            Source::Body
        ),
        vec!["Tartine", "600 Guerrero St"]
    );
    assert_eq!(
        norms(
            "new office: 500 W 5th Street, Suite 200, Austin, TX",
            Source::Body
        ),
        vec!["500 W 5th Street, Suite 200, Austin, TX"]
    );
}

#[test]
fn at_places_typed_and_spoken() {
    assert_eq!(
        norms("met Dana Reyes at the Oakland expo, her cell", Source::Body),
        vec!["Oakland Expo"]
    );
    assert_eq!(
        norms("coffee at Blue Bottle at 3", Source::Body),
        vec!["Blue Bottle"]
    );
    assert_eq!(
        norms("met dana at the oakland expo yesterday", Source::Transcript),
        vec!["Oakland Expo"]
    );
    assert_eq!(
        norms("its at twelve hundred broadway", Source::Transcript),
        vec!["1200 Broadway"]
    );
    assert_eq!(
        norms(
            "the shop is at one twenty three main street",
            Source::Transcript
        ),
        vec!["123 Main Street"]
    );
}

#[test]
fn units_floors_postcodes_and_cities() {
    assert_eq!(
        norms(
            "new office: 22 Wood Street, 3rd Floor, London",
            Source::Body
        ),
        vec!["22 Wood Street, 3rd Floor, London"]
    );
    assert_eq!(
        norms(
            "to 221B Baker Street, London NW1 6XE on Tuesday",
            Source::Body
        ),
        vec!["221B Baker Street, London NW1 6XE"]
    );
    assert_eq!(
        norms(
            "drop it at eighteen fifty mission street third floor",
            Source::Transcript
        ),
        vec!["1850 Mission Street 3rd Floor"]
    );
    assert_eq!(
        norms(
            "its at three twenty five hudson street suite b",
            Source::Transcript
        ),
        vec!["325 Hudson Street Suite B"]
    );
    assert_eq!(
        norms("conference in Las Vegas, booth 1142", Source::Body),
        vec!["Las Vegas"]
    );
    assert!(norms("in Person", Source::Body).is_empty());
}

#[test]
fn lower_case_venues_in_transcripts() {
    for (t, want) in [
        ("meet me at union station by the hall", "Union Station"),
        ("the kids are at riverside park", "Riverside Park"),
        ("lunch at the walnut room tomorrow", "Walnut Room"),
        (
            "i'll be at the hyatt regency downtown",
            "Hyatt Regency Downtown",
        ),
    ] {
        assert_eq!(norms(t, Source::Transcript), vec![want], "{t}");
    }
    for t in ["at the office", "at five at the park", "at the moment"] {
        assert!(norms(t, Source::Transcript).is_empty(), "{t}");
    }
}

#[test]
fn times_emails_and_prose_are_not_places() {
    for (t, s) in [
        ("see you at 5pm", Source::Body),
        ("at noon", Source::Body),
        ("dana at acme dot io", Source::Transcript),
        ("meet me at five at the dot com party", Source::Transcript),
        ("at the moment", Source::Body),
        ("at least 3", Source::Body),
        ("at Monday standup", Source::Body),
        ("i have 3 kids", Source::Transcript),
    ] {
        assert!(norms(t, s).is_empty(), "{t}: {:?}", norms(t, s));
    }
}

#[test]
fn odd_unicode_does_not_panic() {
    for t in [
        "at",
        "at the",
        "at Café Olé",
        "12 ",
        "at Ｍain",
        "١٢٣ Main St",
        "99999999999 Main Street",
        "at \u{0301}",
    ] {
        for s in [Source::Body, Source::Transcript] {
            for i in places(t, s) {
                assert_eq!(&t[i.span.0..i.span.1], i.value);
            }
        }
    }
    assert_eq!(norms("at Café Olé", Source::Body), vec!["Café Olé"]);
}
