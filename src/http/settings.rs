//! `[http]`: the two listeners (public and operator), their limits and their drain.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::validation::{ensure, InvalidSetting};

/// The HTTP servers: the public listener (`addr`: Twilio's webhooks, the user API, `/healthz`)
/// and the operator listener (`ops_addr`: `/healthz`, `/readyz`, `/metrics`, `/v1/admin/...`).
/// Both share the limits below, each with budgets of its own.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Address of the public listener, the one Twilio and users reach.
    pub addr: SocketAddr,
    /// Address of the operator listener: readiness with its error details, Prometheus metrics
    /// and the admin routes. Loopback by default: expose it to probes and scrapers only.
    pub ops_addr: SocketAddr,
    /// Public base URL Twilio calls (scheme, host, optional port), used to check signatures.
    pub public_url: String,
    /// A new connection must send its first full request head within this time (silent
    /// sockets, bare HTTP/2 prefaces and trickled heads are closed). Later requests on a
    /// keep-alive connection are bounded by `idle_timeout`.
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
            ops_addr: SocketAddr::from(([127, 0, 0, 1], 8090)),
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
            !same_socket(self.addr, self.ops_addr),
            "http.ops_addr",
            "must differ from http.addr: the operator routes (/readyz, /metrics, /v1/admin) \
             have a listener of their own, which the public one must not share",
        )?;
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

/// Whether binding both addresses would collide: the same nonzero port on the same address, or
/// on any address when one is the wildcard (`0.0.0.0`, `::`). Port 0 picks a free port each.
fn same_socket(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(addr: &str, ops_addr: &str) -> HttpSettings {
        HttpSettings {
            addr: addr.parse().unwrap(),
            ops_addr: ops_addr.parse().unwrap(),
            ..HttpSettings::default()
        }
    }

    #[test]
    fn the_default_listeners_differ() {
        let s = HttpSettings::default();
        assert_ne!(s.addr, s.ops_addr);
        s.validate().unwrap();
    }

    #[test]
    fn an_operator_listener_on_the_public_socket_is_refused() {
        for (addr, ops) in [
            ("127.0.0.1:8080", "127.0.0.1:8080"),
            ("0.0.0.0:8080", "127.0.0.1:8080"),
            ("127.0.0.1:8080", "0.0.0.0:8080"),
            ("[::]:8080", "10.0.0.5:8080"),
        ] {
            let e = with(addr, ops).validate().unwrap_err();
            assert_eq!(e.key, "http.ops_addr", "{addr} and {ops}");
        }
    }

    #[test]
    fn distinct_ports_addresses_or_port_0_are_accepted() {
        for (addr, ops) in [
            ("0.0.0.0:8080", "0.0.0.0:8090"),
            ("10.0.0.5:8080", "127.0.0.1:8080"),
            ("127.0.0.1:0", "127.0.0.1:0"),
        ] {
            with(addr, ops).validate().unwrap();
        }
    }
}
