//! The HTTP server shared by ingress and the API: timeouts, limits and graceful drain.

mod server;
mod settings;

pub use server::{open_connections, serve, RequestDeadline, ServeError};
pub use settings::HttpSettings;
