//! The producers rely on the librdkafka fix carried in `vendor/` (vendor/README.md): without it,
//! an idempotent producer busy-polls while a partition waits for its acks. These checks fail when
//! an upgrade, a lock-file change or a fresh unpack drops the fix.

use std::path::Path;

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[test]
fn the_build_takes_rdkafka_sys_from_vendor() {
    let manifest = read("Cargo.toml");
    assert!(
        manifest.contains("[patch.crates-io]")
            && manifest.contains(r#"rdkafka-sys = { path = "vendor/rdkafka-sys" }"#),
        "Cargo.toml must point [patch.crates-io] rdkafka-sys at vendor/rdkafka-sys"
    );
    let lock = read("Cargo.lock");
    let entry = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"rdkafka-sys\""))
        .expect("rdkafka-sys in Cargo.lock");
    assert!(
        !entry.contains("source ="),
        "Cargo.lock takes rdkafka-sys from a registry, so the patch is unused:{entry}"
    );
    let vendored = read("vendor/rdkafka-sys/Cargo.toml");
    let version = entry
        .lines()
        .find_map(|l| l.strip_prefix("version = "))
        .expect("a version");
    assert!(
        vendored.contains(&format!("\nversion = {version}\n")),
        "Cargo.lock's rdkafka-sys {version} is not the vendored crate"
    );
}

#[test]
fn the_vendored_librdkafka_carries_the_wakeup_patch() {
    let patch = read("vendor/librdkafka-idempotent-wakeup.patch");
    let source = read("vendor/rdkafka-sys/librdkafka/src/rdkafka_broker.c");
    let added: Vec<&str> = patch
        .lines()
        .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
        .map(|l| &l[1..])
        .collect();
    assert!(added.len() >= 10, "the patch adds lines: {}", added.len());
    let mut rest = source.as_str();
    for line in added {
        // In order: each added line after the previous one.
        let at = rest
            .find(line)
            .unwrap_or_else(|| panic!("rdkafka_broker.c lacks the patch's line {line:?}"));
        rest = &rest[at + line.len()..];
    }
}
