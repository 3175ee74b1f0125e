//! Every read of phone state goes through the directory. Which copy answers depends on what
//! the reader needs; the truth is always the compacted topic `sms.phones.v1`:
//!
//! - [`PhoneDirectory::lookup`] (ingress, enrich): a moka cache over the `phones` projection,
//!   kept fresh on every instance by following `sms.phones.v1` ([`PhoneDirectory::follow`]).
//!   Each event carries the phone's whole state, so an event replaces the cached entry
//!   directly instead of forcing a re-read of a projection that may not have applied it yet.
//! - [`PhoneDirectory::load`] (notify's opt-out check): the `phones` projection itself, read
//!   fresh, so a STOP that the projector applied is never missed because of a cached entry.
//! - [`PhoneDirectory::latest`] (the registry's write side): the state the last change wrote,
//!   remembered in Redis for a while so that the next change starts from it even before the
//!   projector has applied the event; else the projection.

use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::redis::AsyncCommands;
use rdkafka::Offset;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use super::PhoneSettings;
use crate::events::{PhoneEvent, PhoneState};
use crate::kafka::consume::{Consumer, Inbound, SchemaWait};
use crate::kafka::KafkaSettings;
use crate::projector::phones::PhoneReads;
use crate::store::{SharedSession, StoreError};

/// Longer than any sane projection lag: within it, the write side reads its own writes.
const REMEMBERED_TTL: Duration = Duration::from_secs(15 * 60);

/// Phone state for every reader. `None` is cached too ("unknown number"), so a flood from a
/// stranger costs one CQL read per TTL, not one per message.
pub struct PhoneDirectory {
    cache: moka::future::Cache<String, Option<PhoneState>>,
    cql: SharedSession,
    // Prepared on first use, so ingress starts (and answers 503) while CQL is down.
    reads: OnceCell<PhoneReads>,
    redis: deadpool_redis::Pool,
    prefix: String,
}

impl PhoneDirectory {
    /// An empty cache over the process's CQL session; `redis` holds the write side's copy,
    /// its keys isolated by `prefix` (the Kafka topic prefix).
    pub fn new(
        settings: &PhoneSettings,
        cql: SharedSession,
        redis: deadpool_redis::Pool,
        prefix: &str,
    ) -> PhoneDirectory {
        PhoneDirectory {
            cache: moka::future::Cache::builder()
                .max_capacity(settings.cache_capacity)
                .time_to_live(settings.cache_ttl)
                .build(),
            cql,
            reads: OnceCell::new(),
            redis,
            prefix: prefix.to_owned(),
        }
    }

    async fn reads(&self) -> Result<&PhoneReads, StoreError> {
        self.reads
            .get_or_try_init(|| async {
                let session = self.cql.get().await?;
                PhoneReads::new(session, self.cql.keyspace()).await
            })
            .await
    }

    /// The state of `phone` (E.164) from the cache, `None` for a number nobody registered.
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

    /// The projected state, read fresh (bypassing the cache).
    pub async fn load(&self, phone: &str) -> Result<Option<PhoneState>, StoreError> {
        self.reads().await?.phone(phone).await
    }

    /// The state the write side should start a change from: the last state written here if
    /// recent, else the projection.
    pub async fn latest(&self, phone: &str) -> Result<Option<PhoneState>, StoreError> {
        if let Some(s) = self.remembered(phone).await {
            return Ok(Some(s));
        }
        self.load(phone).await
    }

    /// A change to `phone` was appended: this instance's cache and the write side's copy see
    /// it now; other instances through the topic.
    pub async fn record_change(&self, phone: &str, state: &PhoneState) {
        self.apply(phone, state.clone()).await;
        self.remember(phone, state).await;
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
        kafka: KafkaSettings,
        group: String,
        shutdown: CancellationToken,
    ) -> Result<(), rdkafka::error::KafkaError> {
        let topic = kafka.topic(crate::topics::PHONES);
        let consumer = Consumer::create(&kafka, "smsflow-phone-cache", &group, |cfg| {
            // The registry producer is not transactional; read what is acknowledged.
            cfg.set("isolation.level", "read_uncommitted")
                // Changes must reach every instance within a second; the default waits 500 ms.
                .set("fetch.wait.max.ms", "50");
        })
        .await?
        // A record whose registry id cannot be resolved now is not waited for: decoding it
        // fails below and its entry is dropped, so lookups read the projection meanwhile.
        .with_schema_wait(SchemaWait::Attempts(
            1,
            crate::backoff::Backoff::new(Duration::ZERO, Duration::ZERO),
        ));
        let partitions = consumer.assign_all(&topic, Offset::End)?;
        tracing::info!(%topic, partitions, "phone cache following registry changes");
        loop {
            let record = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                r = consumer.recv() => match r { Some(r) => r, None => continue },
            };
            let Some(payload) = record.payload.as_deref() else {
                continue; // a compaction tombstone
            };
            match <PhoneEvent as Inbound>::decode(record.event_type.as_deref(), payload) {
                Ok(Some(ev)) => {
                    self.apply(ev.phone(), ev.state().clone()).await;
                    crate::metrics::phone_cache_update();
                }
                Ok(None) => {}
                Err(e) => {
                    // Drop the entry so the next lookup reads the projection.
                    if let Some(Ok(key)) = record.key.as_deref().map(std::str::from_utf8) {
                        self.cache.invalidate(key).await;
                    }
                    tracing::error!(error = %e, offset = record.offset, "undecodable registry event; cache entry dropped");
                }
            }
        }
    }

    fn remembered_key(&self, phone: &str) -> String {
        format!("{}smsflow:phone-state:{phone}", self.prefix)
    }

    async fn remembered(&self, phone: &str) -> Option<PhoneState> {
        let mut conn = self.redis.get().await.ok()?;
        let raw: Option<String> = conn.get(self.remembered_key(phone)).await.ok()?;
        raw.and_then(|r| serde_json::from_str(&r).ok())
    }

    async fn remember(&self, phone: &str, state: &PhoneState) {
        let Ok(json) = serde_json::to_string(state) else {
            return;
        };
        if let Ok(mut conn) = self.redis.get().await {
            let r: Result<(), _> = conn
                .pset_ex(
                    self.remembered_key(phone),
                    json,
                    REMEMBERED_TTL.as_millis() as u64,
                )
                .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "could not remember a registry state in Redis");
            }
        }
    }
}
