//! Which events each topic carries, and the schema registered for it under the
//! TopicNameStrategy subject `<topic>-value`.
//!
//! A topic with one event type (reviews, dead letters) registers that record. A topic with
//! several registers a union of its records, written out in full (named types shared by two
//! records, such as `PhoneState`, are defined once and then referred to by name). This is
//! what Confluent's serdes, Kafka Connect and `confluent-kafka` expect from a multi-type topic
//! under TopicNameStrategy: one subject per topic whose compatibility the registry checks as a
//! whole. References (one subject per record) were tried and left out: Apicurio cannot check
//! the compatibility of a union of references, and a consumer then needs several calls to
//! assemble one writer schema.

use std::collections::HashMap;

use serde_json::Value;

use crate::topics;

use super::super::fingerprint::canonical_form;
use super::super::registry::registry;

/// Every topic smsflow writes, with the full names of the events it carries (union order:
/// new types are appended, never inserted, so existing branch numbers stay put).
pub const TOPIC_EVENTS: &[(&str, &[&str])] = &[
    (
        topics::MESSAGES,
        &[
            "smsflow.events.MessageReceived",
            "smsflow.events.SenderRejected",
        ],
    ),
    (
        topics::MEDIA,
        &["smsflow.events.MediaStored", "smsflow.events.MediaRejected"],
    ),
    (
        topics::TRANSCRIPTS,
        &[
            "smsflow.events.TranscriptReady",
            "smsflow.events.TranscriptFailed",
        ],
    ),
    (
        topics::ENRICHMENTS,
        &[
            "smsflow.events.ItemsProposed",
            "smsflow.events.PartEnriched",
        ],
    ),
    (topics::REVIEWS, &["smsflow.events.ItemReviewed"]),
    (
        topics::PHONES,
        &[
            "smsflow.events.PhoneLinked",
            "smsflow.events.PhoneVerified",
            "smsflow.events.PhoneUnlinked",
            "smsflow.events.OptOutChanged",
        ],
    ),
    (
        topics::OUTBOUND,
        &[
            "smsflow.events.OutboundRequested",
            "smsflow.events.OutboundStatusChanged",
        ],
    ),
    (topics::DEADLETTER, &["smsflow.events.DeadLetter"]),
];

/// The TopicNameStrategy subject of a (prefixed) topic.
pub fn subject(topic: &str) -> String {
    format!("{topic}-value")
}

/// The base topic (without prefix) of a full topic name, if smsflow writes it.
pub fn base_topic(prefix: &str, topic: &str) -> Option<&'static str> {
    let base = topic.strip_prefix(prefix)?;
    TOPIC_EVENTS
        .iter()
        .find(|(t, _)| *t == base)
        .map(|(t, _)| *t)
}

/// The schema of a topic's subject.
#[derive(Debug, Clone)]
pub struct SubjectSchema {
    /// The JSON text to register.
    pub text: String,
    /// Event full names in union order; one entry for a plain record.
    pub events: Vec<String>,
    /// True when `text` is a union (the body starts with the branch number).
    pub is_union: bool,
}

impl SubjectSchema {
    /// Where an event sits among the topic's events (its union branch when `is_union`);
    /// `None` when it does not belong on the topic.
    pub fn position(&self, full_name: &str) -> Option<usize> {
        self.events.iter().position(|e| e == full_name)
    }
}

/// Why a subject schema could not be built (a defect in `schemas/`).
#[derive(Debug, thiserror::Error)]
pub enum SubjectError {
    #[error("{0} is not a topic smsflow writes")]
    UnknownTopic(String),
    #[error("{event} is not in schemas/")]
    MissingSchema { event: String },
    #[error("{name} is defined differently in two events of {topic}; share one definition")]
    Conflict { topic: String, name: String },
}

/// The schema that `<topic>-value` holds for a base topic, built from the embedded `schemas/`.
pub fn subject_schema(base: &str) -> Result<SubjectSchema, SubjectError> {
    let events = TOPIC_EVENTS
        .iter()
        .find(|(t, _)| *t == base)
        .map(|(_, e)| *e)
        .ok_or_else(|| SubjectError::UnknownTopic(base.to_owned()))?;
    subject_schema_of(base, events, |name| registry().json_by_name(name).cloned())
}

/// As [`subject_schema`], with the record JSON supplied (tests pass evolved versions).
pub fn subject_schema_of(
    topic: &str,
    events: &[&str],
    json_of: impl Fn(&str) -> Option<Value>,
) -> Result<SubjectSchema, SubjectError> {
    let mut records = Vec::with_capacity(events.len());
    for e in events {
        records.push(json_of(e).ok_or_else(|| SubjectError::MissingSchema {
            event: (*e).to_owned(),
        })?);
    }
    let names = events.iter().map(|e| (*e).to_owned()).collect();
    if records.len() == 1 {
        return Ok(SubjectSchema {
            text: records[0].to_string(),
            events: names,
            is_union: false,
        });
    }
    let mut defined = HashMap::new();
    for r in &mut records {
        share_named_types(r, None, &mut defined).map_err(|name| SubjectError::Conflict {
            topic: topic.to_owned(),
            name,
        })?;
    }
    Ok(SubjectSchema {
        text: Value::Array(records).to_string(),
        events: names,
        is_union: true,
    })
}

