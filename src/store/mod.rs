//! CQL: the session, and the migrations that shape the read models.

pub mod migrate;
mod session;

pub use session::{connect, connect_to_keyspace, CqlConsistency, StoreError};
