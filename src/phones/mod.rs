//! The phone registry: who owns a number, whether they proved it, and whether it opted out.
//!
//! The truth is the compacted topic `sms.phones.v1`: changes are appended there as events
//! carrying the phone's whole state ([`registry`]). The projector writes them into the
//! `phones` read model (`projector::phones`). Every read of phone state goes through the
//! [`directory`], which says which copy answers whom. Verification codes live in Redis
//! ([`codes`]).

pub mod codes;
pub mod directory;
pub mod keywords;
pub mod registry;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use codes::{CodeCheck, CodeLimits, Codes, Issued, SendLimit};
pub use directory::PhoneDirectory;
pub use keywords::Keyword;
pub use registry::{PhoneRegistry, RegistryError};

/// `[phones]`: the lookup cache and verification codes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PhoneSettings {
    /// Most numbers the ingress lookup cache holds (unknown numbers are cached too).
    pub cache_capacity: u64,
    /// How long a cached lookup lives. Changes reach every instance through `sms.phones.v1`
    /// at once; the TTL only bounds how long a missed change could linger.
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,
    /// How long a verification code stays valid.
    #[serde(with = "humantime_serde")]
    pub code_ttl: Duration,
    /// Wrong guesses allowed per number per `code_limit_window`, across re-sent codes.
    pub code_max_attempts: u32,
    /// Codes sent to one number per `code_limit_window`.
    pub code_sends_per_number: u32,
    /// Codes sent for one account per `code_limit_window`, over all its numbers.
    pub code_sends_per_user: u32,
    /// The window of the code limits.
    #[serde(with = "humantime_serde")]
    pub code_limit_window: Duration,
    /// The least time between two codes to one number.
    #[serde(with = "humantime_serde")]
    pub code_resend_interval: Duration,
    /// An unverified link older than this no longer holds the number: another account may
    /// link it (so nobody can squat a number they cannot verify).
    #[serde(with = "humantime_serde")]
    pub unverified_link_ttl: Duration,
    /// The SMS carrying the code; `{code}` is replaced.
    pub code_message: String,
}

impl Default for PhoneSettings {
    fn default() -> Self {
        PhoneSettings {
            cache_capacity: 100_000,
            cache_ttl: Duration::from_secs(15 * 60),
            code_ttl: Duration::from_secs(10 * 60),
            code_max_attempts: 5,
            code_sends_per_number: 3,
            code_sends_per_user: 10,
            code_limit_window: Duration::from_secs(60 * 60),
            code_resend_interval: Duration::from_secs(60),
            unverified_link_ttl: Duration::from_secs(60 * 60),
            code_message:
                "Your smsflow verification code is {code}. Reply with it or enter it in the app."
                    .into(),
        }
    }
}

impl PhoneSettings {
    /// Refuse values that cannot work.
    pub fn validate(&self) -> Result<(), crate::validation::InvalidSetting> {
        use crate::validation::ensure;
        ensure(
            self.cache_capacity > 0,
            "phones.cache_capacity",
            "must be positive",
        )?;
        ensure(
            self.code_max_attempts > 0,
            "phones.code_max_attempts",
            "must be positive",
        )?;
        ensure(
            self.code_sends_per_number > 0,
            "phones.code_sends_per_number",
            "must be positive",
        )?;
        ensure(
            self.code_sends_per_user > 0,
            "phones.code_sends_per_user",
            "must be positive",
        )?;
        ensure(
            self.code_limit_window >= self.code_ttl,
            "phones.code_limit_window",
            "must be at least phones.code_ttl",
        )?;
        ensure(
            self.unverified_link_ttl >= self.code_ttl,
            "phones.unverified_link_ttl",
            "must be at least phones.code_ttl, or a link expires before its code",
        )?;
        ensure(
            self.code_message.contains("{code}"),
            "phones.code_message",
            "must contain {code}, where the code is put",
        )
    }
}

/// A number that is not a valid E.164 phone number.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a phone number in E.164 form (+ country code, then the number, e.g. +15105550142)")]
pub struct InvalidPhone(pub String);

/// Parse and normalize a number given in international form to E.164.
pub fn normalize(input: &str) -> Result<String, InvalidPhone> {
    let trimmed = input.trim();
    if !trimmed.starts_with('+') {
        return Err(InvalidPhone(mask_phone(trimmed)));
    }
    let parsed =
        phonenumber::parse(None, trimmed).map_err(|_| InvalidPhone(mask_phone(trimmed)))?;
    if !phonenumber::is_valid(&parsed) {
        return Err(InvalidPhone(mask_phone(trimmed)));
    }
    Ok(parsed.format().mode(phonenumber::Mode::E164).to_string())
}

/// Mask a phone number for logs, spans and error messages: only the last two digits stay.
pub fn mask_phone(number: &str) -> String {
    let digits: Vec<char> = number.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.len() < 6 {
        return "***".into();
    }
    let tail: String = digits[digits.len() - 2..].iter().collect();
    format!("***{tail}")
}

/// A time zone name that is not in the IANA database.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an IANA time zone name (e.g. America/New_York, Europe/Berlin)")]
pub struct InvalidTimeZone(pub String);

/// Check an IANA time zone name, returning its canonical spelling.
pub fn time_zone(input: &str) -> Result<String, InvalidTimeZone> {
    input
        .trim()
        .parse::<chrono_tz::Tz>()
        .map(|tz| tz.name().to_owned())
        .map_err(|_| InvalidTimeZone(input.chars().take(64).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_are_masked() {
        assert_eq!(mask_phone("+15105550142"), "***42");
        assert_eq!(mask_phone("123"), "***");
    }

    #[test]
    fn time_zones_are_iana_names() {
        assert_eq!(time_zone(" America/New_York ").unwrap(), "America/New_York");
        assert_eq!(time_zone("UTC").unwrap(), "UTC");
        assert!(time_zone("Mars/Olympus").is_err());
        assert!(time_zone("").is_err());
    }

    #[test]
    fn normalizes_international_numbers_and_refuses_the_rest() {
        assert_eq!(normalize(" +1 510-555-0142 ").unwrap(), "+15105550142");
        assert_eq!(normalize("+442071838750").unwrap(), "+442071838750");
        assert!(normalize("5105550142").is_err(), "no country code");
        assert!(normalize("+1").is_err());
        assert!(normalize("hello").is_err());
    }
}
