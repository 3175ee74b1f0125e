//! Deterministic, correctly signed Twilio webhooks: the same seed gives the same traffic.

use smsflow::ingress::signature;

/// One webhook to send.
pub struct Webhook {
    pub body: String,
    pub signature: String,
}

const BODIES: &[&str] = &[
    "met Dana Reyes at the Oakland expo, her cell is 510-555-0142, follow up next Tuesday 3pm #lead",
    "call Priya from Acme re pricing tomorrow at 5, priya@acme.io",
    "lunch with Sam at Tartine, 600 Guerrero St, Friday noon #personal",
    "this is Jordan Lee, new number 415-555-0199, see acme.io/pricing",
    "reminder: renew passport by June 3rd #todo",
];

/// The MessageSid of request `i` of a run with `seed`: unique, and known without the request.
pub fn message_sid(seed: u64, i: u64) -> String {
    format!("SM{:016x}{:016x}", seed, i)
}

/// The request index a MessageSid of this `seed` was made for, if it is one.
pub fn request_index(seed: u64, sid: &str) -> Option<u64> {
    let hex = sid.strip_prefix("SM")?;
    if hex.len() != 32 || u64::from_str_radix(&hex[..16], 16).ok()? != seed {
        return None;
    }
    u64::from_str_radix(&hex[16..], 16).ok()
}

/// Build request `i` of a run with `seed`, from one of `senders`, signed for `url` with `token`.
pub fn webhook(seed: u64, i: u64, senders: &[String], url: &str, token: &str) -> Webhook {
    let mixed = splitmix(seed ^ i);
    let sid = message_sid(seed, i);
    let from = senders
        .get((mixed % senders.len().max(1) as u64) as usize)
        .map_or("+15102000000", String::as_str);
    let body = BODIES[(mixed >> 32) as usize % BODIES.len()];
    let params: Vec<(String, String)> = [
        ("AccountSid", "ACloadtest0000000000000000000000000"),
        ("ApiVersion", "2010-04-01"),
        ("Body", body),
        ("From", from),
        ("MessageSid", sid.as_str()),
        ("NumMedia", "0"),
        ("NumSegments", "1"),
        ("SmsSid", sid.as_str()),
        ("SmsStatus", "received"),
        ("To", "+14155550100"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let signature = signature::compute(token, url, &params);
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&params)
        .finish();
    Webhook { body, signature }
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
        let a = webhook(7, 3, &from, "http://x/h", "t");
        let b = webhook(7, 3, &from, "http://x/h", "t");
        assert_eq!(a.body, b.body);
        assert_eq!(a.signature, b.signature);
        let c = webhook(7, 4, &from, "http://x/h", "t");
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
}
