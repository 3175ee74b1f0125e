//! Projection checkpoints in CQL: the next offset to apply, per topic and partition.
//!
//! A checkpoint is written only after the data of every offset before it is written, so a
//! crash can only cause re-application (idempotent), never a gap. A stale checkpoint written
//! by an instance that just lost its partition has the same harmless effect.

use std::collections::HashMap;
use std::sync::Arc;

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;

use super::StoreError;

/// Loads and saves checkpoints for one projection.
pub struct Checkpoints {
    session: Arc<Session>,
    projection: &'static str,
    select: PreparedStatement,
    upsert: PreparedStatement,
    /// Next offset per (topic, partition) this instance knows; absent means "ask CQL".
    // Keyed by topic then partition, so the per-record lookup allocates nothing.
    known: HashMap<String, HashMap<i32, i64>>,
}

impl Checkpoints {
    /// Prepare the statements.
    pub async fn new(
        session: Arc<Session>,
        keyspace: &str,
        projection: &'static str,
    ) -> Result<Self, StoreError> {
        let select = session
            .prepare(format!("SELECT next_offset FROM {keyspace}.projection_offsets WHERE projection = ? AND topic = ? AND partition = ?"))
            .await
            .map_err(StoreError::prepare("select checkpoint"))?;
        let upsert = session
            .prepare(format!("INSERT INTO {keyspace}.projection_offsets (projection, topic, partition, next_offset, updated_at) VALUES (?, ?, ?, ?, ?)"))
            .await
            .map_err(StoreError::prepare("upsert checkpoint"))?;
        Ok(Checkpoints {
            session,
            projection,
            select,
            upsert,
            known: HashMap::new(),
        })
    }

    /// The next offset to apply for a partition, reading CQL the first time it is seen.
    pub async fn next_offset(&mut self, topic: &str, partition: i32) -> Result<i64, StoreError> {
        if let Some(n) = self.known.get(topic).and_then(|p| p.get(&partition)) {
            return Ok(*n);
        }
        let row: Option<(Option<i64>,)> = super::select_one(
            &self.session,
            &self.select,
            (self.projection, topic, partition),
            "read checkpoint",
        )
        .await?;
        let next = row.and_then(|(n,)| n).unwrap_or(0);
        self.known
            .entry(topic.to_owned())
            .or_default()
            .insert(partition, next);
        Ok(next)
    }

    /// Record, for each `(topic, partition, next)`, that every offset below `next` of that
    /// partition is applied. The writes run concurrently; on an error none is remembered as
    /// saved (saving again is harmless).
    pub async fn save(&mut self, progress: &[(String, i32, i64)]) -> Result<(), StoreError> {
        let now = CqlTimestamp(crate::clock::now_millis());
        let writes = progress.iter().map(|(topic, partition, next)| {
            self.session.execute_unpaged(
                &self.upsert,
                (self.projection, topic.as_str(), *partition, *next, now),
            )
        });
        futures::future::try_join_all(writes)
            .await
            .map_err(StoreError::execute("write checkpoint"))?;
        for (topic, partition, next) in progress {
            self.known
                .entry(topic.clone())
                .or_default()
                .insert(*partition, *next);
        }
        Ok(())
    }

    /// Forget a partition this instance no longer owns; reassignment re-reads CQL.
    pub fn forget(&mut self, topic: &str, partition: i32) {
        if let Some(p) = self.known.get_mut(topic) {
            p.remove(&partition);
        }
    }
}
