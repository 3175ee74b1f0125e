//! Do the first bytes agree with the declared content type? A sender cannot pass an
//! executable off as `image/jpeg`.

use super::config::essence;

/// Bytes needed to sniff.
pub const SNIFF_LEN: usize = 512;

/// Whether `head` (the first bytes, up to `SNIFF_LEN`) is plausibly `declared`.
/// Returns what the bytes look like when they disagree.
pub fn check(declared: &str, head: &[u8]) -> Result<(), String> {
    let declared = essence(declared);
    if is_vcard_type(&declared) {
        return if looks_like_vcard(head) {
            Ok(())
        } else {
            Err(describe(head))
        };
    }
    let Some(kind) = infer::get(head) else {
        return Err(describe(head));
    };
    let sniffed = kind.mime_type();
    let agrees = match declared.split('/').next().unwrap_or("") {
        "image" => sniffed.starts_with("image/"),
        // Voice notes come in audio containers that sniff as video (3GPP, MP4) or as Ogg.
        "audio" => {
            sniffed.starts_with("audio/")
                || matches!(
                    sniffed,
                    "video/3gpp"
                        | "video/mp4"
                        | "video/quicktime"
                        | "application/ogg"
                        | "video/ogg"
                )
        }
        _ => sniffed == declared,
    };
    if agrees {
        Ok(())
    } else {
        Err(sniffed.to_string())
    }
}

fn is_vcard_type(ct: &str) -> bool {
    matches!(ct, "text/vcard" | "text/x-vcard" | "text/directory")
}

fn looks_like_vcard(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let t = text.trim_start_matches('\u{feff}').trim_start();
    // Compare bytes: the head may end inside a multi-byte character.
    t.as_bytes()
        .get(..11)
        .is_some_and(|b| b.eq_ignore_ascii_case(b"BEGIN:VCARD"))
}

fn describe(head: &[u8]) -> String {
    infer::get(head).map_or_else(
        || "unrecognised bytes".to_string(),
        |k| k.mime_type().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F', 0];
    const PDF: &[u8] = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n";
    const OGG: &[u8] = b"OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00";

    #[test]
    fn matching_bytes_pass() {
        assert!(check("image/jpeg", JPEG).is_ok());
        assert!(check("application/pdf", PDF).is_ok());
        assert!(check("audio/ogg", OGG).is_ok());
        assert!(check("text/vcard", b"BEGIN:VCARD\r\nVERSION:3.0\r\n").is_ok());
        assert!(check(
            "text/x-vcard; charset=utf-8",
            b"\xef\xbb\xbfbegin:vcard\r\n"
        )
        .is_ok());
    }

    #[test]
    fn lies_are_caught() {
        assert_eq!(check("image/jpeg", PDF), Err("application/pdf".into()));
        assert!(check("text/vcard", JPEG).is_err());
        assert!(check("audio/ogg", b"MZ\x90\x00\x03\x00\x00\x00").is_err());
        assert!(check("image/png", b"just some text").is_err());
    }
}
