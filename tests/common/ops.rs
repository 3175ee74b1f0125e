//! The operator listener as a test sees it: `/metrics` counters, `/readyz`, and which
//! listener the OpenAPI document names for a path.

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
