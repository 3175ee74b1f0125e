//! What each subcommand does: it wires the few clients it needs from the settings, does its
//! work, and prints its result. `main.rs` only parses arguments and dispatches here.

pub mod dlq;
pub mod extract;
pub mod migrate;
pub mod phones;
pub mod replay;
pub mod schemas;
pub mod serve;
pub mod topics;
pub mod twilio;

pub use replay::replay;
