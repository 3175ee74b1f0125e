//! Twilio's webhook connection overrides: the `#ct=…&rt=…&tt=…&rc=…&rp=…` fragment of a webhook
//! URL that sets Twilio's timeouts and retries for that URL.
//!
//! Limits as Twilio documents them ("Webhooks (HTTP callbacks): Connection Overrides"):
//! `ct` connect timeout 100–10000 ms (default 5000), `rt` read timeout 100–15000 ms (default
//! 15000), `tt` total time for all attempts 100–15000 ms (default 15000), `rc` retry count 0–5
//! (default 1), `rp` retry policy, a comma list of `4xx`, `5xx`, `ct`, `rt`, `all` (Twilio error
//! 11243 when invalid). `e` (edge) and `sni` are passed through unchecked.

use std::fmt;

/// Why an overrides string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverridesError {
    #[error("connection override `{0}` has no `=value`")]
    NoValue(String),
    #[error("connection override `{0}` appears twice")]
    Repeated(String),
    #[error("unknown connection override `{0}` (Twilio knows ct, rt, tt, rc, rp, e, sni)")]
    Unknown(String),
    #[error("connection override `{key}={value}` must be a whole number from {min} to {max}")]
    OutOfRange {
        key: &'static str,
        value: String,
        min: u32,
        max: u32,
    },
    #[error("retry policy `rp={0}` must be a comma list of 4xx, 5xx, ct, rt, all")]
    BadPolicy(String),
    #[error("connection override `{0}=` has an empty value")]
    Empty(&'static str),
}

/// One retry condition of `rp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RetryOn {
    /// An HTTP 4xx answer.
    Http4xx,
    /// An HTTP 5xx answer (our 503).
    Http5xx,
    /// The connection could not be made within `ct`.
    ConnectTimeout,
    /// No answer within `rt`.
    ReadTimeout,
    /// Every condition above.
    All,
}

impl RetryOn {
    fn parse(s: &str) -> Option<RetryOn> {
        Some(match s {
            "4xx" => RetryOn::Http4xx,
            "5xx" => RetryOn::Http5xx,
            "ct" => RetryOn::ConnectTimeout,
            "rt" => RetryOn::ReadTimeout,
            "all" => RetryOn::All,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            RetryOn::Http4xx => "4xx",
            RetryOn::Http5xx => "5xx",
            RetryOn::ConnectTimeout => "ct",
            RetryOn::ReadTimeout => "rt",
            RetryOn::All => "all",
        }
    }
}

/// A parsed, range-checked set of connection overrides. `Display` writes the fragment
/// without its `#`, keys in the order they were given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionOverrides {
    pub connect_timeout_ms: Option<u32>,
    pub read_timeout_ms: Option<u32>,
    pub total_time_ms: Option<u32>,
    pub retry_count: Option<u32>,
    pub retry_policy: Option<Vec<RetryOn>>,
    pub edge: Option<String>,
    pub sni: Option<String>,
    order: Vec<&'static str>,
}

/// Twilio's documented defaults, used where a key is absent.
pub const DEFAULT_RETRY_COUNT: u32 = 1;
/// Twilio's ceiling for `rt` and `tt`: the 15 s webhook limit.
pub const MAX_TOTAL_MS: u32 = 15_000;

impl ConnectionOverrides {
    /// Parse `ct=…&rt=…` (a leading `#` is allowed; an empty string means no overrides).
    pub fn parse(text: &str) -> Result<ConnectionOverrides, OverridesError> {
        let text = text.strip_prefix('#').unwrap_or(text);
        let mut out = ConnectionOverrides::default();
        for pair in text.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| OverridesError::NoValue(pair.chars().take(32).collect()))?;
            let key: &'static str = match key {
                "ct" => "ct",
                "rt" => "rt",
                "tt" => "tt",
                "rc" => "rc",
                "rp" => "rp",
                "e" => "e",
                "sni" => "sni",
                other => return Err(OverridesError::Unknown(other.chars().take(32).collect())),
            };
            if out.order.contains(&key) {
                return Err(OverridesError::Repeated(key.to_owned()));
            }
            out.order.push(key);
            match key {
                "ct" => out.connect_timeout_ms = Some(ranged(key, value, 100, 10_000)?),
                "rt" => out.read_timeout_ms = Some(ranged(key, value, 100, MAX_TOTAL_MS)?),
                "tt" => out.total_time_ms = Some(ranged(key, value, 100, MAX_TOTAL_MS)?),
                "rc" => out.retry_count = Some(ranged(key, value, 0, 5)?),
                "rp" => out.retry_policy = Some(policy(value)?),
                "e" => out.edge = Some(non_empty(key, value)?),
                _ => out.sni = Some(non_empty(key, value)?),
            }
        }
        Ok(out)
    }

    /// Does Twilio retry this URL when it answers 5xx (as ingress does with 503)?
    pub fn retries_5xx(&self) -> bool {
        self.retry_count.unwrap_or(DEFAULT_RETRY_COUNT) > 0
            && self
                .retry_policy
                .as_ref()
                .is_some_and(|p| p.contains(&RetryOn::Http5xx) || p.contains(&RetryOn::All))
    }

    /// Does Twilio retry a 4xx answer? Ours (403 forged, 400 malformed, 413, 415) are final.
    pub fn retries_4xx(&self) -> bool {
        self.retry_policy
            .as_ref()
            .is_some_and(|p| p.contains(&RetryOn::Http4xx) || p.contains(&RetryOn::All))
    }

    /// Is there nothing to append?
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

