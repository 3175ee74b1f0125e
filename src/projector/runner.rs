//! The consumer loop shared by every projection: batches, checkpoint filtering, concurrent
//! idempotent writes, retries, checkpoints, tracing and shutdown.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use opentelemetry::trace::TraceContextExt;
use rdkafka::consumer::{Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use scylla::client::session::Session;
use tokio_util::sync::CancellationToken;
use tracing::{field, info_span, Instrument};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::position::Position;
use super::{group_id, Checkpoints, Projection, ProjectorError};
use crate::config::Settings;
use crate::events::Decoder;
use crate::kafka::{client, headers};
use crate::metrics;
use crate::store::StoreError;

/// Where a run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    /// Live: resume from the checkpoints in CQL, follow new events until shutdown.
    Checkpoint,
    /// Replay: every partition from offset 0 up to its end offset at the start, then return.
    /// Checkpoints are neither read nor written.
    Beginning,
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

/// Run one projection. Live runs return `Ok(None)` on shutdown; replays return the number of
/// events applied once they reach the end offsets taken at their start.
pub async fn run<P: Projection>(
    settings: &Settings,
    session: Arc<Session>,
    projection: P,
    shutdown: &CancellationToken,
    from: From,
) -> Result<Option<u64>, ProjectorError> {
    let keyspace = settings.cql.keyspace.as_str();
    let mut checkpoints = Checkpoints::new(session, keyspace, P::NAME).await?;
    let topics: Vec<String> = projection
        .topics()
        .iter()
        .map(|t| settings.topic(t))
        .collect();

    let kafka = settings.kafka.clone();
    let group = match from {
        From::Checkpoint => group_id(settings, P::NAME),
        // A replay must not join (and rebalance) the live group.
        From::Beginning => format!(
            "{}-replay-{}",
            group_id(settings, P::NAME),
            uuid::Uuid::new_v4()
        ),
    };
    let group_for_consumer = group.clone();
    let consumer: StreamConsumer<ProjectorContext> = tokio::task::spawn_blocking(move || {
        let context = ProjectorContext {
            group: group_for_consumer.clone(),
            revoked: Mutex::new(Vec::new()),
        };
        client::consumer(&kafka, "smsflow-projector", &group_for_consumer)
            .set("statistics.interval.ms", client::STATISTICS_INTERVAL_MS)
            .create_with_context(context)
    })
    .await
    .map_err(|e| ProjectorError::Task(e.to_string()))?
    .map_err(ProjectorError::Consumer)?;

    // For a replay: the end offset of every partition, taken now.
    let mut remaining: BTreeMap<(String, i32), i64> = BTreeMap::new();
    match from {
        From::Checkpoint => {
            let names: Vec<&str> = topics.iter().map(String::as_str).collect();
            consumer
                .subscribe(&names)
                .map_err(ProjectorError::Consumer)?;
        }
        From::Beginning => {
            let mut tpl = TopicPartitionList::new();
            for topic in &topics {
                let md = consumer
                    .fetch_metadata(Some(topic), Duration::from_secs(10))
                    .map_err(ProjectorError::Consumer)?;
                for t in md.topics() {
                    for p in t.partitions() {
                        let (_, high) = consumer
                            .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                            .map_err(ProjectorError::Consumer)?;
                        if high > 0 {
                            remaining.insert((topic.clone(), p.id()), high);
                        }
                        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                            .map_err(ProjectorError::Consumer)?;
                    }
                }
            }
            consumer.assign(&tpl).map_err(ProjectorError::Consumer)?;
            if remaining.is_empty() {
                return Ok(Some(0));
            }
        }
    }
    tracing::info!(projection = P::NAME, ?topics, ?from, "projection started");

    let decoder = Decoder::new(&settings.kafka.schema_registry);
    let mut applied_total = 0u64;
    let mut batches = consumer.stream().ready_chunks(settings.projector.batch_max);
    // A replay also checks its progress on a timer: transactional topics end in commit
    // markers, which are never delivered as records, so no record marks the end.
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        let batch = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick(), if from == From::Beginning => {
                if caught_up(&consumer, &mut remaining) {
                    tracing::info!(projection = P::NAME, events = applied_total, "replay reached the end offsets");
                    return Ok(Some(applied_total));
                }
                continue;
            }
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
        let ctx = BatchContext {
            consumer: &consumer,
            projection: &projection,
            settings,
            group: &group,
            from,
            decoder: &decoder,
        };
        let applied = apply_batch(&ctx, &mut checkpoints, &records, shutdown)
            .instrument(info_span!("projector.batch", projection = P::NAME))
            .await;
        let Some(n) = applied else {
            break; // shutdown during retries: the batch will be re-read after restart
        };
        applied_total += n;
        metrics::projector_batch(started.elapsed());
        if from == From::Beginning {
            for m in &records {
                let key = (m.topic().to_owned(), m.partition());
                if remaining
                    .get(&key)
                    .is_some_and(|high| m.offset() + 1 >= *high)
                {
                    remaining.remove(&key);
                }
            }
            if caught_up(&consumer, &mut remaining) {
                tracing::info!(
                    projection = P::NAME,
                    events = applied_total,
                    "replay reached the end offsets"
                );
                return Ok(Some(applied_total));
            }
        }
    }
    drop(batches);
    tracing::info!(
        projection = P::NAME,
        "projection stopping: last batch checkpointed"
    );
    Ok(None)
}

