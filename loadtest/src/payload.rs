//! Deterministic, correctly signed Twilio webhooks: the same seed gives the same traffic.

use std::sync::Arc;

use smsflow::ingress::signature;

use crate::media;
use crate::mix::{Kind, Mix};

/// One webhook to send.
pub struct Webhook {
    pub body: String,
    pub signature: String,
    pub kind: Kind,
    /// Attachments it names (`NumMedia`).
    pub media: usize,
}

const BODIES: &[&str] = &[
    "met Dana Reyes at the Oakland expo, her cell is 510-555-0142, follow up next Tuesday 3pm #lead",
    "call Priya from Acme re pricing tomorrow at 5, priya@acme.io",
    "lunch with Sam at Tartine, 600 Guerrero St, Friday noon #personal",
    "this is Jordan Lee, new number 415-555-0199, see acme.io/pricing",
    "reminder: renew passport by June 3rd #todo",
];

/// Texts that go with MMS attachments (a voice note has none).
const CAPTIONS: &[&str] = &[
    "",
    "here is the contact I mentioned",
    "photos from the site visit, call me at 510-555-0123",
    "card attached #lead",
];

/// The MessageSid of request `i` of a run with `seed`: unique, and known without the request.
/// Text messages get Twilio's `SM` prefix; messages with media its `MM`.
pub fn message_sid(seed: u64, i: u64) -> String {
    format!("SM{:016x}{:016x}", seed, i)
}

/// The MessageSid of request `i` of a run with `seed`, for a message of `kind`.
pub fn message_sid_of(kind: Kind, seed: u64, i: u64) -> String {
    let prefix = if kind == Kind::Sms { "SM" } else { "MM" };
    format!("{prefix}{:016x}{:016x}", seed, i)
}

/// The request index a MessageSid of this `seed` was made for, if it is one.
pub fn request_index(seed: u64, sid: &str) -> Option<u64> {
    let hex = sid.strip_prefix("SM").or_else(|| sid.strip_prefix("MM"))?;
    if hex.len() != 32 || u64::from_str_radix(&hex[..16], 16).ok()? != seed {
        return None;
    }
    u64::from_str_radix(&hex[16..], 16).ok()
}

/// What a run sends: the seed, the senders, the mix and where its media is served.
#[derive(Debug, Clone)]
pub struct Traffic {
    pub seed: u64,
    pub senders: Arc<Vec<String>>,
    pub mix: Mix,
    /// Base URL of the run's media host; needed when the mix has MMS or voice notes.
    pub media_base: Option<String>,
}

impl Traffic {
    /// Text-only traffic (the default mix).
    pub fn sms(seed: u64, senders: Arc<Vec<String>>) -> Traffic {
        Traffic {
            seed,
            senders,
            mix: Mix::default(),
            media_base: None,
        }
    }

