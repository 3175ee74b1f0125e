use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use super::*;

/// Routes the router code mounts that this document leaves out on purpose: Twilio's
/// webhooks are a contract with Twilio (form posts signed by it), not part of this API.
const UNDOCUMENTED: &[&str] = &["/webhooks/twilio/messages", "/webhooks/twilio/status"];

fn doc() -> Value {
    document()
}

/// `(METHOD, path)` of every `.route(...)` call in the crate's non-test code.
fn mounted_routes() -> BTreeSet<(String, String)> {
    let test_module =
        regex::Regex::new(r"#\[cfg\(test\)\]\s*(pub(\(crate\))?\s+)?mod \w+ \{").unwrap();
    let method = regex::Regex::new(r"(?:^|[^A-Za-z0-9_])(get|post|put|delete|patch)\s*\(").unwrap();
    let mut files = Vec::new();
    collect_rs(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut routes = BTreeSet::new();
    for file in files {
        // A test module kept in its own file (`mod tests;`) is test code as a whole.
        if file.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code = match test_module.find(&text) {
            Some(m) => &text[..m.start()],
            None => &text[..],
        };
        for (at, _) in code.match_indices(".route(") {
            let args = balanced(&code[at + ".route".len()..]);
            let path = args
                .split('"')
                .nth(1)
                .unwrap_or_else(|| panic!("{}: a .route( without a literal path", file.display()));
            let methods: Vec<_> = method
                .captures_iter(args)
                .map(|c| c[1].to_uppercase())
                .collect();
            assert!(
                !methods.is_empty(),
                "{}: no method for {path}",
                file.display()
            );
            for m in methods {
                routes.insert((m, path.to_string()));
            }
        }
    }
    routes
}

fn collect_rs(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text from an opening parenthesis to its match.
fn balanced(s: &str) -> &str {
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &s[..=i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced route call: {s:.80}")
}

/// The operations of a path item: its fields but `servers` (and the other non-methods).
fn methods(item: &Value) -> impl Iterator<Item = (&String, &Value)> {
    const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];
    item.as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| METHODS.contains(&k.as_str()))
}

fn documented_routes(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, _) in methods(item) {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

#[test]
fn the_document_is_openapi_3_and_lists_exactly_the_mounted_routes() {
    let doc = doc();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    let mounted: BTreeSet<_> = mounted_routes()
        .into_iter()
        .filter(|(_, p)| !UNDOCUMENTED.contains(&p.as_str()))
        .collect();
    // The scan must see the routes of every router module, or it proves nothing.
    for expected in [
        ("GET", "/v1/items"),
        ("POST", "/v1/items/{id}/review"),
        ("DELETE", "/v1/phones/{phone}"),
        ("POST", "/v1/admin/stats/reset"),
        ("GET", "/metrics"),
        ("GET", "/v1/openapi.json"),
    ] {
        assert!(
            mounted.contains(&(expected.0.to_string(), expected.1.to_string())),
            "the route scan missed {expected:?}: {mounted:?}"
        );
    }
    let documented = documented_routes(&doc);
    let undocumented: Vec<_> = mounted.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&mounted).collect();
    assert!(
        undocumented.is_empty(),
        "mounted but not documented: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "documented but not mounted: {unrouted:?}"
    );
}

#[test]
fn protected_routes_name_the_bearer_scheme_and_their_errors() {
    let doc = doc();
    let scheme = &doc["components"]["securitySchemes"][BEARER];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    assert_eq!(scheme["bearerFormat"], "JWT");
    let error_ref = "#/components/schemas/ErrorBody";
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in methods(item) {
            let responses = op["responses"].as_object().unwrap();
            for (status, r) in responses {
                let error = status.starts_with('4') || status.starts_with('5');
                if error && path.starts_with("/v1/") {
                    assert_eq!(
                        r["content"]["application/json"]["schema"]["$ref"], error_ref,
                        "{method} {path} {status}"
                    );
                }
            }
            if !path.starts_with("/v1/") || path == "/v1/openapi.json" {
                assert!(op.get("security").is_none(), "{method} {path} is public");
                continue;
            }
            checked += 1;
            assert_eq!(
                op["security"][0][BEARER],
                serde_json::json!([]),
                "{method} {path}"
            );
            assert!(responses.contains_key("401"), "{method} {path} has no 401");
            if path.starts_with("/v1/admin/") {
                assert!(responses.contains_key("403"), "{method} {path} has no 403");
            }
        }
    }
    assert!(checked >= 13, "only {checked} protected operations");
}

