//! The traffic mix: which requests of a run are text SMS, MMS or voice notes, and which media
//! each one carries. Everything follows from the seed and the request index, so the read-back
//! knows the kind of every message without a record of what was sent.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::payload::splitmix;

/// What a webhook carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Text only.
    Sms,
    /// Text and 1-3 attachments: JPEG images and vCards.
    Mms,
    /// No text, one WAV recording.
    Voice,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 3] = [Kind::Sms, Kind::Mms, Kind::Voice];

    /// The name used in `--mix` and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Sms => "sms",
            Kind::Mms => "mms",
            Kind::Voice => "voice",
        }
    }
}

/// One attachment's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Jpeg,
    Vcard,
    Wav,
}

impl MediaKind {
    /// The `MediaContentTypeN` Twilio declares, and the server's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            MediaKind::Jpeg => "image/jpeg",
            MediaKind::Vcard => "text/vcard",
            MediaKind::Wav => "audio/wav",
        }
    }

    /// The file extension in the media URL, which tells the server what to serve.
    pub fn ext(self) -> &'static str {
        match self {
            MediaKind::Jpeg => "jpg",
            MediaKind::Vcard => "vcf",
            MediaKind::Wav => "wav",
        }
    }

    /// The kind a URL's extension names.
    pub fn from_ext(ext: &str) -> Option<MediaKind> {
        match ext {
            "jpg" => Some(MediaKind::Jpeg),
            "vcf" => Some(MediaKind::Vcard),
            "wav" => Some(MediaKind::Wav),
            _ => None,
        }
    }
}

/// Most attachments of one generated MMS.
pub const MAX_MMS_MEDIA: u64 = 3;

/// Relative weights of the three kinds, e.g. `sms=80,mms=15,voice=5`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Mix {
    sms: u32,
    mms: u32,
    voice: u32,
}

impl Default for Mix {
    /// Text only: the traffic every earlier run sent, and cheap to process.
    fn default() -> Self {
        Mix {
            sms: 100,
            mms: 0,
            voice: 0,
        }
    }
}

impl Mix {
    fn total(&self) -> u64 {
        u64::from(self.sms) + u64::from(self.mms) + u64::from(self.voice)
    }

    /// The weight of `kind`.
    pub fn weight(&self, kind: Kind) -> u32 {
        match kind {
            Kind::Sms => self.sms,
            Kind::Mms => self.mms,
            Kind::Voice => self.voice,
        }
    }

    /// Whether any request carries media (the run then serves it).
    pub fn has_media(&self) -> bool {
        self.mms > 0 || self.voice > 0
    }

    /// The kind of request `i` of a run with `seed`.
    pub fn kind(&self, seed: u64, i: u64) -> Kind {
        // A salt of its own, so the kind does not correlate with the sender or the body.
        let roll = splitmix(splitmix(seed ^ i) ^ 0x6B69_6E64) % self.total().max(1);
        if roll < u64::from(self.sms) {
            Kind::Sms
        } else if roll < u64::from(self.sms) + u64::from(self.mms) {
            Kind::Mms
        } else {
            Kind::Voice
        }
    }

    /// The attachments of request `i`, in `MediaUrlN` order.
    pub fn media(&self, seed: u64, i: u64) -> Vec<MediaKind> {
        match self.kind(seed, i) {
            Kind::Sms => Vec::new(),
            Kind::Voice => vec![MediaKind::Wav],
            Kind::Mms => {
                let r = splitmix(splitmix(seed ^ i) ^ 0x6D_6564_6961);
                let n = 1 + r % MAX_MMS_MEDIA;
                // One bit per attachment: about one in four is a vCard, the rest images.
                (0..n)
                    .map(|k| match (r >> (8 + 2 * k)) & 3 {
                        0 => MediaKind::Vcard,
                        _ => MediaKind::Jpeg,
                    })
                    .collect()
            }
        }
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sms={},mms={},voice={}", self.sms, self.mms, self.voice)
    }
}

/// Why a `--mix` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MixError {
    #[error("mix entry {0:?} is not kind=weight (e.g. sms=80,mms=15,voice=5)")]
    Entry(String),
    #[error("unknown kind {0:?} in the mix; use sms, mms and voice")]
    Kind(String),
    #[error("weight {0:?} in the mix is not a whole number from 0 to 1000000")]
    Weight(String),
    #[error("kind {0} is named twice in the mix")]
    Repeated(&'static str),
    #[error("every weight of the mix is 0; give at least one kind a weight")]
    Empty,
}

impl FromStr for Mix {
    type Err = MixError;

