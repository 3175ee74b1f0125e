//! CQL: the session (one per process), the migrations that shape the read models, and the
//! projection checkpoints kept next to them.

mod checkpoints;
pub mod migrate;
mod rows;
mod session;

pub use checkpoints::Checkpoints;
pub use rows::{select_all, select_one};
pub use session::{
    connect, connect_to_keyspace, CqlConsistency, CqlSettings, SharedSession, StoreError,
};
