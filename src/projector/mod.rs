//! The projector: the one stateful consumer. It turns events into CQL read models with
//! event-derived write timestamps, and keeps its offsets in CQL next to the data.
//!
//! Each read model is a [`Projection`] with its own consumer group and its own checkpoints, so
//! one can be replayed (`smsflow replay --projection NAME`) without touching the others.

mod checkpoint;
pub mod items;
mod messages;
mod outbound;
mod phones;
pub mod position;
mod runner;

use std::future::Future;

use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::events::CodecError;
use crate::store::{self, StoreError};

pub use checkpoint::Checkpoints;
pub use items::ItemsProjection;
pub use messages::{insert_message_cql, MessagesProjection};
pub use outbound::{Applied, OutboundProjection};
pub use phones::PhonesProjection;
use position::Position;

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
    #[error("cannot create the projector's Kafka consumer: {0}")]
    Consumer(rdkafka::error::KafkaError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("projector task failed: {0}")]
    Task(String),
    #[error("unknown projection {0:?}; known: {known}", known = PROJECTIONS.join(", "))]
    UnknownProjection(String),
}

/// One read model: which topics feed it and how one event is written.
///
/// `apply` must be idempotent and order-insensitive within a batch: every write carries
/// `USING TIMESTAMP` from the event's position, so events of one batch run concurrently
/// (except events sharing an `order_key`).
pub trait Projection: Send + Sync + 'static {
    /// The events this projection reads.
    type Event: Send + Sync + 'static;

    /// Checkpoint name in `projection_offsets`, and the suffix of its consumer group.
    const NAME: &'static str;

    /// Topic base names (the prefix is added by the runner).
    fn topics(&self) -> &'static [&'static str];

    /// Decode a record of one of the topics. `Ok(None)`: an event this projection ignores.
    fn decode(&self, event_type: &str, payload: &[u8]) -> Result<Option<Self::Event>, CodecError>;

    /// The message an event belongs to, for the apply span.
    fn message_sid<'a>(&self, _event: &'a Self::Event) -> Option<&'a str> {
        None
    }

    /// Write one event's rows.
    fn apply(
        &self,
        event: &Self::Event,
        pos: &Position,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Events with the same key in one batch are duplicates: only the first (lowest
    /// position) is applied. Cross-batch duplicates are the projection's own business.
    fn duplicate_key<'a>(&self, _event: &'a Self::Event) -> Option<&'a str> {
        None
    }

    /// Events with the same key in one batch are applied one after another, in the order
    /// they were read (so in offset order within a partition); other events run
    /// concurrently. For projections whose writes of one key read each other's results.
    fn order_key(&self, _event: &Self::Event) -> Option<String> {
        None
    }

    /// Called once a batch is written, before its checkpoint (latency metrics).
    fn applied(&self, _events: &[&Self::Event]) {}
}

/// The consumer group of a projection.
pub fn group_id(settings: &Settings, projection: &str) -> String {
    format!("{}-{projection}", settings.projector.group_id)
}

/// Run every projection until `shutdown` is cancelled.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> Result<(), ProjectorError> {
    // Statements name their keyspace; no `USE`, which both engines discourage with prepared
    // statements.
    let session = store::connect(&settings.cql).await?;
    let keyspace = settings.cql.keyspace.as_str();
    let messages = MessagesProjection::new(session.clone(), keyspace).await?;
    let phones = PhonesProjection::new(session.clone(), keyspace).await?;
    let items = ItemsProjection::new(session.clone(), keyspace).await?;
    let outbound = OutboundProjection::new(session.clone(), keyspace).await?;
    let live = runner::From::Checkpoint;
    let (a, b, c, d) = tokio::join!(
        runner::run(&settings, session.clone(), messages, &shutdown, live),
        runner::run(&settings, session.clone(), phones, &shutdown, live),
        runner::run(&settings, session.clone(), items, &shutdown, live),
        runner::run(&settings, session.clone(), outbound, &shutdown, live),
    );
    if a.is_err() || b.is_err() || c.is_err() || d.is_err() {
        shutdown.cancel();
    }
    a.and(b).and(c).and(d).map(|_| ())
}

/// Re-apply one projection from offset 0 up to the end offsets seen at the start, then
/// checkpoint there. Writes carry event-derived timestamps, so the result is the state a
/// first pass would have produced, and a projector running alongside is not disturbed.
/// Returns the number of events applied.
pub async fn replay(settings: &Settings, name: &str) -> Result<u64, ProjectorError> {
    let session = store::connect(&settings.cql).await?;
    let keyspace = settings.cql.keyspace.as_str();
    let shutdown = CancellationToken::new();
    crate::shutdown::install(shutdown.clone());
    match name {
        MESSAGES_PROJECTION => {
            let p = MessagesProjection::new(session.clone(), keyspace).await?;
            runner::run(settings, session, p, &shutdown, runner::From::Beginning).await
        }
        PHONES_PROJECTION => {
            let p = PhonesProjection::new(session.clone(), keyspace).await?;
            runner::run(settings, session, p, &shutdown, runner::From::Beginning).await
        }
        ITEMS_PROJECTION => {
            let p = ItemsProjection::new(session.clone(), keyspace).await?;
            runner::run(settings, session, p, &shutdown, runner::From::Beginning).await
        }
        OUTBOUND_PROJECTION => {
            let p = OutboundProjection::new(session.clone(), keyspace).await?;
            runner::run(settings, session, p, &shutdown, runner::From::Beginning).await
        }
        other => Err(ProjectorError::UnknownProjection(other.to_owned())),
    }
    .map(|n| n.unwrap_or(0))
}
