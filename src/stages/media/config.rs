//! Media stage settings (`[media]`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::validation::{ensure, InvalidSetting};

/// How attachments are fetched, checked and stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaSettings {
    /// Hosts media may be fetched from, first hop and redirects alike. `*.example.com`
    /// matches subdomains.
    pub allowed_hosts: Vec<String>,
    /// Hosts that receive Twilio basic auth. Credentials never cross to another host.
    pub credential_hosts: Vec<String>,
    /// Addresses normally refused (loopback, private, link-local, metadata) that are allowed
    /// anyway. Empty in production; tests allow 127.0.0.1 for their own media server.
    pub allow_addresses: Vec<std::net::IpAddr>,
    /// Largest attachment, enforced while streaming.
    pub max_bytes: u64,
    /// Content types accepted (a trailing `/*` matches a family).
    pub allowed_content_types: Vec<String>,
    /// TCP connect timeout.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest wait for the next chunk of the body.
    #[serde(with = "humantime_serde")]
    pub read_timeout: Duration,
    /// Longest time for one attachment, redirects included.
    #[serde(with = "humantime_serde")]
    pub total_timeout: Duration,
    /// Most redirects followed.
    pub max_redirects: u8,
    /// Where media is stored: `file:///path` (default, a local folder) or `s3://bucket/prefix`.
    pub store_url: String,
}

impl Default for MediaSettings {
    fn default() -> Self {
        MediaSettings {
            allowed_hosts: vec![
                "api.twilio.com".into(),
                "media.twiliocdn.com".into(),
                "*.twiliocdn.com".into(),
                "s3-external-1.amazonaws.com".into(),
                "*.s3.amazonaws.com".into(),
            ],
            credential_hosts: vec!["api.twilio.com".into()],
            allow_addresses: Vec::new(),
            max_bytes: 5 * 1024 * 1024,
            allowed_content_types: vec![
                "audio/*".into(),
                "image/*".into(),
                "text/vcard".into(),
                "text/x-vcard".into(),
                "text/directory".into(),
                "application/pdf".into(),
            ],
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(60),
            max_redirects: 5,
            store_url: "file:///var/tmp/smsflow/media".into(),
        }
    }
}

impl MediaSettings {
    /// Check values; the error names the key.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        ensure(self.max_bytes > 0, "media.max_bytes", "must be positive")?;
        ensure(
            !self.allowed_hosts.is_empty(),
            "media.allowed_hosts",
            "must name at least one host",
        )?;
        ensure(
            url::Url::parse(&self.store_url).is_ok(),
            "media.store_url",
            "must be a URL such as file:///var/lib/smsflow/media or s3://bucket/media",
        )
    }

    /// Does `host` match the allowlist?
    pub fn host_allowed(&self, host: &str) -> bool {
        host_matches(&self.allowed_hosts, host)
    }

    /// May `host` receive Twilio credentials?
    pub fn gets_credentials(&self, host: &str) -> bool {
        host_matches(&self.credential_hosts, host)
    }

    /// Is a declared content type acceptable?
    pub fn content_type_allowed(&self, content_type: &str) -> bool {
        let ct = essence(content_type);
        self.allowed_content_types
            .iter()
            .any(|a| match a.strip_suffix("/*") {
                Some(family) => ct.split('/').next() == Some(family),
                None => a.eq_ignore_ascii_case(&ct),
            })
    }
}

/// `type/subtype` lower-cased, without parameters.
pub fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn host_matches(patterns: &[String], host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    patterns.iter().any(|p| {
        let p = p.to_ascii_lowercase();
        match p.strip_prefix("*.") {
            Some(suffix) => host.ends_with(&format!(".{suffix}")),
            None => host == p,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_exactly_or_by_subdomain_wildcard() {
        let s = MediaSettings::default();
        assert!(s.host_allowed("api.twilio.com"));
        assert!(s.host_allowed("s3.twiliocdn.com"));
        assert!(!s.host_allowed("twiliocdn.com.evil.net"));
        assert!(!s.host_allowed("eviltwilio.com"));
        assert!(s.gets_credentials("API.twilio.com"));
        assert!(!s.gets_credentials("media.twiliocdn.com"));
    }

    #[test]
    fn content_types_match_by_family_or_exactly() {
        let s = MediaSettings::default();
        assert!(s.content_type_allowed("audio/ogg; codecs=opus"));
        assert!(s.content_type_allowed("image/jpeg"));
        assert!(s.content_type_allowed("text/vcard"));
        assert!(!s.content_type_allowed("application/x-msdownload"));
        assert!(!s.content_type_allowed("text/html"));
    }
}
