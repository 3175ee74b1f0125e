//! `smsflow dlq list|replay`: inspect dead letters, or re-inject them to their source topics.

use crate::config::Settings;
use crate::kafka::dlq::{self, DlqError, Filter};

/// Print at most `limit` dead letters (oldest first), of one stage or all.
pub async fn list(
    settings: &Settings,
    stage: Option<String>,
    limit: usize,
) -> Result<(), DlqError> {
    let letters = dlq::list(&settings.kafka, &Filter { stage }, limit).await?;
    for l in &letters {
        println!(
            "{}  stage={} kind={} attempts={} source={}/{}@{}  {}",
            l.event_id,
            l.stage,
            l.error_kind,
            l.attempts,
            l.source_topic,
            l.source_partition,
            l.source_offset,
            l.error
        );
    }
    println!("{} dead letter(s)", letters.len());
    Ok(())
}

/// Re-inject dead letters (each once), or with `dry_run` only count them.
pub async fn replay(
    settings: &Settings,
    stage: Option<String>,
    dry_run: bool,
) -> Result<(), DlqError> {
    let n = dlq::replay(&settings.kafka, &Filter { stage }, dry_run).await?;
    let verb = if dry_run { "would replay" } else { "replayed" };
    println!("{verb} {n} dead letter(s)");
    Ok(())
}
