//! A private three-node Kafka cluster for tests that kill or freeze a broker: the shared
//! stack's brokers (9092/9094/9096) serve every other test and must never be touched.
//!
//! `deploy/local/stack.sh` starts the nodes with their own state dir (under the test's temp
//! dir) and their own ports, so a cluster here is the shared stack's cluster in miniature: the
//! same `server.properties` (KRaft, every node broker and controller, `min.insync.replicas=2`,
//! no unclean election), with a smaller heap. Everything is torn down on drop, also when the
//! test panics; a watchdog process tears it down if the test process dies without dropping
//! (nextest's SIGKILL after its timeout).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use super::stack_script;

/// Heap of each node: three extra JVMs next to the shared stack on a 2-core, 24 GiB box. A
/// private cluster holds one test's topics (a few dozen partitions), far from the hundreds that
/// made the shared stack's 384 MiB nodes run out.
pub const NODE_HEAP: &str = "384m";

/// Node ids of the cluster (`node.id` in each node's `server.properties`).
pub const NODES: [i32; 3] = [1, 2, 3];

/// Port bases are picked in [FIRST_BASE, FIRST_BASE + 10 * BASE_SLOTS): above the shared
/// stack's 9092-9097 and the 19092 that the README shows, and below Linux's ephemeral range
/// (32768-60999), so no outgoing connection can hold one of them.
const FIRST_BASE: u16 = 21_000;
const BASE_SLOTS: u16 = 1_000;

/// How long `stack.sh up` may take for three nodes on a busy two-core machine.
const START_DEADLINE: Duration = Duration::from_secs(300);

/// A running private cluster. Node `n` listens on `base + 2(n-1)`, its controller one above.
pub struct PrivateKafka {
    state: PathBuf,
    base: u16,
    watchdog: Option<Child>,
}

