//! Extraction quality over a hand-written corpus of typed SMS bodies, voice-note transcripts
//! and vCards: prints precision and recall per kind (run with `--nocapture`) and holds floors
//! for the kinds the product relies on.

use std::collections::BTreeMap;

use smsflow::stages::enrich::{extract, extract_vcard, Context, Item, ItemKind, Source};

use serde::Deserialize;

#[derive(Deserialize)]
struct Corpus {
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    id: String,
    source: String,
    received_at: String,
    tz: String,
    region: Option<String>,
    /// "dev": written first, then extractors were fixed for gaps it showed; "holdout": added
    /// after those fixes and not tuned for.
    #[serde(default)]
    set: String,
    text: String,
    expected: Vec<Expected>,
}

#[derive(Deserialize)]
struct Expected {
    kind: String,
    normalized: String,
}

#[derive(Default, Clone, Copy)]
struct Counts {
    tp: usize,
    fp: usize,
    fn_: usize,
}

impl Counts {
    fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
}

/// 1.0 for an empty denominator: nothing expected and nothing found is not a failure.
fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

/// Names and places compare case-insensitively; a date-time compares as the instant it names
/// ("10:00-05:00" and "07:00-08:00" are the same time); the other kinds have exact canonical
/// forms.
fn key(kind: ItemKind, normalized: &str) -> String {
    match kind {
        ItemKind::Contact | ItemKind::Place | ItemKind::Org => normalized.to_lowercase(),
        ItemKind::DateTime => chrono::DateTime::parse_from_rfc3339(normalized)
            .map(|t| t.with_timezone(&chrono::Utc).to_rfc3339())
            .unwrap_or_else(|_| normalized.to_owned()),
        _ => normalized.to_owned(),
    }
}

fn run(e: &Entry) -> Vec<Item> {
    let received = chrono::DateTime::parse_from_rfc3339(&e.received_at)
        .unwrap_or_else(|err| panic!("{}: bad received_at: {err}", e.id));
    let tz: chrono_tz::Tz =
        e.tz.parse()
            .unwrap_or_else(|err| panic!("{}: bad tz: {err}", e.id));
    let region = e.region.as_deref().map(|r| {
        r.parse::<phonenumber::country::Id>()
            .unwrap_or_else(|_| panic!("{}: bad region {r}", e.id))
    });
    let ctx = Context::new(region, received.timestamp_micros(), tz);
    match e.source.as_str() {
        "body" => extract(&e.text, Source::Body, &ctx),
        "transcript" => extract(&e.text, Source::Transcript, &ctx),
        "vcard" => extract_vcard(e.text.as_bytes(), &ctx)
            .unwrap_or_else(|err| panic!("{}: vCard rejected: {err}", e.id)),
        other => panic!("{}: unknown source {other}", e.id),
    }
}

/// A table of counts by source ("body", "transcript", "vcard") and kind.
type Table = BTreeMap<(String, ItemKind), Counts>;

fn f1(c: &Counts) -> f64 {
    let (p, r) = (c.precision(), c.recall());
    if p + r == 0.0 {
        0.0
    } else {
        2.0 * p * r / (p + r)
    }
}

fn print_table(title: &str, counts: &Table) {
    println!("\n{title}");
    println!(
        "{:<11} {:<9} {:>4} {:>4} {:>4} {:>9} {:>7} {:>5}",
        "source", "kind", "tp", "fp", "fn", "precision", "recall", "f1"
    );
    for ((source, kind), c) in counts {
        println!(
            "{:<11} {:<9} {:>4} {:>4} {:>4} {:>9.2} {:>7.2} {:>5.2}",
            source,
            kind.as_str(),
            c.tp,
            c.fp,
            c.fn_,
            c.precision(),
            c.recall(),
            f1(c)
        );
    }
}

