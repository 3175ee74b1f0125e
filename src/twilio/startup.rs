//! What ingress checks about its Twilio configuration when it starts: the public URL and
//! overrides at once, and (when a number or service is configured with credentials) that
//! Twilio still calls the URLs this process expects, read back in the background.

use std::time::Duration;

use secrecy::SecretString;

use super::{configure, public_url, Target, TwilioRest, WebhookPlan, WebhookSettings};

/// The settings the checks read.
pub struct Inputs<'a> {
    pub public_url: &'a str,
    pub webhooks: &'a WebhookSettings,
    pub status_callback_url: Option<&'a str>,
    pub produce_deadline: Duration,
    pub account_sid: Option<&'a str>,
    pub auth_token: Option<SecretString>,
}

/// Log every problem with the public URL and overrides; spawn the drift check if it can run.
pub fn check(inputs: Inputs<'_>) {
    let problems = public_url::problems(
        inputs.public_url,
        &inputs.webhooks.overrides,
        inputs.produce_deadline,
    );
    for p in &problems {
        tracing::warn!(problem = %p, "http.public_url cannot be the URL Twilio is configured with");
    }
    let Some(target) = Target::choose(None, None, inputs.webhooks) else {
        return;
    };
    if !inputs.webhooks.check_on_start {
        return;
    }
    let plan = match WebhookPlan::new(
        inputs.public_url,
        inputs.webhooks,
        inputs.status_callback_url,
    ) {
        Ok(plan) => plan,
        Err(e) => {
            tracing::warn!(error = %e, "cannot compare Twilio's webhook configuration");
            return;
        }
    };
    let client = match TwilioRest::new(inputs.account_sid, inputs.auth_token, inputs.webhooks) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read Twilio's webhook configuration at start-up");
            return;
        }
    };
    // One bounded background task: start-up never waits on Twilio.
    let budget = inputs.webhooks.request_timeout * 3;
    tokio::spawn(async move {
        match tokio::time::timeout(budget, configure(&client, &target, &plan, true)).await {
            Ok(Ok(report)) => {
                let drift: Vec<String> = report.drift().map(ToString::to_string).collect();
                if drift.is_empty() {
                    tracing::info!(resource = %report.resource, "Twilio calls the webhook URLs this ingress expects");
                } else {
                    tracing::warn!(resource = %report.resource, drift = %drift.join("; "), "Twilio's webhook URLs differ from this ingress's: run `smsflow twilio configure`");
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not read Twilio's webhook configuration")
            }
            Err(_) => {
                tracing::warn!(budget = ?budget, "reading Twilio's webhook configuration timed out")
            }
        }
    });
}
