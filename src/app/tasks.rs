//! The process's named tasks under one cancellation token: the first failure cancels the
//! others, and waiting drains them all.

use std::collections::HashMap;
use std::future::Future;

use tokio::task::{Id, JoinSet};
use tokio_util::sync::CancellationToken;

use super::AppError;

/// Named tasks sharing a shutdown token.
pub(super) struct Tasks {
    set: JoinSet<Result<(), AppError>>,
    names: HashMap<Id, &'static str>,
    shutdown: CancellationToken,
}

impl Tasks {
    /// No task yet.
    pub fn new(shutdown: CancellationToken) -> Tasks {
        Tasks {
            set: JoinSet::new(),
            names: HashMap::new(),
            shutdown,
        }
    }

    /// The token every task stops on.
    pub fn token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Run `task` until it ends; `name` says which one failed.
    pub fn spawn(
        &mut self,
        name: &'static str,
        task: impl Future<Output = Result<(), AppError>> + Send + 'static,
    ) {
        let handle = self.set.spawn(task);
        self.names.insert(handle.id(), name);
    }

    /// Wait for every task; the first failure cancels the rest and is returned.
    pub async fn wait(mut self) -> Result<(), AppError> {
        let mut first_error = None;
        while let Some(joined) = self.set.join_next_with_id().await {
            let (name, result) = match joined {
                Ok((id, result)) => (self.name(id), result),
                Err(source) => {
                    let task = self.name(source.id());
                    (task, Err(AppError::Task { task, source }))
                }
            };
            if let Err(e) = result {
                tracing::error!(task = name, error = %e, "a task failed; shutting the others down");
                self.shutdown.cancel();
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn name(&self, id: Id) -> &'static str {
        self.names.get(&id).copied().unwrap_or("a task")
    }
}
