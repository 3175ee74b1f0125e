//! The pipelined loop of one projection: read, decode, write concurrently in per-key order,
//! and let each partition's checkpoint follow its lowest fully written offset.
//!
//! An undecodable record (poison) is dead-lettered like a stage's poison, with the consume
//! shape's one [`dead_letter`]: its partition moves on, but its checkpoint passes the record
//! only once Kafka acknowledged the letter. A crash between the acknowledgement and the
//! checkpoint can append the letter again (at least once, same source position); a replay
//! (`smsflow replay`) counts poison without dead-lettering it again.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer as _};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Position, Projection, ProjectionError, Target};
use crate::backoff::Backoff;
use crate::events::DeadLetter;
use crate::kafka::consume::{
    dead_letter, process_span, Consumer, GiveUp, Inbound, Ordered, PartitionOffsets, Record,
};
use crate::kafka::{EventProducer, KafkaSettings};
use crate::metrics;
use crate::store::Checkpoints;

/// Where a run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum From {
    /// Live: resume from the checkpoints in CQL, follow new events until shutdown.
    Checkpoint,
    /// Replay: every partition from offset 0 up to its end offset at the start, then return.
    /// Checkpoints are neither read nor written.
    Beginning,
}

/// A failed write waits by this, then tries again (writes are idempotent) until shutdown.
const RETRY: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

/// One record to finish: an event to write, or a poison record's dead letter to append.
struct Job<E> {
    pos: Position,
    work: Work<E>,
    span: tracing::Span,
}

enum Work<E> {
    Apply(E),
    // Boxed: poison is rare, and every job in flight would otherwise carry its size.
    DeadLetter {
        key: String,
        letter: Box<DeadLetter>,
    },
}

/// Appends a projection's dead letters; its producer is created on the first one.
struct DeadLetters<'a> {
    kafka: &'a KafkaSettings,
    producer: tokio::sync::OnceCell<EventProducer>,
}

/// A job's end: written, or interrupted by shutdown while retrying.
struct Done {
    pos: Position,
    written: bool,
}

/// What woke the loop.
enum Step {
    Stop,
    Record(Option<Record>),
    Written(Option<Done>),
    Tick,
}

