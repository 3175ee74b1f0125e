//! The wire format of every record smsflow writes, and the one encoder and one decoder that
//! every producer and consumer goes through.
//!
//! - `single_object` (default): `C3 01`, the schema's CRC-64-AVRO fingerprint, the body.
//!   Anyone with `schemas/` can decode it.
//! - `confluent`: `00`, the registry id of the topic's subject `<topic>-value`, the body
//!   (preceded by the union branch on multi-type topics). Confluent serdes decode it.
//!
//! Readers accept both, chosen by the first byte, so a topic can move from one to the other
//! with no downtime. Producer ids are fetched once ([`Encoder::ready`]) and cached; the hot
//! path never calls the registry.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::codec::{self, CodecError};
use super::confluent::{
    self, learn, put_header, schema_id, subject, subject_schema, RegistryClient, RegistryError,
    SchemaRegistrySettings, SubjectSchema, Writer, TOPIC_EVENTS,
};
use super::Event;
use crate::secrets::ExposeSecret;

/// How records are framed on the wire (`kafka.wire_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireFormat {
    /// Avro single-object encoding: decodable with the files in `schemas/` alone.
    #[default]
    SingleObject,
    /// Confluent wire format with schema-registry ids.
    Confluent,
}

/// The id a producer writes on one topic, with the subject's schema (for union branches).
#[derive(Debug)]
struct TopicId {
    id: u32,
    schema: SubjectSchema,
}

/// Encodes events for the wire. Cheap to clone; clones share the id cache, and so does every
/// encoder a process makes with the same settings (the webhook's producer, each stage runner,
/// readiness): the ids are fetched once per process.
#[derive(Clone)]
pub struct Encoder {
    inner: Arc<EncoderInner>,
}

struct EncoderInner {
    format: WireFormat,
    prefix: String,
    registry: Option<RegistryClient>,
    /// Registry ids by full topic name. Filled by `ready`, read on the hot path.
    ids: moka::sync::Cache<String, Arc<TopicId>>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("format", &self.inner.format)
            .field("registry", &self.inner.registry)
            .field("cached_ids", &self.inner.ids.entry_count())
            .finish()
    }
}

/// Encoders by settings, so that one process fetches each id once.
type SharedKey = (WireFormat, String, Duration, String);
static SHARED: LazyLock<Mutex<HashMap<SharedKey, Encoder>>> = LazyLock::new(Default::default);

impl Encoder {
    /// The process's encoder for `format`; in confluent mode it asks `registry` for the ids of
    /// the topics named with `topic_prefix`.
    pub fn new(
        format: WireFormat,
        registry: &SchemaRegistrySettings,
        topic_prefix: &str,
    ) -> Result<Encoder, RegistryError> {
        let key = (
            format,
            registry.url.expose_secret().to_owned(),
            registry.timeout,
            topic_prefix.to_owned(),
        );
        let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = shared.get(&key) {
            return Ok(e.clone());
        }
        let e = Encoder::unshared(format, registry, topic_prefix)?;
        shared.insert(key, e.clone());
        Ok(e)
    }

    fn unshared(
        format: WireFormat,
        registry: &SchemaRegistrySettings,
        topic_prefix: &str,
    ) -> Result<Encoder, RegistryError> {
        let registry = match format {
            WireFormat::SingleObject => None,
            WireFormat::Confluent => Some(RegistryClient::new(registry)?),
        };
        Ok(Encoder {
            inner: Arc::new(EncoderInner {
                format,
                prefix: topic_prefix.to_owned(),
                registry,
                ids: moka::sync::Cache::new(TOPIC_EVENTS.len() as u64 * 4),
            }),
        })
    }

    /// A single-object encoder (needs no registry).
    pub fn single_object() -> Encoder {
        Encoder {
            inner: Arc::new(EncoderInner {
                format: WireFormat::SingleObject,
                prefix: String::new(),
                registry: None,
                ids: moka::sync::Cache::new(1),
            }),
        }
    }

    /// The wire format this encoder writes.
    pub fn format(&self) -> WireFormat {
        self.inner.format
    }

    /// Encode `event` for `topic` (the full, prefixed name).
    pub fn encode<E: Event>(&self, topic: &str, event: &E) -> Result<Vec<u8>, CodecError> {
        match self.inner.format {
            WireFormat::SingleObject => codec::encode(event),
            WireFormat::Confluent => {
                let (id, branch) = self.id_for(topic, E::FULL_NAME)?;
                let body = codec::encode_body(event)?;
                let mut out = Vec::with_capacity(confluent::HEADER_LEN + 2 + body.len());
                put_header(&mut out, id, branch);
                out.extend_from_slice(&body);
                Ok(out)
            }
        }
    }

