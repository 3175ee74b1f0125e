//! Avro fingerprints exactly as the specification (and Java's `SchemaNormalization`) computes
//! them: the CRC-64-AVRO of the schema's Parsing Canonical Form.
//!
//! apache-avro 0.21's own `canonical_form` is wrong for a primitive that carries a logical
//! type: it keeps `{"type":"long"}` where the spec's [PRIMITIVES] rule requires `"long"`
//! (upstream AVRO-4004 and related). Every schema in `schemas/` has a timestamp, so every header
//! we wrote before used a fingerprint no other Avro implementation computes. We therefore build
//! the canonical form ourselves from the schema's JSON and only borrow the library's Rabin
//! digest. Unit tests run the spec's own cases (apache/avro `share/test/data/schema-tests.txt`);
//! `tests/avro_reference.rs` compares every file in `schemas/` with the Java reference.

use std::collections::HashSet;

use apache_avro::rabin::Rabin;
use apache_avro::Schema;
use serde_json::Value;
use sha2::Digest;

/// Why a schema's JSON has no canonical form.
#[derive(Debug, thiserror::Error)]
pub enum CanonicalFormError {
    #[error("schema is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid Avro schema: {0}")]
    Invalid(String),
}

const PRIMITIVES: &[&str] = &[
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

/// The Parsing Canonical Form of a schema given as JSON text.
pub fn canonical_form_of_json(text: &str) -> Result<String, CanonicalFormError> {
    let json: Value = serde_json::from_str(text)?;
    canonical_form(&json)
}

/// The Parsing Canonical Form of a schema given as a JSON value.
pub fn canonical_form(json: &Value) -> Result<String, CanonicalFormError> {
    let mut out = String::new();
    Canonicalizer::default().build(json, None, &mut out)?;
    Ok(out)
}

/// The spec's 8-byte fingerprint (little-endian CRC-64-AVRO) of a canonical form.
pub fn fingerprint_of_canonical_form(pcf: &str) -> [u8; 8] {
    let digest = Rabin::digest(pcf.as_bytes());
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest);
    out
}

/// The spec's fingerprint of a schema given as JSON text.
pub fn fingerprint_of_json(text: &str) -> Result<[u8; 8], CanonicalFormError> {
    Ok(fingerprint_of_canonical_form(&canonical_form_of_json(
        text,
    )?))
}

/// The spec's fingerprint of a parsed schema: the single-object header carries it.
pub fn fingerprint(schema: &Schema) -> [u8; 8] {
    // apache-avro serializes a parsed schema back to complete JSON (names, namespaces,
    // references), which is all the canonical form needs.
    let json = serde_json::to_value(schema).unwrap_or(Value::Null);
    match canonical_form(&json) {
        Ok(pcf) => fingerprint_of_canonical_form(&pcf),
        // Only a library bug could produce JSON we cannot read back; fall back to its form.
        Err(_) => legacy_fingerprint(schema),
    }
}

/// apache-avro 0.21's fingerprint, which smsflow wrote in headers before it computed the
/// canonical form itself. Readers accept it as an alias for one release after the fix, so data
/// already on the topics stays readable.
pub fn legacy_fingerprint(schema: &Schema) -> [u8; 8] {
    let fp = schema.fingerprint::<Rabin>();
    let mut out = [0u8; 8];
    out.copy_from_slice(&fp.bytes[..8]);
    out
}

/// Walks the JSON, remembering named types already written (a second use is just its name).
#[derive(Default)]
struct Canonicalizer {
    defined: HashSet<String>,
}

