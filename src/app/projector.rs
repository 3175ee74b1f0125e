//! The projector role: every read model, from its checkpoints.

use super::tasks::Tasks;
use super::{AppError, Shared};
use crate::projector::{self, ProjectorContext};

/// Run the projections on the process's CQL session (connected inside the task, so the
/// process starts, and reports unready, while CQL is down).
pub(super) fn start(shared: &Shared, tasks: &mut Tasks) {
    let (cql, kafka, settings) = (
        shared.clients.cql.clone(),
        shared.settings.kafka.clone(),
        shared.settings.projector.clone(),
    );
    let token = tasks.token();
    tasks.spawn("projector", async move {
        let session = cql.get().await.map_err(|source| AppError::Cql {
            role: "projector",
            source,
        })?;
        let cx = ProjectorContext {
            kafka,
            settings,
            session,
            keyspace: cql.keyspace().to_owned(),
        };
        Ok(projector::run(cx, token).await?)
    });
}
