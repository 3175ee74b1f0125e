//! The operator listener (`http.ops_addr`): `/readyz`, `/metrics` and `/v1/admin/...` are
//! served there and only there; the public listener (`http.addr`) answers them 404 in the
//! API's error shape, and serves Twilio's webhooks and the user API, which the operator
//! listener does not. `/healthz` is on both. Which listener serves which path is read from the
//! served OpenAPI document, so the document is checked against the listeners too. On shutdown
//! both listeners close and the process exits cleanly.

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::Value;
use smsflow::app::Role;

/// `method url` with `token`, as (status, content type, body).
async fn call(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    token: Option<&str>,
) -> (u16, String, String) {
    let mut req = http.request(method.clone(), url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if method == Method::POST {
        req = req.json(&serde_json::json!({}));
    }
    let r = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = r.status().as_u16();
    let kind = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, kind, r.text().await.unwrap())
}

/// A 404 of the router itself: no route for this path on this listener, in the error shape.
fn is_no_route(status: u16, kind: &str, body: &str) -> bool {
    let code = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned));
    status == 404 && kind == "application/json" && code.as_deref() == Some("no_route")
}

/// A concrete request path for a documented template.
fn concrete(template: &str) -> String {
    template
        .replace("{id}", "0123456789abcdef0123456789abcdef")
        .replace("{sid}", "SM0123456789abcdef0123456789abcdef")
        .replace("{phone}", "%2B15105550999")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_routes_are_served_on_the_operator_listener_only() {
    let env = TestEnv::new().await;
    let app = TestApp::spawn(env.settings.clone(), &[Role::Ingress, Role::Api]).await;
    assert_ne!(app.base_url, app.ops_url);
    let http = reqwest::Client::new();
    let (public, ops) = (app.base_url.as_str(), app.ops_url.as_str());
    let (user, admin) = (jwt("ops-user", false), jwt("ops-admin", true));

    // The named ones, with what each must answer.
    for path in [
        "/readyz",
        "/metrics",
        "/v1/admin/stats",
        "/v1/admin/stats/cache",
    ] {
        let (s, kind, body) = call(&http, Method::GET, &format!("{public}{path}"), None).await;
        assert!(
            is_no_route(s, &kind, &body),
            "public {path}: {s} {kind} {body}"
        );
    }
    let (s, kind, body) = call(
        &http,
        Method::POST,
        &format!("{public}/v1/admin/stats/reset"),
        Some(&admin),
    )
    .await;
    assert!(is_no_route(s, &kind, &body), "public reset: {s} {body}");

    let (s, _, body) = call(&http, Method::GET, &format!("{ops}/readyz"), None).await;
    assert!(s == 200 || s == 503, "ops /readyz: {s} {body}");
    let ready: Value = serde_json::from_str(&body).unwrap();
    for dep in ["kafka", "cql", "redis"] {
        assert!(ready[dep].is_string(), "readiness names {dep}: {ready}");
    }
    let (s, kind, body) = call(&http, Method::GET, &format!("{ops}/metrics"), None).await;
    assert_eq!(s, 200, "ops /metrics: {body}");
    assert!(kind.starts_with("text/plain"), "{kind}");
    assert!(body.contains("# TYPE smsflow_"), "{body:.300}");
    let (s, _, body) = call(&http, Method::GET, &format!("{ops}/v1/admin/stats"), None).await;
    assert_eq!(s, 401, "ops admin without a token: {body}");
    let (s, _, body) = call(
        &http,
        Method::GET,
        &format!("{ops}/v1/admin/stats"),
        Some(&admin),
    )
    .await;
    assert_eq!(s, 200, "ops admin with the admin role: {body}");
    for base in [public, ops] {
        let (s, _, body) = call(&http, Method::GET, &format!("{base}/healthz"), None).await;
        assert_eq!((s, body.as_str()), (200, "ok\n"), "{base}/healthz");
    }
    // Twilio's webhooks and the user API are not on the operator listener.
    let (s, kind, body) = call(&http, Method::POST, &format!("{ops}{MESSAGES_PATH}"), None).await;
    assert!(is_no_route(s, &kind, &body), "ops webhook: {s} {body}");
    let (s, kind, body) = call(&http, Method::GET, &format!("{ops}/v1/items"), Some(&user)).await;
    assert!(is_no_route(s, &kind, &body), "ops /v1/items: {s} {body}");
    let r = post_signed(&http, public, &sms_params(1)).await;
    assert!(
        r.status() == 200 || r.status() == 503,
        "the webhook is on the public listener: {}",
        r.status()
    );

    // Every documented operation, on the listener its `servers` name, and refused by the other.
    let doc: Value = http
        .get(format!("{public}/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut checked = (0, 0);
    for (template, item) in doc["paths"].as_object().unwrap() {
        let urls = path_servers(item);
        let on_public = urls.is_empty() || urls.contains(&"/");
        let on_ops = urls.contains(&"http://{host}:{port}");
        assert!(on_public || on_ops, "{template}: servers {urls:?}");
        let path = concrete(template);
        for method in ["get", "post", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            let method: Method = method.to_uppercase().parse().unwrap();
            let token = if template.starts_with("/v1/admin/") {
                Some(admin.as_str())
            } else {
                Some(user.as_str())
            };
            for (base, serves) in [(public, on_public), (ops, on_ops)] {
                let (s, kind, body) =
                    call(&http, method.clone(), &format!("{base}{path}"), token).await;
                let label = format!("{method} {base}{path} (documented servers {urls:?})");
                if serves {
                    assert!(!is_no_route(s, &kind, &body), "{label}: {s} {body}");
                    checked.0 += 1;
                } else {
                    assert!(is_no_route(s, &kind, &body), "{label}: {s} {body}");
                    checked.1 += 1;
                }
            }
        }
    }
    // Served: eight user operations and the document (public), seven operator operations
    // (operator), /healthz (both). Refused: the sixteen that are on one listener only.
    assert!(checked.0 >= 18 && checked.1 >= 16, "{checked:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_listeners_close_on_shutdown_and_the_process_exits_cleanly() {
    let env = TestEnv::new().await;
    let app = TestApp::spawn(env.settings.clone(), &[Role::Ingress]).await;
    let http = reqwest::Client::new();
    let addrs: Vec<String> = [&app.base_url, &app.ops_url]
        .iter()
        .map(|u| u.trim_start_matches("http://").to_owned())
        .collect();
    // A keep-alive connection open on each listener: the drain must close it, not wait on it.
    for base in [&app.base_url, &app.ops_url] {
        let r = http.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    app.shutdown.cancel();
    // `TestApp`'s task panics if the application ends with an error.
    tokio::time::timeout(Duration::from_secs(30), app.handle)
        .await
        .expect("both listeners drain within http.shutdown_grace")
        .expect("the application exits without an error");
    for addr in addrs {
        assert!(
            tokio::net::TcpStream::connect(&addr).await.is_err(),
            "{addr} still accepts connections after shutdown"
        );
    }
}
