//! Ingress's view of the registry: a moka cache over the `phones` table, kept fresh on every
//! instance by following `sms.phones.v1`. Each event carries the phone's whole state, so an
//! event replaces the cached entry directly instead of forcing a re-read of a projection
//! that may not have applied it yet.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use super::PhoneSettings;
use crate::config::{CqlSettings, Settings};
use crate::events::{PhoneEvent, PhoneState};
use crate::kafka::{client, headers};
use crate::store::StoreError;

/// Cached phone lookups. `None` caches "unknown number" too, so a flood from a stranger
/// costs one CQL read per TTL, not one per message.
pub struct PhoneDirectory {
    cache: moka::future::Cache<String, Option<PhoneState>>,
    cql: CqlSettings,
    // Connected on first use, so ingress starts (and answers 503) while CQL is down.
    prepared: OnceCell<(Arc<Session>, PreparedStatement)>,
}

type Row = (
    Option<String>,
    Option<bool>,
    Option<bool>,
    Option<CqlTimestamp>,
    Option<CqlTimestamp>,
    Option<CqlTimestamp>,
    Option<String>,
);

impl PhoneDirectory {
    /// An empty cache; CQL is connected on the first miss.
    pub fn new(cql: &CqlSettings, settings: &PhoneSettings) -> PhoneDirectory {
        PhoneDirectory {
            cache: moka::future::Cache::builder()
                .max_capacity(settings.cache_capacity)
                .time_to_live(settings.cache_ttl)
                .build(),
            cql: cql.clone(),
            prepared: OnceCell::new(),
        }
    }

    async fn statement(&self) -> Result<&(Arc<Session>, PreparedStatement), StoreError> {
        self.prepared
            .get_or_try_init(|| async {
                let session = crate::store::connect(&self.cql).await?;
                let select = session
                    .prepare(format!(
                        "SELECT user_id, verified, opted_out, linked_at, verified_at, opted_out_at, \
                         time_zone FROM {}.phones WHERE phone = ?",
                        self.cql.keyspace
                    ))
                    .await
                    .map_err(StoreError::prepare("select phones"))?;
                Ok((session, select))
            })
            .await
    }

    /// The registry state of `phone` (E.164), `None` for a number nobody registered.
    pub async fn lookup(&self, phone: &str) -> Result<Option<PhoneState>, Arc<StoreError>> {
        if let Some(hit) = self.cache.get(phone).await {
            crate::metrics::phone_cache(true);
            return Ok(hit);
        }
        crate::metrics::phone_cache(false);
        self.cache
            .try_get_with_by_ref(phone, self.load(phone))
            .await
    }

    /// Read the projection directly, bypassing the cache.
    pub async fn load(&self, phone: &str) -> Result<Option<PhoneState>, StoreError> {
        let (session, select) = self.statement().await?;
        let row = session
            .execute_unpaged(select, (phone,))
            .await
            .map_err(StoreError::execute("select phones"))?
            .into_rows_result()
            .map_err(StoreError::rows("select phones"))?
            .maybe_first_row::<Row>()
            .map_err(StoreError::rows("select phones"))?;
        let micros = |t: Option<CqlTimestamp>| t.map(|t| t.0.saturating_mul(1000));
        Ok(row.map(
            |(user_id, verified, opted_out, linked, verified_at, opted, time_zone)| PhoneState {
                user_id,
                verified: verified.unwrap_or(false),
                opted_out: opted_out.unwrap_or(false),
                linked_at: micros(linked),
                verified_at: micros(verified_at),
                opted_out_at: micros(opted),
                time_zone,
            },
        ))
    }

    /// Replace a cached entry with the state an event announced.
    pub async fn apply(&self, phone: &str, state: PhoneState) {
        self.cache.insert(phone.to_owned(), Some(state)).await;
    }

    /// Entries held now (approximate; moka applies writes in batches).
    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Follow `sms.phones.v1` from its end until shutdown, applying every change to the cache.
    /// Every instance reads every partition (no consumer group membership), so a change made
    /// anywhere reaches all of them.
    pub async fn follow(
        self: Arc<Self>,
        settings: Settings,
        shutdown: CancellationToken,
    ) -> Result<(), rdkafka::error::KafkaError> {
        let topic = settings.topic(crate::topics::PHONES);
        let kafka = settings.kafka.clone();
        let group = format!("{}-phone-cache", settings.projector.group_id);
        let consumer: StreamConsumer = tokio::task::spawn_blocking(move || {
            client::consumer(&kafka, "smsflow-phone-cache", &group)
                // The registry producer is not transactional; read what is acknowledged.
                .set("isolation.level", "read_uncommitted")
                // Changes must reach every instance within a second; the default waits 500 ms.
                .set("fetch.wait.max.ms", "50")
                .create()
        })
        .await
        .map_err(|e| {
            rdkafka::error::KafkaError::ClientCreation(format!("phone cache consumer task: {e}"))
        })??;
        let tpl = assign_all_at_end(&consumer, &topic).await?;
        consumer.assign(&tpl)?;
        tracing::info!(%topic, partitions = tpl.count(), "phone cache following registry changes");
        let decoder = crate::events::Decoder::new(&settings.kafka.schema_registry);
        let mut stream = consumer.stream();
        loop {
            let msg = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                m = stream.next() => match m { Some(m) => m, None => return Ok(()) },
            };
            let msg = match msg {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "phone cache consumer error; librdkafka will retry");
                    continue;
                }
            };
            let event_type = msg
                .headers()
                .and_then(|h| headers::get(h, headers::EVENT_TYPE))
                .unwrap_or_default();
            // A Confluent-framed record's writer schema is fetched once per id; if the schema
            // registry is down, decoding fails below and the entry is dropped (lookups then
            // read the projection).
            if let Err(e) = decoder.prepare(msg.payload().unwrap_or_default()).await {
                tracing::warn!(error = %e, "cannot resolve a registry schema id");
            }
            match msg
                .payload()
                .and_then(|p| PhoneEvent::decode(event_type, p))
            {
                Some(Ok(ev)) => {
                    self.apply(ev.phone(), ev.state().clone()).await;
                    crate::metrics::phone_cache_update();
                }
                Some(Err(e)) => {
                    // Drop the entry so the next lookup reads the projection.
                    if let Some(Ok(key)) = msg.key().map(std::str::from_utf8) {
                        self.cache.invalidate(key).await;
                    }
                    tracing::error!(error = %e, offset = msg.offset(), "undecodable registry event; cache entry dropped");
                }
                None => {}
            }
        }
    }
}

async fn assign_all_at_end(
    consumer: &StreamConsumer,
    topic: &str,
) -> Result<TopicPartitionList, rdkafka::error::KafkaError> {
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::End)?;
        }
    }
    Ok(tpl)
}