/// Every operation of the document, as `(METHOD path, operation)`.
fn operations(doc: &Value) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in methods(item) {
            out.push((format!("{} {path}", method.to_uppercase()), op));
        }
    }
    out
}

#[test]
fn operation_ids_are_unique_and_say_what_the_operation_does() {
    let doc = doc();
    let mut ids = BTreeSet::new();
    for (op_name, op) in operations(&doc) {
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{op_name} has no operationId"));
        assert!(ids.insert(id.to_owned()), "{id} is not unique");
    }
    let named = |key: &str| {
        let (method, path) = key.split_once(' ').unwrap();
        doc["paths"][path][method.to_lowercase()]["operationId"].clone()
    };
    for (key, id) in [
        ("GET /v1/items", "listItems"),
        ("GET /v1/items/{id}", "getItem"),
        ("POST /v1/items/{id}/review", "reviewItem"),
        ("GET /v1/messages/{sid}", "getMessage"),
        ("GET /v1/phones", "listPhones"),
        ("POST /v1/phones", "linkPhone"),
        ("POST /v1/phones/{phone}/verify", "verifyPhone"),
        ("DELETE /v1/phones/{phone}", "unlinkPhone"),
    ] {
        assert_eq!(named(key), id, "{key}");
    }
}

#[test]
fn links_lead_from_the_lists_to_the_operations_taking_their_ids() {
    let doc = doc();
    let by_id: std::collections::BTreeMap<&str, &Value> = operations(&doc)
        .into_iter()
        .map(|(_, op)| (op["operationId"].as_str().unwrap(), op))
        .collect();
    let mut followed = BTreeSet::new();
    for (op_name, op) in operations(&doc) {
        for (status, response) in op["responses"].as_object().unwrap() {
            let Some(links) = response["links"].as_object() else {
                continue;
            };
            for (name, link) in links {
                let keys: Vec<&String> = link.as_object().unwrap().keys().collect();
                for key in &keys {
                    assert!(
                        ["operationId", "parameters", "description"].contains(&key.as_str()),
                        "{op_name} {status} link {name}: field {key} is not one of the \
                         specification's (camelCase) Link fields"
                    );
                }
                let target = link["operationId"].as_str().unwrap();
                let target_op = by_id
                    .get(target)
                    .unwrap_or_else(|| panic!("{op_name} links to unknown {target}"));
                let takes: BTreeSet<&str> = target_op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| p["name"].as_str().unwrap())
                    .collect();
                for (param, expr) in link["parameters"].as_object().unwrap() {
                    assert!(
                        takes.contains(param.as_str()),
                        "{op_name} -> {target}: {target} takes no {param}"
                    );
                    assert!(expr.as_str().unwrap().starts_with("$response.body#/"));
                }
                followed.insert((op["operationId"].as_str().unwrap().to_owned(), target));
            }
        }
    }
    for (from, to) in [
        ("listPhones", "verifyPhone"),
        ("listPhones", "unlinkPhone"),
        ("listItems", "getItem"),
        ("listItems", "reviewItem"),
        ("listItems", "getMessage"),
    ] {
        assert!(
            followed.contains(&(from.to_owned(), to)),
            "no link {from} -> {to}: {followed:?}"
        );
    }
}

#[test]
fn every_operation_lists_the_answers_of_the_shared_layers() {
    let doc = doc();
    for (op_name, op) in operations(&doc) {
        let responses = op["responses"].as_object().unwrap();
        let has = |s: &str| responses.contains_key(s);
        assert!(has("408"), "{op_name}: no 408");
        assert!(has("503"), "{op_name}: no 503 (busy)");
        if op.get("requestBody").is_some() {
            for s in ["400", "413", "415"] {
                assert!(has(s), "{op_name} takes a body but has no {s}");
            }
        }
        if op["parameters"].as_array().is_some_and(|p| !p.is_empty()) {
            assert!(has("400"), "{op_name} takes parameters but has no 400");
        }
    }
}

