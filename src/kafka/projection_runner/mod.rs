//! The projection runner: the one stateful consumer, on the one consume shape. It turns
//! events into CQL read models and keeps its offsets in CQL next to the data.
//!
//! It is pipelined: records are decoded and written as they arrive, up to
//! `projector.max_in_flight` at once, with no barrier across partitions or across a batch.
//! Events of one key (by default the record key: a user's events) are written in the order
//! they were read. Each partition's checkpoint follows the lowest offset whose write is not
//! yet done ([`PartitionOffsets`](crate::kafka::consume::PartitionOffsets)), so a crash can
//! only cause re-application, never a gap; every write carries `USING TIMESTAMP` from its
//! event's [`Position`], so re-application converges to the same state.

mod pipeline;
mod position;
mod settings;

use std::future::Future;
use std::sync::Arc;

use scylla::client::session::Session;
use tokio_util::sync::CancellationToken;

use crate::kafka::consume::Inbound;
use crate::kafka::KafkaSettings;
use crate::store::StoreError;

pub use position::Position;
pub use settings::ProjectorSettings;

/// Why a projection stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("cannot create or use the projector's Kafka consumer: {0}")]
    Consumer(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What orders the writes of a projection: events with equal keys are written one after
/// another, in the order they were read; other events concurrently.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OrderKey {
    /// The record's Kafka key (a user id, or a phone number).
    Record(Vec<u8>),
    /// A key the projection names (e.g. a user's list bucket, across topics).
    Named(String),
}

/// One read model: which topics feed it and how one event is written.
///
/// `apply` must be idempotent and order-insensitive across keys: every write carries
/// `USING TIMESTAMP` from the event's position.
pub trait Projection: Send + Sync + 'static {
    /// The events this projection reads, decoded by the runner; others pass by.
    type Event: Inbound;

    /// Checkpoint name in `projection_offsets`, and the suffix of its consumer group.
    const NAME: &'static str;

    /// Topic base names (the prefix is added by the runner).
    fn topics(&self) -> &'static [&'static str];

    /// The message an event belongs to, for the process span.
    fn message_sid<'a>(&self, _event: &'a Self::Event) -> Option<&'a str> {
        None
    }

    /// Write one event's rows.
    fn apply(
        &self,
        event: &Self::Event,
        pos: &Position,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Which events must be written in order with this one. Default: the record key, so a
    /// user's events apply in the order they were appended. `None`: no order at all.
    fn order_key(&self, _event: &Self::Event, record_key: Option<&[u8]>) -> Option<OrderKey> {
        record_key.map(|k| OrderKey::Record(k.to_vec()))
    }

    /// Called once an event is written (latency metrics).
    fn applied(&self, _event: &Self::Event) {}
}

/// Where the runner reads one projection's records and keeps its checkpoints.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub kafka: &'a KafkaSettings,
    pub settings: &'a ProjectorSettings,
    pub session: &'a Arc<Session>,
    pub keyspace: &'a str,
}

/// Run `projection` from its checkpoints until `shutdown` is cancelled; what is being written
/// is finished and checkpointed first.
pub async fn run_projection<P: Projection>(
    target: Target<'_>,
    projection: &P,
    shutdown: &CancellationToken,
) -> Result<(), ProjectionError> {
    pipeline::run(target, projection, shutdown, pipeline::From::Checkpoint)
        .await
        .map(|_| ())
}

/// Re-apply `projection` from offset 0 up to the end offsets seen at the start, without
/// reading or writing checkpoints. Writes carry event-derived timestamps, so the result is
/// the state a first pass would have produced, and a projector running alongside is not
/// disturbed. Returns the number of events applied.
pub async fn replay_projection<P: Projection>(
    target: Target<'_>,
    projection: &P,
    shutdown: &CancellationToken,
) -> Result<u64, ProjectionError> {
    pipeline::run(target, projection, shutdown, pipeline::From::Beginning).await
}
