//! `smsflow replay --projection NAME`: rebuild one read model from offset 0.

use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::projector::{self, ProjectorContext, ProjectorError};

/// Rebuild one read model from offset 0, alongside a running projector. Returns the number of
/// events applied.
pub async fn replay(settings: &Settings, projection: &str) -> Result<u64, ProjectorError> {
    let session = crate::store::connect(&settings.cql).await?;
    let shutdown = CancellationToken::new();
    crate::shutdown::install(shutdown.clone());
    let cx = ProjectorContext {
        kafka: settings.kafka.clone(),
        settings: settings.projector.clone(),
        session,
        keyspace: settings.cql.keyspace.clone(),
    };
    projector::replay(cx, projection, shutdown).await
}

/// `replay`, printing how many events were re-applied.
pub async fn run(settings: &Settings, projection: &str) -> Result<(), ProjectorError> {
    let n = replay(settings, projection).await?;
    println!("projection {projection}: re-applied {n} event(s) from offset 0");
    Ok(())
}
