//! Signed Twilio webhooks sent open loop at a fixed rate: the generator for smsflow and for a
//! peer that listens on the same path.

use std::sync::Arc;
use std::time::Duration;

use crate::open_loop::{self, Plan};
use crate::payload;
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
    pub seed: u64,
    pub senders: Arc<Vec<String>>,
}

/// Send the plan's webhooks; success is a 2xx answer.
pub async fn send(target: &Target, plan: &Plan) -> anyhow::Result<RunResult> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(plan.max_in_flight)
        .timeout(Duration::from_secs(15))
        .build()?;
    let url = format!("{}{}", target.base_url.trim_end_matches('/'), target.path);
    let signed_url = format!("{}{}", target.public_url.trim_end_matches('/'), target.path);
    open_loop::drive(plan, |i| {
        let hook = payload::webhook(target.seed, i, &target.senders, &signed_url, &target.token);
        let request = client
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", hook.signature)
            .body(hook.body);
        async move { request.send().await.is_ok_and(|r| r.status().is_success()) }
    })
    .await
}
