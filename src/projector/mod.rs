//! The projector: the one stateful consumer. It turns events into CQL read models with
//! event-derived write timestamps, and keeps its offsets in CQL next to the data.

mod checkpoint;
mod messages;
pub mod position;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use opentelemetry::trace::TraceContextExt;
use rdkafka::consumer::{Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use tracing::{info_span, Instrument};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::Settings;
use crate::events::{decode, Event, MessageReceived};
use crate::kafka::{client, headers};
use crate::metrics;
use crate::store::{self, StoreError};

pub use checkpoint::Checkpoints;
pub use messages::{insert_message_cql, MessagesProjection};
use position::Position;

/// Name of the message read models in `projection_offsets`.
pub const MESSAGES_PROJECTION: &str = "messages";

/// Why the projector stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error("cannot create the projector's Kafka consumer: {0}")]
    Consumer(KafkaError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("projector task failed: {0}")]
    Task(String),
}

/// Partitions taken away by a rebalance, handed from librdkafka's callback to the loop; and
/// librdkafka's periodic statistics, turned into the consumer lag gauge.
struct ProjectorContext {
    group: String,
    revoked: Mutex<Vec<(String, i32)>>,
}

impl ClientContext for ProjectorContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        client::report_lag(&self.group, &statistics);
    }
}

impl ConsumerContext for ProjectorContext {
    fn post_rebalance(
        &self,
        _consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &Rebalance<'_>,
    ) {
        if let Rebalance::Revoke(tpl) = rebalance {
            if let Ok(mut revoked) = self.revoked.lock() {
                revoked.extend(
                    tpl.elements()
                        .iter()
                        .map(|e| (e.topic().to_owned(), e.partition())),
                );
            }
        }
    }
}

/// Run the message projection until `shutdown` is cancelled.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> Result<(), ProjectorError> {
    // Statements name their keyspace; no `USE`, which both engines discourage with prepared
    // statements.
    let session = store::connect(&settings.cql).await?;
    let keyspace = settings.cql.keyspace.as_str();
    let projection = MessagesProjection::new(session.clone(), keyspace).await?;
    let mut checkpoints = Checkpoints::new(session, keyspace, MESSAGES_PROJECTION).await?;
    let topic = settings.topic(crate::topics::MESSAGES);

    let kafka = settings.kafka.clone();
    let group = settings.projector.group_id.clone();
    let consumer: StreamConsumer<ProjectorContext> = tokio::task::spawn_blocking(move || {
        let context = ProjectorContext {
            group: group.clone(),
            revoked: Mutex::new(Vec::new()),
        };
        client::consumer(&kafka, "smsflow-projector", &group)
            .set("statistics.interval.ms", client::STATISTICS_INTERVAL_MS)
            .create_with_context(context)
    })
    .await
    .map_err(|e| ProjectorError::Task(e.to_string()))?
    .map_err(ProjectorError::Consumer)?;
    consumer
        .subscribe(&[&topic])
        .map_err(ProjectorError::Consumer)?;
    tracing::info!(%topic, "projector started");

    let mut batches = consumer.stream().ready_chunks(settings.projector.batch_max);
    loop {
        let batch = tokio::select! {
            _ = shutdown.cancelled() => break,
            b = batches.next() => match b { Some(b) => b, None => break },
        };
        forget_revoked(&consumer, &mut checkpoints);
        let records: Vec<OwnedMessage> = batch
            .into_iter()
            .filter_map(|r| match r {
                Ok(m) => Some(m.detach()),
                Err(e) => {
                    tracing::warn!(error = %e, "Kafka consumer error; librdkafka will retry");
                    None
                }
            })
            .collect();
        if records.is_empty() {
            continue;
        }
        let started = std::time::Instant::now();
        let applied = apply_batch(
            &consumer,
            &projection,
            &mut checkpoints,
            &settings,
            records,
            &shutdown,
        )
        .instrument(info_span!("projector.batch"))
        .await;
        if !applied {
            break; // shutdown during retries: the batch will be re-read after restart
        }
        metrics::projector_batch(started.elapsed());
    }
    drop(batches);
    tracing::info!("projector stopping: last batch checkpointed");
    Ok(())
}

fn forget_revoked(consumer: &StreamConsumer<ProjectorContext>, checkpoints: &mut Checkpoints) {
    let revoked = match consumer.context().revoked.lock() {
        Ok(mut r) => std::mem::take(&mut *r),
        Err(_) => return,
    };
    for (topic, partition) in revoked {
        checkpoints.forget(&topic, partition);
    }
}

