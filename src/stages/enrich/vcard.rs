//! vCard 3.0 and 4.0 attachments (RFC 2426 / RFC 6350) as structured items: a contact (FN, or
//! N), phones (TEL, E.164), emails, ORG, URL and ADR.
//!
//! Hand-written small line parser rather than the `vcard4` crate: that crate is strict RFC 6350
//! (its parser requires VERSION right after BEGIN and rejects many 3.0 phone exports), while
//! phones forward 3.0 cards with `item1.` groups, bare TYPE values and quoted-printable.
//! Handled here: folded lines (CRLF or LF then space/tab), `group.` prefixes, parameters
//! (ignored except ENCODING/CHARSET), quoted-printable values (with soft line breaks), backslash
//! escapes, several cards in one attachment.
//!
//! Spans are character ranges of the property's content line in the card text (from the start
//! of its first physical line to the end of its last), since an unfolded value is not contiguous.

use thiserror::Error;

use super::context::Context;
use super::item::{char_span, Item, ItemKind, Source};
use super::lex;

/// Attachments larger than this are not parsed (a contact card is a few kilobytes).
pub const MAX_VCARD_BYTES: usize = 1 << 20;

/// Why an attachment yields no items.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum VcardError {
    /// The bytes are not UTF-8.
    #[error("vCard is not UTF-8")]
    NotUtf8,
    /// The attachment is over [`MAX_VCARD_BYTES`].
    #[error("vCard is {0} bytes, over the limit")]
    TooLarge(usize),
    /// No `BEGIN:VCARD` line.
    #[error("no BEGIN:VCARD in the attachment")]
    NoCard,
}

/// Whether a MIME content type (parameters allowed) is a vCard.
pub fn is_vcard_content_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "text/vcard" | "text/x-vcard" | "text/directory"
    )
}

/// One unfolded content line.
struct Line {
    /// Property name, upper case, without group.
    name: String,
    /// Parameters as (NAME upper case, value) pairs; a bare value ("HOME" in 2.1/3.0) has NAME "TYPE".
    params: Vec<(String, String)>,
    /// The raw value (escapes and encoding still in place).
    value: String,
    /// Byte range in the card text.
    span: (usize, usize),
}

/// The items of every card in `bytes`.
pub fn extract_vcard(bytes: &[u8], ctx: &Context) -> Result<Vec<Item>, VcardError> {
    if bytes.len() > MAX_VCARD_BYTES {
        return Err(VcardError::TooLarge(bytes.len()));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| VcardError::NotUtf8)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines = unfold(text);
    if !lines
        .iter()
        .any(|l| l.name == "BEGIN" && l.value.trim().eq_ignore_ascii_case("VCARD"))
    {
        return Err(VcardError::NoCard);
    }
    let mut items = Vec::new();
    let mut in_card = false;
    let mut card: Vec<&Line> = Vec::new();
    for line in &lines {
        match line.name.as_str() {
            "BEGIN" if line.value.trim().eq_ignore_ascii_case("VCARD") => {
                in_card = true;
                card.clear();
            }
            "END" if line.value.trim().eq_ignore_ascii_case("VCARD") => {
                items.extend(card_items(&card, ctx));
                in_card = false;
                card.clear();
            }
            _ if in_card => card.push(line),
            _ => {}
        }
    }
    // A card cut off before END:VCARD still yields what it has.
    if in_card {
        items.extend(card_items(&card, ctx));
    }
    let mut seen = std::collections::HashSet::new();
    items.retain(|i| seen.insert((i.kind, i.normalized.clone())));
    for i in &mut items {
        i.span = char_span(text, i.span);
    }
    tracing::debug!(count = items.len(), "extracted vcard items");
    Ok(items)
}