/// Scores every entry: the table over all entries, the one over holdout entries, and one line
/// per miss or extra.
fn score(entries: &[Entry]) -> (Table, Table, Vec<String>) {
    let mut all = Table::new();
    let mut holdout = Table::new();
    let mut misses = Vec::new();
    for e in entries {
        let mut expected: Vec<(ItemKind, String)> = e
            .expected
            .iter()
            .map(|x| {
                let kind = ItemKind::parse(&x.kind)
                    .unwrap_or_else(|| panic!("{}: unknown kind {}", e.id, x.kind));
                (kind, key(kind, &x.normalized))
            })
            .collect();
        let mut count = |kind: ItemKind, f: &dyn Fn(&mut Counts)| {
            f(all.entry((e.source.clone(), kind)).or_default());
            if e.set == "holdout" {
                f(holdout.entry((e.source.clone(), kind)).or_default());
            }
        };
        for it in run(e) {
            let k = (it.kind, key(it.kind, &it.normalized));
            match expected.iter().position(|x| *x == k) {
                Some(pos) => {
                    count(it.kind, &|c| c.tp += 1);
                    expected.remove(pos);
                }
                None => {
                    count(it.kind, &|c| c.fp += 1);
                    misses.push(format!(
                        "{} extra   {} {:?}",
                        e.id,
                        it.kind.as_str(),
                        it.normalized
                    ));
                }
            }
        }
        for (kind, norm) in expected {
            count(kind, &|c| c.fn_ += 1);
            misses.push(format!("{} missed  {} {:?}", e.id, kind.as_str(), norm));
        }
    }
    (all, holdout, misses)
}

/// Floors per source and kind: (source, kind, precision, recall, F1). Precision stays at or
/// above 0.85 everywhere (issue 16); recall and F1 floors are the figures measured when they
/// were last raised (rounded down to 0.01), so any regression fails here. Issue 16's F1 goals,
/// SMS / transcripts: phone 0.99 / 0.9, email 1.0 / 0.85, url 1.0 / 0.85, datetime 0.9 / 0.95,
/// contact 0.85 / 0.8, place 0.85 / 0.8.
const FLOORS: &[(&str, ItemKind, f64, f64, f64)] = &[
    ("body", ItemKind::Phone, 0.85, 0.98, 0.99),
    ("body", ItemKind::Email, 0.85, 1.0, 1.0),
    ("body", ItemKind::Url, 0.85, 1.0, 1.0),
    ("body", ItemKind::Tag, 0.85, 1.0, 1.0),
    ("body", ItemKind::Contact, 0.85, 0.97, 0.98),
    ("body", ItemKind::DateTime, 0.85, 0.95, 0.96),
    ("body", ItemKind::Place, 0.85, 0.93, 0.96),
    ("transcript", ItemKind::Phone, 0.85, 1.0, 1.0),
    ("transcript", ItemKind::Email, 0.85, 1.0, 1.0),
    ("transcript", ItemKind::Url, 0.85, 1.0, 1.0),
    ("transcript", ItemKind::Tag, 0.85, 1.0, 1.0),
    ("transcript", ItemKind::Contact, 0.85, 0.91, 0.95),
    ("transcript", ItemKind::DateTime, 0.85, 0.97, 0.97),
    ("transcript", ItemKind::Place, 0.85, 1.0, 1.0),
    ("vcard", ItemKind::Phone, 0.85, 1.0, 1.0),
    ("vcard", ItemKind::Email, 0.85, 1.0, 1.0),
    ("vcard", ItemKind::Url, 0.85, 1.0, 1.0),
    ("vcard", ItemKind::Contact, 0.85, 1.0, 1.0),
    ("vcard", ItemKind::Place, 0.85, 1.0, 1.0),
    ("vcard", ItemKind::Org, 0.85, 1.0, 1.0),
];

#[test]
fn extraction_quality_meets_the_floors() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/enrich_corpus.json"
    );
    let raw = std::fs::read_to_string(path).expect("corpus readable");
    let corpus: Corpus = serde_json::from_str(&raw).expect("corpus is valid JSON");
    assert!(
        corpus.entries.len() >= 200,
        "corpus has {} entries",
        corpus.entries.len()
    );

    let (counts, holdout, misses) = score(&corpus.entries);
    print_table("all entries", &counts);
    print_table("holdout entries only", &holdout);
    println!("\nmisses and extras:");
    for m in &misses {
        println!("  {m}");
    }

    let mut failures = Vec::new();
    for &(source, kind, p_floor, r_floor, f_floor) in FLOORS {
        let c = counts
            .get(&(source.to_owned(), kind))
            .copied()
            .unwrap_or_default();
        assert!(
            c.tp + c.fn_ > 0,
            "{source} {}: the corpus has no such items to measure",
            kind.as_str()
        );
        // Compared at the floors' precision (0.01) so that 0.9907 meets 0.99.
        let round = |x: f64| (x * 100.0).floor() / 100.0;
        let (p, r, f) = (round(c.precision()), round(c.recall()), round(f1(&c)));
        if p < p_floor || r < r_floor || f < f_floor {
            failures.push(format!(
                "{source} {}: precision {p:.2} (floor {p_floor}), recall {r:.2} (floor {r_floor}), F1 {f:.2} (floor {f_floor})",
                kind.as_str()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "under the floors:\n{}",
        failures.join("\n")
    );
}
