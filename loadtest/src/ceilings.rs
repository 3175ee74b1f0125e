//! The ceilings smsflow is compared against, each measured with the same open-loop driver or a
//! closed loop at smsflow's own concurrency: raw rdkafka produce and produce->consume echo with
//! smsflow's client settings, the projector's own INSERT through the raw driver, and a bare
//! axum route.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use scylla::value::{CqlTimestamp, MaybeUnset};
use tokio::sync::oneshot;

use crate::open_loop::{self, Plan};
use crate::report::{self, Percentiles, RunResult};

/// Produce `record_size`-byte records at the plan's rate with smsflow's producer settings;
/// latency is from the due time to the broker's acknowledgement (acks=all).
pub async fn produce(
    settings: &smsflow::config::Settings,
    topic: &str,
    record_size: usize,
    keys: u64,
    plan: &Plan,
) -> anyhow::Result<RunResult> {
    let producer = smsflow::kafka::EventProducer::new(&settings.kafka, "loadtest-produce")?;
    let payload = Arc::new(vec![0x5Au8; record_size]);
    open_loop::drive(plan, |i| {
        let (producer, topic, payload) = (producer.clone(), topic.to_owned(), payload.clone());
        let key = format!("k{}", i % keys.max(1));
        async move {
            producer
                .send_bytes(&topic, &key, "LoadTest", &payload)
                .await
                .is_ok()
        }
    })
    .await
}

/// Produce at the plan's rate and consume the same records with smsflow's producer and
/// consumer settings (read_committed, no auto commit); latency is from the due time to the
/// record's arrival at the consumer, in microseconds.
pub async fn echo(
    settings: &smsflow::config::Settings,
    topic: &str,
    record_size: usize,
    plan: &Plan,
) -> anyhow::Result<RunResult> {
    let group = format!("loadtest-echo-{}", std::process::id());
    let consumer: StreamConsumer =
        smsflow::kafka::client::consumer(&settings.kafka, "loadtest-echo", &group).create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions = metadata
        .topics()
        .first()
        .map(|t| t.partitions().len())
        .filter(|n| *n > 0)
        .ok_or_else(|| anyhow::anyhow!("topic {topic} not found: run `smsflow topics` first"))?;
    // Start at each partition's current end, read now, so the first record sent is seen.
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        assignment.add_partition_offset(topic, p, Offset::Offset(high))?;
    }
    consumer.assign(&assignment)?;
    // Bounded by the run: an entry lives from send to arrival.
    let waiting: Arc<Mutex<HashMap<u64, oneshot::Sender<()>>>> = Arc::default();
    let stop = Arc::new(tokio::sync::Notify::new());
    let reader = {
        let waiting = waiting.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut stream = consumer.stream();
            loop {
                tokio::select! {
                    _ = stop.notified() => break,
                    next = stream.next() => {
                        let Some(Ok(msg)) = next else { continue };
                        let index = msg
                            .key()
                            .and_then(|k| std::str::from_utf8(k).ok())
                            .and_then(|k| k.strip_prefix('e'))
                            .and_then(|k| k.parse::<u64>().ok());
                        if let Some(tx) = index.and_then(|i| waiting.lock().ok()?.remove(&i)) {
                            let _ = tx.send(());
                        }
                    }
                }
            }
        })
    };
    let producer = smsflow::kafka::EventProducer::new(&settings.kafka, "loadtest-echo")?;
    let payload = Arc::new(vec![0x5Au8; record_size]);
    let result = open_loop::drive(plan, |i| {
        let (producer, topic, payload) = (producer.clone(), topic.to_owned(), payload.clone());
        let (tx, rx) = oneshot::channel();
        if let Ok(mut w) = waiting.lock() {
            w.insert(i, tx);
        }
        async move {
            let sent = producer
                .send_bytes(&topic, &format!("e{i}"), "LoadTest", &payload)
                .await
                .is_ok();
            sent && tokio::time::timeout(Duration::from_secs(10), rx)
                .await
                .is_ok_and(|r| r.is_ok())
        }
    })
    .await;
    stop.notify_one();
    let _ = reader.await;
    result
}

