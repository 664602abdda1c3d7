//! docs/openapi.json against a running node: every request below gets a status the document
//! lists for its path and method, and a body that has the required properties and types of
//! the schema it names.

use std::time::Duration;

use node::http_client;
use serde_json::Value;

use crate::harness::{exclusive, Cluster};

fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Follows a `$ref` inside the document.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str().and_then(|r| r.strip_prefix("#/")) {
        Some(pointer) => doc.pointer(&format!("/{pointer}")).unwrap_or_else(|| panic!("dangling $ref {pointer}")),
        None => schema,
    }
}

fn type_matches(ty: &str, v: &Value) -> bool {
    match ty {
        "integer" => v.is_u64() || v.is_i64(),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        _ => false,
    }
}

/// What of `v` does not conform to `schema` (required, type, enum, const; one level of
/// properties and array items).
fn conform(doc: &Value, schema: &Value, v: &Value, at: &str) -> Vec<String> {
    let schema = resolve(doc, schema);
    let mut wrong = Vec::new();
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !types.is_empty() && !types.iter().any(|t| type_matches(t, v)) {
        wrong.push(format!("{at}: {v} is not {types:?}"));
    }
    if let Some(options) = schema["enum"].as_array() {
        if !options.contains(v) {
            wrong.push(format!("{at}: {v} is not one of {options:?}"));
        }
    }
    if !schema["const"].is_null() && schema["const"] != *v {
        wrong.push(format!("{at}: {v} is not {}", schema["const"]));
    }
    for key in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        if v.get(key).is_none() {
            wrong.push(format!("{at}: required `{key}` missing in {v}"));
        }
    }
    if let Some(props) = schema["properties"].as_object() {
        for (key, sub) in props {
            if let Some(value) = v.get(key) {
                wrong.extend(conform(doc, sub, value, &format!("{at}.{key}")));
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), v.as_array()) {
        for (i, item) in array.iter().enumerate() {
            wrong.extend(conform(doc, items, item, &format!("{at}[{i}]")));
        }
    }
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_what_the_server_answers() {
    let doc = spec();
    let paths: Vec<&String> = doc["paths"].as_object().map(|p| p.keys().collect()).unwrap_or_default();
    assert_eq!(paths, ["/healthz", "/healthz/live", "/healthz/ready", "/metrics", "/v1/sessions", "/v1/sessions/{id}"]);
    let _one = exclusive().await;
    let cluster = Cluster::start("openapi", 4, &[]);
    cluster.wait_healthy(&[0, 1, 2, 3]).await;
    let base = cluster.urls[1].clone();
    let example =
        doc["paths"]["/v1/sessions"]["post"]["requestBody"]["content"]["application/json"]["example"].to_string();
    let r =
        http_client::request("POST", &format!("{base}/v1/sessions"), Some(example.as_bytes()), Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    let id = serde_json::from_slice::<Value>(&r.body).ok().and_then(|v| v["session"].as_u64()).unwrap_or(0);
    cluster.must_decide(1, id, 20_000).await;
    let calls: [(&str, &str, String, Option<&str>, u16); 10] = [
        ("/v1/sessions", "post", "/v1/sessions".into(), Some(example.as_str()), 201),
        ("/v1/sessions", "post", "/v1/sessions".into(), Some(r#"{"query": "q", "candidates": ["a"], "x": 1}"#), 400),
        ("/v1/sessions/{id}", "get", format!("/v1/sessions/{id}?wait_ms=20000"), None, 200),
        ("/v1/sessions/{id}", "get", format!("/v1/sessions/{}", u64::MAX), None, 404),
        ("/v1/sessions/{id}", "get", format!("/v1/sessions/{id}?wait_ms=30001"), None, 400),
        ("/v1/sessions/{id}", "get", "/v1/sessions/x".into(), None, 400),
        ("/healthz", "get", "/healthz".into(), None, 200),
        ("/healthz/ready", "get", "/healthz/ready".into(), None, 200),
        ("/healthz/live", "get", "/healthz/live".into(), None, 200),
        ("/metrics", "get", "/metrics".into(), None, 200),
    ];
    for (path, method, url, body, expected) in calls {
        let r = http_client::request(
            &method.to_uppercase(),
            &format!("{base}{url}"),
            body.map(str::as_bytes),
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(r.status, expected, "{method} {url}: {}", String::from_utf8_lossy(&r.body));
        let response = &doc["paths"][path][method]["responses"][r.status.to_string()];
        assert!(response.is_object(), "{method} {path} answered {} which docs/openapi.json does not list", r.status);
        let Some(schema) = response["content"].get("application/json").map(|c| &c["schema"]) else { continue };
        let v: Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{url}: not JSON: {e}"));
        let wrong = conform(&doc, schema, &v, "body");
        assert!(wrong.is_empty(), "{method} {url} ({}): {}", r.status, wrong.join("\n"));
    }
}
