//! The enrich stage: message bodies (`MessageReceived`), transcripts (`TranscriptReady`) and
//! vCard attachments (`MediaStored`) in; `ItemsProposed` and `PartEnriched` out, one pair per
//! message part, keyed by the owner.
//!
//! A message has `1 + NumMedia` parts: `body`, then `media:N`. Every part ends in exactly one
//! `PartEnriched`: audio when its transcript (or its failure) arrives, vCards when read,
//! other media (images) and rejected media at once with nothing to extract.

use std::sync::Arc;

use chrono_tz::Tz;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};

use super::extractor::{ExtractError, Extractor};
use super::{is_vcard_content_type, Context, Item, LlmConfig, Source};
use crate::events::{
    decode, encode, CodecError, Event, ItemsProposed, MediaRejected, MediaStored, MessageReceived,
    PartEnriched, ProposedItem, TranscriptFailed, TranscriptReady,
};
use crate::phones::PhoneDirectory;
use crate::stages::transcribe::{derived_event_id, is_audio};
use crate::stages::{Input, Output, Stage, StageError};

/// `[enrich]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrichSettings {
    /// IANA time zone that relative dates resolve in ("tomorrow at 5"), until users can set
    /// their own.
    pub default_time_zone: String,
    /// Largest vCard read from the media store.
    pub max_vcard_bytes: u64,
    /// The optional LLM extractor (off by default).
    pub llm: LlmConfig,
}

impl Default for EnrichSettings {
    fn default() -> Self {
        EnrichSettings {
            default_time_zone: "America/Los_Angeles".into(),
            max_vcard_bytes: 256 * 1024,
            llm: LlmConfig::default(),
        }
    }
}

/// Why the stage cannot start.
#[derive(Debug, thiserror::Error)]
pub enum EnrichSetupError {
    #[error(
        "enrich.default_time_zone {0:?} is not an IANA time zone name (e.g. America/New_York)"
    )]
    TimeZone(String),
    #[error("enrich.llm: {0}")]
    Llm(#[from] super::LlmError),
}

/// Extracts items from every part of every message.
pub struct EnrichStage {
    tz: Tz,
    /// Each number's time zone, from the phone registry.
    zones: Arc<PhoneDirectory>,
    store: Arc<dyn ObjectStore>,
    max_vcard_bytes: u64,
    extractor: Extractor,
}

impl EnrichStage {
    /// Build from settings; `store` is the media store vCards are read from.
    pub fn new(
        settings: &EnrichSettings,
        store: Arc<dyn ObjectStore>,
        zones: Arc<PhoneDirectory>,
    ) -> Result<EnrichStage, EnrichSetupError> {
        let tz: Tz = settings
            .default_time_zone
            .parse()
            .map_err(|_| EnrichSetupError::TimeZone(settings.default_time_zone.clone()))?;
        Ok(EnrichStage {
            tz,
            zones,
            store,
            max_vcard_bytes: settings.max_vcard_bytes,
            extractor: Extractor::new(&settings.llm)?,
        })
    }

    /// The sender's region (for national numbers) and time zone (for dates): the zone the
    /// number's owner gave, else `enrich.default_time_zone`. A registry outage falls back to
    /// the default rather than holding enrichment up (logged).
    async fn context(&self, sender: &str, received_at: i64) -> Context {
        let region = phonenumber::parse(None, sender)
            .ok()
            .and_then(|n| n.country().id());
        let tz = match self.zones.lookup(sender).await {
            Ok(state) => state
                .and_then(|s| s.time_zone)
                .and_then(|name| name.parse::<Tz>().ok())
                .unwrap_or(self.tz),
            Err(e) => {
                tracing::warn!(error = %e, "phone registry unavailable; dates read in enrich.default_time_zone");
                self.tz
            }
        };
        Context::new(region, received_at, tz)
    }

