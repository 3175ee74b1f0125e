//! One multiplexed Redis connection for the webhook's hot path (the admission script and the
//! `done` marks), connected on first use and reconnected by itself.
//!
//! A pooled connection costs a round trip of its own at every checkout (deadpool-redis
//! recycles with `UNWATCH` + `PING`), and at 900/s a webhook waited for a free one longer than
//! for Redis itself (`loadtest/results/2026-12-01/admission-split.md`). Here every caller
//! shares one socket: commands are pipelined as they come, with no checkout. What bounds the
//! commands in flight is their callers: the HTTP server's request limit and the background
//! confirms' own bound (`ingress::dedupe`); redis-rs holds at most a small buffer of commands
//! not yet written.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use crate::secrets::{ExposeSecret, SecretString};

/// Why no connection could be had.
#[derive(Debug, thiserror::Error)]
pub enum RedisLinkError {
    #[error("redis.url is invalid ({0}); expected redis://[:password@]host:port/db")]
    Url(#[source] redis::RedisError),
    #[error("cannot connect to Redis ({0}); check redis.url and that Redis is up")]
    Connect(#[source] redis::RedisError),
    #[error("no connection to Redis within {0:?}; check that Redis is up and reachable")]
    Timeout(Duration),
}

/// A shared, lazily connected, self-reconnecting Redis connection; cheap to clone.
#[derive(Clone)]
pub struct RedisLink {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    timeout: Duration,
}

impl RedisLink {
    /// Nothing connects here: a process starts (and answers by its failure policy) while Redis
    /// is down. `timeout` bounds a connection attempt and each command's answer.
    pub fn new(url: &SecretString, timeout: Duration) -> Result<RedisLink, RedisLinkError> {
        let client = redis::Client::open(url.expose_secret()).map_err(RedisLinkError::Url)?;
        Ok(RedisLink {
            inner: Arc::new(Inner {
                client,
                conn: OnceCell::new(),
                timeout,
            }),
        })
    }

    /// The connection (a cheap handle onto the shared one). After the first connection, a
    /// lost one is re-established in the background and commands meanwhile fail at once.
    pub async fn get(&self) -> Result<ConnectionManager, RedisLinkError> {
        let inner = &self.inner;
        let connect = inner.conn.get_or_try_init(|| async {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(inner.timeout)
                .set_response_timeout(inner.timeout)
                // One quick retry: a caller waits for the reconnect, so it must not back off
                // for seconds while its webhook waits.
                .set_number_of_retries(1)
                .set_factor(50);
            ConnectionManager::new_with_config(inner.client.clone(), config)
                .await
                .map_err(RedisLinkError::Connect)
        });
        // Callers queue behind one first attempt; none waits longer than `timeout` for it.
        match tokio::time::timeout(inner.timeout, connect).await {
            Ok(conn) => conn.cloned(),
            Err(_) => Err(RedisLinkError::Timeout(inner.timeout)),
        }
    }
}
