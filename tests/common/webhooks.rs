//! Twilio-shaped webhooks: parameters, form encoding, Twilio's signature, and posting them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use smsflow::ingress::signature;

use super::{AUTH_TOKEN, MESSAGES_PATH, PUBLIC_URL};

/// Twilio-shaped parameters for one inbound SMS.
pub fn sms_params(n: usize) -> Vec<(String, String)> {
    let sender = format!("+1510555{:04}", n % 17);
    vec![
        ("ToCountry".into(), "US".into()),
        ("ToState".into(), "CA".into()),
        ("SmsMessageSid".into(), format!("SM{n:032x}")),
        ("NumMedia".into(), "0".into()),
        ("ToCity".into(), "SAN FRANCISCO".into()),
        ("FromZip".into(), "94607".into()),
        ("SmsSid".into(), format!("SM{n:032x}")),
        ("FromState".into(), "CA".into()),
        ("SmsStatus".into(), "received".into()),
        ("FromCity".into(), "OAKLAND".into()),
        (
            "Body".into(),
            format!(
                "met Dana Reyes #{n} at the Oakland expo, call 510-555-0142 & follow up Tue 3pm"
            ),
        ),
        ("FromCountry".into(), "US".into()),
        ("To".into(), "+14155550100".into()),
        ("ToZip".into(), "94105".into()),
        ("NumSegments".into(), "1".into()),
        ("MessageSid".into(), format!("SM{n:032x}")),
        (
            "AccountSid".into(),
            "AC0123456789abcdef0123456789abcdef".into(),
        ),
        ("From".into(), sender),
        ("ApiVersion".into(), "2010-04-01".into()),
    ]
}

/// `sms_params(n)` with the values of the named fields replaced.
pub fn sms_with(n: usize, changes: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut params = sms_params(n);
    for (k, v) in params.iter_mut() {
        if let Some((_, new)) = changes.iter().find(|(name, _)| name == k) {
            *v = (*new).to_owned();
        }
    }
    params
}

/// A MessageSid for message `n` that no earlier run of the test used (the dedupe key lives
/// in the shared Redis for a day).
pub fn unique_sid(n: usize) -> String {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let salt = nanos ^ CALLS.fetch_add(1, Ordering::Relaxed).rotate_left(40);
    format!("SM{:032x}", n as u128 + salt as u128 * 1_000_000)
}

/// Parameters as a map (one value per key).
pub fn as_map(params: &[(String, String)]) -> BTreeMap<String, String> {
    params.iter().cloned().collect()
}

/// Form-encode parameters.
pub fn encode_form(params: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

/// Twilio's signature for `params` posted to `PUBLIC_URL + path`.
pub fn sign(path: &str, params: &[(String, String)]) -> String {
    signature::compute(AUTH_TOKEN, &format!("{PUBLIC_URL}{path}"), params)
}

/// POST a form with the given signature header (None = no header).
pub async fn post_form(
    client: &reqwest::Client,
    base_url: &str,
    path: &str,
    params: &[(String, String)],
    signature: Option<&str>,
) -> reqwest::Response {
    let mut req = client
        .post(format!("{base_url}{path}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode_form(params));
    if let Some(sig) = signature {
        req = req.header("x-twilio-signature", sig);
    }
    req.send().await.expect("request reaches the server")
}

/// Send a correctly signed webhook.
pub async fn post_signed(
    client: &reqwest::Client,
    base_url: &str,
    params: &[(String, String)],
) -> reqwest::Response {
    let sig = sign(MESSAGES_PATH, params);
    post_form(client, base_url, MESSAGES_PATH, params, Some(&sig)).await
}

/// `post_signed`, retried like Twilio while the answer is 503 (a loaded two-core box can miss
/// the produce deadline on a fresh topic); returns the last status.
pub async fn post_signed_retrying_503(
    client: &reqwest::Client,
    base_url: &str,
    params: &[(String, String)],
) -> u16 {
    let mut status = 503;
    for _ in 0..5 {
        status = post_signed(client, base_url, params)
            .await
            .status()
            .as_u16();
        if status != 503 {
            break;
        }
    }
    status
}