/// Physical lines joined into content lines.
fn unfold(text: &str) -> Vec<Line> {
    // (start, end) byte ranges of physical lines without their line break.
    let mut physical = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if c == '\n' {
            let end = if text[..i].ends_with('\r') { i - 1 } else { i };
            physical.push((start, end));
            start = i + 1;
        }
    }
    if start < text.len() {
        physical.push((start, text.len()));
    }
    let mut out: Vec<(String, (usize, usize))> = Vec::new();
    let mut qp_continues = false;
    for (s, e) in physical {
        let raw = &text[s..e];
        if raw.starts_with([' ', '\t']) && !out.is_empty() {
            if let Some(last) = out.last_mut() {
                last.0.push_str(&raw[1..]);
                last.1 .1 = e;
            }
            continue;
        }
        // Quoted-printable soft line break: "=" at the end joins the next physical line.
        if qp_continues {
            if let Some(last) = out.last_mut() {
                if last.0.ends_with('=') {
                    last.0.pop();
                }
                last.0.push_str(raw);
                last.1 .1 = e;
                qp_continues = raw.ends_with('=');
                continue;
            }
        }
        qp_continues = raw.to_ascii_uppercase().contains("QUOTED-PRINTABLE") && raw.ends_with('=');
        if !raw.trim().is_empty() {
            out.push((raw.to_owned(), (s, e)));
        }
    }
    out.into_iter()
        .filter_map(|(content, span)| parse_line(&content, span))
        .collect()
}

fn parse_line(content: &str, span: (usize, usize)) -> Option<Line> {
    // The value starts at the first ':' outside a quoted parameter value.
    let mut quoted = false;
    let colon = content.char_indices().find_map(|(i, c)| {
        match c {
            '"' => quoted = !quoted,
            ':' if !quoted => return Some(i),
            _ => {}
        }
        None
    })?;
    let (head, value) = (&content[..colon], &content[colon + 1..]);
    let mut parts = head.split(';');
    let name = parts.next()?.trim();
    let name = name.rsplit('.').next().unwrap_or(name).to_ascii_uppercase();
    let params = parts
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (
                k.trim().to_ascii_uppercase(),
                v.trim_matches('"').to_owned(),
            ),
            None => ("TYPE".to_owned(), p.trim().to_owned()),
        })
        .collect();
    Some(Line {
        name,
        params,
        value: value.to_owned(),
        span,
    })
}

impl Line {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value decoded: quoted-printable if so marked, then backslash escapes.
    fn decoded(&self) -> String {
        match self.param("ENCODING") {
            Some(e) if e.eq_ignore_ascii_case("QUOTED-PRINTABLE") => quoted_printable(&self.value),
            _ => self.value.clone(),
        }
    }

    /// The value split into structured components (N, ADR), each unescaped.
    fn components(&self) -> Vec<String> {
        split_unescaped(&self.decoded(), ';')
    }

    fn text(&self) -> String {
        unescape(&self.decoded())
    }
}

/// Quoted-printable to UTF-8 text; bad sequences stay as written.
fn quoted_printable(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            if i + 1 == b.len() {
                break; // soft line break at the very end
            }
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n' | 'N') => out.push('\n'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `s` split on unescaped `sep`, each part unescaped and trimmed.
fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push('\\');
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(unescape(&cur).trim().to_owned());
            cur.clear();
        } else {
            cur.push(c);
        }
    }
    parts.push(unescape(&cur).trim().to_owned());
    parts
}

fn item(kind: ItemKind, value: String, normalized: String, conf: f32, l: &Line) -> Item {
    Item {
        kind,
        value,
        normalized,
        confidence: conf,
        source: Source::Vcard,
        span: l.span,
    }
}

