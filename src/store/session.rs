//! Opening a CQL session with the configured nodes and timeouts, and the one session a
//! process shares ([`SharedSession`]).

use std::sync::Arc;

use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::statement::{Consistency, SerialConsistency};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use crate::validation::{ensure, InvalidSetting};

/// `[cql]`: Cassandra locally, ScyllaDB in production.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CqlSettings {
    /// Contact points, `host:port`.
    pub nodes: Vec<String>,
    /// Keyspace holding the read models.
    pub keyspace: String,
    /// Replication clause used when `migrate` creates the keyspace.
    pub replication: String,
    /// Per-statement timeout.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Consistency of every statement (`local_quorum`; `quorum`, `local_one`, `one`, `all`).
    pub consistency: CqlConsistency,
    /// The data center this process runs in: requests go to its replicas only (token- and
    /// shard-aware), never to another data center. Unset: every node is a candidate.
    pub local_datacenter: Option<String>,
}

impl Default for CqlSettings {
    fn default() -> Self {
        CqlSettings {
            nodes: vec!["127.0.0.1:9042".into()],
            keyspace: "smsflow".into(),
            replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}".into(),
            request_timeout: Duration::from_secs(5),
            consistency: CqlConsistency::LocalQuorum,
            local_datacenter: None,
        }
    }
}

impl CqlSettings {
    /// Refuse values that cannot work.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        ensure(
            !self.nodes.is_empty(),
            "cql.nodes",
            "must name at least one node",
        )?;
        let ks = &self.keyspace;
        ensure(
            !ks.is_empty()
                && ks.len() <= 48
                && ks
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "cql.keyspace",
            "must be 1-48 characters of a-z, 0-9 and _",
        )?;
        ensure(
            self.local_datacenter
                .as_deref()
                .is_none_or(|dc| !dc.trim().is_empty()),
            "cql.local_datacenter",
            "must name a data center, or be left out",
        )
    }
}

/// The consistency levels smsflow may be configured with (`cql.consistency`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CqlConsistency {
    /// A majority of the local data center's replicas: survives one of three replicas down,
    /// never waits on another data center. Equal to ONE on a single local node.
    LocalQuorum,
    /// A majority of all replicas, across data centers.
    Quorum,
    LocalOne,
    One,
    All,
}

impl From<CqlConsistency> for Consistency {
    fn from(c: CqlConsistency) -> Consistency {
        match c {
            CqlConsistency::LocalQuorum => Consistency::LocalQuorum,
            CqlConsistency::Quorum => Consistency::Quorum,
            CqlConsistency::LocalOne => Consistency::LocalOne,
            CqlConsistency::One => Consistency::One,
            CqlConsistency::All => Consistency::All,
        }
    }
}

/// A CQL failure, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot connect to CQL at {nodes:?}: {source}; is Cassandra/ScyllaDB up (cql.nodes)?")]
    Connect {
        nodes: Vec<String>,
        source: Box<scylla::errors::NewSessionError>,
    },
    #[error("keyspace {keyspace} is not usable: {source}; run `smsflow migrate` first")]
    Keyspace {
        keyspace: String,
        source: Box<scylla::errors::UseKeyspaceError>,
    },
    #[error("CQL statement failed ({context}): {source}")]
    Execute {
        context: &'static str,
        source: Box<scylla::errors::ExecutionError>,
    },
    #[error("preparing a CQL statement failed ({context}): {source}")]
    Prepare {
        context: &'static str,
        source: Box<scylla::errors::PrepareError>,
    },
    #[error("reading CQL rows failed ({context}): {message}")]
    Rows {
        context: &'static str,
        message: String,
    },
}

impl StoreError {
    /// Wrap an execution error with its context.
    pub fn execute(
        context: &'static str,
    ) -> impl FnOnce(scylla::errors::ExecutionError) -> StoreError {
        move |e| StoreError::Execute {
            context,
            source: Box::new(e),
        }
    }

    /// Wrap a prepare error with its context.
    pub fn prepare(
        context: &'static str,
    ) -> impl FnOnce(scylla::errors::PrepareError) -> StoreError {
        move |e| StoreError::Prepare {
            context,
            source: Box::new(e),
        }
    }

    /// Wrap a row-decoding error with its context.
    pub fn rows<E: std::fmt::Display>(context: &'static str) -> impl FnOnce(E) -> StoreError {
        move |e| StoreError::Rows {
            context,
            message: e.to_string(),
        }
    }
}

/// Connect without selecting a keyspace (used by `migrate`).
pub async fn connect(settings: &CqlSettings) -> Result<Arc<Session>, StoreError> {
    // Token-aware routing is the driver's default, and with ScyllaDB it also opens one
    // connection per shard (through the shard-aware port 19042 when reachable), so each
    // statement goes to the shard that owns its partition.
    let mut policy = DefaultPolicy::builder().token_aware(true);
    if let Some(dc) = &settings.local_datacenter {
        // LOCAL_QUORUM means this data center's replicas: never fail over to another one.
        policy = policy
            .prefer_datacenter(dc.clone())
            .permit_dc_failover(false);
    }
    let profile = ExecutionProfile::builder()
        .consistency(settings.consistency.into())
        .serial_consistency(Some(SerialConsistency::LocalSerial))
        .load_balancing_policy(policy.build())
        .request_timeout(Some(settings.request_timeout))
        .build();
    let session = SessionBuilder::new()
        .known_nodes(&settings.nodes)
        .default_execution_profile_handle(profile.into_handle())
        .build()
        .await
        .map_err(|e| StoreError::Connect {
            nodes: settings.nodes.clone(),
            source: Box::new(e),
        })?;
    Ok(Arc::new(session))
}

/// Connect and use the configured keyspace.
pub async fn connect_to_keyspace(settings: &CqlSettings) -> Result<Arc<Session>, StoreError> {
    let session = connect(settings).await?;
    session
        .use_keyspace(&settings.keyspace, false)
        .await
        .map_err(|e| StoreError::Keyspace {
            keyspace: settings.keyspace.clone(),
            source: Box::new(e),
        })?;
    Ok(session)
}

/// The process's one CQL session, connected on first use so that a role that does not need
/// CQL starts (and answers 503 on readiness) while CQL is down. Clones share the session.
#[derive(Clone)]
pub struct SharedSession {
    settings: Arc<CqlSettings>,
    cell: Arc<OnceCell<Arc<Session>>>,
}

impl SharedSession {
    /// Not connected yet.
    pub fn new(settings: &CqlSettings) -> SharedSession {
        SharedSession {
            settings: Arc::new(settings.clone()),
            cell: Arc::new(OnceCell::new()),
        }
    }

    /// The session, connecting on first use (a failed attempt is retried by the next call).
    pub async fn get(&self) -> Result<Arc<Session>, StoreError> {
        self.cell
            .get_or_try_init(|| connect(&self.settings))
            .await
            .cloned()
    }

    /// The session if it is connected already.
    pub fn if_connected(&self) -> Option<&Arc<Session>> {
        self.cell.get()
    }

    /// The configured contact points (`cql.nodes`), for messages.
    pub fn nodes(&self) -> &[String] {
        &self.settings.nodes
    }

    /// The keyspace statements name (no `USE`: both engines discourage it with prepared
    /// statements).
    pub fn keyspace(&self) -> &str {
        &self.settings.keyspace
    }
}