    /// Rule items, plus the LLM's when configured (see [`Extractor`]).
    async fn items(
        &self,
        text: &str,
        source: Source,
        ctx: &Context,
    ) -> Result<Vec<Item>, StageError> {
        self.extractor
            .text(text, source, ctx)
            .await
            .map_err(extract_failed)
    }

    async fn vcard(&self, media: &MediaStored) -> Result<Vec<Item>, StageError> {
        let path = ObjectPath::parse(&media.object_key).map_err(|e| {
            StageError::Poison(format!("object_key is not a valid media store path: {e}"))
        })?;
        let got = self
            .store
            .get(&path)
            .await
            .map_err(|e| StageError::Transient(format!("cannot read the vCard: {e}")))?;
        if got.meta.size > self.max_vcard_bytes {
            tracing::info!(
                size = got.meta.size,
                "vCard larger than enrich.max_vcard_bytes; skipped"
            );
            return Ok(Vec::new());
        }
        let bytes = got
            .bytes()
            .await
            .map_err(|e| StageError::Transient(format!("cannot read the vCard: {e}")))?;
        let ctx = self.context(&media.sender, media.received_at).await;
        match self
            .extractor
            .vcard(bytes.to_vec(), &ctx)
            .await
            .map_err(extract_failed)?
        {
            Ok(items) => Ok(items),
            Err(e) => {
                // A broken card is the sender's problem; the part is done with no items.
                tracing::info!(error = %e, "vCard not readable; no items");
                Ok(Vec::new())
            }
        }
    }
}

/// A panic is the input's doing (it will panic again): dead-letter it; a shutdown retries.
fn extract_failed(e: ExtractError) -> StageError {
    match e {
        ExtractError::Panicked => StageError::Poison(e.to_string()),
        ExtractError::Cancelled => StageError::Transient(e.to_string()),
    }
}

/// The parts of the outputs that identify a message part.
struct PartRef<'a> {
    message_sid: &'a str,
    user_id: &'a str,
    part: String,
    received_at: i64,
    source_event_id: &'a str,
}

impl PartRef<'_> {
    fn outputs(
        &self,
        items: Vec<Item>,
        text: Option<String>,
        outcome: &str,
    ) -> Result<Vec<Output>, StageError> {
        let now = crate::clock::now_micros();
        let mut out = Vec::with_capacity(2);
        let count = items.len();
        if !items.is_empty() {
            let proposed = ItemsProposed {
                event_id: derived_event_id("ItemsProposed", self.source_event_id),
                message_sid: self.message_sid.to_owned(),
                user_id: self.user_id.to_owned(),
                part: self.part.clone(),
                received_at: self.received_at,
                proposed_at: now,
                items: items
                    .into_iter()
                    .map(|i| ProposedItem {
                        item_id: i.id(self.message_sid),
                        kind: i.kind.as_str().to_owned(),
                        value: i.value,
                        normalized: i.normalized,
                        confidence: i.confidence,
                        source: i.source.as_str().to_owned(),
                        span_start: i32::try_from(i.span.0).unwrap_or(i32::MAX),
                        span_end: i32::try_from(i.span.1).unwrap_or(i32::MAX),
                    })
                    .collect(),
            };
            out.push(self.output(ItemsProposed::NAME, encode(&proposed))?);
        }
        let done = PartEnriched {
            event_id: derived_event_id("PartEnriched", self.source_event_id),
            message_sid: self.message_sid.to_owned(),
            user_id: self.user_id.to_owned(),
            part: self.part.clone(),
            received_at: self.received_at,
            enriched_at: now,
            item_count: i32::try_from(count).unwrap_or(i32::MAX),
            outcome: outcome.to_owned(),
            text,
        };
        out.push(self.output(PartEnriched::NAME, encode(&done))?);
        Ok(out)
    }

    fn output(
        &self,
        event_type: &'static str,
        payload: Result<Vec<u8>, CodecError>,
    ) -> Result<Output, StageError> {
        Ok(Output {
            topic: crate::topics::ENRICHMENTS,
            key: self.user_id.to_owned(),
            event_type,
            payload: payload.map_err(|e| StageError::Permanent(format!("cannot encode: {e}")))?,
        })
    }
}

