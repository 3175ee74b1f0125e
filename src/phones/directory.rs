//! Every read of phone state goes through the directory. Which copy answers depends on what
//! the reader needs; the truth is always the compacted topic `sms.phones.v1`:
//!
//! - [`PhoneDirectory::lookup`] (ingress, enrich): two moka caches over the `phones`
//!   projection. `known` holds the states that `sms.phones.v1` announced, kept fresh on every
//!   instance by following the topic ([`PhoneDirectory::follow`]) from its beginning: it is
//!   compacted, so reading it whole costs one record per number, and a number linked while
//!   no instance ran is known as soon as the follower reads its link, whether or not the
//!   projector has written it yet. Each event carries the phone's whole state, so it replaces
//!   the entry directly. `loads` holds what reads of the projection found, for [`MISS_TTL`]
//!   only (a number found also goes into `known` where the topic announced nothing), and a
//!   read never overrides what the topic announced: a read of a lagging projection that finishes after
//!   the follower's entry cannot hide it, and a number unknown a moment ago is accepted as
//!   soon as its link reaches the follower or the projection.
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

/// How long a read of the projection is cached (above all: an unknown number). A flood from
/// a stranger costs one CQL read per number per `MISS_TTL`.
pub const MISS_TTL: Duration = Duration::from_secs(5);

/// Phone state for every reader.
pub struct PhoneDirectory {
    /// What the registry topic (or this instance's own change) announced: authoritative.
    known: moka::future::Cache<String, PhoneState>,
    /// What reads of the projection found, `None` for an unknown number; briefly (a number
    /// found is also kept in `known` unless the topic announced it meanwhile).
    loads: moka::future::Cache<String, Option<PhoneState>>,
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
            known: moka::future::Cache::builder()
                .max_capacity(settings.cache_capacity)
                .time_to_live(settings.cache_ttl)
                .build(),
            loads: moka::future::Cache::builder()
                .max_capacity(settings.cache_capacity)
                .time_to_live(MISS_TTL.min(settings.cache_ttl))
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
        if let Some(state) = self.known.get(phone).await {
            crate::metrics::phone_cache(true);
            return Ok(Some(state));
        }
        if let Some(loaded) = self.loads.get(phone).await {
            crate::metrics::phone_cache(true);
            return Ok(loaded);
        }
        crate::metrics::phone_cache(false);
        // Concurrent lookups of one number share one read.
        let loaded = self
            .loads
            .try_get_with_by_ref(phone, self.load(phone))
            .await?;
        // The follower may have announced the number while the projection was read; its
        // state wins over the read's, which is kept only where it announced nothing.
        match loaded {
            Some(state) => Ok(Some(
                self.known
                    .entry_by_ref(phone)
                    .or_insert(state)
                    .await
                    .into_value(),
            )),
            None => Ok(self.known.get(phone).await),
        }
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
        self.known.insert(phone.to_owned(), state).await;
        self.loads.invalidate(phone).await;
    }

    /// Entries held now (approximate; moka applies writes in batches).
    pub fn entry_count(&self) -> u64 {
        self.known.entry_count() + self.loads.entry_count()
    }

    /// Follow `sms.phones.v1` from its beginning until shutdown, applying every change to the
    /// cache. Every instance reads every partition (no consumer group membership), so a change
    /// made anywhere reaches all of them, and one made while this instance did not run is
    /// read at start-up. While it catches up, an older event of a number can briefly replace
    /// this instance's own newer [`PhoneDirectory::record_change`]; the number's later events
    /// follow in order and restore it.
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
        // From the beginning: compaction keeps one record per number, and a link appended
        // while no instance ran exists only there until the projector writes it.
        let partitions = consumer.assign_all(&topic, Offset::Beginning)?;
        tracing::info!(%topic, partitions, "phone cache reading the registry from its beginning, then following it");
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
                        self.known.invalidate(key).await;
                        self.loads.invalidate(key).await;
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
