//! Signed Twilio webhooks sent open loop at a fixed rate: the generator for smsflow and for a
//! peer that listens on the same path.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::open_loop::{self, Plan};
use crate::payload::Traffic;
use crate::report::RunResult;

/// Where and how to send.
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL the generator connects to.
    pub base_url: String,
    /// Public URL the signature covers (smsflow's `http.public_url`).
    pub public_url: String,
    pub path: String,
    pub token: String,
    pub traffic: Traffic,
}

/// Live counts of a run, read by the memory sampler while it runs and by the report after.
#[derive(Debug, Default)]
pub struct Progress {
    /// Requests sent and not yet answered.
    pub in_flight: AtomicU64,
    /// The most requests in flight since the sampler last took it: a request answered
    /// between two samples still counts, so a fast server is not read as idle.
    peak_since_taken: AtomicU64,
    /// Attachments named by webhooks answered 2xx: what the media stage should fetch.
    pub media_acked: AtomicU64,
    /// Measured requests that failed, by cause.
    failures: std::sync::Mutex<BTreeMap<String, u64>>,
}

impl Progress {
    /// A request was sent.
    pub fn started(&self) {
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak_since_taken.fetch_max(now, Ordering::Relaxed);
    }

    /// A request was answered (or failed).
    pub fn finished(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    fn failed(&self, cause: String) {
        if let Ok(mut f) = self.failures.lock() {
            *f.entry(cause).or_default() += 1;
        }
    }

    /// Measured requests that failed, by cause (`status 503`, `timeout`, `connect`, ...).
    pub fn failures(&self) -> BTreeMap<String, u64> {
        self.failures.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// The most requests in flight since the last call, and start the next interval at
    /// the count in flight now.
    pub fn take_peak(&self) -> u64 {
        let now = self.in_flight.load(Ordering::Relaxed);
        // A send that lands between the load and the swap has already raised the peak it
        // is swapped out of, so it is counted in this interval.
        self.peak_since_taken.swap(now, Ordering::Relaxed).max(now)
    }
}

/// How long a pooled connection may sit idle before the generator drops it. Below ingress's
/// `http.idle_timeout` (75 s), as a load balancer in front of it must be: otherwise a request
/// sent on a connection the server is closing that instant fails with "connection reset" or
/// "closed before message completed" (reqwest's default is 90 s). A latency spike makes the
/// pool reach for its oldest connections, which is when that happens.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Send the plan's webhooks; success is a 2xx answer.
pub async fn send(
    target: &Target,
    plan: &Plan,
    progress: &Arc<Progress>,
) -> anyhow::Result<RunResult> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(plan.max_in_flight)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .timeout(Duration::from_secs(15))
        .build()?;
    let url = format!("{}{}", target.base_url.trim_end_matches('/'), target.path);
    let signed_url = format!("{}{}", target.public_url.trim_end_matches('/'), target.path);
    let warmup = plan.warmup_requests();
    let mut result = open_loop::drive(plan, |i| {
        let hook = target.traffic.webhook(i, &signed_url, &target.token);
        let request = client
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", hook.signature)
            .body(hook.body);
        let (progress, media) = (progress.clone(), hook.media as u64);
        async move {
            progress.started();
            let outcome = request.send().await;
            progress.finished();
            let failure = match &outcome {
                Ok(r) if r.status().is_success() => None,
                Ok(r) => Some(format!("status {}", r.status().as_u16())),
                Err(e) => Some(transport_failure(e)),
            };
            let ok = failure.is_none();
            match failure {
                None => {
                    progress.media_acked.fetch_add(media, Ordering::Relaxed);
                }
                // The driver counts only measured requests as failed; so do the causes.
                Some(cause) if i >= warmup => progress.failed(cause),
                Some(_) => {}
            }
            ok
        }
    })
    .await?;
    result.failures = progress.failures();
    Ok(result)
}

/// What kind of transport failure `e` is, without its URL or body. An unclassified one is
/// named by its innermost cause (hyper's or the socket's: "connection closed before message
/// completed", "Connection reset by peer"), which is what tells a server's close from a reset.
fn transport_failure(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect".into()
    } else if e.is_body() || e.is_decode() {
        "response body".into()
    } else {
        // reqwest's own message names the URL; its sources (hyper, io) do not.
        match std::iter::successors(std::error::Error::source(e), |c| c.source()).last() {
            Some(cause) => format!("transport: {cause}"),
            None => "transport".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(base_url: String) -> Target {
        Target {
            public_url: base_url.clone(),
            base_url,
            path: "/webhooks/twilio/messages".into(),
            token: "t".into(),
            traffic: Traffic::sms(1, Arc::new(vec!["+14155550100".into()])),
        }
    }

    fn plan(warmup: Duration) -> Plan {
        Plan {
            label: "t".into(),
            rate: 20.0,
            duration: Duration::from_secs(1),
            warmup,
            max_in_flight: 4,
        }
    }

    /// Send the 20 messages of `plan(ZERO)` to `addr` and check that every one failed.
    async fn send_all_failing(addr: std::net::SocketAddr) -> RunResult {
        let progress = Arc::new(Progress::default());
        let r = send(
            &target(format!("http://{addr}")),
            &plan(Duration::ZERO),
            &progress,
        )
        .await
        .unwrap();
        assert_eq!(r.failed, 20, "{:?}", r.failures);
        r
    }

    #[test]
    fn pooled_connections_are_dropped_before_ingress_closes_them() {
        let server = smsflow::http::HttpSettings::default().idle_timeout;
        assert!(
            POOL_IDLE_TIMEOUT < server,
            "{POOL_IDLE_TIMEOUT:?} >= {server:?}"
        );
    }

    #[tokio::test]
    async fn failures_are_counted_by_status_and_warm_up_failures_are_left_out() {
        let app = axum::Router::new()
            .fallback(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "busy") });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let progress = Arc::new(Progress::default());
        let p = plan(Duration::from_millis(500));
        let r = send(&target(format!("http://{addr}")), &p, &progress)
            .await
            .unwrap();
        assert_eq!(r.ok, 0);
        assert_eq!(r.failed, 20);
        assert_eq!(
            r.failures.into_iter().collect::<Vec<_>>(),
            vec![("status 503".to_owned(), 20)]
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_failure() {
        // Bound, then closed: nothing listens on the port.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let r = send_all_failing(addr).await;
        assert_eq!(r.failures.get("connect"), Some(&20), "{:?}", r.failures);
    }

    #[tokio::test]
    async fn a_connection_closed_before_the_answer_is_named_by_its_cause_without_the_url() {
        // Reads each request head, then closes the socket without answering.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buf).await;
                });
            }
        });
        let r = send_all_failing(addr).await;
        let (cause, n) = r.failures.iter().next().unwrap();
        assert_eq!(*n, 20, "{:?}", r.failures);
        assert!(cause.starts_with("transport: "), "{cause}");
        assert!(!cause.contains("127.0.0.1"), "{cause}");
    }
}
