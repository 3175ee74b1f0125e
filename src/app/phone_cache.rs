//! The process's one phone directory, shared by the webhook, the phone API, enrich (time
//! zones) and notify (opt-outs); kept fresh by following the registry topic where a role
//! reads it through the cache.

use std::sync::Arc;
use std::time::Duration;

use super::tasks::Tasks;
use super::{AppError, Clients};
use crate::config::Settings;
use crate::phones::PhoneDirectory;

/// The directory; with `follow`, a task keeps its cache fresh from `sms.phones.v1`.
pub(super) fn start(
    settings: &Settings,
    clients: &Clients,
    follow: bool,
    tasks: &mut Tasks,
) -> Arc<PhoneDirectory> {
    let directory = Arc::new(PhoneDirectory::new(
        &settings.phones,
        clients.cql.clone(),
        clients.redis.clone(),
        &settings.kafka.topic_prefix,
    ));
    if follow {
        let (d, kafka, token) = (directory.clone(), settings.kafka.clone(), tasks.token());
        let group = format!("{}-phone-cache", settings.projector.group_id);
        tasks.spawn("phone cache", async move {
            let follow = d.clone().follow(kafka, group, token);
            let sample = async {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    crate::metrics::phone_cache_entries(d.entry_count());
                }
            };
            tokio::select! {
                r = follow => r.map_err(AppError::PhoneCache),
                _ = sample => Ok(()),
            }
        });
    }
    directory
}
