//! Logging and tracing set-up: one `tracing` subscriber for the whole process.
//!
//! Trace export (OTLP to Jaeger) plugs in here as another layer; nothing else changes.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter};

use crate::config::TelemetrySettings;

/// Install the global subscriber. `RUST_LOG` overrides the configured filter.
pub fn init(settings: &TelemetrySettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.log_filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = if settings.log_format == "json" {
        registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .try_init()
    } else {
        registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init()
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}

/// Mask a phone number for logs: keep the country code and last two digits.
pub fn mask_phone(number: &str) -> String {
    let digits: Vec<char> = number.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.len() < 6 {
        return "***".into();
    }
    let head: String = digits[..2].iter().collect();
    let tail: String = digits[digits.len() - 2..].iter().collect();
    format!("+{head}***{tail}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn phone_numbers_are_masked() {
        assert_eq!(super::mask_phone("+15105550142"), "+15***42");
        assert_eq!(super::mask_phone("123"), "***");
    }
}
