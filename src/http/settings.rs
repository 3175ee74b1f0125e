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
    /// A client must send its full request head within this time; a new connection must
    /// start its first request within it (silent sockets and bare HTTP/2 prefaces are closed).
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed (HTTP/1 keep-alive and
    /// HTTP/2 alike). Keep it above the idle timeout of a load balancer in front.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A request must be answered within this time, or it gets 408.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Largest accepted request body, in bytes.
    pub body_limit_bytes: usize,
    /// Most requests handled at once, over all connections; a request that waits longer than
    /// `request_timeout` for its turn is answered 503 with `Retry-After`.
    pub max_concurrent_requests: usize,
    /// Most open connections; at the cap, new ones wait in the kernel backlog.
    pub max_connections: usize,
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
            idle_timeout: Duration::from_secs(75),
            request_timeout: Duration::from_secs(10),
            body_limit_bytes: 64 * 1024,
            max_concurrent_requests: 4096,
            max_connections: 16_384,
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
        )?;
        ensure(
            self.max_connections > 0,
            "http.max_connections",
            "must be positive",
        )?;
        ensure(
            !self.header_read_timeout.is_zero(),
            "http.header_read_timeout",
            "must be above 0",
        )?;
        ensure(
            !self.idle_timeout.is_zero(),
            "http.idle_timeout",
            "must be above 0",
        )
    }
}