    fn id_for(&self, topic: &str, event: &str) -> Result<(u32, Option<usize>), CodecError> {
        let t = self
            .inner
            .ids
            .get(topic)
            .ok_or_else(|| CodecError::SchemaIdNotCached {
                subject: subject(topic),
            })?;
        let position = t
            .schema
            .position(event)
            .ok_or_else(|| CodecError::NotOnTopic {
                event: event.to_owned(),
                topic: topic.to_owned(),
            })?;
        Ok((t.id, t.schema.is_union.then_some(position)))
    }

    /// True when every topic's id is cached (always, in single-object mode).
    pub fn is_ready(&self) -> bool {
        self.inner.format == WireFormat::SingleObject
            || TOPIC_EVENTS.iter().all(|(base, _)| {
                self.inner
                    .ids
                    .contains_key(&format!("{}{base}", self.inner.prefix))
            })
    }

    /// Fetch and cache the id of every topic's subject (confluent mode); a no-op once done.
    /// Producers call it at start-up and readiness reports its error.
    pub async fn ready(&self) -> Result<(), RegistryError> {
        for (base, _) in TOPIC_EVENTS {
            self.ready_for(&format!("{}{base}", self.inner.prefix))
                .await?;
        }
        Ok(())
    }

    /// Fetch and cache the id of one topic's subject, unless cached.
    pub async fn ready_for(&self, topic: &str) -> Result<(), RegistryError> {
        let Some(client) = &self.inner.registry else {
            return Ok(());
        };
        if self.inner.ids.contains_key(topic) {
            return Ok(());
        }
        let base = confluent::base_topic(&self.inner.prefix, topic).ok_or_else(|| {
            RegistryError::NotRegistered {
                subject: subject(topic),
            }
        })?;
        let schema = subject_schema(base).map_err(|e| RegistryError::BadSchema {
            id: 0,
            reason: e.to_string(),
        })?;
        let subject = subject(topic);
        let id = client
            .lookup(&subject, &schema.text)
            .await?
            .ok_or(RegistryError::NotRegistered { subject })?;
        // Our own records are then readable here without asking the registry again.
        if confluent::writer(id).is_none() {
            learn(id, Writer::parse(id, &schema.text)?);
        }
        tracing::info!(%topic, id, "schema registry id cached");
        self.inner
            .ids
            .insert(topic.to_owned(), Arc::new(TopicId { id, schema }));
        Ok(())
    }
}

/// Makes sure a record's writer schema is known before it is decoded: a Confluent-framed
/// record names a registry id, fetched once per id and process. Single-object records need
/// nothing. The one consume shape (`kafka::consume`) prepares every record it receives;
/// tools reading records themselves call [`Decoder::prepare`], then [`super::decode`].
#[derive(Clone, Debug)]
pub struct Decoder {
    registry: Option<RegistryClient>,
}

impl Decoder {
    /// A decoder that asks `settings`' registry about ids it has not met. With no registry
    /// (an empty URL) Confluent-framed records cannot be resolved and decode as poison.
    pub fn new(settings: &SchemaRegistrySettings) -> Decoder {
        Decoder {
            // An invalid URL is refused by configuration validation.
            registry: (!settings.url.expose_secret().is_empty())
                .then(|| RegistryClient::new(settings).ok())
                .flatten(),
        }
    }