fn card_items(card: &[&Line], ctx: &Context) -> Vec<Item> {
    let mut items = Vec::new();
    let fn_line = card.iter().find(|l| l.name == "FN");
    let n_line = card.iter().find(|l| l.name == "N");
    let name = fn_line
        .map(|l| (l.text().trim().to_owned(), *l))
        .filter(|(n, _)| !n.is_empty())
        .or_else(|| {
            let l = n_line?;
            let c = l.components();
            // N: family; given; additional; prefixes; suffixes.
            let given: Vec<&str> = [c.get(1), c.get(2), c.first()]
                .into_iter()
                .flatten()
                .map(|s| s.as_str())
                .filter(|s| !s.is_empty())
                .collect();
            let n = given.join(" ");
            (!n.is_empty()).then_some((n, *l))
        });
    if let Some((name, l)) = name {
        let normalized = lex::title_case(name.split_whitespace());
        items.push(item(ItemKind::Contact, name, normalized, 0.95, l));
    }
    for l in card {
        match l.name.as_str() {
            "TEL" => {
                let v = l.text();
                let number = v.trim().trim_start_matches("tel:");
                let number = number.split(';').next().unwrap_or(number);
                if let Some(e164) = super::phones::e164(number, ctx.region) {
                    items.push(item(ItemKind::Phone, v.trim().to_owned(), e164, 0.95, l));
                }
            }
            "EMAIL" => {
                let v = l.text();
                let addr = v.trim().trim_start_matches("mailto:");
                if addr.contains('@') && !addr.contains(char::is_whitespace) {
                    let normalized = addr.to_lowercase();
                    items.push(item(
                        ItemKind::Email,
                        v.trim().to_owned(),
                        normalized,
                        0.95,
                        l,
                    ));
                }
            }
            "URL" => {
                let v = l.text();
                if !v.trim().is_empty() {
                    let normalized = super::extract::normalize_url(v.trim());
                    items.push(item(ItemKind::Url, v.trim().to_owned(), normalized, 0.9, l));
                }
            }
            "ORG" => {
                let parts: Vec<String> = l
                    .components()
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect();
                if !parts.is_empty() {
                    let v = parts.join(", ");
                    items.push(item(ItemKind::Org, v.clone(), v, 0.9, l));
                }
            }
            "ADR" => {
                // ADR: PO box; extended; street; locality; region; postal code; country.
                let c = l.components();
                let get = |i: usize| c.get(i).map(|s| s.replace('\n', ", ")).unwrap_or_default();
                let region_zip = [get(4), get(5)]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ");
                let parts: Vec<String> = [get(2), get(1), get(3), region_zip, get(6)]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect();
                if !parts.is_empty() {
                    let v = parts.join(", ");
                    let normalized = v.split_whitespace().collect::<Vec<_>>().join(" ");
                    items.push(item(ItemKind::Place, v, normalized, 0.9, l));
                }
            }
            _ => {}
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context::new(
            Some(phonenumber::country::Id::US),
            1_795_888_800_000_000,
            chrono_tz::America::Los_Angeles,
        )
    }

    fn kinds(items: &[Item]) -> Vec<(&'static str, String)> {
        items
            .iter()
            .map(|i| (i.kind.as_str(), i.normalized.clone()))
            .collect()
    }

    const V3: &str = "BEGIN:VCARD\r\nVERSION:3.0\r\nN:Reyes;Dana;;;\r\nFN:Dana Reyes\r\nORG:Acme Robotics;Sales\r\nitem1.TEL;type=CELL;type=VOICE;type=pref:(510) 555-0142\r\nitem1.X-ABLabel:mobile\r\nEMAIL;type=INTERNET;type=WORK:Dana.Reyes@Acme.io\r\nitem2.ADR;type=WORK:;;1200 Broadway;Oakland;CA;94612;USA\r\nitem3.URL;type=pref:https://acme.io/team/dana\r\nNOTE:Met at the expo\\, booth 12\r\nEND:VCARD\r\n";

    #[test]
    fn a_3_0_card_from_a_phone() {
        let items = extract_vcard(V3.as_bytes(), &ctx()).unwrap();
        assert_eq!(
            kinds(&items),
            vec![
                ("contact", "Dana Reyes".to_owned()),
                ("org", "Acme Robotics, Sales".to_owned()),
                ("phone", "+15105550142".to_owned()),
                ("email", "dana.reyes@acme.io".to_owned()),
                ("place", "1200 Broadway, Oakland, CA 94612, USA".to_owned()),
                ("url", "acme.io/team/dana".to_owned()),
            ]
        );
        assert!(items.iter().all(|i| i.source == Source::Vcard));
        let phone = items.iter().find(|i| i.kind == ItemKind::Phone).unwrap();
        assert!(super::super::item::span_text(V3, phone.span)
            .unwrap()
            .starts_with("item1.TEL"));
    }

    #[test]
    fn a_4_0_card_with_folding_uris_and_no_fn() {
        let card = "BEGIN:VCARD\nVERSION:4.0\nN:Okafor;Chidi;;Dr.;\nTEL;VALUE=uri;TYPE=\"voice,cell\":tel:+44-20-7946-0958\nEMAIL;TYPE=work:chidi@\n example.co.uk\nURL:https://example.co.uk/\n people/chidi\nEND:VCARD\n";
        let items = extract_vcard(card.as_bytes(), &ctx()).unwrap();
        assert_eq!(
            kinds(&items),
            vec![
                ("contact", "Chidi Okafor".to_owned()),
                ("phone", "+442079460958".to_owned()),
                ("email", "chidi@example.co.uk".to_owned()),
                ("url", "example.co.uk/people/chidi".to_owned()),
            ]
        );
    }

    #[test]
    fn quoted_printable_and_two_cards() {
        let card = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:Jos=C3=A9 Mar=\r\n=C3=ADa\r\nTEL;CELL:+34 612 345 678\r\nEND:VCARD\r\nBEGIN:VCARD\r\nVERSION:3.0\r\nFN:Ana Lima\r\nTEL:+61 2 9374 4000\r\nEND:VCARD\r\n";
        let items = extract_vcard(card.as_bytes(), &ctx()).unwrap();
        assert_eq!(
            kinds(&items),
            vec![
                ("contact", "José María".to_owned()),
                ("phone", "+34612345678".to_owned()),
                ("contact", "Ana Lima".to_owned()),
                ("phone", "+61293744000".to_owned()),
            ]
        );
    }

    #[test]
    fn errors_are_typed() {
        assert_eq!(
            extract_vcard(&[0xff, 0xfe, 0x00], &ctx()),
            Err(VcardError::NotUtf8)
        );
        assert_eq!(
            extract_vcard(b"hello: there", &ctx()),
            Err(VcardError::NoCard)
        );
        let big = vec![b'a'; MAX_VCARD_BYTES + 1];
        assert_eq!(
            extract_vcard(&big, &ctx()),
            Err(VcardError::TooLarge(MAX_VCARD_BYTES + 1))
        );
    }

    #[test]
    fn content_types() {
        assert!(is_vcard_content_type("text/vcard"));
        assert!(is_vcard_content_type("Text/X-VCard; charset=utf-8"));
        assert!(!is_vcard_content_type("text/plain"));
        assert!(!is_vcard_content_type(""));
    }

    #[test]
    fn broken_cards_do_not_panic() {
        for card in [
            "BEGIN:VCARD",
            "BEGIN:VCARD\nFN",
            "BEGIN:VCARD\n:::\n;;;\nFN;=:\nN:;;;;\nTEL:\nEMAIL:@\nADR:;;;;;;\nEND:VCARD",
            "BEGIN:VCARD\nFN;ENCODING=QUOTED-PRINTABLE:=\nFN;ENCODING=QUOTED-PRINTABLE:=Z=\nEND:VCARD",
            "BEGIN:VCARD\r\n \r\n\t\r\nFN:Zoë 👋\\\r\nEND:VCARD",
            "\u{feff}BEGIN:VCARD\nFN:\"Quoted\";x=\"a:b\":c\nEND:VCARD",
        ] {
            let _ = extract_vcard(card.as_bytes(), &ctx());
        }
        let items = extract_vcard("BEGIN:VCARD\nFN:Zoë Ngô\n".as_bytes(), &ctx()).unwrap();
        assert_eq!(kinds(&items), vec![("contact", "Zoë Ngô".to_owned())]);
    }
}
