//! What operators see when no broker answers: librdkafka raises `AllBrokersDown` about once a
//! second per client, and a consumer's `recv` returns it too; every one is counted in
//! `smsflow_kafka_client_errors_total`, but the log holds one line per kind of report a minute
//! (`kafka::context`). Real librdkafka clients are pointed at loopback ports where nothing
//! listens.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use smsflow::kafka::client;
use smsflow::kafka::consume::Consumer;
use smsflow::kafka::context::{KafkaContext, KafkaProducer};
use smsflow::kafka::KafkaSettings;

/// The log lines written so far, shared with the global subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// The global subscriber's captured lines (one per process, shared by the tests in it).
fn captured() -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_env_filter("librdkafka=info,smsflow=warn")
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        captured
    })
}

/// Settings whose brokers are two loopback ports where nothing listens.
fn dead_brokers() -> (KafkaSettings, [u16; 2]) {
    let (a, b) = (dead_port(), dead_port());
    let settings = KafkaSettings {
        brokers: format!("127.0.0.1:{a},127.0.0.1:{b}"),
        ..KafkaSettings::default()
    };
    (settings, [a, b])
}

/// The captured lines that name `client`.
fn lines_of(client: &str) -> Vec<String> {
    let tag = format!("client=\"{client}\"");
    captured()
        .lines()
        .into_iter()
        .filter(|l| l.contains(&tag))
        .collect()
}

/// A loopback port where nothing listens (bound, then closed).
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `smsflow_kafka_client_errors_total` for this client, code (any when empty) and source,
/// from the Prometheus text.
fn counted(text: &str, client: &str, code: &str, source: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with("smsflow_kafka_client_errors_total{"))
        .filter(|l| l.contains(&format!("client=\"{client}\"")))
        .filter(|l| code.is_empty() || l.contains(&format!("code=\"{code}\"")))
        .filter(|l| l.contains(&format!("source=\"{source}\"")))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[test]
fn an_outage_is_counted_every_time_and_logged_once_per_kind() {
    let metrics = smsflow::metrics::install();
    captured();
    let (settings, ports) = dead_brokers();
    let client = "smsflow-log-test-producer";
    let _producer: KafkaProducer = client::producer(&settings, client)
        .create_with_context(KafkaContext::new(client))
        .expect("create the producer");

    // librdkafka retries each broker about once a second (reconnect.backoff.max.ms=1000).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = counted(&metrics.render(), client, "AllBrokersDown", "global");
        if n >= 4.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "AllBrokersDown counted {n} times in 60 s, expected 4;\n{}",
            lines_of(client).join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let lines = lines_of(client);
    let all_down: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("AllBrokersDown"))
        .collect();
    assert_eq!(
        all_down.len(),
        1,
        "AllBrokersDown should be logged once a minute:\n{}",
        lines.join("\n")
    );
    assert!(
        all_down[0].contains("ERROR") && all_down[0].contains(client),
        "{}",
        all_down[0]
    );
    // Each broker's failure is its own report: both are logged, neither more than once by
    // each callback (the log line and the global error).
    for port in ports {
        let about = lines
            .iter()
            .filter(|l| l.contains(&format!("127.0.0.1:{port}")))
            .count();
        assert!(
            (1..=2).contains(&about),
            "broker 127.0.0.1:{port} named on {about} lines:\n{}",
            lines.join("\n")
        );
    }
}

#[tokio::test]
async fn a_consumer_error_is_logged_once_per_kind_and_counted_apart_from_the_global_one() {
    let metrics = smsflow::metrics::install();
    captured();
    let (settings, _) = dead_brokers();
    let client = "smsflow-log-test-consumer";
    let consumer = Consumer::create(&settings, client, "smsflow-log-test", |_| {})
        .await
        .expect("create the consumer");
    consumer
        .subscribe(&["smsflow-log-test".to_owned()])
        .expect("subscribe");
    // `recv` yields None for each consumer error (and logs it); count four of them.
    let mut errors = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while errors < 4 {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(None) => errors += 1,
            Ok(Some(_)) => panic!("a record from a broker that does not exist"),
            Err(_) => panic!(
                "{errors} consumer errors in 60 s, expected 4:\n{}",
                lines_of(client).join("\n")
            ),
        }
    }
    // The errors were of two kinds here (BrokerTransportFailure, AllBrokersDown): each is
    // logged once.
    let lines = lines_of(client);
    let warned: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("Kafka consumer error"))
        .collect();
    assert!(!warned.is_empty(), "{}", lines.join("\n"));
    for code in ["BrokerTransportFailure", "AllBrokersDown"] {
        let n = warned.iter().filter(|l| l.contains(code)).count();
        assert!(n <= 1, "{code} logged {n} times:\n{}", lines.join("\n"));
    }
    assert!(warned.len() < errors, "{}", lines.join("\n"));

    // Each error `recv` returned is counted once as the consumer's. librdkafka also raised
    // the same outage through the client's error callback: that is counted as global, so a
    // dashboard that sums one source does not read one outage twice.
    let text = metrics.render();
    let consumer = counted(&text, client, "", "consumer");
    assert_eq!(consumer, errors as f64, "{text}");
    while counted(&metrics.render(), client, "AllBrokersDown", "global") < 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no global AllBrokersDown counted in 60 s:\n{}",
            metrics.render()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
