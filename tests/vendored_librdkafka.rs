//! Every Kafka client relies on the librdkafka fixes carried in `vendor/` (vendor/README.md):
//! without them, an idempotent producer busy-polls while a partition waits for its acks, and a
//! client whose brokers all restarted can stay disconnected. These checks fail when an upgrade,
//! a lock-file change or a fresh unpack drops a fix.

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

/// Every line a patch in `vendor/` adds is in the vendored file it names, in order.
fn assert_applied(patch_file: &str) {
    let patch = read(patch_file);
    let mut files = 0;
    for section in patch.split("\n+++ b/").skip(1) {
        let (name, body) = section.split_once('\n').expect("a file name line");
        let source = read(&format!("vendor/rdkafka-sys/{name}"));
        let added: Vec<&str> = body
            .lines()
            .take_while(|l| !l.starts_with("--- "))
            .filter(|l| l.starts_with('+'))
            .map(|l| &l[1..])
            .collect();
        assert!(!added.is_empty(), "{patch_file} adds nothing to {name}");
        let mut rest = source.as_str();
        for line in added {
            // In order: each added line after the previous one.
            let at = rest
                .find(line)
                .unwrap_or_else(|| panic!("{name} lacks {patch_file}'s line {line:?}"));
            rest = &rest[at + line.len()..];
        }
        files += 1;
    }
    assert!(files > 0, "{patch_file} names no file");
}

#[test]
fn the_vendored_librdkafka_carries_the_wakeup_patch() {
    assert_applied("vendor/librdkafka-idempotent-wakeup.patch");
}

#[test]
fn the_vendored_librdkafka_carries_the_rebootstrap_patch() {
    assert_applied("vendor/librdkafka-rebootstrap.patch");
}
