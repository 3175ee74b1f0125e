//! `smsflow extract` as a person or a CI job runs it: the real binary, stdin in, JSON lines
//! out, no Kafka or other service.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use smsflow::stages::enrich::{extract, Context, Source};

fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .arg("extract")
        .args(args)
        // Nothing here may need a broker: point Kafka at a closed port to prove it.
        .env("SMSFLOW_KAFKA__BROKERS", "127.0.0.1:9")
        .env_remove("SMSFLOW_CONFIG")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the smsflow binary starts");
    let mut input = child.stdin.take().expect("stdin");
    let text = stdin.to_owned();
    let writer = std::thread::spawn(move || input.write_all(text.as_bytes()));
    let out = child.wait_with_output().expect("the binary exits");
    writer.join().expect("writer").expect("stdin written");
    out
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .expect("UTF-8 output")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?} is not JSON: {e}")))
        .collect()
}

#[test]
fn plain_text_and_json_lines_give_one_json_line_each() {
    let input = concat!(
        "Ingrid Solberg here, +47 412 34 567, back on the 1st\n",
        r#"{"id":"vm-7","text":"hi its dev patel lets talk tomorrow at ten a m eastern","source":"transcript","region":"US","received_at":"2026-04-14T15:00:00Z","time_zone":"America/New_York"}"#,
        "\n",
    );
    let out = run(
        &[
            "--region",
            "US",
            "--time-zone",
            "America/New_York",
            "--received-at",
            "2026-04-14T15:00:00Z",
        ],
        input,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["id"], 1);
    let first: Vec<(String, String)> = lines[0]["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["kind"].as_str().unwrap_or_default().to_owned(),
                i["normalized"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        first,
        vec![
            ("contact".to_owned(), "Ingrid Solberg".to_owned()),
            ("phone".to_owned(), "+4741234567".to_owned()),
            ("datetime".to_owned(), "2026-05-01".to_owned()),
        ]
    );
    let phone = &lines[0]["items"][1];
    assert_eq!(phone["value"], "+47 412 34 567");
    assert_eq!(phone["span"], serde_json::json!([21, 35]));
    assert!(phone["confidence"]
        .as_f64()
        .is_some_and(|c| c > 0.0 && c <= 1.0));
    assert_eq!(lines[1]["id"], "vm-7");
    assert_eq!(lines[1]["items"][0]["normalized"], "Dev Patel");
    assert_eq!(
        lines[1]["items"][1]["normalized"],
        "2026-04-15T10:00:00-04:00"
    );
}

#[test]
fn the_cli_gives_what_the_stage_extractor_gives_on_the_corpus() {
    let raw = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/enrich_corpus.json"
    ))
    .expect("corpus");
    let corpus: Value = serde_json::from_str(&raw).expect("corpus JSON");
    let entries: Vec<&Value> = corpus["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["source"] != "vcard")
        .collect();
    let input: String = entries
        .iter()
        .map(|e| {
            serde_json::json!({
                "id": e["id"], "text": e["text"], "source": e["source"], "region": e["region"],
                "received_at": e["received_at"], "time_zone": e["tz"],
            })
            .to_string()
                + "\n"
        })
        .collect();
    let out = run(&[], &input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), entries.len());
    for (e, line) in entries.iter().zip(&lines) {
        assert_eq!(line["id"], e["id"]);
        let received =
            chrono::DateTime::parse_from_rfc3339(e["received_at"].as_str().unwrap_or_default())
                .expect("received_at");
        let tz: chrono_tz::Tz = e["tz"].as_str().unwrap_or_default().parse().expect("tz");
        let region = e["region"].as_str().and_then(|r| r.parse().ok());
        let source = if e["source"] == "transcript" {
            Source::Transcript
        } else {
            Source::Body
        };
        let text = e["text"].as_str().unwrap_or_default();
        let want: Vec<(String, String, [usize; 2])> = extract(
            text,
            source,
            &Context::new(region, received.timestamp_micros(), tz),
        )
        .into_iter()
        .map(|i| {
            (
                i.kind.as_str().to_owned(),
                i.normalized,
                [i.span.0, i.span.1],
            )
        })
        .collect();
        let got: Vec<(String, String, [usize; 2])> = line["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| {
                (
                    i["kind"].as_str().unwrap_or_default().to_owned(),
                    i["normalized"].as_str().unwrap_or_default().to_owned(),
                    [
                        i["span"][0].as_u64().unwrap_or(u64::MAX) as usize,
                        i["span"][1].as_u64().unwrap_or(u64::MAX) as usize,
                    ],
                )
            })
            .collect();
        assert_eq!(got, want, "{}", e["id"]);
    }
}

#[test]
fn bad_lines_are_reported_and_the_exit_status_says_so() {
    let input = concat!(
        r#"{"text":"call 510-555-0142","region":"Atlantis"}"#,
        "\n",
        "call 510-555-0142\n",
    );
    let out = run(&["--region", "US"], input);
    assert!(!out.status.success(), "a bad line fails the run");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2, "the good line is still answered");
    assert!(lines[0]["error"]
        .as_str()
        .is_some_and(|e| e.contains("ISO 3166")));
    assert_eq!(lines[1]["items"][0]["normalized"], "+15105550142");
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 of 2 lines"));

    let refused = run(&["--time-zone", "Mars/Olympus"], "hello\n");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("IANA"));
}
