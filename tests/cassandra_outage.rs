//! Issue 13 §2: Cassandra frozen (`SIGSTOP` for 30 s, then `SIGCONT`) while 600 signed
//! webhooks arrive at 15/s. Ingress does not need CQL, so every webhook is answered `200` (a
//! `503` would be sent again, as Twilio's retry would); the projector stalls while CQL does not
//! answer and resumes after, and exactly the 600 messages are projected: one `message_status`
//! row and one timeline row (`messages_by_user`) per MessageSid, no other. While Cassandra is
//! frozen `/readyz` (operator listener) answers 503, names `cql` alone, and says why; after,
//! it answers 200 again.
//!
//! Which Cassandra: the shared stack's (its pid from `deploy/local/stack.sh`'s pid file), or a
//! private one started with `SMSSTACK_STATE=<dir> SMSSTACK_CASSANDRA_PORT=<port> stack.sh up
//! cassandra` when the same two variables are set for the test. The file name holds `outage`,
//! so `make test` runs it alone, after the rest: nobody else's test sees the freeze. If the test
//! panics, Cassandra is resumed all the same (`Frozen` sends `SIGCONT` when dropped).
//!
//! What happens while CQL hangs (see docs/guarantees.md):
//! - The driver (`scylla`) gives each statement `cql.request_timeout` (5 s) and then fails it
//!   with a client-side timeout; it neither retries that (a timeout is not an error its retry
//!   policy sees) nor sends speculative copies (none is configured). A frozen node's sockets
//!   stay open (the kernel keeps accepting into their buffers), so the statements sent there
//!   are still executed once the node resumes, possibly after a later copy of the same write.
//! - The projector retries a failed write with backoff (100 ms doubling to 5 s) until it is
//!   written, never skips it, and keeps at most `projector.max_in_flight` events in flight and
//!   `projector.batch_max` read; reading pauses at that bound. A partition's checkpoint only
//!   passes offsets whose writes are done, and a failed checkpoint save is tried again.
//! - Every write carries `USING TIMESTAMP` from its event's position, so the late execution of
//!   a timed-out statement, and the retry that overlaps it, write the same cells with the same
//!   timestamp: one row, not two. Counting rows exactly is what shows it.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use smsflow::app::Role;

/// Webhooks per run: 40 s of load at `PER_SECOND`, around a 30 s freeze.
const WEBHOOKS: usize = 600;
const PER_SECOND: u64 = 15;
/// The freeze starts once this many webhooks are answered, and lasts `FREEZE`.
const FREEZE_AFTER: usize = 60;
const FREEZE: Duration = Duration::from_secs(30);

/// The Cassandra to freeze: its pid and its CQL address.
struct Target {
    pid: u32,
    cql: String,
}