/// Apply a batch: skip what the checkpoint says is done, write the rest, then checkpoint.
/// Returns false only if shutdown interrupted retries.
async fn apply_batch(
    consumer: &StreamConsumer<ProjectorContext>,
    projection: &MessagesProjection,
    checkpoints: &mut Checkpoints,
    settings: &Settings,
    records: Vec<OwnedMessage>,
    shutdown: &CancellationToken,
) -> bool {
    let mut backoff = Duration::from_millis(100);
    loop {
        match try_apply_batch(consumer, projection, checkpoints, settings, &records).await {
            Ok(()) => return true,
            Err(e) => {
                metrics::projector_retry(MESSAGES_PROJECTION);
                tracing::warn!(error = %e, retry_in = ?backoff, "projector batch failed; retrying (writes are idempotent)");
                tokio::select! {
                    _ = shutdown.cancelled() => return false,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn try_apply_batch(
    consumer: &StreamConsumer<ProjectorContext>,
    projection: &MessagesProjection,
    checkpoints: &mut Checkpoints,
    settings: &Settings,
    records: &[OwnedMessage],
) -> Result<(), StoreError> {
    let mut todo: Vec<(Position, MessageReceived, opentelemetry::Context)> =
        Vec::with_capacity(records.len());
    let batch_span = tracing::Span::current();
    // Highest next-offset per partition in this batch, including poison and skipped records.
    let mut advance: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let mut behind: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for msg in records {
        let pos = Position::of(msg);
        let next = checkpoints.next_offset(&pos.topic, pos.partition).await?;
        if pos.offset < next {
            behind
                .entry((pos.topic.clone(), pos.partition))
                .or_insert(next);
            continue;
        }
        let key = (pos.topic.clone(), pos.partition);
        let entry = advance.entry(key).or_insert(pos.offset + 1);
        *entry = (*entry).max(pos.offset + 1);
        // Other events on the topic (SenderRejected) have no read model yet: skip them.
        let event_type = msg
            .headers()
            .and_then(|h| headers::get(h, headers::EVENT_TYPE));
        if event_type.is_some_and(|t| t != MessageReceived::NAME) {
            continue;
        }
        match msg.payload().map(decode::<MessageReceived>) {
            Some(Ok(ev)) => {
                let parent = headers::trace_context(msg.headers());
                // One batch serves many traces: link it to each, and parent each apply span to
                // its own message's trace.
                let sc = parent.span().span_context().clone();
                if sc.is_valid() {
                    batch_span.add_link(sc);
                }
                todo.push((pos, ev, parent))
            }
            Some(Err(e)) => {
                metrics::projector_poison(MESSAGES_PROJECTION);
                tracing::error!(topic = %pos.topic, partition = pos.partition, offset = pos.offset, error = %e, "undecodable event skipped");
            }
            None => {
                metrics::projector_poison(MESSAGES_PROJECTION);
                tracing::error!(topic = %pos.topic, partition = pos.partition, offset = pos.offset, "event without payload skipped");
            }
        }
    }
    for ((topic, partition), next) in &behind {
        // Kafka started us before our checkpoint (e.g. its committed offset lagged): jump ahead.
        if let Err(e) = consumer.seek(
            topic,
            *partition,
            Offset::Offset(*next),
            Duration::from_secs(1),
        ) {
            tracing::debug!(%topic, partition, error = %e, "seek to checkpoint failed; records are filtered instead");
        }
    }

    let group = settings.projector.group_id.as_str();
    let writes: Vec<_> = todo
        .iter()
        .map(|(pos, ev, parent)| {
            let span = info_span!(
                "projector.apply",
                otel.name = %format_args!("process {}", pos.topic),
                otel.kind = "consumer",
                messaging.system = "kafka",
                messaging.operation.type = "process",
                messaging.destination.name = %pos.topic,
                messaging.destination.partition.id = %pos.partition,
                messaging.kafka.offset = pos.offset,
                messaging.consumer.group.name = group,
                message_sid = %ev.message_sid,
            );
            let _ = span.set_parent(parent.clone());
            projection.apply(ev, pos).instrument(span)
        })
        .collect();
    let results: Vec<Result<(), StoreError>> = futures::stream::iter(writes)
        .buffer_unordered(settings.projector.max_in_flight)
        .collect()
        .await;
    results
        .into_iter()
        .collect::<Result<Vec<()>, StoreError>>()?;

    let now_us = crate::clock::now_micros();
    for (_, ev, _) in &todo {
        metrics::end_to_end_latency(Duration::from_micros(
            now_us.saturating_sub(ev.received_at).max(0) as u64,
        ));
    }
    metrics::projected(MESSAGES_PROJECTION, todo.len() as u64);

    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), next) in &advance {
        checkpoints.save(topic, *partition, *next).await?;
        let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*next));
    }
    // Kafka's committed offsets are informational (lag dashboards); CQL is the source of truth.
    if tpl.count() > 0 {
        if let Err(e) = consumer.commit(&tpl, rdkafka::consumer::CommitMode::Async) {
            tracing::debug!(error = %e, "informational offset commit failed");
        }
    }
    Ok(())
}