#[test]
fn schemas_refuse_what_the_server_refuses() {
    let doc = doc();
    let schemas = &doc["components"]["schemas"];
    for body in ["LinkBody", "VerifyBody", "ReviewRequest"] {
        assert_eq!(
            schemas[body]["additionalProperties"], false,
            "{body}: the handler refuses unknown fields"
        );
    }
    assert_eq!(schemas["E164"]["pattern"], crate::api::params::E164_PATTERN);
    assert_eq!(schemas["E164"]["format"], "e164");
    assert_eq!(schemas["PageToken"]["format"], "page-token");
    assert_eq!(
        schemas["PageToken"]["maxLength"],
        crate::api::params::PAGE_TOKEN_MAX
    );
    assert_eq!(
        schemas["VerificationCode"]["pattern"],
        crate::api::params::CODE_PATTERN
    );
    assert!(schemas["TimeZone"]["enum"]
        .as_array()
        .unwrap()
        .contains(&Value::from("Europe/Berlin")));
    let limit = doc["paths"]["/v1/items"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(limit["schema"]["minimum"], 1);
    assert_eq!(limit["schema"]["maximum"], 200);
    for path in ["/v1/phones/{phone}", "/v1/phones/{phone}/verify"] {
        let item = doc["paths"][path].as_object().unwrap();
        for op in item.values() {
            assert_eq!(
                op["parameters"][0]["schema"]["$ref"], "#/components/schemas/E164",
                "{path}"
            );
        }
    }
}

#[test]
fn operator_paths_name_the_operator_listener_and_the_rest_the_public_one() {
    let doc = doc();
    assert_eq!(doc["servers"][0]["url"], "/");
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let urls: Vec<&str> = item["servers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| s["url"].as_str().unwrap())
            .collect();
        let want: &[&str] = if on_ops_listener(path) {
            ops.insert(path.as_str());
            &["http://{host}:{port}"]
        } else if path == "/healthz" {
            &["/", "http://{host}:{port}"]
        } else {
            &[]
        };
        assert_eq!(urls, want, "{path}");
    }
    for path in [
        "/readyz",
        "/metrics",
        "/v1/admin/stats",
        "/v1/admin/stats/reset",
    ] {
        assert!(ops.contains(path), "{path} is not on the operator listener");
    }
    let vars = &doc["paths"]["/metrics"]["servers"][0]["variables"];
    let default = crate::http::HttpSettings::default().ops_addr;
    assert_eq!(vars["port"]["default"], default.port().to_string());
    assert_eq!(vars["host"]["default"], default.ip().to_string());
}

#[test]
#[ignore = "prints the document"]
fn print() {
    println!("{}", serde_json::to_string_pretty(&document()).unwrap());
}

#[test]
fn the_review_request_takes_approve_or_reject() {
    let doc = doc();
    let op = &doc["paths"]["/v1/items/{id}/review"]["post"];
    assert_eq!(
        op["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ReviewRequest"
    );
    let schemas = &doc["components"]["schemas"];
    let request = &schemas["ReviewRequest"];
    assert_eq!(request["required"], serde_json::json!(["decision"]));
    assert_eq!(
        request["properties"]["decision"]["$ref"],
        "#/components/schemas/Decision"
    );
    assert_eq!(
        schemas["Decision"]["enum"],
        serde_json::json!(["approve", "reject"])
    );
    // The serde names are the ones the handler accepts.
    assert_eq!(serde_json::to_value(Decision::Approve).unwrap(), "approve");
    let params: Vec<_> = doc["paths"]["/v1/items"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["in"].as_str().unwrap()))
        .collect();
    assert_eq!(
        params,
        [
            ("status", "query"),
            ("limit", "query"),
            ("page_token", "query")
        ]
    );
}