    /// `kind=weight` pairs separated by commas; a kind left out has weight 0.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut mix = Mix {
            sms: 0,
            mms: 0,
            voice: 0,
        };
        let mut seen = Vec::new();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, weight) = entry
                .split_once('=')
                .ok_or_else(|| MixError::Entry(entry.to_owned()))?;
            let kind = Kind::ALL
                .into_iter()
                .find(|k| k.name().eq_ignore_ascii_case(name.trim()))
                .ok_or_else(|| MixError::Kind(name.trim().to_owned()))?;
            let weight: u32 = weight
                .trim()
                .parse()
                .ok()
                .filter(|w| *w <= 1_000_000)
                .ok_or_else(|| MixError::Weight(weight.trim().to_owned()))?;
            if seen.contains(&kind) {
                return Err(MixError::Repeated(kind.name()));
            }
            seen.push(kind);
            match kind {
                Kind::Sms => mix.sms = weight,
                Kind::Mms => mix.mms = weight,
                Kind::Voice => mix.voice = weight,
            }
        }
        if mix.total() == 0 {
            return Err(MixError::Empty);
        }
        Ok(mix)
    }
}

impl TryFrom<String> for Mix {
    type Error = MixError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Mix> for String {
    fn from(m: Mix) -> String {
        m.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_parses_prints_and_refuses_nonsense() {
        let m: Mix = "sms=80, mms=15,voice=5".parse().unwrap();
        assert_eq!(m.to_string(), "sms=80,mms=15,voice=5");
        assert_eq!(m.to_string().parse::<Mix>().unwrap(), m);
        assert_eq!("mms=1".parse::<Mix>().unwrap().weight(Kind::Sms), 0);
        assert_eq!(Mix::default().to_string(), "sms=100,mms=0,voice=0");
        assert!(!Mix::default().has_media());
        assert!(matches!("fax=3".parse::<Mix>(), Err(MixError::Kind(_))));
        assert!(matches!("sms".parse::<Mix>(), Err(MixError::Entry(_))));
        assert!(matches!("sms=-1".parse::<Mix>(), Err(MixError::Weight(_))));
        assert_eq!("sms=0".parse::<Mix>(), Err(MixError::Empty));
        assert_eq!("sms=1,sms=2".parse::<Mix>(), Err(MixError::Repeated("sms")));
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, "\"sms=80,mms=15,voice=5\"");
        assert_eq!(serde_json::from_str::<Mix>(&json).unwrap(), m);
    }

    #[test]
    fn kinds_and_media_follow_the_seed_and_the_weights() {
        let m: Mix = "sms=80,mms=15,voice=5".parse().unwrap();
        let kinds = |seed| (0..20_000).map(|i| m.kind(seed, i)).collect::<Vec<_>>();
        let a = kinds(7);
        assert_eq!(a, kinds(7), "the same seed gives the same traffic");
        assert_ne!(a, kinds(8), "another seed gives other traffic");
        let share = |k| a.iter().filter(|x| **x == k).count() as f64 / a.len() as f64;
        assert!(
            (share(Kind::Sms) - 0.80).abs() < 0.02,
            "{}",
            share(Kind::Sms)
        );
        assert!(
            (share(Kind::Mms) - 0.15).abs() < 0.02,
            "{}",
            share(Kind::Mms)
        );
        assert!((share(Kind::Voice) - 0.05).abs() < 0.01);

        let (mut counts, mut vcards, mut images) = ([0u32; 4], 0, 0);
        for i in 0..20_000 {
            let media = m.media(7, i);
            assert_eq!(media, m.media(7, i));
            match m.kind(7, i) {
                Kind::Sms => assert!(media.is_empty()),
                Kind::Voice => assert_eq!(media, vec![MediaKind::Wav]),
                Kind::Mms => {
                    assert!((1..=3).contains(&media.len()), "{media:?}");
                    counts[media.len()] += 1;
                    vcards += media.iter().filter(|k| **k == MediaKind::Vcard).count();
                    images += media.iter().filter(|k| **k == MediaKind::Jpeg).count();
                }
            }
        }
        assert!(counts[1..].iter().all(|c| *c > 500), "{counts:?}");
        assert!(
            vcards > 0 && images > 2 * vcards,
            "{vcards} vCards, {images} images"
        );

        let text_only = Mix::default();
        assert!((0..1000).all(|i| text_only.kind(7, i) == Kind::Sms));
        let voice_only: Mix = "voice=1".parse().unwrap();
        assert!((0..1000).all(|i| voice_only.kind(7, i) == Kind::Voice));
    }
}
