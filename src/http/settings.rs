//! `[http]`: the listener, its limits and its drain.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::validation::{ensure, InvalidSetting};

/// The HTTP server that hosts the webhooks, the user API and the operator routes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Address to bind.
    pub addr: SocketAddr,
    /// Public base URL Twilio calls (scheme, host, optional port), used to check signatures.
    pub public_url: String,
    /// A client must send its full request head within this time.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A request must be answered within this time, or it gets 408.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Largest accepted request body, in bytes.
    pub body_limit_bytes: usize,
    /// Most requests handled at once; more wait in the accept backlog.
    pub max_concurrent_requests: usize,
    /// How long a graceful shutdown waits for in-flight requests.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: "http://127.0.0.1:8080".into(),
            header_read_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            body_limit_bytes: 64 * 1024,
            max_concurrent_requests: 4096,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl HttpSettings {
    /// Refuse values that cannot work.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        ensure(
            crate::validation::is_http_url(&self.public_url),
            "http.public_url",
            "must be an absolute http(s) URL such as https://sms.example.com",
        )?;
        ensure(
            self.body_limit_bytes >= 1024,
            "http.body_limit_bytes",
            "must be at least 1024",
        )?;
        ensure(
            self.max_concurrent_requests > 0,
            "http.max_concurrent_requests",
            "must be positive",
        )
    }
}
