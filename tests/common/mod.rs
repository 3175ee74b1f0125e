//! Test harness: an isolated topic prefix and keyspace per test on the real local stack,
//! an in-process app on port 0, a signing Twilio client, and condition waits with deadlines.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scylla::client::session::Session;
use tokio_util::sync::CancellationToken;

use smsflow::app::{Application, Role};
use smsflow::config::Settings;
use smsflow::kafka::projection_runner::{run_projection, Projection, Target};
use smsflow::kafka::topology::{self, Topology};
use smsflow::projector::ProjectionError;
use smsflow::store::{self, migrate};

mod ops;
mod phones;
pub mod private_kafka;
mod records;
pub mod twilio_api;
mod webhooks;

// Each test binary uses its own subset of the harness.
#[allow(unused_imports)]
pub use ops::*;
#[allow(unused_imports)]
pub use phones::*;
#[allow(unused_imports)]
pub use records::*;
#[allow(unused_imports)]
pub use webhooks::*;

/// Token every test webhook is signed with.
pub const AUTH_TOKEN: &str = "test-auth-token-0123456789abcdef";
/// The HS256 secret the test app accepts bearer tokens signed with.
pub const JWT_SECRET: &str = "test-jwt-secret-0123456789abcdef";

/// A bearer token for `user`, signed with the test secret, valid for an hour.
pub fn jwt(user: &str, admin: bool) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let roles: Vec<&str> = if admin { vec!["admin"] } else { vec![] };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"sub": user, "exp": exp, "roles": roles}),
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

/// The public URL Twilio "calls"; as behind a proxy, it differs from the bound address.
pub const PUBLIC_URL: &str = "https://sms.example.test";
/// The webhook path.
pub const MESSAGES_PATH: &str = "/webhooks/twilio/messages";

/// An isolated slice of the shared stack: its own topics and keyspace.
pub struct TestEnv {
    pub settings: Settings,
    pub id: String,
}

/// Leftovers of earlier runs older than this are removed (a whole test binary takes less).
const LEFTOVER_AGE: Duration = Duration::from_secs(30 * 60);

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Creation second (8 hex digits) then the process, a per-process counter and clock noise.
fn unique_id() -> String {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{:08x}{:04x}{:02x}{:06x}",
        now_secs(),
        std::process::id() & 0xffff,
        seq & 0xff,
        nanos & 0xff_ffff
    )
}

/// The creation time encoded in a test id, if `name` holds one after `prefix`.
fn created_at(name: &str, prefix: &str) -> Option<u64> {
    let id = name.strip_prefix(prefix)?;
    u64::from_str_radix(id.get(..8)?, 16).ok()
}

/// Remove test topics and keyspaces that earlier runs left behind, once per test binary, so a
/// long-lived local stack does not accumulate thousands of partitions and tables.
async fn sweep_leftovers(settings: &Settings) {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT
        .get_or_init(|| async {
            let cutoff = now_secs().saturating_sub(LEFTOVER_AGE.as_secs());
            drop_keyspaces(settings, |k| {
                created_at(k, "t_").is_some_and(|t| t < cutoff)
            })
            .await;
            delete_topics(settings, |n| created_at(n, "t").is_some_and(|t| t < cutoff)).await;
        })
        .await;
}

/// Delete one env's topics and keyspace. Best effort: what is left is swept by a later run.
async fn remove_own(settings: &Settings) {
    drop_keyspaces(settings, |k| k == settings.cql.keyspace).await;
    delete_topics(settings, |n| n.starts_with(&settings.kafka.topic_prefix)).await;
}

/// Drop every keyspace whose name `picked` accepts. Best effort.
async fn drop_keyspaces(settings: &Settings, picked: impl Fn(&str) -> bool) {
    let Ok(session) = store::connect(&settings.cql).await else {
        return;
    };
    let Ok(res) = session
        .query_unpaged("SELECT keyspace_name FROM system_schema.keyspaces", ())
        .await
    else {
        return;
    };
    let names: Vec<String> = res
        .into_rows_result()
        .ok()
        .and_then(|r| {
            r.rows::<(String,)>()
                .ok()
                .map(|it| it.filter_map(|r| r.ok()).map(|r| r.0).collect())
        })
        .unwrap_or_default();
    for ks in names.into_iter().filter(|k| picked(k)) {
        let _ = session
            .query_unpaged(
                smsflow::store::migrate::ddl(format!("DROP KEYSPACE IF EXISTS {ks}")),
                (),
            )
            .await;
    }
}

/// Delete every topic whose name `picked` accepts. Best effort.
async fn delete_topics(settings: &Settings, picked: impl Fn(&str) -> bool) {
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        match smsflow::kafka::client::base(&settings.kafka, "test-janitor").create() {
            Ok(a) => a,
            Err(_) => return,
        };
    let Ok(md) = admin.inner().fetch_metadata(None, Duration::from_secs(10)) else {
        return;
    };
    let names: Vec<&str> = md
        .topics()
        .iter()
        .map(|t| t.name())
        .filter(|n| picked(n))
        .collect();
    if !names.is_empty() {
        let _ = admin
            .delete_topics(&names, &rdkafka::admin::AdminOptions::new())
            .await;
    }
}

