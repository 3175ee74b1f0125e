//! smsflow: an event-sourced stream processor for inbound SMS and MMS enrichment.
//!
//! Imports flow one way: `cli` and `app` (wiring per role) use the components (`ingress`,
//! `api`, `stages`, `projector`, `phones`), which use the shared parts (`kafka`, `store`,
//! `events`, `http`, `telemetry`, ...). `config` assembles each component's own settings
//! type; no component imports it back. The README's "Where things live" maps the tree.

pub mod api;
pub mod app;
pub mod backoff;
pub mod cli;
pub mod clock;
pub mod config;
pub mod events;
pub mod http;
pub mod ingress;
pub mod kafka;
pub mod metrics;
pub mod phones;
pub mod projector;
pub mod redis_link;
pub mod secrets;
pub mod shutdown;
pub mod stages;
pub mod stats;
pub mod store;
pub mod telemetry;
pub mod topics;
pub mod twilio;
pub mod validation;
