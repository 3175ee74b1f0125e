//! What an operator sees, as a test reads it: `/metrics` counters, `/readyz`, which listener
//! the OpenAPI document names for a path, and the traces Jaeger holds.

use serde_json::Value;

/// A metric of Prometheus text, summed over its label sets.
pub fn metric_value(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A metric of the app's `/metrics` (operator listener at `ops_url`), summed over its labels.
pub async fn metric(http: &reqwest::Client, ops_url: &str, name: &str) -> f64 {
    let text = http
        .get(format!("{ops_url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metric_value(&text, name)
}

/// `/readyz` as (status, body); `None` when it does not answer in JSON.
pub async fn readyz(http: &reqwest::Client, ops_url: &str) -> Option<(u16, Value)> {
    let r = http.get(format!("{ops_url}/readyz")).send().await.ok()?;
    let status = r.status().as_u16();
    Some((status, r.json().await.ok()?))
}

/// The `servers` URLs of a path item of the document: none for the public listener alone
/// (the document's own), `http://{host}:{port}` for the operator listener.
pub fn path_servers(item: &Value) -> Vec<&str> {
    item["servers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["url"].as_str())
        .collect()
}

/// The local stack's Jaeger query API (deploy/local/stack.sh).
pub const JAEGER: &str = "http://127.0.0.1:16686";

/// smsflow's traces in Jaeger (last hour, at most 5) with a span tagged `key = value`; `None`
/// while Jaeger does not answer.
pub async fn jaeger_traces(client: &reqwest::Client, key: &str, value: &str) -> Option<Vec<Value>> {
    let tags = serde_json::json!({ key: value }).to_string();
    let body: Value = client
        .get(format!("{JAEGER}/api/traces"))
        .query(&[
            ("service", "smsflow"),
            ("tags", tags.as_str()),
            ("lookback", "1h"),
            ("limit", "5"),
        ])
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    body["data"].as_array().cloned()
}

/// The value of a Jaeger span's tag `key`.
pub fn span_tag<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["tags"]
        .as_array()?
        .iter()
        .find(|t| t["key"] == key)
        .map(|t| &t["value"])
}
