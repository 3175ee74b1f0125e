//! `smsflow schemas register|check`: the schemas in a folder (the working tree's `schemas/`)
//! against what the registry holds under each topic's subject.

use std::collections::HashMap;
use std::path::Path;

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;
use serde_json::Value;

use super::client::{RegistryClient, RegistryError};
use super::subjects::{subject, subject_schema_of, SubjectError, SubjectSchema, TOPIC_EVENTS};
use crate::events::fingerprint::canonical_form_of_json;

/// The compatibility level `register` sets on every subject: a new schema must read data
/// written with the previous one, so consumers upgrade first and old records stay readable.
pub const COMPATIBILITY: &str = "BACKWARD";

/// Why `register` or `check` could not run.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not an Avro record schema: {reason}")]
    BadFile { path: String, reason: String },
    #[error(transparent)]
    Subject(#[from] SubjectError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// What `register` did for one subject.
#[derive(Debug, Clone)]
pub struct RegisterReport {
    pub subject: String,
    pub id: u32,
    pub version: Option<i32>,
    pub events: Vec<String>,
}

/// `check`'s verdict for one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The registry holds exactly this schema.
    Unchanged,
    /// Not registered yet: `register` will create it.
    New,
    /// A new version the registry would accept.
    Compatible,
    /// The registry would refuse it; the reason names the event and field.
    Incompatible { reason: String },
}

/// One subject's check.
#[derive(Debug, Clone)]
pub struct SubjectCheck {
    pub subject: String,
    pub verdict: Verdict,
}

/// Every subject's check.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub subjects: Vec<SubjectCheck>,
}

impl CheckReport {
    /// True when any subject would be refused.
    pub fn has_incompatible(&self) -> bool {
        self.subjects
            .iter()
            .any(|s| matches!(s.verdict, Verdict::Incompatible { .. }))
    }
}

/// The record schemas of a folder, by full name.
struct SchemaSet {
    by_name: HashMap<String, Value>,
}

impl SchemaSet {
    fn load(dir: &Path) -> Result<SchemaSet, OpsError> {
        let read_err = |source| OpsError::Read {
            path: dir.display().to_string(),
            source,
        };
        let mut by_name = HashMap::new();
        for entry in std::fs::read_dir(dir).map_err(read_err)? {
            let path = entry.map_err(read_err)?.path();
            if path.extension().is_none_or(|x| x != "avsc") {
                continue;
            }
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|source| OpsError::Read {
                path: shown.clone(),
                source,
            })?;
            let bad = |reason: String| OpsError::BadFile {
                path: shown.clone(),
                reason,
            };
            // Parse with the library too, so an invalid file is refused before the registry sees it.
            match Schema::parse_str(&text).map_err(|e| bad(e.to_string()))? {
                Schema::Record(r) => {
                    let json: Value =
                        serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
                    by_name.insert(r.name.fullname(None), json);
                }
                _ => return Err(bad("the top level must be a record".into())),
            }
        }
        Ok(SchemaSet { by_name })
    }

    fn subject_schema(&self, topic: &str, events: &[&str]) -> Result<SubjectSchema, SubjectError> {
        subject_schema_of(topic, events, |n| self.by_name.get(n).cloned())
    }
}

/// Register the schemas in `dir` under every topic's subject (with `topic_prefix`), setting
/// each subject's compatibility to BACKWARD first. Re-registering an unchanged schema is a
/// no-op that returns its id.
pub async fn register(
    client: &RegistryClient,
    dir: &Path,
    topic_prefix: &str,
) -> Result<Vec<RegisterReport>, OpsError> {
    let set = SchemaSet::load(dir)?;
    let mut out = Vec::new();
    for (base, events) in TOPIC_EVENTS {
        let schema = set.subject_schema(base, events)?;
        let subject = subject(&format!("{topic_prefix}{base}"));
        client.set_compatibility(&subject, COMPATIBILITY).await?;
        let id = match client.register(&subject, &schema.text).await {
            Err(RegistryError::Incompatible { subject, reason }) => {
                let detail = explain(client, &subject, &schema).await.unwrap_or(reason);
                return Err(RegistryError::Incompatible {
                    subject,
                    reason: detail,
                }
                .into());
            }
            other => other?,
        };
        let version = client
            .latest(&subject)
            .await?
            .filter(|v| v.id == id)
            .map(|v| v.version);
        out.push(RegisterReport {
            subject,
            id,
            version,
            events: schema.events,
        });
    }
    Ok(out)
}