    /// Learn the writer schema of `payload` if it is Confluent-framed with an id not seen yet.
    /// An id the registry does not know is left for `decode` to report as poison; an error
    /// here is the registry being unreachable ([`RegistryError::is_transient`]): retry later.
    pub async fn prepare(&self, payload: &[u8]) -> Result<(), RegistryError> {
        let Some(id) = schema_id(payload) else {
            return Ok(());
        };
        if confluent::writer(id).is_some() {
            return Ok(());
        }
        let Some(client) = &self.registry else {
            return Ok(());
        };
        match client.schema_by_id(id).await {
            Ok(Some(text)) => match Writer::parse(id, &text) {
                Ok(w) => {
                    learn(id, w);
                    Ok(())
                }
                Err(e) => {
                    tracing::warn!(id, error = %e, "registry schema is not usable; its records are poison");
                    Ok(())
                }
            },
            Ok(None) => Ok(()),
            Err(e) if e.is_transient() => Err(e),
            Err(e) => {
                tracing::warn!(id, error = %e, "cannot resolve a schema id; its records are poison");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{decode, encode, ItemReviewed, MediaRejected, MediaStored};

    /// A confluent encoder whose ids are set by hand (no registry).
    fn confluent_with(topic_ids: &[(&str, u32)]) -> Encoder {
        let e = Encoder::unshared(
            WireFormat::Confluent,
            &SchemaRegistrySettings::default(),
            "p.",
        )
        .unwrap();
        for (base, id) in topic_ids {
            let schema = subject_schema(base).unwrap();
            learn(*id, Writer::parse(*id, &schema.text).unwrap());
            e.inner
                .ids
                .insert(format!("p.{base}"), Arc::new(TopicId { id: *id, schema }));
        }
        e
    }

    fn media_stored() -> MediaStored {
        MediaStored {
            event_id: "e1".into(),
            stored_at: 1_764_000_000_000_000,
            message_sid: "MM1".into(),
            media_index: 0,
            sender: "+15105550142".into(),
            user_id: Some("u1".into()),
            received_at: 1_764_000_000_000_000,
            content_type: "image/png".into(),
            size_bytes: 3,
            sha256: "ab".into(),
            object_key: "u1/MM1/0".into(),
            source_url: "https://api.twilio.com/x".into(),
        }
    }

    #[test]
    fn confluent_records_carry_the_id_and_the_union_branch_and_decode_back() {
        let e = confluent_with(&[(crate::topics::MEDIA, 900_001)]);
        let ev = media_stored();
        let bytes = e.encode("p.sms.media.v1", &ev).unwrap();
        // 00, id 900001 big-endian, branch 0 of [MediaStored, MediaRejected], the body.
        assert_eq!(&bytes[..6], &[0, 0, 0x0D, 0xBB, 0xA1, 0]);
        assert_eq!(&bytes[6..], &encode(&ev).unwrap()[10..], "same Avro body");
        assert_eq!(decode::<MediaStored>(&bytes).unwrap(), ev);
        assert!(matches!(
            decode::<MediaRejected>(&bytes),
            Err(CodecError::WrongType { .. })
        ));
    }

    #[test]
    fn a_single_type_topic_has_no_branch_number() {
        let e = confluent_with(&[(crate::topics::REVIEWS, 900_002)]);
        let ev = ItemReviewed {
            event_id: "e2".into(),
            item_id: "i1".into(),
            user_id: "u1".into(),
            decision: "approved".into(),
            reviewed_at: 1_764_000_000_000_000,
            message_sid: "SM1".into(),
            item_created_at: 1_764_000_000_000_000,
            kind: "email".into(),
            value: "a@b.c".into(),
            normalized: "a@b.c".into(),
        };
        let bytes = e.encode("p.sms.reviews.v1", &ev).unwrap();
        assert_eq!(&bytes[..5], &[0, 0, 0x0D, 0xBB, 0xA2]);
        assert_eq!(&bytes[5..], &encode(&ev).unwrap()[10..]);
        assert_eq!(decode::<ItemReviewed>(&bytes).unwrap(), ev);
    }

    #[test]
    fn without_cached_ids_nothing_is_encoded_and_nothing_is_fetched() {
        let e = confluent_with(&[]);
        assert!(!e.is_ready());
        assert!(matches!(
            e.encode("p.sms.media.v1", &media_stored()),
            Err(CodecError::SchemaIdNotCached { subject }) if subject == "p.sms.media.v1-value"
        ));
        let e = confluent_with(&[(crate::topics::MEDIA, 900_003)]);
        assert!(matches!(
            e.encode("p.sms.reviews.v1", &media_stored()),
            Err(CodecError::SchemaIdNotCached { .. })
        ));
        let review = e.encode("p.sms.media.v1", &ItemReviewedStub::default());
        assert!(
            matches!(review, Err(CodecError::NotOnTopic { .. })),
            "{review:?}"
        );
    }

    #[test]
    fn encoders_with_the_same_settings_share_their_ids() {
        let settings = SchemaRegistrySettings::default();
        let a = Encoder::new(WireFormat::Confluent, &settings, "shared.").unwrap();
        let b = Encoder::new(WireFormat::Confluent, &settings, "shared.").unwrap();
        let other = Encoder::new(WireFormat::Confluent, &settings, "other.").unwrap();
        assert!(Arc::ptr_eq(&a.inner, &b.inner));
        assert!(!Arc::ptr_eq(&a.inner, &other.inner));
    }

    #[test]
    fn single_object_mode_writes_the_single_object_encoding() {
        let e = Encoder::single_object();
        let bytes = encode(&media_stored()).unwrap();
        assert_eq!(e.encode("any", &media_stored()).unwrap(), bytes);
        assert!(e.is_ready());
    }

    /// An event that exists but not on the media topic (never encoded: the check comes first).
    #[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
    struct ItemReviewedStub {}
    impl Event for ItemReviewedStub {
        const FULL_NAME: &'static str = "smsflow.events.ItemReviewed";
        const NAME: &'static str = "ItemReviewed";
    }
}