impl Canonicalizer {
    fn build(
        &mut self,
        v: &Value,
        namespace: Option<&str>,
        out: &mut String,
    ) -> Result<(), CanonicalFormError> {
        match v {
            Value::String(name) => {
                let name = self.resolve(name, namespace);
                push_str(out, &name);
            }
            Value::Array(branches) => {
                out.push('[');
                for (i, b) in branches.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.build(b, namespace, out)?;
                }
                out.push(']');
            }
            Value::Object(m) => {
                let Some(Value::String(ty)) = m.get("type") else {
                    return Err(invalid(format!("\"type\" must be a string in {v}")));
                };
                match ty.as_str() {
                    // [PRIMITIVES]: logicalType and every other attribute go.
                    t if PRIMITIVES.contains(&t) => push_str(out, t),
                    "array" => {
                        out.push_str("{\"type\":\"array\",\"items\":");
                        self.build(required(m, "items")?, namespace, out)?;
                        out.push('}');
                    }
                    "map" => {
                        out.push_str("{\"type\":\"map\",\"values\":");
                        self.build(required(m, "values")?, namespace, out)?;
                        out.push('}');
                    }
                    "record" | "error" | "enum" | "fixed" => {
                        self.named(m, ty, namespace, out)?;
                    }
                    // {"type": "SomeName"} refers to a named type.
                    other => {
                        let name = self.resolve(other, namespace);
                        push_str(out, &name);
                    }
                }
            }
            other => return Err(invalid(format!("unexpected {other} in a schema"))),
        }
        Ok(())
    }

    fn named(
        &mut self,
        m: &serde_json::Map<String, Value>,
        ty: &str,
        enclosing: Option<&str>,
        out: &mut String,
    ) -> Result<(), CanonicalFormError> {
        let name = required_str(m, "name")?;
        // [FULLNAMES]: a dotted name is already full; otherwise its own namespace, else the
        // enclosing one. An empty namespace means the null namespace.
        let full = if name.contains('.') {
            name.to_owned()
        } else {
            let ns = match m.get("namespace") {
                Some(Value::String(ns)) => Some(ns.as_str()).filter(|ns| !ns.is_empty()),
                Some(Value::Null) | None => enclosing,
                Some(other) => return Err(invalid(format!("namespace {other} is not a string"))),
            };
            match ns {
                Some(ns) => format!("{ns}.{name}"),
                None => name.to_owned(),
            }
        };
        if !self.defined.insert(full.clone()) {
            return Err(invalid(format!("{full} is defined twice")));
        }
        let own_ns = full.rfind('.').map(|i| full[..i].to_owned());
        // [ORDER]: name, type, then fields | symbols | size. "error" is written as "record",
        // as Java does.
        out.push_str("{\"name\":");
        push_str(out, &full);
        out.push_str(",\"type\":");
        push_str(out, if ty == "error" { "record" } else { ty });
        match ty {
            "enum" => {
                out.push_str(",\"symbols\":[");
                let symbols = required(m, "symbols")?
                    .as_array()
                    .ok_or_else(|| invalid(format!("{full}: symbols must be an array")))?;
                for (i, s) in symbols.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let s = s
                        .as_str()
                        .ok_or_else(|| invalid(format!("{full}: a symbol is not a string")))?;
                    push_str(out, s);
                }
                out.push(']');
            }
            "fixed" => {
                // [INTEGERS]: serde_json prints a number without leading zeros.
                let size = required(m, "size")?
                    .as_u64()
                    .ok_or_else(|| invalid(format!("{full}: size must be a whole number")))?;
                out.push_str(",\"size\":");
                out.push_str(&size.to_string());
            }
            _ => {
                out.push_str(",\"fields\":[");
                let fields = required(m, "fields")?
                    .as_array()
                    .ok_or_else(|| invalid(format!("{full}: fields must be an array")))?;
                for (i, f) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let f = f
                        .as_object()
                        .ok_or_else(|| invalid(format!("{full}: a field is not an object")))?;
                    out.push_str("{\"name\":");
                    push_str(out, required_str(f, "name")?);
                    out.push_str(",\"type\":");
                    self.build(required(f, "type")?, own_ns.as_deref(), out)?;
                    out.push('}');
                }
                out.push(']');
            }
        }
        out.push('}');
        Ok(())
    }

    /// A reference's full name, looked up the way Java's parser does: in the enclosing
    /// namespace first, then in the null namespace.
    fn resolve(&self, name: &str, namespace: Option<&str>) -> String {
        if PRIMITIVES.contains(&name) || name.contains('.') {
            return name.to_owned();
        }
        match namespace {
            Some(ns) => {
                let full = format!("{ns}.{name}");
                if !self.defined.contains(&full) && self.defined.contains(name) {
                    name.to_owned()
                } else {
                    full
                }
            }
            None => name.to_owned(),
        }
    }
}

/// [STRINGS]: names and symbols are plain identifiers, so JSON quoting is all that is needed.
fn push_str(out: &mut String, s: &str) {
    out.push('"');
    out.push_str(s);
    out.push('"');
}

fn required<'a>(
    m: &'a serde_json::Map<String, Value>,
    key: &str,
) -> Result<&'a Value, CanonicalFormError> {
    m.get(key)
        .ok_or_else(|| invalid(format!("missing \"{key}\"")))
}

