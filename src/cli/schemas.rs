//! `smsflow schemas register|check`: the event schemas as code, against the schema registry
//! (`kafka.schema_registry.url`), one subject `<topic>-value` per topic.

use std::path::Path;

use crate::config::Settings;
use crate::events::confluent::{self, OpsError, RegistryClient, RegistryError, Verdict};

/// Why a schemas command failed.
#[derive(Debug, thiserror::Error)]
pub enum SchemasError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Ops(#[from] OpsError),
}

/// Register every topic's schema under `<topic>-value`, compatibility BACKWARD, and print
/// each subject's id and version.
pub async fn register(settings: &Settings, dir: &Path) -> Result<(), SchemasError> {
    let client = RegistryClient::new(&settings.kafka.schema_registry)?;
    for r in confluent::register(&client, dir, &settings.kafka.topic_prefix).await? {
        println!(
            "registered  {}  id {}  version {}  compatibility {}  ({})",
            r.subject,
            r.id,
            r.version.map_or("?".into(), |v| v.to_string()),
            confluent::COMPATIBILITY,
            r.events.join(", ")
        );
    }
    println!("registry {}", client.url());
    Ok(())
}

/// Ask the registry whether `dir`'s schemas may become the next versions of their subjects,
/// print a verdict per subject, and return whether one is incompatible.
pub async fn check(settings: &Settings, dir: &Path) -> Result<bool, SchemasError> {
    let client = RegistryClient::new(&settings.kafka.schema_registry)?;
    let report = confluent::check(&client, dir, &settings.kafka.topic_prefix).await?;
    for s in &report.subjects {
        match &s.verdict {
            Verdict::Unchanged => println!("unchanged     {}", s.subject),
            Verdict::New => println!("new           {} (register creates it)", s.subject),
            Verdict::Compatible => println!("compatible    {}", s.subject),
            Verdict::Incompatible { reason } => println!("INCOMPATIBLE  {}: {reason}", s.subject),
        }
    }
    println!("registry {}", client.url());
    Ok(report.has_incompatible())
}
