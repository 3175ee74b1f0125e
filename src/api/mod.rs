//! The HTTP API besides the webhook: health, readiness and operator endpoints. The query API
//! arrives here with the enrichment issue.

pub mod admin;
pub mod health;

pub use health::Dependencies;
