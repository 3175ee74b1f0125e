//! Signed Twilio webhooks sent open loop at a fixed rate: the generator for smsflow and for a
//! peer that listens on the same path.

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

    /// The most requests in flight since the last call, and start the next interval at
    /// the count in flight now.
    pub fn take_peak(&self) -> u64 {
        let now = self.in_flight.load(Ordering::Relaxed);
        // A send that lands between the load and the swap has already raised the peak it
        // is swapped out of, so it is counted in this interval.
        self.peak_since_taken.swap(now, Ordering::Relaxed).max(now)
    }
}

/// Send the plan's webhooks; success is a 2xx answer.
pub async fn send(
    target: &Target,
    plan: &Plan,
    progress: &Arc<Progress>,
) -> anyhow::Result<RunResult> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(plan.max_in_flight)
        .timeout(Duration::from_secs(15))
        .build()?;
    let url = format!("{}{}", target.base_url.trim_end_matches('/'), target.path);
    let signed_url = format!("{}{}", target.public_url.trim_end_matches('/'), target.path);
    open_loop::drive(plan, |i| {
        let hook = target.traffic.webhook(i, &signed_url, &target.token);
        let request = client
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", hook.signature)
            .body(hook.body);
        let (progress, media) = (progress.clone(), hook.media as u64);
        async move {
            progress.started();
            let ok = request.send().await.is_ok_and(|r| r.status().is_success());
            progress.finished();
            if ok {
                progress.media_acked.fetch_add(media, Ordering::Relaxed);
            }
            ok
        }
    })
    .await
}
