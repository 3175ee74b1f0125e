//! `smsflow migrate`: apply `migrations/NNN_name.cql` in order, and say what was done.

use std::path::Path;

use crate::config::Settings;
use crate::store::migrate::{self, MigrateError};

/// Apply the migrations in `dir` to the configured keyspace and print each one's state.
pub async fn run(settings: &Settings, dir: &Path) -> Result<(), MigrateError> {
    let report = migrate::run(&settings.cql, dir).await?;
    for m in &report.applied {
        println!("applied  {m}");
    }
    for m in &report.already_applied {
        println!("present  {m}");
    }
    println!(
        "keyspace {}: {} applied, {} already present",
        settings.cql.keyspace,
        report.applied.len(),
        report.already_applied.len()
    );
    Ok(())
}
