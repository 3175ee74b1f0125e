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

/// Build request `i` of a run with `seed`, signed for `url` with `token`.
pub fn webhook(seed: u64, i: u64, senders: u64, url: &str, token: &str) -> Webhook {
    let mixed = splitmix(seed ^ i);
    let sid = format!("SM{:016x}{:016x}", seed, i);
    let from = format!("+1510{:07}", mixed % senders.max(1));
    let body = BODIES[(mixed >> 32) as usize % BODIES.len()];
    let params: Vec<(String, String)> = [
        ("AccountSid", "ACloadtest0000000000000000000000000"),
        ("ApiVersion", "2010-04-01"),
        ("Body", body),
        ("From", from.as_str()),
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

fn splitmix(mut x: u64) -> u64 {
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
        let a = webhook(7, 3, 100, "http://x/h", "t");
        let b = webhook(7, 3, 100, "http://x/h", "t");
        assert_eq!(a.body, b.body);
        assert_eq!(a.signature, b.signature);
        let c = webhook(7, 4, 100, "http://x/h", "t");
        assert!(
            c.body
                .contains("MessageSid=SM00000000000000070000000000000004"),
            "{}",
            c.body
        );
        assert_ne!(c.signature, a.signature);
    }
}
