//! The one shape of a configuration error: the full key at fault and what to do about it.
//! Every component's settings type validates itself into it; `config` collects them at load.

/// A setting that cannot work, naming its full key (e.g. `transcribe.google.api_key`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration key `{key}` is invalid: {reason}")]
pub struct InvalidSetting {
    /// Full key path, e.g. `kafka.produce_deadline`.
    pub key: &'static str,
    /// What is wrong and how to fix it.
    pub reason: String,
}

impl InvalidSetting {
    /// The error for `key`.
    pub fn new(key: &'static str, reason: impl Into<String>) -> InvalidSetting {
        InvalidSetting {
            key,
            reason: reason.into(),
        }
    }
}

/// `Err(InvalidSetting)` for `key` unless `ok`.
pub fn ensure(ok: bool, key: &'static str, reason: &str) -> Result<(), InvalidSetting> {
    if ok {
        Ok(())
    } else {
        Err(InvalidSetting::new(key, reason))
    }
}

/// True for an absolute http(s) URL with a host.
pub fn is_http_url(s: &str) -> bool {
    url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}
