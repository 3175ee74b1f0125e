//! Topic base names from ARCHITECTURE.md; the configured prefix is added at use.

/// MessageReceived, SenderRejected.
pub const MESSAGES: &str = "sms.messages.v1";
/// MediaStored, MediaRejected.
pub const MEDIA: &str = "sms.media.v1";
/// TranscriptReady, TranscriptFailed.
pub const TRANSCRIPTS: &str = "sms.transcripts.v1";
/// ItemsProposed, PartEnriched.
pub const ENRICHMENTS: &str = "sms.enrichments.v1";
/// ItemReviewed.
pub const REVIEWS: &str = "sms.reviews.v1";
/// Phone registry (compacted).
pub const PHONES: &str = "sms.phones.v1";
/// Outbound SMS.
pub const OUTBOUND: &str = "sms.outbound.v1";
/// Poison events.
pub const DEADLETTER: &str = "sms.deadletter.v1";