fn required_str<'a>(
    m: &'a serde_json::Map<String, Value>,
    key: &str,
) -> Result<&'a str, CanonicalFormError> {
    required(m, key)?
        .as_str()
        .ok_or_else(|| invalid(format!("\"{key}\" must be a string")))
}

fn invalid(msg: String) -> CanonicalFormError {
    CanonicalFormError::Invalid(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Parsing Canonical Form cases every Avro implementation must pass, transcribed from
    /// apache/avro `share/test/data/schema-tests.txt`: input, canonical form and, where the
    /// file gives one, the fingerprint as a Java long.
    const SPEC_CASES: &[(&str, &str, Option<i64>)] = &[
        (r#""null""#, r#""null""#, Some(7195948357588979594)),
        (r#"{"type":"null"}"#, r#""null""#, None),
        (r#""boolean""#, r#""boolean""#, Some(-6970731678124411036)),
        (r#"{"type":"boolean"}"#, r#""boolean""#, None),
        (r#""int""#, r#""int""#, Some(8247732601305521295)),
        (r#"{"type":"int"}"#, r#""int""#, None),
        (r#""long""#, r#""long""#, Some(-3434872931120570953)),
        (r#"{"type":"long"}"#, r#""long""#, None),
        (r#""float""#, r#""float""#, Some(5583340709985441680)),
        (r#"{"type":"float"}"#, r#""float""#, None),
        (r#""double""#, r#""double""#, Some(-8181574048448539266)),
        (r#"{"type":"double"}"#, r#""double""#, None),
        (r#""bytes""#, r#""bytes""#, Some(5746618253357095269)),
        (r#"{"type":"bytes"}"#, r#""bytes""#, None),
        (r#""string""#, r#""string""#, Some(-8142146995180207161)),
        (r#"{"type":"string"}"#, r#""string""#, None),
        ("[  ]", "[]", Some(-1241056759729112623)),
        (r#"[ "int"  ]"#, r#"["int"]"#, Some(-5232228896498058493)),
        (
            r#"[ "int" , {"type":"boolean"} ]"#,
            r#"["int","boolean"]"#,
            Some(5392556393470105090),
        ),
        (
            r#"{"fields":[], "type":"record", "name":"foo"}"#,
            r#"{"name":"foo","type":"record","fields":[]}"#,
            Some(-4824392279771201922),
        ),
        (
            r#"{"fields":[], "type":"record", "name":"foo", "namespace":"x.y"}"#,
            r#"{"name":"x.y.foo","type":"record","fields":[]}"#,
            Some(5916914534497305771),
        ),
        (
            r#"{"fields":[], "type":"record", "name":"a.b.foo", "namespace":"x.y"}"#,
            r#"{"name":"a.b.foo","type":"record","fields":[]}"#,
            Some(-4616218487480524110),
        ),
        (
            r#"{"fields":[], "type":"record", "name":"foo", "doc":"Useful info"}"#,
            r#"{"name":"foo","type":"record","fields":[]}"#,
            Some(-4824392279771201922),
        ),
        (
            r#"{"fields":[], "type":"record", "name":"foo", "aliases":["foo","bar"]}"#,
            r#"{"name":"foo","type":"record","fields":[]}"#,
            Some(-4824392279771201922),
        ),
        (
            r#"{"fields":[], "type":"record", "name":"foo", "doc":"foo", "aliases":["foo","bar"]}"#,
            r#"{"name":"foo","type":"record","fields":[]}"#,
            Some(-4824392279771201922),
        ),
        (
            r#"{"fields":[{"type":{"type":"boolean"}, "name":"f1"}], "type":"record", "name":"foo"}"#,
            r#"{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"}]}"#,
            Some(7843277075252814651),
        ),
        (
            r#"{ "fields":[{"type":"boolean", "aliases":[], "name":"f1", "default":"true"},
                          {"order":"descending","name":"f2","doc":"Hello","type":"int"}],
                "type":"record", "name":"foo"
              }"#,
            r#"{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"},{"name":"f2","type":"int"}]}"#,
            Some(-4860222112080293046),
        ),
        (
            r#"{"type":"enum", "name":"foo", "symbols":["A1"]}"#,
            r#"{"name":"foo","type":"enum","symbols":["A1"]}"#,
            Some(-6342190197741309591),
        ),
        (
            r#"{"namespace":"x.y.z", "type":"enum", "name":"foo", "doc":"foo bar", "symbols":["A1", "A2"]}"#,
            r#"{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}"#,
            Some(-4448647247586288245),
        ),
        (
            r#"{"name":"foo","type":"fixed","size":15}"#,
            r#"{"name":"foo","type":"fixed","size":15}"#,
            Some(1756455273707447556),
        ),
        (
            r#"{"namespace":"x.y.z", "type":"fixed", "name":"foo", "doc":"foo bar", "size":32}"#,
            r#"{"name":"x.y.z.foo","type":"fixed","size":32}"#,
            Some(-3064184465700546786),
        ),
        (
            r#"{ "items":{"type":"null"}, "type":"array"}"#,
            r#"{"type":"array","items":"null"}"#,
            Some(-589620603366471059),
        ),
        (
            r#"{ "values":"string", "type":"map"}"#,
            r#"{"type":"map","values":"string"}"#,
            Some(-8732877298790414990),
        ),
        (
            r#"{"name":"PigValue","type":"record",
                "fields":[{"name":"value", "type":["null", "int", "long", "PigValue"]}]}"#,
            r#"{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}"#,
            Some(-1759257747318642341),
        ),
    ];

    #[test]
    fn every_case_of_the_avro_spec_test_suite_passes() {
        for (i, (input, canonical, fp)) in SPEC_CASES.iter().enumerate() {
            let pcf = canonical_form_of_json(input).unwrap_or_else(|e| panic!("case {i:03}: {e}"));
            assert_eq!(&pcf, canonical, "case {i:03}: canonical form");
            if let Some(fp) = fp {
                assert_eq!(
                    fingerprint_of_canonical_form(&pcf),
                    fp.to_le_bytes(),
                    "case {i:03}: fingerprint"
                );
            }
        }
    }

    #[test]
    fn a_primitive_with_a_logical_type_is_its_primitive_name() {
        let pcf = canonical_form_of_json(
            r#"{"type":"record","name":"r","namespace":"n","fields":[
                {"name":"at","type":{"type":"long","logicalType":"timestamp-micros"}},
                {"name":"id","type":{"type":"string","logicalType":"uuid"}}]}"#,
        )
        .unwrap();
        assert_eq!(
            pcf,
            r#"{"name":"n.r","type":"record","fields":[{"name":"at","type":"long"},{"name":"id","type":"string"}]}"#
        );
    }

    #[test]
    fn nested_names_inherit_the_namespace_and_a_second_use_is_the_full_name() {
        let pcf = canonical_form_of_json(
            r#"{"type":"record","name":"Outer","namespace":"a.b","fields":[
                {"name":"x","type":{"type":"record","name":"Inner","fields":[]}},
                {"name":"y","type":"Inner"},
                {"name":"z","type":{"type":"enum","name":"c.E","symbols":["S"]}},
                {"name":"w","type":{"type":"array","items":"c.E"}}]}"#,
        )
        .unwrap();
        assert_eq!(
            pcf,
            r#"{"name":"a.b.Outer","type":"record","fields":[{"name":"x","type":{"name":"a.b.Inner","type":"record","fields":[]}},{"name":"y","type":"a.b.Inner"},{"name":"z","type":{"name":"c.E","type":"enum","symbols":["S"]}},{"name":"w","type":{"type":"array","items":"c.E"}}]}"#
        );
    }

    #[test]
    fn a_parsed_schema_has_the_same_fingerprint_as_its_text() {
        let text = include_str!("../../schemas/MessageReceived.avsc");
        let schema = Schema::parse_str(text).unwrap();
        assert_eq!(fingerprint(&schema), fingerprint_of_json(text).unwrap());
        // The value the issue quotes from Java's SchemaNormalization.parsingFingerprint64.
        assert_eq!(
            hex::encode(fingerprint(&schema)),
            "5a636c9b92a190ac",
            "MessageReceived.avsc"
        );
        // ...and the one apache-avro 0.21 computes, which older data carries.
        assert_eq!(hex::encode(legacy_fingerprint(&schema)), "9537594d30b3928f");
    }

    #[test]
    fn malformed_schemas_are_errors_not_panics() {
        for bad in [
            "{",
            "{}",
            "42",
            r#"{"type":{"type":"string"}}"#,
            r#"{"type":"record","fields":[]}"#,
            r#"{"type":"fixed","name":"f","size":-1}"#,
            r#"{"type":"enum","name":"e","symbols":[1]}"#,
            r#"[{"type":"record","name":"r","fields":[]},{"type":"record","name":"r","fields":[]}]"#,
        ] {
            assert!(canonical_form_of_json(bad).is_err(), "{bad}");
        }
    }
}
