//! Content types of attachments.

/// `audio/*`, ignoring case and parameters.
pub fn is_audio(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.len() > "audio/".len() && essence[.."audio/".len()].eq_ignore_ascii_case("audio/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_audio_content_types_are_audio() {
        assert!(is_audio("audio/ogg; codecs=opus"));
        assert!(is_audio("Audio/AMR"));
        assert!(!is_audio("image/jpeg"));
        assert!(!is_audio("audio/"));
        assert!(!is_audio("text/vcard"));
    }
}
