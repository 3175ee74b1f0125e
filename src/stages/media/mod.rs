//! The media stage: for each `MessageReceived` with attachments, fetch every attachment under
//! the media policy, store it, and emit `MediaStored` or `MediaRejected` per attachment.

mod address;
pub mod config;
mod fetch;
mod sniff;
pub mod store;

use std::sync::Arc;

use object_store::path::Path;
use object_store::ObjectStore;

use crate::events::{decode, encode, Event, MediaRejected, MediaStored, MessageReceived};
use crate::stages::{Input, Output, Stage, StageError};
use crate::topics;

pub use config::MediaSettings;
pub use fetch::{FetchError, Fetcher, Rejection};

/// Why the stage could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MediaStageError {
    #[error("invalid media settings: {0}")]
    Settings(String),
    #[error(transparent)]
    Store(#[from] store::StoreOpenError),
    #[error("cannot build the media HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Fetches and stores MMS attachments.
pub struct MediaStage {
    fetcher: Fetcher,
    store: Arc<dyn ObjectStore>,
    prefix: Path,
}

impl MediaStage {
    /// Build from settings and Twilio credentials (sent only to `media.credential_hosts`).
    pub fn new(
        settings: &MediaSettings,
        account_sid: Option<String>,
        auth_token: Option<String>,
    ) -> Result<Self, MediaStageError> {
        settings.validate().map_err(MediaStageError::Settings)?;
        let (store, prefix) = store::open(&settings.store_url)?;
        let fetcher = Fetcher::new(Arc::new(settings.clone()), account_sid, auth_token)?;
        Ok(MediaStage {
            fetcher,
            store,
            prefix,
        })
    }

    /// The store media is written to (the transcribe stage reads from the same one).
    pub fn store(&self) -> (Arc<dyn ObjectStore>, Path) {
        (self.store.clone(), self.prefix.clone())
    }
}

impl Stage for MediaStage {
    const NAME: &'static str = "media";

    fn inputs(&self) -> Vec<&'static str> {
        vec![topics::MESSAGES]
    }

    async fn handle(&self, input: &Input) -> Result<Vec<Output>, StageError> {
        if input
            .event_type
            .as_deref()
            .is_some_and(|t| t != MessageReceived::NAME)
        {
            return Ok(Vec::new()); // other events on the topic (SenderRejected) carry no media
        }
        let bytes = input
            .payload
            .as_deref()
            .ok_or_else(|| StageError::Poison("record without a payload".into()))?;
        let msg: MessageReceived = decode(bytes).map_err(|e| StageError::Poison(e.to_string()))?;
        let mut outputs = Vec::with_capacity(msg.media.len());
        for (index, media) in msg.media.iter().enumerate() {
            let path = store::object_path(&self.prefix, &msg.message_sid, index);
            let result = self
                .fetcher
                .fetch_into(&media.url, &media.content_type, self.store.as_ref(), &path)
                .await;
            let output = match result {
                Ok(stored) => {
                    crate::metrics::media_outcome("stored");
                    let ev = MediaStored {
                        event_id: uuid::Uuid::now_v7().to_string(),
                        stored_at: crate::clock::now_micros(),
                        message_sid: msg.message_sid.clone(),
                        media_index: index as i32,
                        sender: msg.from.clone(),
                        user_id: msg.user_id.clone(),
                        received_at: msg.received_at,
                        content_type: config::essence(&media.content_type),
                        size_bytes: i64::try_from(stored.size).unwrap_or(i64::MAX),
                        sha256: stored.sha256,
                        object_key: path.to_string(),
                        source_url: media.url.clone(),
                    };
                    output(msg.partition_key(), &ev)?
                }
                Err(FetchError::Rejected(Rejection { reason, detail })) => {
                    crate::metrics::media_outcome(reason);
                    tracing::info!(message_sid = %msg.message_sid, index, reason, %detail, "attachment rejected");
                    let ev = MediaRejected {
                        event_id: uuid::Uuid::now_v7().to_string(),
                        rejected_at: crate::clock::now_micros(),
                        message_sid: msg.message_sid.clone(),
                        media_index: index as i32,
                        sender: msg.from.clone(),
                        user_id: msg.user_id.clone(),
                        received_at: msg.received_at,
                        declared_content_type: media.content_type.clone(),
                        reason: reason.to_owned(),
                        detail,
                    };
                    output(msg.partition_key(), &ev)?
                }
                Err(FetchError::Transient(e)) => return Err(StageError::Transient(e)),
            };
            outputs.push(output);
        }
        Ok(outputs)
    }
}

fn output<E: Event>(key: &str, ev: &E) -> Result<Output, StageError> {
    let payload =
        encode(ev).map_err(|e| StageError::Permanent(format!("cannot encode {}: {e}", E::NAME)))?;
    Ok(Output {
        topic: topics::MEDIA,
        key: key.to_owned(),
        event_type: E::NAME,
        payload,
    })
}
