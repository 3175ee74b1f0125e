//! Kafka: client settings, the client context that logs librdkafka's reports, the event producer, headers, the one consume shape with the two
//! runners on it (the transactional stage runner and the projection runner), dead-letter
//! tools, and the topology (admin) tool.

pub mod client;
pub mod consume;
pub mod context;
pub mod dlq;
pub mod encoder;
pub mod headers;
pub mod producer;
pub mod projection_runner;
mod settings;
pub mod stage_runner;
pub mod topology;

pub use producer::{EventProducer, ProduceError, Produced};
pub use settings::KafkaSettings;
