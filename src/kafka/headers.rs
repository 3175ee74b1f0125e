//! Kafka headers every event carries: `event-type` and W3C `traceparent`.

use rdkafka::message::{Header, Headers, OwnedHeaders};

/// Header naming the event's record type, so consumers can route without decoding.
pub const EVENT_TYPE: &str = "event-type";
/// W3C trace context header.
pub const TRACEPARENT: &str = "traceparent";
/// W3C trace state header.
pub const TRACESTATE: &str = "tracestate";

/// Headers for a new event.
pub fn for_event(event_type: &str, traceparent: Option<&str>) -> OwnedHeaders {
    let mut h = OwnedHeaders::new_with_capacity(2).insert(Header {
        key: EVENT_TYPE,
        value: Some(event_type),
    });
    if let Some(tp) = traceparent {
        h = h.insert(Header {
            key: TRACEPARENT,
            value: Some(tp),
        });
    }
    h
}

/// The last value of a header as UTF-8, if present.
pub fn get<'a, H: Headers>(headers: &'a H, key: &str) -> Option<&'a str> {
    headers
        .iter()
        .filter(|h| h.key == key)
        .last()
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
}
