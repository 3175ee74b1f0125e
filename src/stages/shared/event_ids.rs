//! Event ids derived from the input, so a replayed input yields the same ids downstream.

use sha2::{Digest, Sha256};

/// The id of the `kind` event made from the event `source_event_id`: always the same for the
/// same input. (The `transcribe` in the hash input is historical; changing it would change
/// every derived id.)
pub fn derived_event_id(kind: &str, source_event_id: &str) -> String {
    let digest = Sha256::digest(format!("smsflow/transcribe/{kind}/{source_event_id}"));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_derived_from_the_input() {
        let a = derived_event_id("TranscriptReady", "x");
        assert_eq!(a, derived_event_id("TranscriptReady", "x"));
        assert_ne!(a, derived_event_id("TranscriptFailed", "x"));
        assert_ne!(a, derived_event_id("TranscriptReady", "y"));
        assert!(uuid::Uuid::parse_str(&a).is_ok());
    }
}
