//! The schemas in `schemas/`, parsed once and indexed by name and by CRC-64-AVRO fingerprint.

use std::collections::HashMap;
use std::sync::OnceLock;

use apache_avro::Schema;

use super::fingerprint::{fingerprint, legacy_fingerprint};

/// Every `.avsc` in `schemas/`, embedded at build time so the binary carries its contract.
const SCHEMA_FILES: &[(&str, &str)] = &[
    (
        "MessageReceived.avsc",
        include_str!("../../schemas/MessageReceived.avsc"),
    ),
    (
        "DeadLetter.avsc",
        include_str!("../../schemas/DeadLetter.avsc"),
    ),
    (
        "SenderRejected.avsc",
        include_str!("../../schemas/SenderRejected.avsc"),
    ),
    (
        "MediaStored.avsc",
        include_str!("../../schemas/MediaStored.avsc"),
    ),
    (
        "MediaRejected.avsc",
        include_str!("../../schemas/MediaRejected.avsc"),
    ),
    (
        "TranscriptReady.avsc",
        include_str!("../../schemas/TranscriptReady.avsc"),
    ),
    (
        "TranscriptFailed.avsc",
        include_str!("../../schemas/TranscriptFailed.avsc"),
    ),
    (
        "OutboundRequested.avsc",
        include_str!("../../schemas/OutboundRequested.avsc"),
    ),
    (
        "PhoneLinked.avsc",
        include_str!("../../schemas/PhoneLinked.avsc"),
    ),
    (
        "PhoneVerified.avsc",
        include_str!("../../schemas/PhoneVerified.avsc"),
    ),
    (
        "PhoneUnlinked.avsc",
        include_str!("../../schemas/PhoneUnlinked.avsc"),
    ),
    (
        "OptOutChanged.avsc",
        include_str!("../../schemas/OptOutChanged.avsc"),
    ),
    (
        "ItemsProposed.avsc",
        include_str!("../../schemas/ItemsProposed.avsc"),
    ),
    (
        "PartEnriched.avsc",
        include_str!("../../schemas/PartEnriched.avsc"),
    ),
    (
        "ItemReviewed.avsc",
        include_str!("../../schemas/ItemReviewed.avsc"),
    ),
    (
        "OutboundStatusChanged.avsc",
        include_str!("../../schemas/OutboundStatusChanged.avsc"),
    ),
];

/// Known writer schemas.
#[derive(Debug)]
pub struct SchemaRegistry {
    /// Spec fingerprints, plus apache-avro 0.21's (wrong) ones as aliases for one release.
    by_fingerprint: HashMap<[u8; 8], Schema>,
    by_name: HashMap<String, ([u8; 8], Schema)>,
    /// The JSON of each embedded file, by full name (the registry is given these).
    json_by_name: HashMap<String, serde_json::Value>,
}

impl SchemaRegistry {
    fn load() -> SchemaRegistry {
        let mut reg = SchemaRegistry {
            by_fingerprint: HashMap::new(),
            by_name: HashMap::new(),
            json_by_name: HashMap::new(),
        };
        for (file, text) in SCHEMA_FILES {
            // The files are compiled in and covered by unit tests, so a parse failure is a
            // build defect, not an input error.
            let schema = Schema::parse_str(text)
                .unwrap_or_else(|e| panic!("schemas/{file} is not a valid Avro schema: {e}"));
            if let (Some(name), Ok(json)) = (record_name(&schema), serde_json::from_str(text)) {
                reg.json_by_name.insert(name, json);
            }
            reg.insert(schema);
        }
        reg
    }

    /// Add a schema (tests use this to register older or newer versions).
    pub fn insert(&mut self, schema: Schema) {
        let fp = fingerprint(&schema);
        if let Some(name) = record_name(&schema) {
            self.by_name.insert(name, (fp, schema.clone()));
        }
        // Headers written before smsflow computed the spec's fingerprint carry apache-avro's.
        // Kept for one release after the fix (issue 12), then dropped.
        self.by_fingerprint
            .entry(legacy_fingerprint(&schema))
            .or_insert_with(|| schema.clone());
        self.by_fingerprint.insert(fp, schema);
    }

    /// A copy of the built-in registry that callers may extend.
    pub fn builtin() -> SchemaRegistry {
        Self::load()
    }

    /// Writer schema for a fingerprint.
    pub fn by_fingerprint(&self, fp: &[u8; 8]) -> Option<&Schema> {
        self.by_fingerprint.get(fp)
    }

    /// Current schema and fingerprint for a full record name.
    pub fn by_name(&self, full_name: &str) -> Option<(&[u8; 8], &Schema)> {
        self.by_name.get(full_name).map(|(fp, s)| (fp, s))
    }

    /// The JSON of an embedded schema file, by full record name.
    pub fn json_by_name(&self, full_name: &str) -> Option<&serde_json::Value> {
        self.json_by_name.get(full_name)
    }

    /// Full names of every known record.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }
}

pub(crate) fn record_name(schema: &Schema) -> Option<String> {
    match schema {
        Schema::Record(r) => Some(r.name.fullname(None)),
        _ => None,
    }
}

/// The process-wide registry of the schemas in `schemas/`.
pub fn registry() -> &'static SchemaRegistry {
    static REG: OnceLock<SchemaRegistry> = OnceLock::new();
    REG.get_or_init(SchemaRegistry::load)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_matches_the_avro_spec_vector() {
        // From the Avro specification's test suite: "null" has Rabin fingerprint
        // 7195948357588979594 (as a Java long), stored little-endian.
        let schema = Schema::parse_str("\"null\"").unwrap();
        assert_eq!(fingerprint(&schema), 7195948357588979594i64.to_le_bytes());
    }

    #[test]
    fn old_fingerprints_still_find_their_schema() {
        let reg = registry();
        for (file, text) in SCHEMA_FILES {
            let schema = Schema::parse_str(text).unwrap();
            let legacy = legacy_fingerprint(&schema);
            assert_ne!(legacy, fingerprint(&schema), "{file} has a logical type");
            assert_eq!(
                reg.by_fingerprint(&legacy).map(record_name),
                Some(record_name(&schema)),
                "{file}"
            );
        }
    }

    #[test]
    fn every_schema_file_is_registered_by_name() {
        let reg = registry();
        assert!(reg.by_name("smsflow.events.MessageReceived").is_some());
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let on_disk = std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .map(|e| e.path().extension().is_some_and(|x| x == "avsc"))
                    .unwrap_or(false)
            })
            .count();
        assert_eq!(on_disk, SCHEMA_FILES.len(), "embed every schemas/*.avsc");
    }
}