/// What one unit of the raw driver loop writes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum CqlWork {
    /// The projector's prepared INSERT into `messages_by_user`: one statement.
    Insert,
    /// `MessagesProjection::apply` itself, the projector's whole Cassandra work for one
    /// `MessageReceived` (SELECT `message_status`, then INSERT `messages_by_user` and UPDATE
    /// `message_status` together), without Kafka, decoding, batching or checkpoints.
    Projection,
}

impl CqlWork {
    /// CQL statements per unit.
    pub fn statements(self) -> u64 {
        match self {
            CqlWork::Insert => 1,
            CqlWork::Projection => 3,
        }
    }
}

/// The raw driver's write rate: `concurrency` units at a time (the projector's
/// `max_in_flight`), as fast as Cassandra takes them.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CqlWrites {
    pub work: CqlWork,
    pub concurrency: usize,
    /// Units written (statements for `insert`, messages for `projection`).
    pub writes: u64,
    pub failed: u64,
    pub seconds: f64,
    /// Units per second.
    pub rate: f64,
    /// Statements per second (`rate` x the unit's statements).
    pub statements_rate: f64,
    pub latency: Percentiles,
}

/// The message a raw driver unit writes: what the generator sends, as ingress encodes it.
fn raw_message(w: usize, n: u64) -> smsflow::events::MessageReceived {
    let sid = format!("SMraw{w:05}{n:022}");
    let user = format!("+1510{:07}", 2_000_000 + (w as u64 * 7_919 + n) % 8_000_000);
    smsflow::events::MessageReceived {
        event_id: format!("ev-{sid}"),
        received_at: smsflow::clock::now_micros(),
        message_sid: sid,
        account_sid: "ACloadtest0000000000000000000000000".into(),
        messaging_service_sid: None,
        from: user.clone(),
        to: "+14155550100".into(),
        body: "met Dana Reyes at the Oakland expo, her cell is 510-555-0142 #lead".into(),
        num_segments: 1,
        media: Vec::new(),
        geo: None,
        sms_status: Some("received".into()),
        api_version: Some("2010-04-01".into()),
        idempotency_token: None,
        user_id: Some(user),
        extra: Default::default(),
    }
}

/// One prepared unit of work for the loop.
enum Writer {
    Insert(scylla::statement::prepared::PreparedStatement),
    Projection(Box<smsflow::projector::MessagesProjection>),
}