/// A finished test (passed or panicked) deletes its topics and keyspace, so the shared stack
/// holds only the partitions of tests in flight: a whole run's leftovers (48 partition
/// replicas per broker per test) once ran the brokers out of heap.
impl Drop for TestEnv {
    fn drop(&mut self) {
        let settings = self.settings.clone();
        // The test's own runtime may be the current thread's: clean up on a thread of our own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let _ = tokio::time::timeout(Duration::from_secs(20), remove_own(&settings)).await;
            });
        })
        .join();
    }
}

/// The repository root, also from a workspace member (loadtest/) that includes this module.
pub fn repo_root() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    match dir.join("topology").is_dir() {
        true => dir.to_path_buf(),
        false => dir.parent().unwrap_or(dir).to_path_buf(),
    }
}

impl TestEnv {
    /// Fresh prefix and keyspace, topics created and migrations applied.
    pub async fn new() -> TestEnv {
        TestEnv::on_brokers(&Settings::default().kafka.brokers).await
    }

    /// `new` with Kafka at `brokers` (a private cluster a test may kill) instead of the
    /// shared stack's.
    pub async fn on_brokers(brokers: &str) -> TestEnv {
        TestEnv::on_stack(brokers, &Settings::default().cql.nodes).await
    }

    /// `new` with CQL at `nodes` (a private Cassandra a test may freeze) instead of the shared
    /// stack's.
    pub async fn on_cql(nodes: &[String]) -> TestEnv {
        TestEnv::on_stack(&Settings::default().kafka.brokers, nodes).await
    }

    async fn on_stack(brokers: &str, cql_nodes: &[String]) -> TestEnv {
        let id = unique_id();
        let mut settings = Settings::default();
        settings.kafka.brokers = brokers.into();
        settings.cql.nodes = cql_nodes.to_vec();
        settings.http.addr = "127.0.0.1:0".parse().unwrap();
        settings.http.ops_addr = "127.0.0.1:0".parse().unwrap();
        settings.http.public_url = PUBLIC_URL.into();
        settings.kafka.topic_prefix = format!("t{id}.");
        settings.kafka.produce_deadline = Duration::from_secs(2);
        settings.cql.keyspace = format!("t_{id}");
        settings.projector.group_id = format!("t{id}-projector");
        settings.twilio.auth_token = Some(AUTH_TOKEN.into());
        // Pipeline tests send from arbitrary numbers; the registry tests switch this back.
        settings.ingress.sender_policy = smsflow::ingress::SenderPolicy::Any;
        settings.api.auth.hs256_secret = Some(JWT_SECRET.into());
        // Tests look for their own traces in Jaeger: keep every one (production samples).
        settings.telemetry.sampler = "always_on".into();
        sweep_leftovers(&settings).await;
        let root = repo_root();
        let topo = Topology::load(&root.join("topology/topics.toml")).unwrap();
        // The local stack may have fewer brokers than production: lowering is allowed here.
        topology::apply(&settings.kafka, &topo, topology::Lowering::Allow)
            .await
            .expect("topics (is the stack up? make stack-up)");
        migrate::run(&settings.cql, &root.join("migrations"))
            .await
            .expect("migrate (is the stack up? make stack-up)");
        TestEnv { settings, id }
    }

    /// A producer for test fixtures, patient enough for a loaded two-core machine.
    pub fn fixture_producer(&self) -> smsflow::kafka::EventProducer {
        let mut kafka = self.settings.kafka.clone();
        kafka.produce_deadline = Duration::from_secs(14);
        smsflow::kafka::EventProducer::new(&kafka, "test-fixtures").unwrap()
    }

    /// A CQL session on this test's keyspace.
    pub async fn cql(&self) -> Arc<Session> {
        store::connect_to_keyspace(&self.settings.cql)
            .await
            .unwrap()
    }

