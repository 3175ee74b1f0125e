//! Why the application could not start, or which role stopped it.

use std::net::SocketAddr;

use crate::http::ServeError;
use crate::kafka::stage_runner::RunnerError;
use crate::kafka::ProduceError;
use crate::projector::ProjectorError;
use crate::stages::enrich::stage::EnrichSetupError;
use crate::stages::media::MediaStageError;
use crate::stages::notify::NotifyStageError;
use crate::stages::shared::media_store::StoreOpenError;
use crate::stages::transcribe::TranscribeError;
use crate::store::StoreError;
use crate::validation::InvalidSetting;

use super::ClientsError;

/// Why the application could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] InvalidSetting),
    #[error(transparent)]
    Clients(#[from] ClientsError),
    #[error(
        "cannot bind HTTP on {addr} ({setting}): {source}; is another process using the port? \
         Set {setting} to a free address"
    )]
    Bind {
        /// `http.addr` or `http.ops_addr`.
        setting: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Http(#[from] ServeError),
    #[error(transparent)]
    Produce(#[from] ProduceError),
    #[error("the {role} role needs CQL at start: {source}")]
    Cql {
        role: &'static str,
        source: StoreError,
    },
    #[error(transparent)]
    Projector(#[from] ProjectorError),
    #[error(transparent)]
    Stage(#[from] RunnerError),
    #[error("cannot start the media stage: {0}")]
    Media(#[from] MediaStageError),
    #[error("cannot start the transcribe stage: {0}")]
    Transcribe(#[from] TranscribeError),
    #[error("cannot start the enrich stage: {0}")]
    Enrich(#[from] EnrichSetupError),
    #[error("cannot start the notify stage: {0}")]
    Notify(#[from] NotifyStageError),
    #[error(transparent)]
    MediaStore(#[from] StoreOpenError),
    #[error("the phone cache cannot follow sms.phones.v1: {0}")]
    PhoneCache(rdkafka::error::KafkaError),
    #[error("task `{task}` panicked or was cancelled: {source}")]
    Task {
        task: &'static str,
        source: tokio::task::JoinError,
    },
}
