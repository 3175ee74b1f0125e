//! Kafka: client settings, the event producer, headers, and the topology (admin) tool.

pub mod client;
pub mod dlq;
pub mod headers;
pub mod producer;
pub mod runner;
pub mod topology;

pub use producer::{EventProducer, ProduceError, Produced};
