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
    /// Attachments named by webhooks answered 2xx: what the media stage should fetch.
    pub media_acked: AtomicU64,
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
            progress.in_flight.fetch_add(1, Ordering::Relaxed);
            let ok = request.send().await.is_ok_and(|r| r.status().is_success());
            progress.in_flight.fetch_sub(1, Ordering::Relaxed);
            if ok {
                progress.media_acked.fetch_add(media, Ordering::Relaxed);
            }
            ok
        }
    })
    .await
}