/// Drop the partitions whose position reached the end offset taken at the start; true when
/// none is left.
fn caught_up(
    consumer: &StreamConsumer<ProjectorContext>,
    remaining: &mut BTreeMap<(String, i32), i64>,
) -> bool {
    if let Ok(position) = consumer.position() {
        for e in position.elements() {
            let key = (e.topic().to_owned(), e.partition());
            let reached = match (remaining.get(&key), e.offset()) {
                (Some(high), Offset::Offset(at)) => at >= *high,
                _ => false,
            };
            if reached {
                remaining.remove(&key);
            }
        }
    }
    remaining.is_empty()
}

struct BatchContext<'a, P> {
    consumer: &'a StreamConsumer<ProjectorContext>,
    projection: &'a P,
    settings: &'a Settings,
    group: &'a str,
    from: From,
    decoder: &'a Decoder,
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
/// Returns the number of events written, or `None` only if shutdown interrupted retries.
async fn apply_batch<P: Projection>(
    ctx: &BatchContext<'_, P>,
    checkpoints: &mut Checkpoints,
    records: &[OwnedMessage],
    shutdown: &CancellationToken,
) -> Option<u64> {
    let mut backoff = Duration::from_millis(100);
    // Confluent-framed records name a registry id: learn unseen writer schemas first (once
    // per id and process). Only an unreachable registry fails here; wait for it.
    while let Err(e) = ctx
        .decoder
        .prepare_all(
            records
                .iter()
                .filter_map(<OwnedMessage as Message>::payload),
        )
        .await
    {
        metrics::projector_retry(P::NAME);
        tracing::warn!(projection = P::NAME, error = %e, retry_in = ?backoff, "cannot resolve schema ids; retrying");
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
    loop {
        match try_apply_batch(ctx, checkpoints, records).await {
            Ok(n) => return Some(n),
            Err(e) => {
                metrics::projector_retry(P::NAME);
                tracing::warn!(projection = P::NAME, error = %e, retry_in = ?backoff, "projector batch failed; retrying (writes are idempotent)");
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn try_apply_batch<P: Projection>(
    ctx: &BatchContext<'_, P>,
    checkpoints: &mut Checkpoints,
    records: &[OwnedMessage],
) -> Result<u64, StoreError> {
    let mut todo: Vec<(Position, P::Event, opentelemetry::Context)> =
        Vec::with_capacity(records.len());
    let batch_span = tracing::Span::current();
    // Highest next-offset per partition in this batch, including poison and skipped records.
    let mut advance: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    let mut behind: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for msg in records {
        let (topic, partition, offset) = (msg.topic(), msg.partition(), msg.offset());
        if ctx.from == From::Checkpoint {
            let next = checkpoints.next_offset(topic, partition).await?;
            if offset < next {
                behind.entry((topic, partition)).or_insert(next);
                continue;
            }
        }
        let entry = advance.entry((topic, partition)).or_insert(offset + 1);
        *entry = (*entry).max(offset + 1);
        let event_type = msg
            .headers()
            .and_then(|h| headers::get(h, headers::EVENT_TYPE))
            .unwrap_or_default();
        let Some(payload) = msg.payload() else {
            // A compacted topic's tombstone (null value) has nothing to apply.
            continue;
        };
        match ctx.projection.decode(event_type, payload) {
            Ok(Some(ev)) => {
                let parent = headers::trace_context(msg.headers());
                // One batch serves many traces: link it to each, and parent each apply span to
                // its own message's trace.
                let sc = parent.span().span_context().clone();
                if sc.is_valid() {
                    batch_span.add_link(sc);
                }
                todo.push((Position::of(msg), ev, parent))
            }
            Ok(None) => {}
            Err(e) => {
                metrics::projector_poison(P::NAME);
                tracing::error!(projection = P::NAME, %topic, partition, offset, error = %e, "undecodable event skipped");
            }
        }
    }
    for ((topic, partition), next) in &behind {
        // Kafka started us before our checkpoint (e.g. its committed offset lagged): jump ahead.
        if let Err(e) = ctx.consumer.seek(
            topic,
            *partition,
            Offset::Offset(*next),
            Duration::from_secs(1),
        ) {
            tracing::debug!(%topic, partition, error = %e, "seek to checkpoint failed; records are filtered instead");
        }
    }

    // Duplicates within the batch would race each other's reads; keep the first of each.
    let mut seen = std::collections::HashSet::new();
    todo.retain(|(_, ev, _)| match ctx.projection.duplicate_key(ev) {
        Some(k) => seen.insert(k.to_owned()),
        None => true,
    });
    let apply_one = |i: usize| {
        let (pos, ev, parent) = &todo[i];
        let span = info_span!(
            "projector.apply",
            otel.name = %format_args!("process {}", pos.topic),
            otel.kind = "consumer",
            messaging.system = "kafka",
            messaging.operation.type = "process",
            messaging.destination.name = %pos.topic,
            messaging.destination.partition.id = %pos.partition,
            messaging.kafka.offset = pos.offset,
            messaging.consumer.group.name = ctx.group,
            projection = P::NAME,
            message_sid = field::Empty,
        );
        if let Some(sid) = ctx.projection.message_sid(ev) {
            span.record("message_sid", sid);
        }
        let _ = span.set_parent(parent.clone());
        ctx.projection.apply(ev, pos).instrument(span)
    };
    // Chains run concurrently, the events of one chain one after another.
    let chains = chains(todo.iter().map(|(_, ev, _)| ctx.projection.order_key(ev)));
    let results: Vec<Result<(), StoreError>> = futures::stream::iter(chains)
        .map(|chain| {
            let apply_one = &apply_one;
            async move {
                for i in chain {
                    apply_one(i).await?;
                }
                Ok(())
            }
        })
        .buffer_unordered(ctx.settings.projector.max_in_flight)
        .collect()
        .await;
    results
        .into_iter()
        .collect::<Result<Vec<()>, StoreError>>()?;

    let events: Vec<&P::Event> = todo.iter().map(|(_, ev, _)| ev).collect();
    ctx.projection.applied(&events);
    metrics::projected(P::NAME, todo.len() as u64);

    if ctx.from == From::Checkpoint {
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), next) in &advance {
            checkpoints.save(topic, *partition, *next).await?;
            let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*next));
        }
        // Kafka's committed offsets are informational (lag dashboards); CQL is the truth.
        if tpl.count() > 0 {
            if let Err(e) = ctx
                .consumer
                .commit(&tpl, rdkafka::consumer::CommitMode::Async)
            {
                tracing::debug!(error = %e, "informational offset commit failed");
            }
        }
    }
    Ok(todo.len() as u64)
}

/// Group a batch (given as each event's order key) into chains of indices: events sharing a
/// key form one chain, in batch order; a keyless event is a chain of its own.
fn chains(keys: impl Iterator<Item = Option<String>>) -> Vec<Vec<usize>> {
    let mut chains: Vec<Vec<usize>> = Vec::new();
    let mut chain_of: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, key) in keys.enumerate() {
        match key {
            Some(k) => match chain_of.get(&k) {
                Some(&c) => chains[c].push(i),
                None => {
                    chain_of.insert(k, chains.len());
                    chains.push(vec![i]);
                }
            },
            None => chains.push(vec![i]),
        }
    }
    chains
}

#[cfg(test)]
mod tests {
    use super::chains;

    fn k(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    #[test]
    fn events_sharing_a_key_form_one_chain_in_batch_order() {
        let got = chains([k("a"), None, k("b"), k("a"), None, k("b"), k("a")].into_iter());
        assert_eq!(got, vec![vec![0, 3, 6], vec![1], vec![2, 5], vec![4]]);
    }

    #[test]
    fn without_keys_every_event_runs_on_its_own() {
        assert_eq!(
            chains([None, None, None].into_iter()),
            vec![vec![0], vec![1], vec![2]]
        );
        assert!(chains(std::iter::empty()).is_empty());
    }
}
