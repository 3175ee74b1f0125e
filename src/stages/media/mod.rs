//! The media stage: for each `MessageReceived` with attachments, fetch every attachment under
//! the media policy, store it, and emit `MediaStored` or `MediaRejected` per attachment.

mod address;
pub mod config;
mod fetch;
mod sniff;

use std::sync::Arc;

use object_store::path::Path;
use object_store::ObjectStore;

use crate::events::{MediaRejected, MediaStored, MessageReceived};
use crate::stages::shared::media_store::{self, StoreOpenError};
use crate::stages::{Input, Output, Stage, StageError};
use crate::topics;

pub use config::MediaSettings;
pub use fetch::{FetchError, Fetcher, Rejection};

/// Why the stage could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MediaStageError {
    #[error(transparent)]
    Invalid(#[from] crate::validation::InvalidSetting),
    #[error(transparent)]
    Store(#[from] StoreOpenError),
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
        auth_token: Option<crate::secrets::SecretString>,
    ) -> Result<Self, MediaStageError> {
        settings.validate()?;
        let (store, prefix) = media_store::open(&settings.store_url)?;
        let fetcher = Fetcher::new(Arc::new(settings.clone()), account_sid, auth_token)?;
        Ok(MediaStage {
            fetcher,
            store,
            prefix,
        })
    }
}

impl Stage for MediaStage {
    const NAME: &'static str = "media";
    // SenderRejected shares the topic and carries no media: it never reaches the stage.
    type Event = MessageReceived;

    fn inputs(&self) -> Vec<&'static str> {
        vec![topics::MESSAGES]
    }

    async fn handle(&self, input: &Input<MessageReceived>) -> Result<Vec<Output>, StageError> {
        let msg = &input.event;
        let mut outputs = Vec::with_capacity(msg.media.len());
        for (index, media) in msg.media.iter().enumerate() {
            let path = media_store::object_path(&self.prefix, &msg.message_sid, index);
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
                    Output::new(topics::MEDIA, msg.partition_key(), ev)
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
                    Output::new(topics::MEDIA, msg.partition_key(), ev)
                }
                Err(FetchError::Transient(e)) => return Err(StageError::Transient(e)),
            };
            outputs.push(output);
        }
        Ok(outputs)
    }
}
