//! Writer schemas, learned as records arrive: a Confluent-framed record names a registry id,
//! fetched once per id and process ([`Decoder::prepare`]), so that typed decoding
//! ([`super::Inbound`]) stays synchronous. Single-object records, and ids already learned,
//! need nothing and never wait.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::Record;
use crate::backoff::Backoff;
use crate::events::Decoder;

/// What a consumer does while the schema registry cannot give a record's writer schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaWait {
    /// Ask this many times, pausing by the backoff, then hand the record on: decoding it then
    /// fails (unknown schema id), and the consumer treats it as poison.
    Attempts(u32, Backoff),
    /// Ask until the registry answers: for a consumer that must not skip (a projection).
    UntilResolved(Backoff),
}

impl Default for SchemaWait {
    fn default() -> Self {
        SchemaWait::UntilResolved(Backoff::new(
            Duration::from_millis(100),
            Duration::from_secs(5),
        ))
    }
}

/// Learn `record`'s writer schema if it names a registry id not seen yet, as `wait` says.
pub(super) async fn resolve(decoder: &Decoder, wait: SchemaWait, group: &str, record: &Record) {
    let Some(payload) = record.payload.as_deref() else {
        return;
    };
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let Err(e) = decoder.prepare(payload).await else {
            return;
        };
        let (backoff, give_up) = match wait {
            SchemaWait::Attempts(n, backoff) => (backoff, attempt >= n),
            SchemaWait::UntilResolved(backoff) => (backoff, false),
        };
        if give_up {
            tracing::warn!(%group, topic = %record.topic, partition = record.partition, offset = record.offset, attempts = attempt, error = %e,
                "schema registry unreachable: the record's schema id stays unknown and it is handled as poison");
            return;
        }
        let delay = backoff.delay(attempt);
        tracing::warn!(%group, topic = %record.topic, partition = record.partition, offset = record.offset, attempt, error = %e, retry_in = ?delay,
            "cannot learn the record's writer schema from the registry; retrying");
        tokio::time::sleep(delay).await;
    }
}

/// A received record while its schema is resolved. If the caller stops waiting (a `select!`
/// picks another branch), the record goes back to `slot` and the next receive returns it, so
/// receiving stays cancel safe and no record is skipped.
pub(super) struct Held<'a> {
    slot: &'a Mutex<Option<Record>>,
    record: Option<Record>,
}

impl<'a> Held<'a> {
    /// The record put back earlier, if any.
    pub(super) fn take(slot: &'a Mutex<Option<Record>>) -> Option<Record> {
        slot.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    pub(super) fn new(slot: &'a Mutex<Option<Record>>, record: Record) -> Held<'a> {
        Held {
            slot,
            record: Some(record),
        }
    }

    pub(super) fn record(&self) -> Option<&Record> {
        self.record.as_ref()
    }

    /// Hand the record to the caller.
    pub(super) fn release(mut self) -> Option<Record> {
        self.record.take()
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(r) = self.record.take() {
            *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: i64) -> Record {
        Record {
            topic: "t".into(),
            partition: 0,
            offset,
            log_time_ms: 0,
            key: None,
            payload: Some(vec![0xC3, 0x01]),
            event_type: None,
            headers: Vec::new(),
            trace: opentelemetry::Context::new(),
        }
    }

    #[test]
    fn a_record_dropped_while_held_is_received_next() {
        let slot = Mutex::new(None);
        drop(Held::new(&slot, record(7)));
        let back = Held::take(&slot).expect("the dropped record is kept");
        assert_eq!(back.offset, 7);
        assert!(Held::take(&slot).is_none());
        let released = Held::new(&slot, record(8)).release();
        assert_eq!(released.map(|r| r.offset), Some(8));
        assert!(Held::take(&slot).is_none(), "a released record is not kept");
    }

    #[tokio::test]
    async fn records_without_a_registry_id_never_wait() {
        // No registry configured; a single-object record needs none.
        let decoder = Decoder::new(&crate::events::confluent::SchemaRegistrySettings {
            url: String::new().into(),
            ..Default::default()
        });
        let wait = SchemaWait::Attempts(
            1,
            Backoff::new(Duration::from_secs(60), Duration::from_secs(60)),
        );
        tokio::time::timeout(
            Duration::from_secs(1),
            resolve(&decoder, wait, "g", &record(1)),
        )
        .await
        .expect("no registry call, no pause");
    }

    #[tokio::test]
    async fn an_unreachable_registry_is_asked_a_bounded_number_of_times() {
        // Nothing listens on the discard port: every ask fails as transient.
        let decoder = Decoder::new(&crate::events::confluent::SchemaRegistrySettings {
            url: "http://127.0.0.1:9".into(),
            timeout: Duration::from_millis(500),
        });
        let mut r = record(1);
        r.payload = Some(vec![0x00, 0x7f, 0xff, 0xff, 0x01, 0x02]);
        let wait = SchemaWait::Attempts(
            3,
            Backoff::new(Duration::from_millis(1), Duration::from_millis(2)),
        );
        tokio::time::timeout(Duration::from_secs(10), resolve(&decoder, wait, "g", &r))
            .await
            .expect("gives up after its attempts, so the record becomes poison");
    }
}