fn decode_as<E: Event>(input: &Input) -> Result<E, StageError> {
    let bytes = input
        .payload
        .as_deref()
        .ok_or_else(|| StageError::Poison("the record has no payload".into()))?;
    decode::<E>(bytes).map_err(|e| StageError::Poison(format!("cannot decode {}: {e}", E::NAME)))
}

fn media_part(index: i32) -> String {
    format!("media:{index}")
}

impl Stage for EnrichStage {
    const NAME: &'static str = "enrich";

    fn inputs(&self) -> Vec<&'static str> {
        vec![
            crate::topics::MESSAGES,
            crate::topics::MEDIA,
            crate::topics::TRANSCRIPTS,
        ]
    }

    async fn handle(&self, input: &Input) -> Result<Vec<Output>, StageError> {
        let Some(event_type) = input.event_type.as_deref() else {
            return Err(StageError::Poison(
                "the record has no event-type header".into(),
            ));
        };
        match event_type {
            MessageReceived::NAME => {
                let m: MessageReceived = decode_as(input)?;
                let part = PartRef {
                    message_sid: &m.message_sid,
                    user_id: m.partition_key(),
                    part: "body".into(),
                    received_at: m.received_at,
                    source_event_id: &m.event_id,
                };
                if m.body.trim().is_empty() {
                    return part.outputs(Vec::new(), None, "no_text");
                }
                let ctx = self.context(&m.from, m.received_at).await;
                let items = self.items(&m.body, Source::Body, &ctx).await?;
                part.outputs(items, None, "extracted")
            }
            MediaStored::NAME => {
                let media: MediaStored = decode_as(input)?;
                if is_audio(&media.content_type) {
                    // Its part ends with the transcript.
                    return Ok(Vec::new());
                }
                let part = PartRef {
                    message_sid: &media.message_sid,
                    user_id: media.partition_key(),
                    part: media_part(media.media_index),
                    received_at: media.received_at,
                    source_event_id: &media.event_id,
                };
                if is_vcard_content_type(&media.content_type) {
                    let items = self.vcard(&media).await?;
                    part.outputs(items, None, "extracted")
                } else {
                    part.outputs(Vec::new(), None, "no_text")
                }
            }
            MediaRejected::NAME => {
                let media: MediaRejected = decode_as(input)?;
                let user = media
                    .user_id
                    .clone()
                    .unwrap_or_else(|| media.sender.clone());
                PartRef {
                    message_sid: &media.message_sid,
                    user_id: &user,
                    part: media_part(media.media_index),
                    received_at: media.received_at,
                    source_event_id: &media.event_id,
                }
                .outputs(Vec::new(), None, "media_rejected")
            }
            TranscriptReady::NAME => {
                let t: TranscriptReady = decode_as(input)?;
                let user = t.user_id.clone().unwrap_or_else(|| t.sender.clone());
                let ctx = self.context(&t.sender, t.received_at).await;
                let items = self.items(&t.text, Source::Transcript, &ctx).await?;
                PartRef {
                    message_sid: &t.message_sid,
                    user_id: &user,
                    part: media_part(t.media_index),
                    received_at: t.received_at,
                    source_event_id: &t.event_id,
                }
                .outputs(items, Some(t.text.clone()), "extracted")
            }
            TranscriptFailed::NAME => {
                let t: TranscriptFailed = decode_as(input)?;
                let user = t.user_id.clone().unwrap_or_else(|| t.sender.clone());
                PartRef {
                    message_sid: &t.message_sid,
                    user_id: &user,
                    part: media_part(t.media_index),
                    received_at: t.received_at,
                    source_event_id: &t.event_id,
                }
                .outputs(Vec::new(), None, "transcript_failed")
            }
            // SenderRejected and anything newer: not for enrichment.
            _ => Ok(Vec::new()),
        }
    }
}
