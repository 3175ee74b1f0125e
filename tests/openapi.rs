//! The OpenAPI document against the real stack: `GET /v1/openapi.json` answers without a
//! token with the generated document, and every real answer of the user API and the admin
//! routes (successes and errors) has a status the document lists for its route and a body its
//! schema accepts, strictly: a field the schema does not declare fails, so the document cannot
//! drift from the handlers unnoticed.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;
use smsflow::app::Role;
use smsflow::ingress::SenderPolicy;

/// Check `body` against the documented response of `method path` for `status`.
fn conforms(doc: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not documented");
    let response = &op["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{method} {path} answered {status}, which the document does not list: {body}"
    );
    match response["content"]["application/json"]["schema"].as_object() {
        Some(_) => {
            let schema = &response["content"]["application/json"]["schema"];
            if let Err(e) = validate(doc, schema, body, "$") {
                panic!("{method} {path} {status}: {e}\nbody: {body}");
            }
        }
        None => assert!(
            body.is_null(),
            "{method} {path} {status}: undocumented body {body}"
        ),
    }
}

/// A strict subset of JSON Schema, as much as utoipa emits for these types.
fn validate(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r
            .strip_prefix("#/components/schemas/")
            .ok_or_else(|| format!("{at}: unsupported $ref {r}"))?;
        let target = &doc["components"]["schemas"][name];
        if target.is_null() {
            return Err(format!("{at}: dangling $ref {r}"));
        }
        return validate(doc, target, v, at);
    }
    if let Some(options) = schema["oneOf"].as_array() {
        let matching = options
            .iter()
            .filter(|s| validate(doc, s, v, at).is_ok())
            .count();
        return if matching == 1 {
            Ok(())
        } else {
            Err(format!("{at}: {v} matches {matching} of oneOf {schema}"))
        };
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(v) {
            return Err(format!("{at}: {v} is not one of {allowed:?}"));
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !types.is_empty() {
        let ok = types.iter().any(|t| match *t {
            "null" => v.is_null(),
            "string" => v.is_string(),
            "boolean" => v.is_boolean(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "array" => v.is_array(),
            "object" => v.is_object(),
            _ => false,
        });
        if !ok {
            return Err(format!("{at}: {v} is not of type {types:?}"));
        }
    }
    if let Some(items) = v.as_array() {
        if let Some(min) = schema["minItems"].as_u64() {
            if (items.len() as u64) < min {
                return Err(format!("{at}: fewer than {min} items"));
            }
        }
        if let Some(max) = schema["maxItems"].as_u64() {
            if items.len() as u64 > max {
                return Err(format!("{at}: more than {max} items"));
            }
        }
        if schema["items"].is_object() {
            for (i, item) in items.iter().enumerate() {
                validate(doc, &schema["items"], item, &format!("{at}[{i}]"))?;
            }
        }
    }
    if let Some(fields) = v.as_object() {
        for r in schema["required"].as_array().into_iter().flatten() {
            let r = r.as_str().unwrap_or_default();
            if !fields.contains_key(r) {
                return Err(format!("{at}: required field {r} is missing"));
            }
        }
        let properties = schema["properties"].as_object();
        for (k, field) in fields {
            let here = format!("{at}.{k}");
            match (
                properties.and_then(|p| p.get(k)),
                &schema["additionalProperties"],
            ) {
                (Some(s), _) => validate(doc, s, field, &here)?,
                (None, extra) if extra.is_object() => validate(doc, extra, field, &here)?,
                // Strict: a declared object takes only its declared fields.
                (None, _) if properties.is_some() => {
                    return Err(format!("{here} is not in the schema"));
                }
                // `type: object` without properties: any object.
                (None, _) => {}
            }
        }
    }
    Ok(())
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_served_document_describes_every_real_answer() {
    let env = TestEnv::new().await;
    let mut settings = env.settings.clone();
    settings.ingress.sender_policy = SenderPolicy::Registered;
    let (phone, _) = smsflow::cli::phones::link(
        &patient(&settings),
        "+15105550178",
        "openapi-user",
        true,
        false,
    )
    .await
    .unwrap();
    let app = TestApp::spawn(
        settings.clone(),
        &[Role::Ingress, Role::Enrich, Role::Projector, Role::Api],
    )
    .await;
    let http = reqwest::Client::new();
    let base = app.base_url.clone();
    // The admin routes are on the operator listener (the document says so per path).
    let ops = app.ops_url.clone();
    let on = |path: &str| match path.starts_with("/v1/admin/") {
        true => ops.clone(),
        false => base.clone(),
    };
    let me = jwt("openapi-user", false);
    let admin = jwt("openapi-ops", true);
    use reqwest::Method as M;

    // The document: no token needed, JSON, OpenAPI 3.x, the generated one.
    let r = http
        .get(format!("{base}/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let doc: Value = r.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    let generated = smsflow::api::openapi::document();
    assert_eq!(doc, generated);
    for path in [
        "/v1/items",
        "/v1/items/{id}",
        "/v1/items/{id}/review",
        "/v1/messages/{sid}",
        "/v1/phones",
        "/v1/phones/{phone}",
        "/v1/phones/{phone}/verify",
        "/v1/admin/stats",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is missing");
    }

    // A message with items to read.
    wait_phone_verified(&env, &phone).await;
    let params = sms_with(
        1,
        &[
            ("From", &phone),
            ("Body", "call Dana Reyes at 510-555-0142 tomorrow 3pm #lead"),
        ],
    );
    let sid = as_map(&params)["MessageSid"].clone();
    assert_eq!(post_signed_retrying_503(&http, &base, &params).await, 200);
    let (s, page) = wait_for("pending items", Duration::from_secs(60), || {
        let (http, base, me) = (http.clone(), base.clone(), me.clone());
        async move {
            let (s, v) = call(&http, M::GET, format!("{base}/v1/items"), Some(&me), None).await;
            (s == 200 && v["items"].as_array().is_some_and(|i| i.len() >= 3)).then_some((s, v))
        }
    })
    .await;
    conforms(&doc, "get", "/v1/items", s, &page);
    let id = page["items"][0]["id"].as_str().unwrap().to_owned();

    let (s, v) = call(
        &http,
        M::GET,
        format!("{base}/v1/items?status=pending&limit=1"),
        Some(&me),
        None,
    )
    .await;
    assert!(v["next_page_token"].is_string(), "{v}");
    conforms(&doc, "get", "/v1/items", s, &v);
    let (s, v) = call(
        &http,
        M::GET,
        format!("{base}/v1/items/{id}"),
        Some(&me),
        None,
    )
    .await;
    assert_eq!(s, 200);
    conforms(&doc, "get", "/v1/items/{id}", s, &v);
    let (s, v) = wait_for("the message to be done", Duration::from_secs(60), || {
        let (http, base, me, sid) = (http.clone(), base.clone(), me.clone(), sid.clone());
        async move {
            let (s, v) = call(
                &http,
                M::GET,
                format!("{base}/v1/messages/{sid}"),
                Some(&me),
                None,
            )
            .await;
            (v["done"] == true).then_some((s, v))
        }
    })
    .await;
    conforms(&doc, "get", "/v1/messages/{sid}", s, &v);
    let (s, v) = call(
        &http,
        M::POST,
        format!("{base}/v1/items/{id}/review?wait=true"),
        Some(&me),
        Some(serde_json::json!({"decision": "approve"})),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    conforms(&doc, "post", "/v1/items/{id}/review", s, &v);
    let (s, v) = call(
        &http,
        M::GET,
        format!("{base}/v1/items/{id}"),
        Some(&me),
        None,
    )
    .await;
    assert_eq!(v["status"], "approved");
    conforms(&doc, "get", "/v1/items/{id}", s, &v);
    let (s, v) = call(&http, M::GET, format!("{base}/v1/phones"), Some(&me), None).await;
    assert_eq!(s, 200);
    conforms(&doc, "get", "/v1/phones", s, &v);

    // Errors, each in the documented shape.
    let errors = [
        (
            M::GET,
            "/v1/items",
            "/v1/items?status=maybe".to_string(),
            Some(me.clone()),
            None,
            400,
        ),
        (M::GET, "/v1/items", "/v1/items".into(), None, None, 401),
        (
            M::GET,
            "/v1/items/{id}",
            "/v1/items/no-such-item".into(),
            Some(me.clone()),
            None,
            404,
        ),
        (
            M::GET,
            "/v1/items/{id}",
            format!("/v1/items/{id}"),
            Some(jwt("someone-else", false)),
            None,
            404,
        ),
        (
            M::GET,
            "/v1/messages/{sid}",
            "/v1/messages/SMnone".into(),
            Some(me.clone()),
            None,
            404,
        ),
        (
            M::POST,
            "/v1/items/{id}/review",
            format!("/v1/items/{id}/review"),
            Some(me.clone()),
            Some(serde_json::json!({"decision": "maybe"})),
            400,
        ),
        (
            M::POST,
            "/v1/phones/{phone}/verify",
            "/v1/phones/%2B15105550999/verify".into(),
            Some(me.clone()),
            Some(serde_json::json!({"code": "123456"})),
            404,
        ),
        (
            M::GET,
            "/v1/admin/stats",
            "/v1/admin/stats".into(),
            None,
            None,
            401,
        ),
        (
            M::GET,
            "/v1/admin/stats",
            "/v1/admin/stats".into(),
            Some(me.clone()),
            None,
            403,
        ),
    ];
    // What schemathesis found (issue 18) and what the schemas now say: each refused in the
    // error shape with a status the document lists.
    let me_ = Some(me.clone());
    let review = format!("/v1/items/{id}/review");
    let verify = format!("/v1/phones/{}/verify", phone.replace('+', "%2B"));
    let refused = [
        (
            M::POST,
            "/v1/items/{id}/review",
            format!("{review}?wait=null"),
            me_.clone(),
            Some(serde_json::json!({"decision": "approve"})),
            400,
        ),
        (
            M::POST,
            "/v1/items/{id}/review",
            review.clone(),
            me_.clone(),
            Some(serde_json::json!({"decision": "approve", "note": "x"})),
            400,
        ),
        (
            M::GET,
            "/v1/items",
            "/v1/items?page_token=bm90LWEtdG9rZW4".into(),
            me_.clone(),
            None,
            400,
        ),
        (
            M::GET,
            "/v1/items",
            "/v1/items?limit=0".into(),
            me_.clone(),
            None,
            400,
        ),
        (
            M::GET,
            "/v1/items",
            "/v1/items?limit=201".into(),
            me_.clone(),
            None,
            400,
        ),
        (
            M::GET,
            "/v1/items",
            "/v1/items?limit=-1".into(),
            me_.clone(),
            None,
            400,
        ),
        (
            M::POST,
            "/v1/phones",
            "/v1/phones".into(),
            me_.clone(),
            Some(serde_json::json!({"phone": "+15105550179", "time_zone": ""})),
            400,
        ),
        (
            M::POST,
            "/v1/phones",
            "/v1/phones".into(),
            me_.clone(),
            Some(serde_json::json!({"phone": "+15105550179", "time_zone": "Mars/Olympus"})),
            400,
        ),
        (
            M::POST,
            "/v1/phones",
            "/v1/phones".into(),
            me_.clone(),
            Some(serde_json::json!({"phone": "+15105550179", "extra": 1})),
            400,
        ),
        (
            M::POST,
            "/v1/phones",
            "/v1/phones".into(),
            me_.clone(),
            Some(serde_json::json!({"phone": "5105550179"})),
            400,
        ),
        (
            M::POST,
            "/v1/phones",
            "/v1/phones".into(),
            me_.clone(),
            Some(serde_json::json!({"phone": "+10"})),
            400,
        ),
        (
            M::POST,
            "/v1/phones/{phone}/verify",
            verify.clone(),
            me_.clone(),
            Some(serde_json::json!({"code": "12"})),
            400,
        ),
        // Verified by an operator: no code is pending.
        (
            M::POST,
            "/v1/phones/{phone}/verify",
            verify.clone(),
            me_.clone(),
            Some(serde_json::json!({"code": "123456"})),
            410,
        ),
        (
            M::DELETE,
            "/v1/phones/{phone}",
            "/v1/phones/15105550179".into(),
            me_.clone(),
            None,
            400,
        ),
    ];
    for (method, template, path, token, body, want) in errors.into_iter().chain(refused) {
        let verb = method.as_str().to_ascii_lowercase();
        let (s, v) = call(
            &http,
            method,
            format!("{}{path}", on(&path)),
            token.as_deref(),
            body,
        )
        .await;
        assert_eq!(s, want, "{verb} {path}: {v}");
        conforms(&doc, &verb, template, s, &v);
    }

    // The framework's own refusals: a body that is not JSON, one over the limit, an unknown
    // path, a method a route does not take. JSON in the error shape, the first two documented.
    let raw = |method: M, path: &str| {
        http.request(method, format!("{base}{path}"))
            .bearer_auth(&me)
    };
    let answers = [
        (
            raw(M::POST, "/v1/phones")
                .header("content-type", "text/plain")
                .body(r#"{"phone":"+15105550179"}"#),
            Some(("post", "/v1/phones")),
            415,
            "unsupported_media_type",
        ),
        (
            raw(M::POST, "/v1/phones").json(&serde_json::json!({"phone": "x".repeat(100_000)})),
            Some(("post", "/v1/phones")),
            413,
            "payload_too_large",
        ),
        (raw(M::GET, "/v1/no-such-route"), None, 404, "no_route"),
        (raw(M::DELETE, "/v1/items"), None, 405, "method_not_allowed"),
    ];
    for (request, documented, want, code) in answers {
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        let allow = r.headers().get("allow").cloned();
        assert_eq!(r.headers()["content-type"], "application/json");
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (want, Some(code)),
            "{v}"
        );
        match documented {
            Some((verb, template)) => conforms(&doc, verb, template, status, &v),
            None => {
                let shape = serde_json::json!({"$ref": "#/components/schemas/ErrorBody"});
                if let Err(e) = validate(&doc, &shape, &v, "$") {
                    panic!("{status}: {e}: {v}");
                }
            }
        }
        if want == 405 {
            assert_eq!(allow.unwrap(), "GET,HEAD");
        }
    }

    // The admin routes with the admin role.
    for path in [
        "/v1/admin/stats",
        "/v1/admin/stats/cache",
        "/v1/admin/stats/database",
        "/v1/admin/stats/connections",
    ] {
        let (s, v) = call(&http, M::GET, format!("{ops}{path}"), Some(&admin), None).await;
        assert_eq!(s, 200, "{path}: {v}");
        conforms(&doc, "get", path, s, &v);
    }
    let (s, v) = call(
        &http,
        M::POST,
        format!("{ops}/v1/admin/stats/reset"),
        Some(&admin),
        None,
    )
    .await;
    conforms(&doc, "post", "/v1/admin/stats/reset", s, &v);

    // The checker itself refuses a field the schema does not declare.
    let mut extra = page.clone();
    extra["items"][0]["undeclared"] = Value::Bool(true);
    let schema = &doc["paths"]["/v1/items"]["get"]["responses"]["200"]["content"]
        ["application/json"]["schema"];
    assert!(validate(&doc, schema, &extra, "$").is_err());
    app.stop().await;
}
