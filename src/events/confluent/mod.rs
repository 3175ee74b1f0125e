//! The Confluent wire format (`00`, a 4-byte big-endian registry id, the Avro body) and what it
//! needs: a schema-registry client, the subjects of our topics, and two caches: the ids a
//! producer writes (per topic) and the writer schemas a reader has met (per id).

mod client;
mod ops;
mod subjects;

use std::sync::{Arc, LazyLock};

use apache_avro::Schema;

pub use client::{
    Compatibility, RegistryClient, RegistryError, SchemaRegistrySettings, SubjectVersion,
};
pub use ops::{
    check, register, CheckReport, OpsError, RegisterReport, SubjectCheck, Verdict, COMPATIBILITY,
};
pub use subjects::{
    base_topic, subject, subject_schema, subject_schema_of, SubjectError, SubjectSchema,
    TOPIC_EVENTS,
};

/// First byte of the Confluent wire format.
pub const MAGIC: u8 = 0x00;
/// Magic byte plus the 4-byte schema id.
pub const HEADER_LEN: usize = 5;

/// The registry id in a Confluent-framed record, if it is one.
pub fn schema_id(bytes: &[u8]) -> Option<u32> {
    match bytes {
        [MAGIC, a, b, c, d, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// A writer schema the registry gave us for an id.
#[derive(Debug)]
pub struct Writer {
    pub schema: Schema,
    /// Event full names: the union's branches in order, or the one record.
    pub events: Vec<String>,
    pub is_union: bool,
}

impl Writer {
    /// Parse the registry's text for `id`.
    pub fn parse(id: u32, text: &str) -> Result<Writer, RegistryError> {
        let schema = Schema::parse_str(text).map_err(|e| RegistryError::BadSchema {
            id,
            reason: e.to_string(),
        })?;
        let name = |s: &Schema| match s {
            Schema::Record(r) => Ok(r.name.fullname(None)),
            Schema::Ref { name } => Ok(name.fullname(None)),
            other => Err(RegistryError::BadSchema {
                id,
                reason: format!("a branch is {other:?}, not an event record"),
            }),
        };
        let (events, is_union) = match &schema {
            Schema::Union(u) => (
                u.variants().iter().map(name).collect::<Result<_, _>>()?,
                true,
            ),
            other => (vec![name(other)?], false),
        };
        Ok(Writer {
            schema,
            events,
            is_union,
        })
    }
}

/// Most writer schemas a process remembers; far more than the versions a topic ever has.
const WRITERS_MAX: u64 = 10_000;

/// Writer schemas by registry id, shared by every reader in the process (ids are global to a
/// registry and never change meaning).
static WRITERS: LazyLock<moka::sync::Cache<u32, Arc<Writer>>> =
    LazyLock::new(|| moka::sync::Cache::new(WRITERS_MAX));

/// The writer schema for an id, if this process has learned it.
pub fn writer(id: u32) -> Option<Arc<Writer>> {
    WRITERS.get(&id)
}

/// Remember the writer schema for an id.
pub fn learn(id: u32, writer: Writer) -> Arc<Writer> {
    let w = Arc::new(writer);
    WRITERS.insert(id, w.clone());
    w
}

/// Append the Confluent header and, for a union subject, the branch number (an Avro long).
pub fn put_header(out: &mut Vec<u8>, id: u32, branch: Option<usize>) {
    out.push(MAGIC);
    out.extend_from_slice(&id.to_be_bytes());
    if let Some(b) = branch {
        // zig-zag varint of a non-negative long
        let mut z = (b as u64) << 1;
        loop {
            let byte = (z & 0x7F) as u8;
            z >>= 7;
            if z == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_magic_big_endian_id_and_zigzag_branch() {
        let mut out = Vec::new();
        put_header(&mut out, 0x0102_0304, Some(1));
        assert_eq!(out, [0, 1, 2, 3, 4, 2]);
        let mut out = Vec::new();
        put_header(&mut out, 7, Some(64));
        assert_eq!(out, [0, 0, 0, 0, 7, 0x80, 0x01]);
        let mut out = Vec::new();
        put_header(&mut out, 7, None);
        assert_eq!(out, [0, 0, 0, 0, 7]);
        assert_eq!(schema_id(&out), Some(7));
        assert_eq!(schema_id(&[0, 0, 0]), None);
        assert_eq!(schema_id(&[0xC3, 1, 0, 0, 0]), None);
    }
}
