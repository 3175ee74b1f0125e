//! Reads `[{"source": ..., "resource": {...}}]` (JSON) on stdin and deserializes each
//! resource into the operator's CRD type, refusing unknown fields (`serde_ignored`), wrong
//! types, missing required fields and values outside an enum. Exit status 1 on any failure.

use std::io::Read;

use serde::de::DeserializeOwned;

#[derive(serde::Deserialize)]
struct Item {
    source: String,
    resource: serde_json::Value,
}

fn strict<T: DeserializeOwned>(value: &serde_json::Value) -> Result<(), String> {
    // The derived types carry apiVersion and kind implicitly; the caller matched them already.
    let mut value = value.clone();
    if let Some(map) = value.as_object_mut() {
        map.remove("apiVersion");
        map.remove("kind");
    }
    let text = value.to_string();
    let mut de = serde_json::Deserializer::from_str(&text);
    let mut unknown = Vec::new();
    serde_ignored::deserialize::<_, _, T>(&mut de, |path| unknown.push(path.to_string()))
        .map_err(|e| e.to_string())?;
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "fields the CRD does not define: {}",
            unknown.join(", ")
        ))
    }
}

fn main() {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("crdtypes: cannot read stdin: {e}");
        std::process::exit(2);
    }
    let items: Vec<Item> = match serde_json::from_str(&input) {
        Ok(items) => items,
        Err(e) => {
            eprintln!("crdtypes: stdin is not a JSON array of {{source, resource}}: {e}");
            std::process::exit(2);
        }
    };
    let mut failed = 0;
    for item in &items {
        let r = &item.resource;
        let api = r["apiVersion"].as_str().unwrap_or_default();
        let kind = r["kind"].as_str().unwrap_or_default();
        let name = r["metadata"]["name"].as_str().unwrap_or_default();
        let (result, crd) = match (api, kind) {
            ("scylla.scylladb.com/v1", "ScyllaCluster") => (
                strict::<kcr_scylla_scylladb_com::v1::scyllaclusters::ScyllaCluster>(r),
                "kcr_scylla_scylladb_com 3.20260529.235507",
            ),
            ("opentelemetry.io/v1beta1", "OpenTelemetryCollector") => (
                strict::<
                    kcr_opentelemetry_io::v1beta1::opentelemetrycollectors::OpenTelemetryCollector,
                >(r),
                "kcr_opentelemetry_io 3.20260611.182648",
            ),
            _ => (Err(format!("no type for {api} {kind}")), "-"),
        };
        match result {
            Ok(()) => println!(
                "ok   {}: {kind}/{name} ({api}, CRD types {crd}, strict)",
                item.source
            ),
            Err(e) => {
                println!("FAIL {}: {kind}/{name}: {e}", item.source);
                failed += 1;
            }
        }
    }
    std::process::exit(if failed == 0 { 0 } else { 1 });
}
