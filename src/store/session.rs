//! Opening a CQL session with the configured nodes and timeouts.

use std::sync::Arc;

use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::statement::{Consistency, SerialConsistency};
use serde::{Deserialize, Serialize};

use crate::config::CqlSettings;

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
