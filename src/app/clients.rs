//! The clients one process shares among its roles: a Kafka metadata client (readiness), one
//! Redis pool and one multiplexed Redis connection, one CQL session, connected on first use,
//! and the event encoder whose registry ids every producer of the process shares.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::BaseConsumer;

use super::tasks::Tasks;
use crate::api::admin::AdminState;
use crate::api::health::Readiness;
use crate::config::Settings;
use crate::events::confluent::RegistryError;
use crate::kafka::client;
use crate::kafka::context::KafkaContext;
use crate::kafka::encoder::EventEncoder;
use crate::redis_link::RedisLink;
use crate::secrets::ExposeSecret;
use crate::store::SharedSession;

/// How long a pool waits for a connection, or a readiness check for an answer.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The shared clients.
pub struct Clients {
    /// A metadata-only Kafka client.
    pub kafka: Arc<BaseConsumer<KafkaContext>>,
    /// The process's one CQL session (connected on first use, so a role that does not need
    /// CQL starts while CQL is down).
    pub cql: SharedSession,
    /// Pooled Redis connections, for commands off the webhook's hot path.
    pub redis: deadpool_redis::Pool,
    /// One multiplexed Redis connection, for the webhook's hot path.
    pub redis_link: RedisLink,
    /// The event encoder (`kafka.wire_format`); readiness reports its registry ids.
    pub encoder: EventEncoder,
}

/// Why the shared clients could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ClientsError {
    #[error("cannot create the Kafka metadata client: {0}")]
    Kafka(#[source] rdkafka::error::KafkaError),
    #[error("redis.url is invalid: {0}")]
    RedisUrl(#[source] deadpool_redis::ConfigError),
    #[error("cannot build the Redis pool: {0}")]
    RedisPool(#[source] deadpool_redis::BuildError),
    #[error(transparent)]
    RedisLink(#[from] crate::redis_link::RedisLinkError),
    #[error("cannot use the schema registry: {0}")]
    SchemaRegistry(#[source] RegistryError),
}

impl Clients {
    /// Create the clients; nothing here waits for a dependency to answer.
    pub fn new(settings: &Settings) -> Result<Clients, ClientsError> {
        let kafka: BaseConsumer<KafkaContext> = client::base(&settings.kafka, "smsflow-health")
            .create_with_context(KafkaContext::new("smsflow-health"))
            .map_err(ClientsError::Kafka)?;
        let redis = deadpool_redis::Config::from_url(settings.redis.url.expose_secret())
            .builder()
            .map_err(ClientsError::RedisUrl)?
            .max_size(settings.redis.pool_max_size)
            .wait_timeout(Some(CHECK_TIMEOUT))
            .create_timeout(Some(CHECK_TIMEOUT))
            .recycle_timeout(Some(CHECK_TIMEOUT))
            .runtime(deadpool_redis::Runtime::Tokio1)
            .build()
            .map_err(ClientsError::RedisPool)?;
        let redis_link = RedisLink::new(&settings.redis.url, CHECK_TIMEOUT)?;
        let encoder = EventEncoder::new(&settings.kafka).map_err(ClientsError::SchemaRegistry)?;
        Ok(Clients {
            kafka: Arc::new(kafka),
            cql: SharedSession::new(&settings.cql),
            redis,
            redis_link,
            encoder,
        })
    }

    /// What `/readyz` checks.
    pub fn readiness(&self) -> Readiness {
        Readiness {
            kafka: self.kafka.clone(),
            cql: self.cql.clone(),
            redis: self.redis.clone(),
            encoder: self.encoder.clone(),
            timeout: CHECK_TIMEOUT,
        }
    }

    /// What the admin statistics read.
    pub fn admin(&self) -> AdminState {
        AdminState {
            cql: self.cql.clone(),
            redis: self.redis.clone(),
        }
    }

    /// Export pool statistics (Redis pool, CQL connections) as gauges.
    fn export_pool_gauges(&self) {
        let redis = self.redis.status();
        crate::metrics::pool("redis", "size", redis.size as f64);
        crate::metrics::pool("redis", "available", redis.available as f64);
        crate::metrics::pool("redis", "waiting", redis.waiting as f64);
        crate::metrics::pool("redis", "max_size", redis.max_size as f64);
        if let Some(cql) = self.cql.if_connected() {
            let m = cql.get_metrics();
            crate::metrics::pool("cql", "connections", m.get_total_connections() as f64);
            crate::metrics::pool(
                "cql",
                "connection_timeouts",
                m.get_connection_timeouts() as f64,
            );
        }
    }
}

/// Sample pool statistics as gauges every few seconds until shutdown.
pub(super) fn sample_pools(clients: Arc<Clients>, tasks: &mut Tasks) {
    let token = tasks.token();
    tasks.spawn("pool gauges", async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = token.cancelled() => return Ok(()),
                _ = tick.tick() => clients.export_pool_gauges(),
            }
        }
    });
}
