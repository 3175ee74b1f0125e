//! A short, slow run of the whole benchmark path against smsflow in-process on an isolated
//! slice of the local stack: it proves the generator, the read-back and the report work, and
//! asserts no speed.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use smsflow::app::Role;
use smsflow_loadtest::bench::{self, ReadBack};
use smsflow_loadtest::cost::Watched;
use smsflow_loadtest::e2e::Source;
use smsflow_loadtest::open_loop::Plan;
use smsflow_loadtest::senders::senders;
use smsflow_loadtest::webhook::Target;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_seconds_at_twenty_per_second_are_all_answered_projected_and_reported() {
    let env = TestEnv::new().await;
    let app = TestApp::spawn(env.settings.clone(), &[Role::Ingress, Role::Projector]).await;
    let opts = bench::Options {
        target: Target {
            base_url: app.base_url.clone(),
            public_url: PUBLIC_URL.into(),
            path: MESSAGES_PATH.into(),
            token: AUTH_TOKEN.into(),
            seed: 42,
            senders: Arc::new(senders(100, 42)),
        },
        plan: Plan {
            label: "smoke".into(),
            rate: 20.0,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            max_in_flight: 64,
        },
        read_back: Some(ReadBack {
            cql: env.settings.cql.clone(),
            source: Source::StageAt,
            deadline: Duration::from_secs(60),
        }),
        watch: vec![Watched {
            name: "smsflow (in-process)".into(),
            pid: std::process::id(),
        }],
    };

    let outcome = bench::run(&opts).await.expect("the run completes");

    assert_eq!(outcome.ack.warmup_requests, 20);
    assert_eq!(outcome.ack.total_requests, 220);
    assert_eq!(
        (outcome.ack.ok, outcome.ack.failed),
        (200, 0),
        "every measured webhook answered 2xx"
    );
    let e2e = outcome.end_to_end.as_ref().expect("read back");
    assert_eq!(
        (e2e.expected, e2e.projected, e2e.missing),
        (200, 200, 0),
        "every measured message is in message_status with all its stage times"
    );
    assert_eq!(e2e.total.count, 200);
    assert_eq!(e2e.appended_to_projected.count, 200);
    assert_eq!(outcome.cost.len(), 1);
    assert!(outcome.cost[0].peak_rss_mib > 0.0);

    let dir = tempfile::tempdir().unwrap();
    let files = bench::write(&outcome, dir.path()).expect("report written");
    for name in [
        "result.json",
        "report.md",
        "latency-distribution.png",
        "latency-over-time.png",
        "throughput-over-time.png",
    ] {
        let path = dir.path().join(name);
        assert!(files.contains(&path), "{name} reported as written");
        assert!(
            std::fs::metadata(&path).unwrap().len() > 0,
            "{name} is not empty"
        );
    }
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("send -> projected"), "{md}");
    assert!(!md.contains("chart not drawn"), "{md}");
    app.stop().await;
}
