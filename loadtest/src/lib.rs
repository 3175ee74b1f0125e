//! smsflow's load generator and benchmark report, as a library so that tests drive it in-process:
//! an open-loop generator of signed webhooks, end-to-end latency read back from the read model,
//! process cost, the ceilings it is compared against, and a JSON + Markdown + PNG report.

pub mod bench;
pub mod ceilings;
pub mod charts;
pub mod cost;
pub mod e2e;
pub mod limits;
pub mod media;
pub mod memory;
pub mod mix;
pub mod open_loop;
pub mod payload;
pub mod report;
pub mod schedule;
pub mod senders;
pub mod stack;
pub mod webhook;