impl PrivateKafka {
    /// Start three nodes and wait until each answers and all three are registered brokers.
    pub async fn start() -> PrivateKafka {
        let base = free_port_base();
        let state = std::env::temp_dir().join(format!(
            "smsflow-private-kafka-{}-{base}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&state);
        std::fs::create_dir_all(&state).expect("create the private cluster's state dir");
        let mut cluster = PrivateKafka {
            state,
            base,
            watchdog: None,
        };
        cluster.watchdog = Some(cluster.spawn_watchdog());
        let started = Instant::now();
        cluster
            .stack(&["up", "kafka1", "kafka2", "kafka3"])
            .await
            .unwrap_or_else(|out| panic!("private Kafka cluster did not start:\n{out}"));
        cluster.wait_for_brokers(NODES.len()).await;
        eprintln!(
            "private Kafka cluster up in {:.1} s: {} (state {}, heap {NODE_HEAP} per node)",
            started.elapsed().as_secs_f64(),
            cluster.bootstrap(),
            cluster.state.display()
        );
        cluster
    }

    /// `bootstrap.servers` for smsflow's `kafka.brokers`.
    pub fn bootstrap(&self) -> String {
        NODES
            .iter()
            .map(|n| format!("127.0.0.1:{}", self.port(*n)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The PLAINTEXT port of node `node`.
    pub fn port(&self, node: i32) -> u16 {
        self.base + 2 * (node as u16 - 1)
    }

    /// The JVM of node `node`, if it runs (checked against its command line, so a recycled
    /// pid is never signalled).
    pub fn pid(&self, node: i32) -> Option<u32> {
        node_pid(&self.state, node)
    }

    /// The leader of `topic`'s `partition`, as the cluster's metadata says now.
    pub async fn leader_of(&self, topic: &str, partition: i32) -> Option<i32> {
        let p = self.partition(topic, partition).await?;
        (p.leader >= 0).then_some(p.leader)
    }

    /// Wait until `topic`'s `partition` is led by a node other than `old`; returns the new one.
    pub async fn wait_for_new_leader(
        &self,
        topic: &str,
        partition: i32,
        old: i32,
        deadline: Duration,
    ) -> i32 {
        super::wait_for("a new partition leader", deadline, || async {
            self.leader_of(topic, partition).await.filter(|l| *l != old)
        })
        .await
    }

    /// Wait until every partition of `topic` has all three replicas in sync.
    pub async fn wait_fully_replicated(&self, topic: &str, deadline: Duration) {
        super::wait_for("every replica back in sync", deadline, || async {
            let parts = self.partitions(topic).await?;
            (!parts.is_empty() && parts.iter().all(|p| p.isr.len() == NODES.len())).then_some(())
        })
        .await
    }

    /// Replicas and in-sync replicas of every partition of `topic`.
    pub async fn partitions(&self, topic: &str) -> Option<Vec<PartitionInfo>> {
        let bootstrap = self.bootstrap();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            let md = metadata_client(&bootstrap)
                .fetch_metadata(Some(&topic), Duration::from_secs(5))
                .ok()?;
            let t = md.topics().first()?;
            if t.error().is_some() {
                return None;
            }
            Some(
                t.partitions()
                    .iter()
                    .map(|p| PartitionInfo {
                        id: p.id(),
                        leader: p.leader(),
                        replicas: p.replicas().to_vec(),
                        isr: p.isr().to_vec(),
                    })
                    .collect(),
            )
        })
        .await
        .ok()?
    }

    async fn partition(&self, topic: &str, partition: i32) -> Option<PartitionInfo> {
        self.partitions(topic)
            .await?
            .into_iter()
            .find(|p| p.id == partition)
    }

    /// `kill -9` node `node` and wait until its port is closed.
    pub async fn kill(&self, node: i32) {
        let pid = self.pid(node).expect("node to kill is running");
        signal(pid, "KILL");
        let port = self.port(node);
        super::wait_for(
            "the killed node's port to close",
            Duration::from_secs(30),
            || async { (!port_open(port)).then_some(()) },
        )
        .await;
    }

    /// `SIGSTOP` node `node` and wait until every thread is stopped: the process keeps its
    /// sockets (the kernel still accepts connections) but answers nothing.
    pub async fn freeze(&self, node: i32) {
        let pid = self.pid(node).expect("node to freeze is running");
        signal(pid, "STOP");
        super::wait_for("the node to stop", Duration::from_secs(10), || async {
            (process_state(pid) == Some('T')).then_some(())
        })
        .await;
    }

    /// `SIGCONT` node `node`.
    pub fn thaw(&self, node: i32) {
        let pid = self.pid(node).expect("node to thaw is running");
        signal(pid, "CONT");
    }

    /// Start node `node` again on its data dir (after `kill`) and wait until it answers.
    pub async fn restart(&self, node: i32) {
        let svc = format!("kafka{node}");
        self.stack(&["up", &svc])
            .await
            .unwrap_or_else(|out| panic!("restarting {svc} failed:\n{out}"));
        self.wait_for_brokers(NODES.len()).await;
    }

    async fn wait_for_brokers(&self, n: usize) {
        let bootstrap = self.bootstrap();
        super::wait_for(
            "every node registered as a broker",
            Duration::from_secs(120),
            || {
                let bootstrap = bootstrap.clone();
                async move {
                    let count = tokio::task::spawn_blocking(move || {
                        metadata_client(&bootstrap)
                            .fetch_metadata(None, Duration::from_secs(5))
                            .map(|md| md.brokers().len())
                            .unwrap_or(0)
                    })
                    .await
                    .unwrap_or(0);
                    (count >= n).then_some(())
                }
            },
        )
        .await
    }

    /// Run `stack.sh` on this cluster's state and ports; Err holds its output.
    async fn stack(&self, args: &[&str]) -> Result<(), String> {
        let out = tokio::time::timeout(
            START_DEADLINE,
            tokio::process::Command::new("bash")
                .arg(stack_script())
                .args(args)
                .envs(self.stack_env())
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .map_err(|_| format!("stack.sh {args:?} took over {START_DEADLINE:?}"))?
        .map_err(|e| format!("cannot run stack.sh: {e}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(())
        } else {
            Err(text)
        }
    }

    fn stack_env(&self) -> [(&'static str, String); 3] {
        [
            ("SMSSTACK_STATE", self.state.display().to_string()),
            ("SMSSTACK_KAFKA_PORT", self.base.to_string()),
            ("SMSSTACK_KAFKA_HEAP", NODE_HEAP.to_string()),
        ]
    }

    /// A detached shell that waits for this test process to end and then kills what is left
    /// of the cluster. Drop does the same at once; this covers a process killed outright.
    fn spawn_watchdog(&self) -> Child {
        const SCRIPT: &str = r#"
            owner=$1 state=$2
            while kill -0 "$owner" 2>/dev/null; do sleep 1; done
            for f in "$state"/run/kafka*.pid; do
              [ -f "$f" ] || continue
              pid=$(cat "$f")
              if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$state/kafka"; then
                kill -CONT "$pid"; kill -KILL "$pid"
              fi
            done
            rm -rf "$state"
        "#;
        Command::new("setsid")
            .args(["bash", "-c", SCRIPT, "watchdog"])
            .arg(std::process::id().to_string())
            .arg(&self.state)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the private cluster's watchdog")
    }
}

/// One partition as the metadata describes it.
#[derive(Debug, Clone)]
pub struct PartitionInfo {
    pub id: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

impl Drop for PrivateKafka {
    /// Kill every node (a frozen one is continued first), then remove the state. The data is
    /// disposable, so no graceful shutdown: that would cost a minute per node. After a panic
    /// the logs are kept for diagnosis.
    fn drop(&mut self) {
        let pids: Vec<u32> = NODES.iter().filter_map(|n| self.pid(*n)).collect();
        for pid in &pids {
            signal(*pid, "CONT");
            signal(*pid, "KILL");
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while pids.iter().any(|p| alive(*p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if std::thread::panicking() {
            for n in NODES {
                let _ = std::fs::remove_dir_all(self.state.join(format!("kafka{n}")));
            }
            eprintln!(
                "private Kafka cluster removed; its logs are kept in {}",
                self.state.join("logs").display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.state);
        }
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

/// A port base whose six ports (three brokers, three controllers) are free now. Each process
/// starts from its own slot (by pid) and each call in a process from the next one, so two
/// test processes starting clusters at once do not pick the same ports.
fn free_port_base() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let first = (std::process::id() % u32::from(BASE_SLOTS)) as u16;
    let offset = NEXT.fetch_add(1, Ordering::Relaxed);
    (0..BASE_SLOTS)
        .map(|k| FIRST_BASE + 10 * ((first + offset + k) % BASE_SLOTS))
        .find(|base| (0..6).all(|o| TcpListener::bind(("127.0.0.1", base + o)).is_ok()))
        .expect("a free range of six ports for a private Kafka cluster")
}

fn metadata_client(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("client.id", "test-private-kafka")
        .set("socket.timeout.ms", "5000")
        .set("reconnect.backoff.max.ms", "500")
        .create()
        .expect("a metadata client")
}

fn node_pid(state: &Path, node: i32) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(state.join(format!("run/kafka{node}.pid")))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let mark = state.join(format!("kafka{node}/server.properties"));
    String::from_utf8_lossy(&cmdline)
        .contains(mark.to_string_lossy().as_ref())
        .then_some(pid)
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// The state letter of `/proc/<pid>/stat` (R, S, T, Z, ...).
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: the state follows the last ')'.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Running and not a zombie.
fn alive(pid: u32) -> bool {
    !matches!(process_state(pid), None | Some('Z') | Some('X'))
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    )
    .is_ok()
}
