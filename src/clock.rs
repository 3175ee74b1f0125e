//! Wall-clock time as the integers events and CQL store.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch (event timestamps); 0 if the clock is before 1970.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch (CQL `timestamp`).
pub fn now_millis() -> i64 {
    now_micros() / 1000
}