impl Writer {
    async fn write(
        &self,
        session: &scylla::client::session::Session,
        w: usize,
        n: u64,
    ) -> Result<(), String> {
        let ev = raw_message(w, n);
        match self {
            Writer::Insert(insert) => {
                let now_ms = ev.received_at / 1000;
                session
                    .execute_unpaged(
                        insert,
                        (
                            ev.from.as_str(),
                            CqlTimestamp(now_ms),
                            ev.message_sid.as_str(),
                            ev.account_sid.as_str(),
                            MaybeUnset::<&str>::Unset,
                            ev.from.as_str(),
                            ev.to.as_str(),
                            ev.body.as_str(),
                            ev.num_segments,
                            Vec::<(&str, &str)>::new(),
                            MaybeUnset::<HashMap<&str, &str>>::Unset,
                            ev.message_sid.as_str(),
                            now_ms * 1000,
                        ),
                    )
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Writer::Projection(projection) => {
                let pos = smsflow::projector::Position {
                    topic: "raw".into(),
                    partition: (w % 12) as i32,
                    offset: n as i64,
                    log_time_ms: ev.received_at / 1000,
                };
                projection.apply(&ev, &pos).await.map_err(|e| e.to_string())
            }
        }
    }
}

/// Run the write loop for `duration` after `warmup`.
pub async fn cql_writes(
    settings: &smsflow::config::Settings,
    work: CqlWork,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<CqlWrites> {
    let session = smsflow::store::connect(&settings.cql).await?;
    let keyspace = &settings.cql.keyspace;
    let writer = Arc::new(match work {
        CqlWork::Insert => Writer::Insert(
            session
                .prepare(smsflow::projector::insert_message_cql(keyspace))
                .await?,
        ),
        CqlWork::Projection => Writer::Projection(Box::new(
            smsflow::projector::MessagesProjection::new(session.clone(), keyspace).await?,
        )),
    });
    let hist = Arc::new(Mutex::new(report::histogram()?));
    let counts = Arc::new(Mutex::new((0u64, 0u64)));
    let begin = Instant::now();
    let measure_from = begin + warmup;
    let end = measure_from + duration;
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let (session, writer, hist, counts) = (
            session.clone(),
            writer.clone(),
            hist.clone(),
            counts.clone(),
        );
        workers.spawn(async move {
            let mut n = 0u64;
            while Instant::now() < end {
                n += 1;
                let started = Instant::now();
                let res = writer.write(&session, w, n).await;
                if started < measure_from {
                    continue;
                }
                if let Ok(mut c) = counts.lock() {
                    if res.is_ok() {
                        c.0 += 1;
                    } else {
                        c.1 += 1;
                    }
                }
                if res.is_ok() {
                    if let Ok(mut h) = hist.lock() {
                        h.saturating_record(started.elapsed().as_micros().max(1) as u64);
                    }
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let seconds = measure_from.elapsed().as_secs_f64().max(1e-9);
    let (writes, failed) = *counts
        .lock()
        .map_err(|_| anyhow::anyhow!("counter lock poisoned"))?;
    let latency = Percentiles::of(
        &*hist
            .lock()
            .map_err(|_| anyhow::anyhow!("histogram lock poisoned"))?,
    );
    let rate = writes as f64 / seconds;
    Ok(CqlWrites {
        work,
        concurrency,
        writes,
        failed,
        seconds,
        rate,
        statements_rate: rate * work.statements() as f64,
        latency,
    })
}

/// The empty TwiML document both routes answer with.
const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>";

/// Serve `POST /*` with 200 and empty TwiML until the process ends.
pub async fn bare_route(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    let app = axum::Router::new().fallback(|| async {
        (
            [(axum::http::header::CONTENT_TYPE, "text/xml")],
            EMPTY_TWIML,
        )
    });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("bare route on http://{addr}");
    axum::serve(listener, app).await?;
    Ok(())
}

/// Serve `POST /*` by appending the request body to `topic` with smsflow's producer settings
/// and answering 200 with empty TwiML once Kafka acknowledges it (503 if it does not),
/// through smsflow's HTTP server: the least any webhook served that way holds per webhook in
/// flight (one connection, one request, one Kafka record), the ceiling for ingress memory.
pub async fn bare_relay(
    listener: tokio::net::TcpListener,
    settings: &smsflow::config::Settings,
    topic: String,
) -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let producer = smsflow::kafka::EventProducer::new(&settings.kafka, "loadtest-relay")?;
    eprintln!("bare relay to {topic} on http://{}", listener.local_addr()?);
    let topic: Arc<str> = topic.into();
    let next = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .fallback(move |body: axum::body::Bytes| {
            let (producer, topic, next) = (producer.clone(), topic.clone(), next.clone());
            async move {
                let key = format!("k{}", next.fetch_add(1, Ordering::Relaxed) % 100_000);
                let status = match producer.send_bytes(&topic, &key, "LoadTest", &body).await {
                    Ok(_) => axum::http::StatusCode::OK,
                    Err(_) => axum::http::StatusCode::SERVICE_UNAVAILABLE,
                };
                (
                    status,
                    [(axum::http::header::CONTENT_TYPE, "text/xml")],
                    EMPTY_TWIML,
                )
            }
        });
    // smsflow's own HTTP server, with its settings: the relay differs from ingress only in
    // the handler.
    smsflow::http::serve(
        listener,
        app,
        &settings.http,
        tokio_util::sync::CancellationToken::new(),
    )
    .await?;
    Ok(())
}
