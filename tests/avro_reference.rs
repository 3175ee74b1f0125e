//! Our Avro fingerprints against the reference implementation: Java `org.apache.avro:avro`
//! (`SchemaNormalization.parsingFingerprint64`), fetched from Maven Central and run by
//! `tests/interop/java/run.sh`. Every file in `schemas/` must agree, canonical form and all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use smsflow::events::{canonical_form_of_json, fingerprint_of_json, legacy_fingerprint, registry};

struct JavaSays {
    fingerprint_hex: String,
    canonical_form: String,
}

fn schema_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("schemas/ exists")
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "avsc"))
        .collect();
    files.sort();
    files
}

fn java_reference(files: &[PathBuf]) -> BTreeMap<String, JavaSays> {
    let out = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/interop/java/run.sh"
        ))
        .arg("AvroFingerprints")
        .args(files)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "the Java reference could not run (it needs mvn, javac and Maven Central):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|line| {
            let mut parts = line.splitn(4, ' ');
            let file = parts.next().expect("file").to_owned();
            let fingerprint_hex = parts.next().expect("hex").to_owned();
            let _as_long = parts.next().expect("long");
            let canonical_form = parts.next().expect("canonical form").to_owned();
            (
                file,
                JavaSays {
                    fingerprint_hex,
                    canonical_form,
                },
            )
        })
        .collect()
}

#[test]
fn every_schema_file_has_the_fingerprint_java_avro_computes() {
    let files = schema_files();
    assert!(files.len() >= 16, "schemas/ holds every event");
    let java = java_reference(&files);
    assert_eq!(java.len(), files.len(), "Java answered for every file");
    let mut differ = Vec::new();
    for path in &files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(path).unwrap();
        let ours = hex::encode(fingerprint_of_json(&text).unwrap());
        let theirs = &java[&file];
        let before = hex::encode(legacy_fingerprint(
            &apache_avro::Schema::parse_str(&text).unwrap(),
        ));
        println!(
            "{file:28} java {}  smsflow {ours}  (before the fix: {before})",
            theirs.fingerprint_hex
        );
        if ours != theirs.fingerprint_hex {
            differ.push(format!(
                "{file}: smsflow {ours}, Java {}",
                theirs.fingerprint_hex
            ));
        }
        assert_eq!(
            canonical_form_of_json(&text).unwrap(),
            theirs.canonical_form,
            "{file}: Parsing Canonical Form"
        );
        // The header the codec writes is the one Java computes.
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let full_name = format!(
            "{}.{}",
            json["namespace"].as_str().unwrap(),
            json["name"].as_str().unwrap()
        );
        let (header_fp, _) = registry().by_name(&full_name).expect("embedded");
        assert_eq!(
            hex::encode(header_fp),
            theirs.fingerprint_hex,
            "{file}: header"
        );
    }
    assert!(
        differ.is_empty(),
        "fingerprints differ:\n{}",
        differ.join("\n")
    );
}