    /// Build request `i`, signed for `url` with `token`.
    pub fn webhook(&self, i: u64, url: &str, token: &str) -> Webhook {
        let seed = self.seed;
        let mixed = splitmix(seed ^ i);
        let kind = self.mix.kind(seed, i);
        let media = self.mix.media(seed, i);
        let sid = message_sid_of(kind, seed, i);
        let from = self
            .senders
            .get((mixed % self.senders.len().max(1) as u64) as usize)
            .map_or("+15102000000", String::as_str);
        let body = match kind {
            Kind::Sms => BODIES[(mixed >> 32) as usize % BODIES.len()],
            Kind::Mms => CAPTIONS[(mixed >> 32) as usize % CAPTIONS.len()],
            Kind::Voice => "",
        };
        let num_media = media.len().to_string();
        let mut params: Vec<(String, String)> = [
            ("AccountSid", "ACloadtest0000000000000000000000000"),
            ("ApiVersion", "2010-04-01"),
            ("Body", body),
            ("From", from),
            ("MessageSid", sid.as_str()),
            ("NumMedia", num_media.as_str()),
            ("NumSegments", "1"),
            ("SmsSid", sid.as_str()),
            ("SmsStatus", "received"),
            ("To", "+14155550100"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let base = self.media_base.as_deref().unwrap_or("http://127.0.0.1:1");
        for (n, m) in media.iter().enumerate() {
            params.push((format!("MediaUrl{n}"), media::url(base, &sid, n, *m)));
            params.push((format!("MediaContentType{n}"), m.content_type().into()));
        }
        let signature = signature::compute(token, url, &params);
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&params)
            .finish();
        Webhook {
            body,
            signature,
            kind,
            media: media.len(),
        }
    }
}

/// A 64-bit mixer (SplitMix64): deterministic spread of seeds and indices.
pub(crate) fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signer_matches_twilios_published_example() {
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675310"),
            ("Digits", "1234"),
            ("From", "+14158675310"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            signature::compute(
                "12345",
                "https://mycompany.com/myapp.php?foo=1&bar=2",
                &params
            ),
            "GvWf1cFY/Q7PnoempGyD5oXAezc="
        );
    }

    #[test]
    fn traffic_is_deterministic_and_sids_unique() {
        let from = crate::senders::senders(100, 7);
        let traffic = Traffic::sms(7, Arc::new(from.clone()));
        let webhook = |i| traffic.webhook(i, "http://x/h", "t");
        let a = webhook(3);
        let b = webhook(3);
        assert_eq!(a.body, b.body);
        assert_eq!(a.signature, b.signature);
        let c = webhook(4);
        assert!(
            c.body
                .contains("MessageSid=SM00000000000000070000000000000004"),
            "{}",
            c.body
        );
        assert_ne!(c.signature, a.signature);
        assert!(from.iter().any(|f| c.body.contains(&f.replace('+', "%2B"))));
        assert_eq!(request_index(7, &message_sid(7, 4)), Some(4));
        assert_eq!(request_index(8, &message_sid(7, 4)), None);
        assert_eq!(request_index(7, "SMnothex"), None);
    }

    #[test]
    fn mms_and_voice_notes_name_their_media_on_the_media_host_and_are_signed() {
        let from = crate::senders::senders(10, 1);
        let traffic = Traffic {
            seed: 9,
            senders: Arc::new(from),
            mix: "mms=3,voice=1".parse().unwrap(),
            media_base: Some("http://127.0.0.1:4567".into()),
        };
        let (mut mms, mut voice) = (0, 0);
        for i in 0..200 {
            let hook = traffic.webhook(i, "http://x/h", "t");
            let params: Vec<(String, String)> = form_urlencoded::parse(hook.body.as_bytes())
                .into_owned()
                .collect();
            assert!(signature::is_valid(
                "t",
                "http://x/h",
                &params,
                &hook.signature
            ));
            let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let sid = get("MessageSid").unwrap();
            assert!(sid.starts_with("MM"), "{sid}");
            assert_eq!(request_index(9, &sid), Some(i));
            let media = traffic.mix.media(9, i);
            assert_eq!(hook.media, media.len());
            assert_eq!(get("NumMedia"), Some(media.len().to_string()));
            for (n, m) in media.iter().enumerate() {
                assert_eq!(
                    get(&format!("MediaUrl{n}")),
                    Some(format!("http://127.0.0.1:4567/media/{sid}/{n}.{}", m.ext()))
                );
                assert_eq!(
                    get(&format!("MediaContentType{n}")).as_deref(),
                    Some(m.content_type())
                );
            }
            match hook.kind {
                Kind::Voice => {
                    voice += 1;
                    assert_eq!(get("Body").as_deref(), Some(""));
                }
                Kind::Mms => mms += 1,
                Kind::Sms => panic!("no text messages in this mix"),
            }
        }
        assert!(mms > 100 && voice > 20, "{mms} MMS, {voice} voice notes");
    }
}
