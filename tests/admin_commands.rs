//! `smsflow migrate` and `smsflow topics` are idempotent, refuse edited migrations, and
//! report drift.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use smsflow::kafka::topology::{self, Topology};
use smsflow::store::migrate;

fn smsflow(env: &TestEnv, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .args(args)
        .envs(env.child_env())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("smsflow runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_and_topics_run_twice_change_nothing() {
    // TestEnv::new already ran both once through the library; the binary must agree.
    let env = TestEnv::new().await;
    for _ in 0..2 {
        let (ok, out) = smsflow(&env, &["migrate"]);
        assert!(ok, "{out}");
        assert!(out.contains("0 applied"), "{out}");
        let (ok, out) = smsflow(&env, &["topics", "--check", "--allow-lower-replication"]);
        assert!(ok, "{out}");
        assert!(!out.contains("created"), "{out}");
        assert!(!out.contains("DRIFT"), "{out}");
    }
    let cql = env.cql().await;
    let files = migrate::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations")).unwrap();
    assert_eq!(
        count_rows(&cql, "schema_migrations").await,
        files.len() as i64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_migration_stops_migrate() {
    let env = TestEnv::new().await;
    let dir = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, dir.path().join(f.file_name().unwrap())).unwrap();
    }
    let first = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    let mut text = std::fs::read_to_string(&first).unwrap();
    text.push_str("\n-- an innocent-looking edit\n");
    std::fs::write(&first, text).unwrap();
    let err = migrate::run(&env.settings.cql, dir.path())
        .await
        .expect_err("edited migration refused");
    assert!(matches!(err, migrate::MigrateError::Edited { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_reports_partition_and_config_drift() {
    let env = TestEnv::new().await;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("topology/topics.toml");
    let mut changed: Topology = Topology::load(&path).unwrap();
    let spec = changed.topics.get_mut("sms.reviews.v1").unwrap();
    spec.partitions = Some(9);
    spec.config.insert("retention.ms".into(), "86400000".into());
    let report = topology::apply(&env.settings.kafka, &changed, topology::Lowering::Allow)
        .await
        .unwrap();
    let reviews = env.topic("sms.reviews.v1");
    let drift: Vec<_> = report
        .drift
        .iter()
        .filter(|d| d.topic == reviews)
        .map(|d| d.what.clone())
        .collect();
    assert!(
        drift.contains(&"partitions".to_string()),
        "{:?}",
        report.drift
    );
    assert!(
        drift.contains(&"config retention.ms".to_string()),
        "{:?}",
        report.drift
    );
    let (ok, _) = smsflow(&env, &["topics", "--check", "--allow-lower-replication"]);
    assert!(ok, "the checked-in file still matches");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_reports_min_insync_replicas_drift() {
    use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;

    let env = TestEnv::new().await;
    let reviews = env.topic("sms.reviews.v1");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &env.settings.kafka.brokers)
        .create()
        .unwrap();
    let alter =
        AlterConfig::new(ResourceSpecifier::Topic(&reviews)).set("min.insync.replicas", "3");
    for r in admin
        .alter_configs([&alter], &AdminOptions::new())
        .await
        .unwrap()
    {
        r.unwrap();
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("topology/topics.toml");
    let topo = Topology::load(&path).unwrap();
    // The broker applies a config change asynchronously: ask until it shows.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let drift = loop {
        let report = topology::apply(&env.settings.kafka, &topo, topology::Lowering::Allow)
            .await
            .unwrap();
        let found = report
            .drift
            .into_iter()
            .find(|d| d.topic == reviews && d.what == "config min.insync.replicas");
        match found {
            Some(d) => break d,
            None if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await
            }
            None => panic!("no min.insync.replicas drift reported for {reviews}"),
        }
    };
    assert_eq!(drift.actual, "3");
    // 2 of 3 replicas, or fewer where the local cluster has fewer brokers.
    assert!(drift.expected == "2" || drift.expected == "1", "{drift}");
    // Each broker learns the change on its own, and the CLI may ask one that has not yet.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (ok, out) = smsflow(&env, &["topics", "--check", "--allow-lower-replication"]);
        if !ok && out.contains("min.insync.replicas") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "--check must fail and name min.insync.replicas (ok={ok}): {out}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_refuses_fewer_replicas_than_the_file_without_the_flag() {
    let env = TestEnv::new().await;
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_smsflow"))
            .arg("topics")
            .args(extra)
            .envs(env.child_env())
            .env("SMSFLOW_KAFKA__REPLICATION_FACTOR", "1")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("smsflow runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, out) = run(&[]);
    assert!(!ok, "{out}");
    assert!(out.contains("--allow-lower-replication"), "{out}");
    assert!(out.contains("kafka.replication_factor is 1"), "{out}");
    let (ok, out) = run(&["--allow-lower-replication"]);
    assert!(ok, "{out}");
    assert!(out.contains("lowered from 3 to 1"), "{out}");
}
