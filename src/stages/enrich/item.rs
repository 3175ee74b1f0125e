//! An enrichment item, where it came from, and its deterministic id.
//!
//! Spans are CHARACTER offsets (Unicode scalar values, `start..end`, end exclusive) into the
//! source text, not byte offsets: consumers in other languages and UIs count characters, and a
//! byte offset into "Zoë" is meaningless to them. [`span_text`] slices text by such a span.

use sha2::{Digest, Sha256};

/// What an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ItemKind {
    /// A phone number, normalized to E.164.
    Phone,
    /// An email address, normalized to lower case.
    Email,
    /// A URL, normalized without scheme and with a lower-case host.
    Url,
    /// A `#tag`, normalized without '#' and lower-cased.
    Tag,
    /// A person's name, normalized to "Given Family" with capitalized words.
    Contact,
    /// A date ("2026-06-03") or a local date-time with offset ("2026-12-01T15:00:00-08:00").
    DateTime,
    /// A place or street address, whitespace-collapsed with capitalized words.
    Place,
    /// An organisation (from a vCard's ORG).
    Org,
}

impl ItemKind {
    /// Every kind, in a stable order.
    pub const ALL: [ItemKind; 8] = [
        ItemKind::Phone,
        ItemKind::Email,
        ItemKind::Url,
        ItemKind::Tag,
        ItemKind::Contact,
        ItemKind::DateTime,
        ItemKind::Place,
        ItemKind::Org,
    ];

    /// The name used in events and ids.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Phone => "phone",
            ItemKind::Email => "email",
            ItemKind::Url => "url",
            ItemKind::Tag => "tag",
            ItemKind::Contact => "contact",
            ItemKind::DateTime => "datetime",
            ItemKind::Place => "place",
            ItemKind::Org => "org",
        }
    }

    /// The kind named by [`ItemKind::as_str`], if any.
    pub fn parse(name: &str) -> Option<ItemKind> {
        ItemKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// Where the text came from; transcripts get the spoken-form extractors too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// A typed SMS body.
    Body,
    /// A speech recognizer's transcript of a voice note.
    Transcript,
    /// A vCard attachment.
    Vcard,
}

impl Source {
    /// The name used in events and ids.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Body => "body",
            Source::Transcript => "transcript",
            Source::Vcard => "vcard",
        }
    }
}

/// One extracted item.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// What the item is.
    pub kind: ItemKind,
    /// The text as it appeared.
    pub value: String,
    /// The canonical form (see [`ItemKind`]); ids and dedupe use it.
    pub normalized: String,
    /// 0.0..=1.0: how sure the extractor is.
    pub confidence: f32,
    /// Where the text came from.
    pub source: Source,
    /// Character range (Unicode scalar offsets, end exclusive) of `value` in the source text.
    pub span: (usize, usize),
}

impl Item {
    /// This item's deterministic id within message `message_sid`.
    pub fn id(&self, message_sid: &str) -> String {
        item_id(
            message_sid,
            self.source.as_str(),
            self.kind,
            &self.normalized,
        )
    }
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

/// The text a character span covers, or `None` if it lies outside `text`.
pub fn span_text(text: &str, span: (usize, usize)) -> Option<&str> {
    let (start, end) = span;
    if start > end {
        return None;
    }
    let byte_at = |n: usize| {
        text.char_indices()
            .map(|(b, _)| b)
            .chain(std::iter::once(text.len()))
            .nth(n)
    };
    Some(&text[byte_at(start)?..byte_at(end)?])
}

/// A byte range of `text` (on char boundaries) as a character range.
pub(crate) fn char_span(text: &str, bytes: (usize, usize)) -> (usize, usize) {
    let count = |b: usize| text.get(..b).map_or(0, |s| s.chars().count());
    (count(bytes.0), count(bytes.1))
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

    #[test]
    fn kinds_round_trip_through_their_names() {
        for k in ItemKind::ALL {
            assert_eq!(ItemKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(ItemKind::parse("nope"), None);
    }

    #[test]
    fn char_spans_count_scalars_not_bytes() {
        let t = "Zoë 👋 call 510";
        let b = t.find("510").unwrap();
        let span = char_span(t, (b, b + 3));
        assert_eq!(span, (11, 14));
        assert_eq!(span_text(t, span), Some("510"));
        assert_eq!(span_text(t, (11, 15)), None);
        assert_eq!(span_text(t, (3, 2)), None);
    }
}