/// Ask the registry whether the schemas in `dir` could be registered: for each subject,
/// unchanged, new, compatible, or incompatible with the reason.
pub async fn check(
    client: &RegistryClient,
    dir: &Path,
    topic_prefix: &str,
) -> Result<CheckReport, OpsError> {
    let set = SchemaSet::load(dir)?;
    let mut subjects = Vec::new();
    for (base, events) in TOPIC_EVENTS {
        let schema = set.subject_schema(base, events)?;
        let subject = subject(&format!("{topic_prefix}{base}"));
        let verdict = match client.latest(&subject).await? {
            None => Verdict::New,
            Some(latest) if same_schema(&latest.schema, &schema.text) => Verdict::Unchanged,
            Some(_) => {
                let answer = client.check(&subject, &schema.text).await?;
                if answer.is_compatible {
                    Verdict::Compatible
                } else {
                    let local = explain(client, &subject, &schema).await;
                    let reason = match (answer.messages.is_empty(), local) {
                        (false, _) => answer.messages.join("; "),
                        (true, Some(local)) => local,
                        (true, None) => format!(
                            "the registry refuses it under its {} level (it gave no detail)",
                            client
                                .compatibility_level(&subject)
                                .await
                                .ok()
                                .flatten()
                                .unwrap_or_else(|| "configured".into())
                        ),
                    };
                    Verdict::Incompatible { reason }
                }
            }
        };
        subjects.push(SubjectCheck { subject, verdict });
    }
    Ok(CheckReport { subjects })
}

/// Same Parsing Canonical Form and the same defaults (which matter for compatibility but
/// are not in the canonical form): docs and whitespace do not make a new version.
fn same_schema(a: &str, b: &str) -> bool {
    let (Ok(pa), Ok(pb)) = (canonical_form_of_json(a), canonical_form_of_json(b)) else {
        return false;
    };
    if pa != pb {
        return false;
    }
    match (
        serde_json::from_str::<Value>(a),
        serde_json::from_str::<Value>(b),
    ) {
        (Ok(a), Ok(b)) => defaults(&a) == defaults(&b),
        _ => false,
    }
}

/// Every field default in a schema, in order of appearance.
fn defaults(v: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<(String, Value)>) {
        match v {
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(m) => {
                if let (Some(Value::String(n)), Some(d)) = (m.get("name"), m.get("default")) {
                    out.push((n.clone(), d.clone()));
                }
                m.values().for_each(|x| walk(x, out));
            }
            _ => {}
        }
    }
    walk(v, &mut out);
    out
}

/// Why the latest registered schema's records could not be read with `schema`, event by
/// event, in the words of apache-avro's compatibility checker. `None` when it finds nothing.
async fn explain(client: &RegistryClient, subject: &str, schema: &SubjectSchema) -> Option<String> {
    let latest = client.latest(subject).await.ok()??;
    let old = Schema::parse_str(&latest.schema).ok()?;
    let new = Schema::parse_str(&schema.text).ok()?;
    let reasons = explain_schemas(&old, &new);
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

fn explain_schemas(old: &Schema, new: &Schema) -> Vec<String> {
    let branches = |s: &Schema| -> Vec<Schema> {
        match s {
            Schema::Union(u) => u.variants().to_vec(),
            other => vec![other.clone()],
        }
    };
    let name = |s: &Schema| match s {
        Schema::Record(r) => r.name.fullname(None),
        Schema::Ref { name } => name.fullname(None),
        other => format!("{other:?}"),
    };
    let new_branches = branches(new);
    let mut reasons = Vec::new();
    for w in branches(old) {
        let n = name(&w);
        match new_branches.iter().find(|r| name(r) == n) {
            None => reasons.push(format!(
                "{n} was removed: records of it already on the topic could not be read"
            )),
            Some(r) => {
                if let Err(e) = SchemaCompatibility::can_read(&w, r) {
                    reasons.push(format!("{n}: {}", error_chain(&e)));
                }
            }
        }
    }
    reasons
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(extra: Option<Value>) -> Schema {
        let mut json: Value =
            serde_json::from_str(include_str!("../../../schemas/ItemReviewed.avsc")).unwrap();
        if let Some(f) = extra {
            json["fields"].as_array_mut().unwrap().push(f);
        }
        Schema::parse_str(&json.to_string()).unwrap()
    }

    #[test]
    fn a_new_required_field_is_explained_by_name() {
        let old = record(None);
        let new = record(Some(
            serde_json::json!({"name": "reviewer_note", "type": "string"}),
        ));
        let reasons = explain_schemas(&old, &new);
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(
            reasons[0].contains("smsflow.events.ItemReviewed"),
            "{reasons:?}"
        );
        assert!(reasons[0].contains("reviewer_note"), "{reasons:?}");
        assert!(reasons[0].contains("default"), "{reasons:?}");
    }

    #[test]
    fn a_new_optional_field_with_a_default_needs_no_explanation() {
        let old = record(None);
        let new = record(Some(
            serde_json::json!({"name": "reviewer_note", "type": ["null", "string"], "default": null}),
        ));
        assert!(explain_schemas(&old, &new).is_empty());
    }

    #[test]
    fn whitespace_and_docs_are_not_a_new_version_but_defaults_are() {
        let a = r#"{"type":"record","name":"r","fields":[{"name":"f","type":"int","default":1}]}"#;
        let b = r#"{ "type": "record", "name": "r", "doc": "x",
                     "fields": [ {"name": "f", "type": "int", "default": 1} ] }"#;
        let c = r#"{"type":"record","name":"r","fields":[{"name":"f","type":"int","default":2}]}"#;
        assert!(same_schema(a, b));
        assert!(!same_schema(a, c));
    }
}