impl fmt::Display for ConnectionOverrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, key) in self.order.iter().enumerate() {
            if i > 0 {
                f.write_str("&")?;
            }
            let value = match *key {
                "ct" => self.connect_timeout_ms.map(|v| v.to_string()),
                "rt" => self.read_timeout_ms.map(|v| v.to_string()),
                "tt" => self.total_time_ms.map(|v| v.to_string()),
                "rc" => self.retry_count.map(|v| v.to_string()),
                "rp" => self
                    .retry_policy
                    .as_ref()
                    .map(|p| p.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(",")),
                "e" => self.edge.clone(),
                _ => self.sni.clone(),
            };
            write!(f, "{key}={}", value.unwrap_or_default())?;
        }
        Ok(())
    }
}

fn ranged(key: &'static str, value: &str, min: u32, max: u32) -> Result<u32, OverridesError> {
    let out_of_range = || OverridesError::OutOfRange {
        key,
        value: value.chars().take(16).collect(),
        min,
        max,
    };
    // Only plain digits: Twilio documents whole milliseconds and counts.
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(out_of_range());
    }
    let n: u32 = value.parse().map_err(|_| out_of_range())?;
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(out_of_range())
    }
}

fn policy(value: &str) -> Result<Vec<RetryOn>, OverridesError> {
    let mut out = Vec::new();
    for part in value.split(',') {
        let r = RetryOn::parse(part)
            .ok_or_else(|| OverridesError::BadPolicy(value.chars().take(32).collect()))?;
        if !out.contains(&r) {
            out.push(r);
        }
    }
    Ok(out)
}

fn non_empty(key: &'static str, value: &str) -> Result<String, OverridesError> {
    if value.is_empty() {
        Err(OverridesError::Empty(key))
    } else {
        Ok(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recommended_overrides_retry_a_503_and_round_trip() {
        let text = "ct=3000&rt=5000&tt=15000&rc=3&rp=ct,rt,5xx";
        let o = ConnectionOverrides::parse(text).unwrap();
        assert!(o.retries_5xx());
        assert!(!o.retries_4xx());
        assert_eq!(o.to_string(), text);
        assert_eq!(ConnectionOverrides::parse(&format!("#{text}")).unwrap(), o);
    }

    #[test]
    fn without_5xx_in_the_policy_or_with_no_retries_a_503_is_lost() {
        for text in ["", "rc=3", "rc=3&rp=ct,rt", "rc=0&rp=5xx", "rp=ct"] {
            let o = ConnectionOverrides::parse(text).unwrap();
            assert!(!o.retries_5xx(), "{text}");
        }
        // rc defaults to 1, so rp alone is enough for one retry; `all` covers 5xx (and 4xx).
        assert!(ConnectionOverrides::parse("rp=5xx").unwrap().retries_5xx());
        let all = ConnectionOverrides::parse("rc=2&rp=all").unwrap();
        assert!(all.retries_5xx() && all.retries_4xx());
    }

    #[test]
    fn values_outside_twilios_limits_are_refused() {
        let bad = [
            ("ct=99", "ct"),
            ("ct=10001", "ct"),
            ("rt=15001", "rt"),
            ("tt=0", "tt"),
            ("rc=6", "rc"),
            ("rc=-1", "rc"),
            ("rc=1.5", "rc"),
        ];
        for (text, key) in bad {
            match ConnectionOverrides::parse(text) {
                Err(OverridesError::OutOfRange { key: k, .. }) => assert_eq!(k, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(matches!(
            ConnectionOverrides::parse("rp=5xx,404"),
            Err(OverridesError::BadPolicy(_))
        ));
        assert!(matches!(
            ConnectionOverrides::parse("retries=3"),
            Err(OverridesError::Unknown(_))
        ));
        assert!(matches!(
            ConnectionOverrides::parse("rc=1&rc=2"),
            Err(OverridesError::Repeated(_))
        ));
        assert!(matches!(
            ConnectionOverrides::parse("rc"),
            Err(OverridesError::NoValue(_))
        ));
        assert!(matches!(
            ConnectionOverrides::parse("e="),
            Err(OverridesError::Empty("e"))
        ));
    }

    #[test]
    fn edge_and_sni_pass_through() {
        let o = ConnectionOverrides::parse("rc=1&rp=5xx&e=dublin&sni=y").unwrap();
        assert_eq!(o.edge.as_deref(), Some("dublin"));
        assert_eq!(o.to_string(), "rc=1&rp=5xx&e=dublin&sni=y");
    }
}
