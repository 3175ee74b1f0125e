//! librdkafka settings shared by every client, so each role talks to Kafka the same way.

use rdkafka::ClientConfig;

use super::KafkaSettings;

/// Base settings: brokers and a client id naming the role.
pub fn base(settings: &KafkaSettings, client_id: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &settings.brokers)
        .set("client.id", client_id)
        // Reconnect quickly after a broker restart; the defaults back off to 10 s.
        .set("reconnect.backoff.max.ms", "1000")
        .set("socket.keepalive.enable", "true");
    if !settings.client_debug.is_empty() {
        cfg.set("debug", &settings.client_debug);
    }
    cfg
}

/// A durable producer: acks from all in-sync replicas, idempotent, bounded queue.
pub fn producer(settings: &KafkaSettings, client_id: &str) -> ClientConfig {
    let mut cfg = base(settings, client_id);
    cfg.set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", settings.linger.as_millis().to_string())
        .set(
            "queue.buffering.max.messages",
            settings.producer_queue_max_messages.to_string(),
        )
        // librdkafka gives up on a record at the same deadline the webhook does, so a record
        // that was answered with 503 is not silently appended much later.
        .set(
            "message.timeout.ms",
            settings.produce_deadline.as_millis().max(1).to_string(),
        );
    cfg
}

/// A consumer that reads only committed transactional data and never auto-commits.
pub fn consumer(settings: &KafkaSettings, client_id: &str, group_id: &str) -> ClientConfig {
    let mut cfg = base(settings, client_id);
    cfg.set("group.id", group_id)
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("enable.partition.eof", "false")
        // Bound what librdkafka prefetches per partition so memory stays flat under lag.
        .set("queued.max.messages.kbytes", "16384")
        .set("fetch.max.bytes", "16777216");
    cfg
}
