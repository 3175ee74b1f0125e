//! smsflow: an event-sourced stream processor for inbound SMS and MMS enrichment.

pub mod api;
pub mod app;
pub mod clock;
pub mod config;
pub mod events;
pub mod http;
pub mod ingress;
pub mod kafka;
pub mod metrics;
pub mod phones;
pub mod projector;
pub mod shutdown;
pub mod stages;
pub mod stats;
pub mod store;
pub mod telemetry;
pub mod topics;
pub mod twilio;
