//! Avro bodies and their two framings. Encoding here writes single-object encoding (`C3 01`,
//! the writer schema's fingerprint, the body); [`super::Encoder`] frames for the configured
//! wire format. Decoding accepts both framings, chosen by the first byte.

use apache_avro::types::Value;
use apache_avro::{from_avro_datum, from_value, to_avro_datum, to_value, Schema};

use super::confluent::{self, schema_id};
use super::registry::{registry, SchemaRegistry};
use super::Event;

const MAGIC: [u8; 2] = [0xC3, 0x01];
const HEADER_LEN: usize = 10;

/// Why bytes could not become an event (or an event could not become bytes).
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("neither Avro single-object encoding (C3 01) nor the Confluent wire format (00 and a schema id): found {found}")]
    BadHeader { found: String },
    #[error("unknown schema fingerprint {fingerprint}: add its .avsc to schemas/ or upgrade this reader")]
    UnknownFingerprint { fingerprint: String },
    #[error("schema registry id {id} is unknown: the registry does not have it, was not reachable when the record was read, or none is configured (kafka.schema_registry.url)")]
    UnknownSchemaId { id: u32 },
    #[error("the registry id of subject {subject} is not cached: producers in confluent mode need the schema registry at start-up (and `smsflow schemas register` run once)")]
    SchemaIdNotCached { subject: String },
    #[error("{event} does not belong on topic {topic} (see TOPIC_EVENTS in src/events/confluent/subjects.rs)")]
    NotOnTopic { event: String, topic: String },
    #[error("schema for {0} is not registered: add its .avsc to schemas/")]
    UnknownEvent(&'static str),
    #[error("expected {expected} but the bytes hold {found}")]
    WrongType { expected: String, found: String },
    #[error("Avro body does not match its schema: {0}")]
    Avro(#[from] Box<apache_avro::Error>),
}

impl From<apache_avro::Error> for CodecError {
    fn from(e: apache_avro::Error) -> Self {
        CodecError::Avro(Box::new(e))
    }
}

/// Encode an event with its current schema as Avro single-object encoding.
pub fn encode<E: Event>(event: &E) -> Result<Vec<u8>, CodecError> {
    let (fp, schema) = registry()
        .by_name(E::FULL_NAME)
        .ok_or(CodecError::UnknownEvent(E::FULL_NAME))?;
    let value = to_value(event)?.resolve(schema)?;
    let body = to_avro_datum(schema, value)?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(fp);
    out.extend_from_slice(&body);
    Ok(out)
}

/// The bare Avro body of an event with its current schema.
pub(super) fn encode_body<E: Event>(event: &E) -> Result<Vec<u8>, CodecError> {
    let (_, schema) = registry()
        .by_name(E::FULL_NAME)
        .ok_or(CodecError::UnknownEvent(E::FULL_NAME))?;
    let value = to_value(event)?.resolve(schema)?;
    Ok(to_avro_datum(schema, value)?)
}

/// Decode bytes in either wire format, written with any known version of `E`'s schema.
/// A Confluent-framed record needs its writer schema learned first ([`super::Decoder`]).
pub fn decode<E: Event>(bytes: &[u8]) -> Result<E, CodecError> {
    let reg = registry();
    let (_, reader) = reg
        .by_name(E::FULL_NAME)
        .ok_or(CodecError::UnknownEvent(E::FULL_NAME))?;
    decode_with_reader(reg, reader, bytes)
}

/// Most bytes, or items of one array or map, that one length prefix of a record may claim.
///
/// apache-avro checks a sequence's item count against its byte limit (512 MiB by default) and
/// then reserves that many decoded values (56 bytes each): a corrupt record whose array claimed
/// 2^27 items reserved 7.5 GB (found by `make fuzz`, target `avro_decode`), which aborts a
/// process where the allocation cannot be met. No field of an event can be larger than the
/// Kafka record that carries it (1 MiB by default), so that is the limit. apache-avro keeps
/// the first value it is given for the whole process, so every decode sets it before it reads.
pub const MAX_DECODED_LEN: usize = 1024 * 1024;

fn limit_decoded_lengths() {
    apache_avro::util::max_allocation_bytes(MAX_DECODED_LEN);
}

/// Decode with an explicit reader schema; a single-object writer schema is looked up in `reg`,
/// a Confluent one among the ids this process has learned.
pub fn decode_with_reader<E: Event>(
    reg: &SchemaRegistry,
    reader: &Schema,
    bytes: &[u8],
) -> Result<E, CodecError> {
    limit_decoded_lengths();
    let reader_name = full_name(reader);
    if let Some(id) = schema_id(bytes) {
        let writer = confluent::writer(id).ok_or(CodecError::UnknownSchemaId { id })?;
        let mut body = &bytes[confluent::HEADER_LEN..];
        if !writer.is_union {
            if writer.events[0] != reader_name {
                return Err(CodecError::WrongType {
                    expected: reader_name,
                    found: writer.events[0].clone(),
                });
            }
            let value = from_avro_datum(&writer.schema, &mut body, Some(reader))?;
            return Ok(from_value::<E>(&value)?);
        }
        return match from_avro_datum(&writer.schema, &mut body, None)? {
            Value::Union(branch, inner) => {
                let found = writer
                    .events
                    .get(branch as usize)
                    .cloned()
                    .unwrap_or_default();
                if found != reader_name {
                    return Err(CodecError::WrongType {
                        expected: reader_name,
                        found,
                    });
                }
                Ok(from_value::<E>(&(*inner).resolve(reader)?)?)
            }
            other => Err(CodecError::WrongType {
                expected: reader_name,
                found: format!("{other:?}"),
            }),
        };
    }
    let (fp, mut body) = split_header(bytes)?;
    let writer = reg
        .by_fingerprint(&fp)
        .ok_or_else(|| CodecError::UnknownFingerprint {
            fingerprint: hex::encode(fp),
        })?;
    let writer_name = full_name(writer);
    if writer_name != reader_name {
        return Err(CodecError::WrongType {
            expected: reader_name,
            found: writer_name,
        });
    }
    let value = from_avro_datum(writer, &mut body, Some(reader))?;
    Ok(from_value::<E>(&value)?)
}

/// The writer's fingerprint and the body of single-object bytes, or a typed error.
pub fn split_header(bytes: &[u8]) -> Result<([u8; 8], &[u8]), CodecError> {
    if bytes.len() < HEADER_LEN || bytes[..2] != MAGIC {
        return Err(CodecError::BadHeader {
            found: hex::encode(&bytes[..bytes.len().min(2)]),
        });
    }
    let mut fp = [0u8; 8];
    fp.copy_from_slice(&bytes[2..HEADER_LEN]);
    Ok((fp, &bytes[HEADER_LEN..]))
}

fn full_name(schema: &Schema) -> String {
    match schema {
        Schema::Record(r) => r.name.fullname(None),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::MessageReceived;

    #[test]
    fn a_length_prefix_larger_than_any_record_is_refused_before_it_is_reserved() {
        // The input `make fuzz` found (avro_decode): MessageReceived's header, then a body
        // whose sequence length claims far more items than the record holds.
        let (fp, _) = registry()
            .by_name(MessageReceived::FULL_NAME)
            .expect("registered");
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(fp);
        bytes.extend_from_slice(&[
            0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x32, 0x00, 0xee, 0xff, 0xff,
            0xff, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x32, 0x00, 0x00,
        ]);
        let err = decode::<MessageReceived>(&bytes).expect_err("corrupt");
        assert!(
            err.to_string()
                .contains(&format!("maximum allowed: {MAX_DECODED_LEN}")),
            "{err}"
        );
    }
}
