//! `smsflow extract`: items from plain text or JSON lines on stdin, one JSON line out per
//! line in, through the enrich stage's own [`Extractor`]; no Kafka.

use crate::config::Settings;
use crate::stages::enrich::batch::{self, Defaults, InputError};
use crate::stages::enrich::{Extractor, LlmError};

/// Defaults for lines that do not say, from the command line.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `body` or `transcript`.
    pub source: String,
    /// ISO 3166 region national numbers are read in.
    pub region: Option<String>,
    /// IANA time zone (default: `enrich.default_time_zone`).
    pub time_zone: Option<String>,
    /// RFC 3339 receive time (default: now).
    pub received_at: Option<String>,
}

/// Why `extract` failed.
#[derive(Debug, thiserror::Error)]
pub enum ExtractCommandError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("enrich.llm: {0}")]
    Llm(#[from] LlmError),
    #[error("reading stdin or writing stdout failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("{errors} of {lines} lines could not be read (see their \"error\" fields)")]
    Lines { errors: usize, lines: usize },
}

/// Read stdin to its end, answering each line on stdout.
pub async fn run(settings: &Settings, options: Options) -> Result<(), ExtractCommandError> {
    let tz = options
        .time_zone
        .unwrap_or_else(|| settings.enrich.default_time_zone.clone());
    let defaults = Defaults::parse(
        &options.source,
        options.region.as_deref(),
        &tz,
        options.received_at.as_deref(),
    )?;
    let extractor = Extractor::new(&settings.enrich.llm)?;
    let input = tokio::io::BufReader::new(tokio::io::stdin());
    let summary = batch::run(input, tokio::io::stdout(), &defaults, &extractor).await?;
    if summary.errors > 0 {
        return Err(ExtractCommandError::Lines {
            errors: summary.errors,
            lines: summary.lines,
        });
    }
    Ok(())
}
