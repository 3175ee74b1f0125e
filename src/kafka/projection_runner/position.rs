//! An event's position in Kafka, and the CQL write timestamp derived from it.

use rdkafka::message::{Message, Timestamp};

use crate::kafka::consume::Record;

/// Where an event sits in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Broker append time in ms (topics use `message.timestamp.type=LogAppendTime`).
    pub log_time_ms: i64,
}

impl Position {
    /// The position of a record.
    pub fn of_record(r: &Record) -> Position {
        Position {
            topic: r.topic.clone(),
            partition: r.partition,
            offset: r.offset,
            log_time_ms: r.log_time_ms,
        }
    }

    /// Read the position of a consumed message.
    pub fn of<M: Message>(msg: &M) -> Position {
        let log_time_ms = match msg.timestamp() {
            Timestamp::LogAppendTime(ms) | Timestamp::CreateTime(ms) => ms,
            Timestamp::NotAvailable => 0,
        };
        Position {
            topic: msg.topic().to_owned(),
            partition: msg.partition(),
            offset: msg.offset(),
            log_time_ms,
        }
    }

    /// The `USING TIMESTAMP` for every write this event causes, in microseconds.
    ///
    /// Append time orders events across topics (a review is appended after the proposal it
    /// reviews); the offset breaks ties between events appended in the same millisecond on one
    /// partition. A replay computes the same value, so rewriting a cell is a no-op, and an
    /// older event can never overwrite what a newer one wrote.
    pub fn write_timestamp(&self) -> i64 {
        self.log_time_ms.saturating_mul(1000) + self.offset.rem_euclid(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(ms: i64, offset: i64) -> Position {
        Position {
            topic: "t".into(),
            partition: 0,
            offset,
            log_time_ms: ms,
        }
    }

    #[test]
    fn later_append_time_always_wins() {
        assert!(
            pos(1_700_000_000_001, 0).write_timestamp()
                > pos(1_700_000_000_000, 999).write_timestamp()
        );
    }

    #[test]
    fn same_millisecond_is_ordered_by_offset() {
        assert!(
            pos(1_700_000_000_000, 42).write_timestamp()
                > pos(1_700_000_000_000, 41).write_timestamp()
        );
    }

    #[test]
    fn is_deterministic() {
        assert_eq!(pos(5, 7).write_timestamp(), 5007);
    }
}
