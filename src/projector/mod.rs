//! The read models, one module per model with its writes (the [`Projection`]) and its reads
//! side by side: [`messages`], [`items`], [`phones`], [`outbound`]. The projection runner
//! (`kafka::projection_runner`) feeds them; each has its own consumer group and its own
//! checkpoints, so one can be replayed (`smsflow replay --projection NAME`) without touching
//! the others.

mod cql;
pub mod items;
pub mod messages;
pub mod outbound;
pub mod phones;

use std::sync::Arc;

use scylla::client::session::Session;
use tokio_util::sync::CancellationToken;

use crate::kafka::projection_runner::{replay_projection, run_projection, Target};
pub use crate::kafka::projection_runner::{
    OrderKey, Position, Projection, ProjectionError, ProjectorSettings,
};
use crate::kafka::KafkaSettings;
use crate::store::StoreError;
pub use items::ItemsProjection;
pub use messages::{insert_message_cql, MessagesProjection};
pub use outbound::{Applied, OutboundProjection};
pub use phones::PhonesProjection;

/// Name of the message read models in `projection_offsets`.
pub const MESSAGES_PROJECTION: &str = "messages";
/// Name of the phone registry read models in `projection_offsets`.
pub const PHONES_PROJECTION: &str = "phones";
/// Name of the item read models in `projection_offsets`.
pub const ITEMS_PROJECTION: &str = "items";
/// Name of the outbound read model in `projection_offsets`.
pub const OUTBOUND_PROJECTION: &str = "outbound";
/// Every projection `replay` accepts.
pub const PROJECTIONS: &[&str] = &[
    MESSAGES_PROJECTION,
    PHONES_PROJECTION,
    ITEMS_PROJECTION,
    OUTBOUND_PROJECTION,
];

/// Why the projector stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("unknown projection {0:?}; known: {known}", known = PROJECTIONS.join(", "))]
    UnknownProjection(String),
}

/// Where the projector reads and writes.
#[derive(Clone)]
pub struct ProjectorContext {
    pub kafka: KafkaSettings,
    pub settings: ProjectorSettings,
    pub session: Arc<Session>,
    pub keyspace: String,
}

impl ProjectorContext {
    fn target(&self) -> Target<'_> {
        Target {
            kafka: &self.kafka,
            settings: &self.settings,
            session: &self.session,
            keyspace: &self.keyspace,
        }
    }
}

/// Run every projection until `shutdown` is cancelled.
pub async fn run(cx: ProjectorContext, shutdown: CancellationToken) -> Result<(), ProjectorError> {
    // Statements name their keyspace; no `USE`, which both engines discourage with prepared
    // statements.
    let (session, ks) = (cx.session.clone(), cx.keyspace.as_str());
    let messages = MessagesProjection::new(session.clone(), ks).await?;
    let phones = PhonesProjection::new(session.clone(), ks).await?;
    let items = ItemsProjection::new(session.clone(), ks).await?;
    let outbound = OutboundProjection::new(session, ks).await?;
    let target = cx.target();
    let (a, b, c, d) = tokio::join!(
        run_projection(target, &messages, &shutdown),
        run_projection(target, &phones, &shutdown),
        run_projection(target, &items, &shutdown),
        run_projection(target, &outbound, &shutdown),
    );
    if a.is_err() || b.is_err() || c.is_err() || d.is_err() {
        shutdown.cancel();
    }
    Ok(a.and(b).and(c).and(d)?)
}

/// Re-apply the projection `name` from offset 0 up to the end offsets seen at the start
/// (see [`replay_projection`]). Returns the number of events applied.
pub async fn replay(
    cx: ProjectorContext,
    name: &str,
    shutdown: CancellationToken,
) -> Result<u64, ProjectorError> {
    let (session, ks) = (cx.session.clone(), cx.keyspace.as_str());
    let target = cx.target();
    let n = match name {
        MESSAGES_PROJECTION => {
            let p = MessagesProjection::new(session, ks).await?;
            replay_projection(target, &p, &shutdown).await?
        }
        PHONES_PROJECTION => {
            let p = PhonesProjection::new(session, ks).await?;
            replay_projection(target, &p, &shutdown).await?
        }
        ITEMS_PROJECTION => {
            let p = ItemsProjection::new(session, ks).await?;
            replay_projection(target, &p, &shutdown).await?
        }
        OUTBOUND_PROJECTION => {
            let p = OutboundProjection::new(session, ks).await?;
            replay_projection(target, &p, &shutdown).await?
        }
        other => return Err(ProjectorError::UnknownProjection(other.to_owned())),
    };
    Ok(n)
}
