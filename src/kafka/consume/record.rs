//! One consumed record, owned, with what every consumer reads from its headers.

use rdkafka::message::{Headers, Message, Timestamp};

use crate::kafka::headers;

/// A record as the runners see it: position, key, payload, headers, its `event-type` and the
/// trace context its producer sent.
#[derive(Debug, Clone)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Broker append time in ms (topics use `message.timestamp.type=LogAppendTime`).
    pub log_time_ms: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// The `event-type` header, when present.
    pub event_type: Option<String>,
    /// Every header, in order (kept for dead letters).
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// The producer's trace context (`traceparent`), empty when there is none.
    pub trace: opentelemetry::Context,
}

impl Record {
    /// Copy a consumed message.
    pub fn of<M: Message>(m: &M) -> Record {
        let hdrs = m.headers();
        Record {
            topic: m.topic().to_owned(),
            partition: m.partition(),
            offset: m.offset(),
            log_time_ms: match m.timestamp() {
                Timestamp::LogAppendTime(ms) | Timestamp::CreateTime(ms) => ms,
                Timestamp::NotAvailable => 0,
            },
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            event_type: hdrs
                .and_then(|h| headers::get(h, headers::EVENT_TYPE))
                .map(str::to_owned),
            headers: hdrs
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default(),
            trace: headers::trace_context(hdrs),
        }
    }

    /// The key as text (keys are user ids or phone numbers), empty when absent.
    pub fn key_str(&self) -> String {
        self.key
            .as_deref()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default()
    }
}
