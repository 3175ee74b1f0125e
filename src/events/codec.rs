//! Avro single-object encoding: `C3 01`, the writer schema's fingerprint, then the body.

use apache_avro::{from_avro_datum, from_value, to_avro_datum, to_value, Schema};

use super::registry::{registry, SchemaRegistry};
use super::Event;

const MAGIC: [u8; 2] = [0xC3, 0x01];
const HEADER_LEN: usize = 10;

/// Why bytes could not become an event (or an event could not become bytes).
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("not Avro single-object encoding: expected header C3 01, found {found}")]
    BadHeader { found: String },
    #[error("unknown schema fingerprint {fingerprint}: add its .avsc to schemas/ or upgrade this reader")]
    UnknownFingerprint { fingerprint: String },
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

/// Encode an event with its current schema.
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

/// Decode bytes written with any registered version of `E`'s schema.
pub fn decode<E: Event>(bytes: &[u8]) -> Result<E, CodecError> {
    let reg = registry();
    let (_, reader) = reg
        .by_name(E::FULL_NAME)
        .ok_or(CodecError::UnknownEvent(E::FULL_NAME))?;
    decode_with_reader(reg, reader, bytes)
}

/// Decode with an explicit reader schema, resolving from the writer schema in `reg`.
pub fn decode_with_reader<E: Event>(
    reg: &SchemaRegistry,
    reader: &Schema,
    bytes: &[u8],
) -> Result<E, CodecError> {
    let (fp, mut body) = split_header(bytes)?;
    let writer = reg
        .by_fingerprint(&fp)
        .ok_or_else(|| CodecError::UnknownFingerprint {
            fingerprint: hex::encode(fp),
        })?;
    let writer_name = full_name(writer);
    let reader_name = full_name(reader);
    if writer_name != reader_name {
        return Err(CodecError::WrongType {
            expected: reader_name,
            found: writer_name,
        });
    }
    let value = from_avro_datum(writer, &mut body, Some(reader))?;
    Ok(from_value::<E>(&value)?)
}

/// The writer's fingerprint and the body, or a typed error for anything else.
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
