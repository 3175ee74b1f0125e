//! An enrichment item and its deterministic id.

use sha2::{Digest, Sha256};

/// What an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemKind {
    Phone,
    Email,
    Url,
    Tag,
}

impl ItemKind {
    /// The name used in events and ids.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Phone => "phone",
            ItemKind::Email => "email",
            ItemKind::Url => "url",
            ItemKind::Tag => "tag",
        }
    }
}

/// One extracted item.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub kind: ItemKind,
    /// The text as it appeared.
    pub value: String,
    /// The canonical form: E.164, lower-case email, URL without scheme noise, tag without '#'.
    pub normalized: String,
    pub confidence: f32,
    /// Byte range of `value` in the source text.
    pub span: (usize, usize),
}

/// Deterministic id: a replayed message yields the same ids.
pub fn item_id(message_sid: &str, source: &str, kind: ItemKind, normalized: &str) -> String {
    let mut h = Sha256::new();
    for part in [message_sid, source, kind.as_str(), normalized] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_distinguish_their_inputs() {
        let a = item_id("SM1", "body", ItemKind::Phone, "+15105550142");
        assert_eq!(a, item_id("SM1", "body", ItemKind::Phone, "+15105550142"));
        assert_ne!(
            a,
            item_id("SM1", "transcript", ItemKind::Phone, "+15105550142")
        );
        assert_ne!(a, item_id("SM2", "body", ItemKind::Phone, "+15105550142"));
        assert_eq!(a.len(), 32);
    }
}