/// The pid stack.sh recorded for Cassandra in `$SMSSTACK_STATE` (default the shared stack's),
/// checked to be a running CassandraDaemon, and its CQL port (`$SMSSTACK_CASSANDRA_PORT`).
fn target() -> Target {
    let state = std::env::var("SMSSTACK_STATE").unwrap_or_else(|_| {
        format!(
            "{}/.local/state/smsflow-stack",
            std::env::var("HOME").unwrap()
        )
    });
    let port = std::env::var("SMSSTACK_CASSANDRA_PORT").unwrap_or_else(|_| "9042".into());
    let pidfile = format!("{state}/run/cassandra.pid");
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap_or_else(|e| panic!("{pidfile}: {e} (is Cassandra up? stack.sh up cassandra)"))
        .trim()
        .parse()
        .unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("CassandraDaemon"),
        "pid {pid} from {pidfile} is not a running Cassandra"
    );
    Target {
        pid,
        cql: format!("127.0.0.1:{port}"),
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// A stopped process, resumed when dropped (also when the test panics).
struct Frozen(u32);

impl Frozen {
    fn start(pid: u32) -> Frozen {
        signal(pid, "-STOP");
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

/// Send `WEBHOOKS` signed webhooks at `PER_SECOND`; the statuses by webhook number.
async fn send_load(
    base_url: String,
    answered: Arc<AtomicUsize>,
) -> Vec<(usize, Result<u16, String>)> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .pool_idle_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / PER_SECOND));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..WEBHOOKS {
        tick.tick().await;
        let (client, base_url, answered) = (client.clone(), base_url.clone(), answered.clone());
        tasks.spawn(async move {
            let status = post_signed(&client, &base_url, &sms_params(i))
                .await
                .status();
            answered.fetch_add(1, Ordering::SeqCst);
            (i, Ok(status.as_u16()))
        });
    }
    let mut out = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        out.push(joined.unwrap_or_else(|e| (usize::MAX, Err(e.to_string()))));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cassandra_frozen_for_30_s_under_load_stalls_the_projector_which_then_projects_every_message_once(
) {
    let cassandra = target();
    let env = TestEnv::on_cql(std::slice::from_ref(&cassandra.cql)).await;
    let app = TestApp::spawn(env.settings.clone(), &[Role::Ingress, Role::Projector]).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let ready = readyz(&http, &app.ops_url).await;
    assert_eq!(ready.as_ref().map(|r| r.0), Some(200), "{ready:?}");

    let answered = Arc::new(AtomicUsize::new(0));
    let load = tokio::spawn(send_load(app.base_url.clone(), answered.clone()));
    wait_for("the first webhooks", Duration::from_secs(30), || {
        let n = answered.load(Ordering::SeqCst);
        std::future::ready((n >= FREEZE_AFTER).then_some(()))
    })
    .await;
    let projected = |http: reqwest::Client, url: String| async move {
        metric(&http, &url, "smsflow_projector_events_total").await
    };
    let started = Instant::now();
    let frozen = Frozen::start(cassandra.pid);
    println!(
        "SIGSTOP cassandra (pid {}) after {FREEZE_AFTER} webhooks",
        cassandra.pid
    );
    // Readiness says why within the freeze: CQL, and only CQL, with the check's error.
    let (status, body) = wait_for(
        "/readyz to report CQL while Cassandra is frozen",
        FREEZE - Duration::from_secs(5),
        || {
            let (http, url) = (http.clone(), app.ops_url.clone());
            async move { readyz(&http, &url).await.filter(|(s, _)| *s == 503) }
        },
    )
    .await;
    println!(
        "readyz after {:.1} s of the freeze: {status} {body}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(body["failed"], serde_json::json!(["cql"]), "{body}");
    assert_eq!(
        (&body["kafka"], &body["redis"]),
        (&"ok".into(), &"ok".into())
    );
    let why = body["cql"].as_str().unwrap_or_default();
    assert!(
        why.starts_with("failed: ") && why.contains(&cassandra.cql),
        "the detail names the failing check and the node: {why}"
    );
    // The projector stalls: from now to the end of the freeze it projects nothing, while
    // webhooks keep arriving (the writes it has in flight cannot finish either).
    let (stalled_at, answered_then) = (
        projected(http.clone(), app.ops_url.clone()).await,
        answered.load(Ordering::SeqCst),
    );
    if let Some(left) = FREEZE.checked_sub(started.elapsed()) {
        tokio::time::sleep(left).await;
    }
    let (still, answered_now) = (
        projected(http.clone(), app.ops_url.clone()).await,
        answered.load(Ordering::SeqCst),
    );
    println!(
        "during the freeze: events projected {stalled_at} -> {still}, webhooks answered {answered_then} -> {answered_now}"
    );
    assert_eq!(
        still, stalled_at,
        "the projector wrote while CQL was frozen"
    );
    assert!(
        answered_now > answered_then + 100,
        "the load went on during the freeze"
    );
    drop(frozen);
    println!(
        "SIGCONT cassandra after {:.1} s; {} webhooks answered",
        started.elapsed().as_secs_f64(),
        answered.load(Ordering::SeqCst)
    );

    wait_for(
        "/readyz to answer 200 after SIGCONT",
        Duration::from_secs(60),
        || {
            let (http, url) = (http.clone(), app.ops_url.clone());
            async move { readyz(&http, &url).await.filter(|(s, _)| *s == 200) }
        },
    )
    .await;
    println!(
        "readyz 200 again {:.1} s after the freeze began",
        started.elapsed().as_secs_f64()
    );

    let answers = load.await.unwrap();
    let ok: BTreeSet<usize> = answers
        .iter()
        .filter(|(_, r)| r == &Ok(200))
        .map(|(i, _)| *i)
        .collect();
    let unavailable: Vec<usize> = answers
        .iter()
        .filter(|(_, r)| r == &Ok(503))
        .map(|(i, _)| *i)
        .collect();
    let other: Vec<_> = answers
        .iter()
        .filter(|(_, r)| r != &Ok(200) && r != &Ok(503))
        .collect();
    println!(
        "answers: {} x 200, {} x 503, {} other",
        ok.len(),
        unavailable.len(),
        other.len()
    );
    assert!(other.is_empty(), "answered neither 200 nor 503: {other:?}");
    // Kafka was never frozen; a 503 (a loaded machine missing the produce deadline) is sent
    // again as Twilio would, so that every message is expected exactly once.
    for i in &unavailable {
        let status = post_signed_retrying_503(&http, &app.base_url, &sms_params(*i)).await;
        assert_eq!(status, 200, "webhook {i} sent again");
    }

    // Exactly the 600 messages, each once, in both tables.
    let cql = env.cql().await;
    wait_for(
        &format!("{WEBHOOKS} messages projected"),
        Duration::from_secs(120),
        || {
            let cql = cql.clone();
            async move {
                let status = count_rows(&cql, "message_status").await as usize;
                let timeline = count_rows(&cql, "messages_by_user").await as usize;
                (status >= WEBHOOKS && timeline >= WEBHOOKS).then_some(())
            }
        },
    )
    .await;
    let group = env
        .settings
        .projector
        .group_of(smsflow::projector::MESSAGES_PROJECTION);
    wait_for_zero_lag(&env, &group, &env.topic(smsflow::topics::MESSAGES)).await;
    let sids: Vec<usize> = cql
        .query_unpaged("SELECT message_sid FROM message_status", ())
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .rows::<(String,)>()
        .unwrap()
        .map(|r| usize::from_str_radix(&r.unwrap().0[2..], 16).unwrap())
        .collect();
    let timeline = count_rows(&cql, "messages_by_user").await as usize;
    let distinct: BTreeSet<usize> = sids.iter().copied().collect();
    println!(
        "projected: {} message_status rows ({} distinct), {timeline} timeline rows, for {WEBHOOKS} webhooks; {:.1} s after the freeze began",
        sids.len(),
        distinct.len(),
        started.elapsed().as_secs_f64()
    );
    let expected: BTreeSet<usize> = (0..WEBHOOKS).collect();
    let lost: Vec<_> = expected.difference(&distinct).collect();
    let extra: Vec<_> = distinct.difference(&expected).collect();
    assert!(lost.is_empty(), "not projected: {lost:?}");
    assert!(extra.is_empty(), "projected but never sent: {extra:?}");
    assert_eq!(sids.len(), WEBHOOKS, "one message_status row per message");
    assert_eq!(timeline, WEBHOOKS, "one timeline row per message");
    // How the projector lived through it (printed, not asserted: the timing decides).
    let m = |name: &'static str| {
        let (http, url) = (http.clone(), app.ops_url.clone());
        async move { metric(&http, &url, name).await }
    };
    println!(
        "projector: {} events projected, {} write retries",
        m("smsflow_projector_events_total").await,
        m("smsflow_projector_retries_total").await
    );
    app.stop().await;
}
