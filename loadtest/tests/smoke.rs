//! A short, slow run of the whole benchmark path against smsflow in-process on an isolated
//! slice of the local stack: it proves the generator, the read-back and the report work, and
//! asserts no speed.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use smsflow::app::Role;
use smsflow_loadtest::bench::{self, MediaHost, ReadBack};
use smsflow_loadtest::cost::Watched;
use smsflow_loadtest::e2e::{Source, Until};
use smsflow_loadtest::media::{self, Assets};
use smsflow_loadtest::mix::{Kind, Mix};
use smsflow_loadtest::open_loop::Plan;
use smsflow_loadtest::payload::Traffic;
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
            traffic: Traffic::sms(42, Arc::new(senders(100, 42))),
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
            until: Until::Projected,
        }),
        watch: vec![Watched {
            name: "smsflow (in-process)".into(),
            pid: std::process::id(),
        }],
        media: None,
        memory_every: Some(Duration::from_millis(100)),
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
    assert!(outcome.media.is_none(), "text only: no media host");
    let memory = outcome.memory.as_ref().expect("memory sampled");
    assert!(memory.samples.len() > 50, "{}", memory.samples.len());
    assert_eq!(memory.per_process.len(), 1);
    assert!(memory.per_process[0].peak_in_flight >= 1);

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
    assert!(md.contains("memory against requests in flight"), "{md}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_run_serves_its_media_on_loopback_and_every_message_is_done() {
    let env = TestEnv::new().await;
    let store = tempfile::tempdir().unwrap();
    let mut settings = env.settings.clone();
    // As bench.sh configures the pipeline: the generator's media host is on loopback, which
    // the media stage refuses unless allowed.
    settings.media.allowed_hosts = vec!["127.0.0.1".into()];
    settings.media.allow_addresses = vec!["127.0.0.1".parse().unwrap()];
    settings.media.store_url = format!("file://{}", store.path().display());
    settings.stages.instance_id = Some(format!("smoke-{}", env.id));
    let app = TestApp::spawn(
        settings,
        &[
            Role::Ingress,
            Role::Media,
            Role::Transcribe,
            Role::Enrich,
            Role::Projector,
        ],
    )
    .await;
    let mix: Mix = "sms=60,mms=35,voice=5".parse().unwrap();
    let voice = std::path::Path::new(media::DEFAULT_VOICE_PCM);
    let opts = bench::Options {
        target: Target {
            base_url: app.base_url.clone(),
            public_url: PUBLIC_URL.into(),
            path: MESSAGES_PATH.into(),
            token: AUTH_TOKEN.into(),
            traffic: Traffic {
                mix,
                ..Traffic::sms(43, Arc::new(senders(50, 43)))
            },
        },
        plan: Plan {
            label: "smoke-mix".into(),
            rate: 5.0,
            duration: Duration::from_secs(10),
            // Fresh topics can be slow to take their first records on a loaded box.
            warmup: Duration::from_secs(1),
            max_in_flight: 64,
        },
        read_back: Some(ReadBack {
            cql: env.settings.cql.clone(),
            source: Source::StageAt,
            deadline: Duration::from_secs(120),
            until: Until::Done,
        }),
        watch: Vec::new(),
        media: Some(MediaHost {
            addr: "127.0.0.1:0".parse().unwrap(),
            assets: Assets::load(8 * 1024, Some(voice))
                .expect("pocketsphinx-testdata is installed (make deps)"),
        }),
        memory_every: None,
    };

    let outcome = bench::run(&opts).await.expect("the run completes");

    assert_eq!((outcome.ack.ok, outcome.ack.failed), (50, 0));
    let e2e = outcome.end_to_end.as_ref().expect("read back");
    assert_eq!(
        (e2e.expected, e2e.projected, e2e.done),
        (50, 50, 50),
        "{e2e:?}"
    );
    let kinds: Vec<(Kind, u64, u64)> = e2e
        .by_kind
        .iter()
        .map(|k| (k.kind, k.expected, k.done))
        .collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    assert!(
        kinds.iter().all(|(_, sent, done)| sent == done),
        "{kinds:?}"
    );
    let measured_media: u64 = (5..55).map(|i| mix.media(43, i).len() as u64).sum();
    let served = outcome.media.as_ref().expect("media host counts");
    assert!(served.expected >= measured_media, "{served:?}");
    assert!(
        served.fetches >= served.expected && served.not_found == 0,
        "every attachment fetched from the loopback host: {served:?}"
    );
    let voice_notes = kinds.iter().find(|k| k.0 == Kind::Voice).map_or(0, |k| k.1);
    assert!(voice_notes >= 1, "seed 43 sends voice notes: {kinds:?}");
    assert!(served.voice >= voice_notes, "{served:?}");
    let md = bench::tables(&outcome);
    assert!(md.contains("media host:"), "{md}");
    assert!(md.contains("| mms |"), "{md}");
    app.stop().await;
}