    /// The checkpoints `projection` has saved in `projection_offsets`: next offset by partition.
    pub async fn checkpoints(&self, projection: &str) -> BTreeMap<i32, i64> {
        let rows = self
            .cql()
            .await
            .query_unpaged(
                "SELECT partition, next_offset FROM projection_offsets WHERE projection = ?",
                (projection,),
            )
            .await
            .unwrap()
            .into_rows_result()
            .unwrap();
        rows.rows::<(i32, i64)>()
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    /// Full topic name.
    pub fn topic(&self, base: &str) -> String {
        self.settings.topic(base)
    }

    /// Environment for running the `smsflow` binary against this env.
    pub fn child_env(&self) -> Vec<(String, String)> {
        vec![
            (
                "SMSFLOW_KAFKA__TOPIC_PREFIX".into(),
                self.settings.kafka.topic_prefix.clone(),
            ),
            (
                "SMSFLOW_CQL__KEYSPACE".into(),
                self.settings.cql.keyspace.clone(),
            ),
            (
                "SMSFLOW_PROJECTOR__GROUP_ID".into(),
                self.settings.projector.group_id.clone(),
            ),
            ("SMSFLOW_HTTP__PUBLIC_URL".into(), PUBLIC_URL.into()),
            ("SMSFLOW_INGRESS__SENDER_POLICY".into(), "any".into()),
            ("TWILIO_AUTH_TOKEN".into(), AUTH_TOKEN.into()),
            ("SMSFLOW_HTTP__ADDR".into(), "127.0.0.1:0".into()),
            ("SMSFLOW_HTTP__OPS_ADDR".into(), "127.0.0.1:0".into()),
        ]
    }
}

/// One trace pipeline per test binary, kept for the life of the process.
pub fn init_telemetry(settings: &Settings) {
    static GUARD: std::sync::OnceLock<std::sync::Mutex<smsflow::telemetry::TelemetryGuard>> =
        std::sync::OnceLock::new();
    GUARD.get_or_init(|| {
        std::sync::Mutex::new(smsflow::telemetry::init(&settings.telemetry, "test"))
    });
}

/// A running in-process app.
pub struct TestApp {
    /// The public listener (`http.addr`): webhooks, the user API, `/healthz`.
    pub base_url: String,
    /// The operator listener (`http.ops_addr`): `/healthz`, `/readyz`, `/metrics`,
    /// `/v1/admin/...`.
    pub ops_url: String,
    pub shutdown: CancellationToken,
    pub handle: tokio::task::JoinHandle<()>,
}

impl TestApp {
    /// Start the given roles; both listeners bind port 0.
    pub async fn spawn(settings: Settings, roles: &[Role]) -> TestApp {
        init_telemetry(&settings);
        let shutdown = CancellationToken::new();
        let app = Application::start(settings, roles, shutdown.clone())
            .await
            .expect("app starts");
        let base_url = format!("http://{}", app.http_addr());
        let ops_url = format!("http://{}", app.ops_addr());
        let handle = tokio::spawn(async move {
            if let Err(e) = app.wait().await {
                panic!("app failed: {e}");
            }
        });
        TestApp {
            base_url,
            ops_url,
            shutdown,
            handle,
        }
    }

    /// Drain and stop.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(30), self.handle).await;
    }
}

/// Poll `check` until it returns Some, or panic after `deadline` with `what`.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    let mut pause = Duration::from_millis(20);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// `SELECT COUNT(*)` of a table in the test keyspace.
pub async fn count_rows(session: &Session, table: &str) -> i64 {
    session
        .query_unpaged(format!("SELECT COUNT(*) FROM {table}"), ())
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .single_row::<(i64,)>()
        .unwrap()
        .0
}

/// Path to the stack script.
pub fn stack_script() -> std::path::PathBuf {
    repo_root().join("deploy/local/stack.sh")
}

/// `settings` for operator commands and CLI appends in tests: as patient as test fixtures
/// (a loaded two-core box can miss the default produce deadline on a fresh topic).
pub fn patient(settings: &Settings) -> Settings {
    let mut s = settings.clone();
    s.kafka.produce_deadline = Duration::from_secs(14);
    s
}

/// Run `projection` from its checkpoints on the test's topics and keyspace until `shutdown`.
pub fn spawn_projection<P: Projection>(
    env: &TestEnv,
    session: Arc<Session>,
    projection: Arc<P>,
    shutdown: &CancellationToken,
) -> tokio::task::JoinHandle<Result<(), ProjectionError>> {
    let (settings, shutdown) = (env.settings.clone(), shutdown.clone());
    tokio::spawn(async move {
        let target = Target {
            kafka: &settings.kafka,
            settings: &settings.projector,
            session: &session,
            keyspace: &settings.cql.keyspace,
        };
        run_projection(target, projection.as_ref(), &shutdown).await
    })
}

/// Wait until the projector has `phone` as verified in the `phones` read model.
pub async fn wait_phone_verified(env: &TestEnv, phone: &str) {
    let cql = env.cql().await;
    wait_for(
        "the registry change to be projected",
        Duration::from_secs(60),
        || {
            let cql = cql.clone();
            let phone = phone.to_owned();
            async move {
                let rows = cql
                    .query_unpaged("SELECT verified FROM phones WHERE phone = ?", (phone,))
                    .await
                    .ok()?
                    .into_rows_result()
                    .ok()?;
                let (verified,): (Option<bool>,) = rows.maybe_first_row().ok()??;
                (verified == Some(true)).then_some(())
            }
        },
    )
    .await;
}