/// Replace the second and later definitions of a named type by its full name. `defined`
/// maps full names to their canonical form; a differing redefinition is an error.
fn share_named_types(
    v: &mut Value,
    namespace: Option<&str>,
    defined: &mut HashMap<String, String>,
) -> Result<(), String> {
    match v {
        Value::Array(branches) => {
            for b in branches {
                share_named_types(b, namespace, defined)?;
            }
        }
        Value::Object(m) => {
            let ty = m.get("type").and_then(Value::as_str).unwrap_or_default();
            match ty {
                "record" | "error" | "enum" | "fixed" => {
                    let name = m.get("name").and_then(Value::as_str).unwrap_or_default();
                    let full = if name.contains('.') {
                        name.to_owned()
                    } else {
                        match m
                            .get("namespace")
                            .and_then(Value::as_str)
                            .or(namespace)
                            .filter(|ns| !ns.is_empty())
                        {
                            Some(ns) => format!("{ns}.{name}"),
                            None => name.to_owned(),
                        }
                    };
                    // The canonical form of the definition alone, with its full name.
                    let mut alone = Value::Object(m.clone());
                    alone["name"] = Value::String(full.clone());
                    let pcf = canonical_form(&alone).map_err(|_| full.clone())?;
                    if let Some(first) = defined.get(&full) {
                        if *first != pcf {
                            return Err(full);
                        }
                        *v = Value::String(full);
                        return Ok(());
                    }
                    defined.insert(full.clone(), pcf);
                    let own_ns = full.rfind('.').map(|i| full[..i].to_owned());
                    if let Some(Value::Array(fields)) = m.get_mut("fields") {
                        for f in fields {
                            if let Some(t) = f.get_mut("type") {
                                share_named_types(t, own_ns.as_deref(), defined)?;
                            }
                        }
                    }
                }
                "array" => {
                    if let Some(items) = m.get_mut("items") {
                        share_named_types(items, namespace, defined)?;
                    }
                }
                "map" => {
                    if let Some(values) = m.get_mut("values") {
                        share_named_types(values, namespace, defined)?;
                    }
                }
                _ => {}
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::Schema;

    #[test]
    fn every_topic_schema_parses_and_lists_its_events() {
        for (topic, events) in TOPIC_EVENTS {
            let s = subject_schema(topic).unwrap();
            let parsed =
                Schema::parse_str(&s.text).unwrap_or_else(|e| panic!("{topic}: {e}\n{}", s.text));
            match (&parsed, events.len()) {
                (Schema::Union(u), n) if n > 1 => assert_eq!(u.variants().len(), n, "{topic}"),
                (Schema::Record(r), 1) => assert_eq!(r.name.fullname(None), events[0]),
                (other, _) => panic!("{topic}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn every_schema_file_is_on_exactly_one_topic() {
        let mut seen: Vec<&str> = TOPIC_EVENTS
            .iter()
            .flat_map(|(_, e)| e.iter().copied())
            .collect();
        seen.sort();
        let before = seen.len();
        seen.dedup();
        assert_eq!(before, seen.len(), "an event is on two topics");
        assert_eq!(
            seen.len(),
            registry().names().count(),
            "every schema has a topic"
        );
    }

    #[test]
    fn a_shared_named_type_is_defined_once_in_a_union() {
        let s = subject_schema(topics::PHONES).unwrap();
        assert_eq!(
            s.text.matches("\"name\":\"PhoneState\"").count(),
            1,
            "{}",
            s.text
        );
        assert!(s.is_union);
        assert_eq!(s.position("smsflow.events.OptOutChanged"), Some(3));
        assert_eq!(s.position("smsflow.events.MessageReceived"), None);
        let single = subject_schema(topics::REVIEWS).unwrap();
        assert!(!single.is_union);
        assert_eq!(single.position("smsflow.events.ItemReviewed"), Some(0));
    }

    #[test]
    fn prefixed_topics_map_back_to_their_base() {
        assert_eq!(
            base_topic("t1.", "t1.sms.messages.v1"),
            Some(topics::MESSAGES)
        );
        assert_eq!(base_topic("", "sms.messages.v1"), Some(topics::MESSAGES));
        assert_eq!(base_topic("t1.", "sms.messages.v1"), None);
        assert_eq!(base_topic("", "other"), None);
        assert_eq!(subject("t1.sms.messages.v1"), "t1.sms.messages.v1-value");
    }
}