/// Run one projection. Live runs return on shutdown; replays return the number of events
/// applied once they reach the end offsets taken at their start.
pub(super) async fn run<P: Projection>(
    target: Target<'_>,
    projection: &P,
    shutdown: &CancellationToken,
    from: From,
) -> Result<u64, ProjectionError> {
    let Target {
        kafka, settings, ..
    } = target;
    let mut checkpoints =
        Checkpoints::new(target.session.clone(), target.keyspace, P::NAME).await?;
    let topics: Vec<String> = projection.topics().iter().map(|t| kafka.topic(t)).collect();
    let group = match from {
        From::Checkpoint => settings.group_of(P::NAME),
        // A replay must not join (and rebalance) the live group.
        From::Beginning => format!(
            "{}-replay-{}",
            settings.group_of(P::NAME),
            uuid::Uuid::new_v4()
        ),
    };
    let consumer = Consumer::create(kafka, "smsflow-projector", &group, |_| {}).await?;
    // For a replay: the end offset of every partition, taken now.
    let mut remaining: BTreeMap<(String, i32), i64> = BTreeMap::new();
    match from {
        From::Checkpoint => consumer.subscribe(&topics)?,
        From::Beginning => {
            let tpl = consumer.partitions(&topics, Offset::Beginning)?;
            for e in tpl.elements() {
                let (_, high) = consumer.client().fetch_watermarks(
                    e.topic(),
                    e.partition(),
                    Duration::from_secs(10),
                )?;
                if high > 0 {
                    remaining.insert((e.topic().to_owned(), e.partition()), high);
                }
            }
            consumer.client().assign(&tpl)?;
            if remaining.is_empty() {
                return Ok(0);
            }
        }
    }
    tracing::info!(projection = P::NAME, ?topics, ?from, "projection started");

    let mut offsets = PartitionOffsets::new();
    let mut unsaved: HashMap<(String, i32), i64> = HashMap::new();
    let letters = DeadLetters {
        kafka,
        producer: tokio::sync::OnceCell::new(),
    };
    let letters = &letters;
    let mut ordered = Ordered::new(settings.max_in_flight, |job: Job<P::Event>| {
        finish(projection, letters, job, shutdown).boxed()
    });
    // Also how a replay notices its end: transactional topics end in commit markers, which
    // are never delivered as records, so no record marks the end.
    let mut tick = tokio::time::interval(settings.checkpoint_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reading = true;
    let mut applied = 0u64;
    loop {
        let step = tokio::select! {
            _ = shutdown.cancelled(), if reading => Step::Stop,
            done = ordered.next(), if !ordered.is_empty() => Step::Written(done),
            r = consumer.recv(), if reading && offsets.held() < settings.batch_max => Step::Record(r),
            _ = tick.tick() => Step::Tick,
        };
        match step {
            Step::Stop => {
                // Drain: what is being written finishes; what waits is read again next time.
                reading = false;
                ordered.drop_waiting();
            }
            Step::Written(Some(done)) => {
                if done.written {
                    applied += 1;
                    offsets.done(&done.pos.topic, done.pos.partition, done.pos.offset);
                }
            }
            Step::Written(None) | Step::Record(None) => {}
            Step::Record(Some(record)) => {
                forget_revoked(&consumer, &mut offsets, &mut checkpoints, &mut unsaved);
                if from == From::Checkpoint
                    && behind_checkpoint(&consumer, &mut checkpoints, &record, shutdown).await
                {
                    continue;
                }
                offsets.read(&record.topic, record.partition, record.offset);
                match decode::<P>(projection, &record, &group, from) {
                    Some(job) => {
                        let key = match &job.work {
                            Work::Apply(event) => {
                                projection.order_key(event, record.key.as_deref())
                            }
                            // The checkpoint waits for it; no other write depends on it.
                            Work::DeadLetter { .. } => None,
                        };
                        ordered.push(key, job);
                    }
                    // Nothing to write: done as soon as read.
                    None => offsets.done(&record.topic, record.partition, record.offset),
                }
            }
            Step::Tick => {
                forget_revoked(&consumer, &mut offsets, &mut checkpoints, &mut unsaved);
                match from {
                    From::Checkpoint => {
                        checkpoint(&consumer, &mut offsets, &mut checkpoints, &mut unsaved).await;
                    }
                    From::Beginning => {
                        if caught_up(&consumer, &offsets, &mut remaining) {
                            tracing::info!(
                                projection = P::NAME,
                                events = applied,
                                "replay reached the end offsets"
                            );
                            return Ok(applied);
                        }
                    }
                }
            }
        }
        if !reading && ordered.is_empty() {
            break;
        }
    }
    if from == From::Checkpoint {
        checkpoint(&consumer, &mut offsets, &mut checkpoints, &mut unsaved).await;
    }
    tracing::info!(
        projection = P::NAME,
        "projection stopping: what was written is checkpointed"
    );
    Ok(applied)
}

/// The record's job, or `None` when there is nothing to write (a compaction tombstone,
/// another event on the topic, or poison met by a replay, which is counted and skipped: the
/// live projection dead-lettered it).
fn decode<P: Projection>(
    projection: &P,
    record: &Record,
    group: &str,
    from: From,
) -> Option<Job<P::Event>> {
    let payload = record.payload.as_deref()?;
    let span = || process_span(record, group, P::NAME);
    match <P::Event as Inbound>::decode(record.event_type.as_deref(), payload) {
        Ok(Some(event)) => {
            let span = span();
            if let Some(sid) = projection.message_sid(&event) {
                span.record("message_sid", sid);
            }
            Some(Job {
                pos: Position::of_record(record),
                work: Work::Apply(event),
                span,
            })
        }
        Ok(None) => None,
        Err(e) => {
            metrics::projector_poison(P::NAME);
            if from == From::Beginning {
                tracing::warn!(projection = P::NAME, topic = %record.topic, partition = record.partition, offset = record.offset, error = %e, "undecodable event skipped by the replay (the live projection dead-lettered it)");
                return None;
            }
            tracing::error!(projection = P::NAME, topic = %record.topic, partition = record.partition, offset = record.offset, error = %e, "undecodable event; dead-lettering it");
            let consumer = format!("projector:{}", P::NAME);
            let letter = dead_letter(
                record,
                GiveUp {
                    consumer: &consumer,
                    kind: "poison",
                    error: &format!("cannot decode the event: {e}"),
                    attempts: 1,
                },
            );
            Some(Job {
                pos: Position::of_record(record),
                work: Work::DeadLetter {
                    key: record.key_str(),
                    letter: Box::new(letter),
                },
                span: span(),
            })
        }
    }
}

/// Finish one job: write its event, or append its dead letter.
async fn finish<P: Projection>(
    projection: &P,
    letters: &DeadLetters<'_>,
    job: Job<P::Event>,
    shutdown: &CancellationToken,
) -> Done {
    match &job.work {
        Work::Apply(event) => write(projection, event, &job.pos, &job.span, shutdown).await,
        Work::DeadLetter { key, letter } => {
            let written = tokio::select! {
                _ = shutdown.cancelled() => false,
                stored = letters.append(key, letter).instrument(job.span.clone()) => stored,
            };
            job.span.record(
                "outcome",
                if written {
                    "dead_letter"
                } else {
                    "interrupted"
                },
            );
            Done {
                pos: job.pos,
                written,
            }
        }
    }
}

impl DeadLetters<'_> {
    /// Append `letter` and wait for Kafka's acknowledgement, retrying until it is stored
    /// (the caller's shutdown ends the retries: the record is then read again next time).
    async fn append(&self, key: &str, letter: &DeadLetter) -> bool {
        let topic = self.kafka.topic(crate::topics::DEADLETTER);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let result = match self
                .producer
                .get_or_try_init(|| async {
                    EventProducer::new(self.kafka, "smsflow-projector-deadletters")
                })
                .await
            {
                Ok(producer) => match producer.ready().await {
                    Ok(()) => producer.send(&topic, key, letter).await.map(|_| ()),
                    Err(e) => Err(e.into()),
                },
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => return true,
                Err(e) => {
                    let delay = RETRY.delay(attempt);
                    tracing::warn!(attempt, error = %e, retry_in = ?delay, "cannot append a projector dead letter; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

/// Write one event, retrying until it is written or shutdown interrupts the retries.
async fn write<P: Projection>(
    projection: &P,
    event: &P::Event,
    pos: &Position,
    span: &tracing::Span,
    shutdown: &CancellationToken,
) -> Done {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let started = std::time::Instant::now();
        match projection.apply(event, pos).instrument(span.clone()).await {
            Ok(()) => {
                metrics::projector_write(started.elapsed());
                metrics::projected(P::NAME, 1);
                projection.applied(event);
                span.record("outcome", "ok");
                return Done {
                    pos: pos.clone(),
                    written: true,
                };
            }
            Err(e) => {
                metrics::projector_retry(P::NAME);
                let delay = RETRY.delay(attempt);
                tracing::warn!(projection = P::NAME, attempt, error = %e, retry_in = ?delay, "projector write failed; retrying (writes are idempotent)");
                tokio::select! {
                    _ = shutdown.cancelled() => {
                        span.record("outcome", "interrupted");
                        return Done { pos: pos.clone(), written: false };
                    }
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// True when the record is below its partition's checkpoint (Kafka started us before it,
/// e.g. its committed offset lagged): it is skipped and the partition sought ahead. Also
/// true when shutdown interrupts reading the checkpoint: the record is read again next time.
async fn behind_checkpoint(
    consumer: &Consumer,
    checkpoints: &mut Checkpoints,
    record: &Record,
    shutdown: &CancellationToken,
) -> bool {
    let mut attempt = 0u32;
    let next = loop {
        attempt += 1;
        match checkpoints
            .next_offset(&record.topic, record.partition)
            .await
        {
            Ok(next) => break next,
            Err(e) => {
                let delay = RETRY.delay(attempt);
                tracing::warn!(error = %e, retry_in = ?delay, "cannot read a checkpoint; retrying");
                tokio::select! {
                    // Not applied, not checkpointed: read again after the restart.
                    _ = shutdown.cancelled() => return true,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    };
    if record.offset >= next {
        return false;
    }
    if let Err(e) = consumer.client().seek(
        &record.topic,
        record.partition,
        Offset::Offset(next),
        Duration::from_secs(1),
    ) {
        tracing::debug!(topic = %record.topic, partition = record.partition, error = %e, "seek to checkpoint failed; records are filtered instead");
    }
    true
}

/// Save the checkpoints that moved. A failed save is kept and tried again on the next tick.
async fn checkpoint(
    consumer: &Consumer,
    offsets: &mut PartitionOffsets,
    checkpoints: &mut Checkpoints,
    unsaved: &mut HashMap<(String, i32), i64>,
) {
    for (topic, partition, next) in offsets.take_advanced() {
        unsaved.insert((topic, partition), next);
    }
    if unsaved.is_empty() {
        return;
    }
    let progress: Vec<(String, i32, i64)> = unsaved
        .iter()
        .map(|((t, p), n)| (t.clone(), *p, *n))
        .collect();
    if let Err(e) = checkpoints.save(&progress).await {
        tracing::warn!(error = %e, "cannot write checkpoints; trying again (a restart re-applies, idempotently)");
        return;
    }
    unsaved.clear();
    // Kafka's committed offsets are informational (lag dashboards); CQL is the truth.
    let mut tpl = TopicPartitionList::new();
    for (topic, partition, next) in &progress {
        let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*next));
    }
    if let Err(e) = consumer.client().commit(&tpl, CommitMode::Async) {
        tracing::debug!(error = %e, "informational offset commit failed");
    }
}

/// Forget partitions a rebalance took away: their next owner reads their checkpoints.
fn forget_revoked(
    consumer: &Consumer,
    offsets: &mut PartitionOffsets,
    checkpoints: &mut Checkpoints,
    unsaved: &mut HashMap<(String, i32), i64>,
) {
    for (topic, partition) in consumer.take_revoked() {
        offsets.forget(&topic, partition);
        checkpoints.forget(&topic, partition);
        unsaved.remove(&(topic, partition));
    }
}

/// Drop the partitions whose records up to the end offset taken at the start are all
/// written; true when none is left.
fn caught_up(
    consumer: &Consumer,
    offsets: &PartitionOffsets,
    remaining: &mut BTreeMap<(String, i32), i64>,
) -> bool {
    let read_to: HashMap<(String, i32), i64> = consumer
        .client()
        .position()
        .map(|tpl| {
            tpl.elements()
                .iter()
                .filter_map(|e| match e.offset() {
                    Offset::Offset(at) => Some(((e.topic().to_owned(), e.partition()), at)),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    remaining.retain(|(topic, partition), high| {
        let written_to = offsets.position(topic, *partition).unwrap_or(0);
        let read_all = read_to
            .get(&(topic.clone(), *partition))
            .is_some_and(|at| at >= high);
        let done = written_to >= *high || (read_all && offsets.is_idle(topic, *partition));
        !done
    });
    remaining.is_empty()
}
