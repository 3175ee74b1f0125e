//! What an extractor needs besides the text: the sender's region, when the message arrived and
//! the user's time zone (relative dates like "tomorrow at 5" resolve against the last two).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// The extraction context of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    /// Region that national phone numbers and "12/5"-style dates are read in (the sender's).
    pub region: Option<phonenumber::country::Id>,
    /// When the message was received, in microseconds since the Unix epoch (UTC).
    pub received_at_micros: i64,
    /// The user's time zone.
    pub tz: Tz,
}

impl Context {
    /// A context for a message received at `received_at_micros` by a user in `tz`.
    pub fn new(
        region: Option<phonenumber::country::Id>,
        received_at_micros: i64,
        tz: Tz,
    ) -> Context {
        Context {
            region,
            received_at_micros,
            tz,
        }
    }

    /// The time zone named `name` (IANA, e.g. "America/Los_Angeles"), or `default` when the
    /// name is missing or unknown.
    pub fn tz_or(name: Option<&str>, default: Tz) -> Tz {
        name.and_then(|n| n.parse::<Tz>().ok()).unwrap_or(default)
    }

    /// The received time in the user's zone; out-of-range timestamps clamp to the epoch.
    pub fn received_local(&self) -> DateTime<Tz> {
        DateTime::<Utc>::from_timestamp_micros(self.received_at_micros)
            .unwrap_or(DateTime::UNIX_EPOCH)
            .with_timezone(&self.tz)
    }

    /// Whether numeric dates read month first ("12/5" = December 5th), as in the US.
    pub fn month_first(&self) -> bool {
        use phonenumber::country::Id;
        matches!(
            self.region,
            None | Some(Id::US) | Some(Id::CA) | Some(Id::PH)
        )
    }
}
