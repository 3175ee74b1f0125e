//! Twilio's `X-Twilio-Signature`: HMAC-SHA1 over the URL plus the sorted POST parameters.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

type HmacSha1 = Hmac<Sha1>;

/// Compute the signature Twilio would send for `url` and `params`.
///
/// Twilio's helper libraries sort parameter names, and for a repeated name its distinct
/// values, then append `name + value` to the URL with no separators.
pub fn compute(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    sorted.sort_unstable();
    sorted.dedup();
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha1::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key");
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Does `signature` match, for the URL as given or with its default port added or removed?
///
/// Twilio signs the URL exactly as it was configured; proxies and load balancers may add or
/// strip `:443`/`:80`, so Twilio's own validators accept both spellings.
pub fn is_valid(auth_token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    url_variants(url).iter().any(|candidate| {
        let expected = compute(auth_token, candidate, params);
        bool::from(expected.as_bytes().ct_eq(signature.trim().as_bytes()))
    })
}

/// The URLs a request received at `received` (public URL, path and query) may have been
/// signed with, given the webhook URLs configured on Twilio.
///
/// Twilio signs the URL as configured, and a configured URL may end in a connection-overrides
/// fragment (`#rc=3&rp=5xx`) that never reaches us. Twilio's helper libraries sign whatever
/// URL they are handed, fragment included, so the check tries the received URL as it is and
/// with each configured fragment; a configured URL whose path and query are the received ones
/// (a fallback URL on another host) is tried as configured, with and without its fragment.
/// Every candidate still needs the auth token, so none of them opens a way to forge.
pub fn candidate_urls(received: &str, configured: &[String]) -> Vec<String> {
    let mut out = vec![received.to_string()];
    let mut push = |u: String| {
        if !out.contains(&u) {
            out.push(u);
        }
    };
    let received_tail = path_and_query(received);
    for c in configured {
        let (without, fragment) = match c.split_once('#') {
            Some((w, f)) => (w, Some(f)),
            None => (c.as_str(), None),
        };
        if let Some(f) = fragment {
            push(format!("{received}#{f}"));
        }
        if path_and_query(without) == received_tail {
            push(without.to_string());
            push(c.clone());
        }
    }
    out
}

/// Does `signature` match any of these URLs (each with and without its default port)?
pub fn is_valid_for_any(
    auth_token: &str,
    urls: &[String],
    params: &[(String, String)],
    signature: &str,
) -> bool {
    urls.iter()
        .any(|u| is_valid(auth_token, u, params, signature))
}

/// Path and query of a URL, without scheme, authority or fragment (`/` when empty).
fn path_and_query(url: &str) -> &str {
    let tail = match authority_bounds(url) {
        Some((_, end)) => &url[end..],
        None => url,
    };
    let tail = tail.split('#').next().unwrap_or("");
    if tail.is_empty() {
        "/"
    } else {
        tail
    }
}

fn url_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_string()];
    let Ok(parsed) = url::Url::parse(url) else {
        return out;
    };
    // `url::Url` drops a port equal to the scheme default when serialising, so the variants
    // are built on the original text.
    if url_has_explicit_port(url) {
        out.extend(strip_port(url));
    } else if let Some(default_port) = parsed.port_or_known_default() {
        out.push(with_port(url, default_port));
    }
    out
}

fn authority_bounds(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let rest = &url[start..];
    let end = rest.find(['/', '?', '#']).map_or(url.len(), |i| start + i);
    Some((start, end))
}

fn url_has_explicit_port(url: &str) -> bool {
    authority_bounds(url)
        .map(|(s, e)| {
            let host = &url[s..e];
            let host = host.rsplit('@').next().unwrap_or(host);
            // An IPv6 literal has colons inside brackets; a port follows the closing bracket.
            let after = host.rfind(']').map_or(host, |i| &host[i + 1..]);
            after.contains(':')
        })
        .unwrap_or(false)
}

fn strip_port(url: &str) -> Option<String> {
    let (s, e) = authority_bounds(url)?;
    let authority = &url[s..e];
    let colon = authority.rfind(':')?;
    Some(format!("{}{}{}", &url[..s], &authority[..colon], &url[e..]))
}

fn with_port(url: &str, port: u16) -> String {
    match authority_bounds(url) {
        Some((_, e)) => format!("{}:{}{}", &url[..e], port, &url[e..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn twilio_example_params() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675310"),
            ("Digits", "1234"),
            ("From", "+14158675310"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn matches_twilios_published_example() {
        // Twilio's security documentation: token 12345, this URL and these parameters.
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let sig = compute("12345", url, &twilio_example_params());
        assert_eq!(sig, "GvWf1cFY/Q7PnoempGyD5oXAezc=");
        assert!(is_valid("12345", url, &twilio_example_params(), &sig));
    }

    #[test]
    fn parameter_order_on_the_wire_does_not_matter() {
        let mut params = twilio_example_params();
        params.reverse();
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert!(is_valid(
            "12345",
            url,
            &params,
            "GvWf1cFY/Q7PnoempGyD5oXAezc="
        ));
    }

    #[test]
    fn default_port_is_accepted_either_way() {
        let params = twilio_example_params();
        let signed_without = compute(
            "12345",
            "https://mycompany.com/myapp.php?foo=1&bar=2",
            &params,
        );
        assert!(is_valid(
            "12345",
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            &params,
            &signed_without
        ));
        let signed_with = compute(
            "12345",
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            &params,
        );
        assert!(is_valid(
            "12345",
            "https://mycompany.com/myapp.php?foo=1&bar=2",
            &params,
            &signed_with
        ));
        let http = compute("12345", "http://mycompany.com:80/hook", &params);
        assert!(is_valid(
            "12345",
            "http://mycompany.com/hook",
            &params,
            &http
        ));
    }

    #[test]
    fn forged_or_altered_requests_fail() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let params = twilio_example_params();
        let sig = compute("12345", url, &params);
        assert!(!is_valid("wrong-token", url, &params, &sig));
        assert!(!is_valid(
            "12345",
            "https://mycompany.com/myapp.php?foo=1",
            &params,
            &sig
        ));
        assert!(!is_valid("12345", url, &params[1..], &sig));
        let mut tampered = params.clone();
        tampered[2].1 = "9999".into();
        assert!(!is_valid("12345", url, &tampered, &sig));
        assert!(!is_valid("12345", url, &params, ""));
    }

    #[test]
    fn repeated_keys_are_all_signed() {
        let url = "https://example.com/hook";
        let a = vec![
            ("K".to_string(), "b".to_string()),
            ("K".to_string(), "a".to_string()),
        ];
        let b = vec![
            ("K".to_string(), "a".to_string()),
            ("K".to_string(), "b".to_string()),
        ];
        assert_eq!(compute("t", url, &a), compute("t", url, &b));
        assert_ne!(compute("t", url, &a), compute("t", url, &a[..1]));
    }

    /// Signatures computed by Twilio's own helper library, twilio-python 9.13.0
    /// (`RequestValidator("12345").compute_signature(url, params)`), for URLs that end in
    /// connection overrides. Regenerate with `tests/fixtures/twilio_signatures.py`.
    const FRAGMENT: &str = "ct=3000&rt=5000&tt=15000&rc=3&rp=ct,rt,5xx";

    fn inbound_params() -> Vec<(String, String)> {
        [
            ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
            ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
            ("From", "+15105550142"),
            ("To", "+14155550100"),
            ("Body", "met Dana at the expo"),
            ("NumMedia", "0"),
            ("NumSegments", "1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn a_url_with_overrides_is_signed_fragment_included_as_twilios_library_does() {
        let configured = format!("https://sms.example.com/webhooks/twilio/messages#{FRAGMENT}");
        // Our computation agrees with the reference library byte for byte.
        assert_eq!(
            compute("12345", &configured, &inbound_params()),
            "7AXj4e+x5x/8A1jjS/h0T97KZLI="
        );
        // The fragment never reaches the server: the request arrives without it.
        let received = "https://sms.example.com/webhooks/twilio/messages";
        let candidates = candidate_urls(received, std::slice::from_ref(&configured));
        for sig in [
            "7AXj4e+x5x/8A1jjS/h0T97KZLI=", // signed with the fragment
            "KEQ0aJ1bbgIknD3u3kP62QG0B6s=", // with the fragment and :443
            "Kv0p4zYn1ErfuCWAVIc92Q5wTos=", // without the fragment
        ] {
            assert!(
                is_valid_for_any("12345", &candidates, &inbound_params(), sig),
                "{sig}"
            );
        }
        // Without the configured fragment, the fragment-signed request cannot be checked.
        assert!(!is_valid(
            "12345",
            received,
            &inbound_params(),
            "7AXj4e+x5x/8A1jjS/h0T97KZLI="
        ));
        // And the fragment is no licence to forge: a wrong token or a changed body still fails.
        assert!(!is_valid_for_any(
            "54321",
            &candidates,
            &inbound_params(),
            "7AXj4e+x5x/8A1jjS/h0T97KZLI="
        ));
        let mut tampered = inbound_params();
        tampered[4].1 = "met Dana at the expo!".into();
        assert!(!is_valid_for_any(
            "12345",
            &candidates,
            &tampered,
            "7AXj4e+x5x/8A1jjS/h0T97KZLI="
        ));
    }

    #[test]
    fn a_status_callback_query_keeps_its_place_before_the_fragment() {
        let configured = vec![format!(
            "https://sms.example.com/webhooks/twilio/status#{FRAGMENT}"
        )];
        let received = "https://sms.example.com/webhooks/twilio/status?event_id=e-1&user_id=u-1";
        let candidates = candidate_urls(received, &configured);
        assert!(is_valid_for_any(
            "12345",
            &candidates,
            &inbound_params(),
            "j83tSow3W5e4OTmXl1pNpdBOAPI="
        ));
    }

    #[test]
    fn a_fallback_url_on_another_host_is_tried_as_configured() {
        let fallback = format!("https://fallback.example.net/webhooks/twilio/messages#{FRAGMENT}");
        let sig = compute("12345", &fallback, &inbound_params());
        let received = "https://sms.example.com/webhooks/twilio/messages";
        assert!(!is_valid("12345", received, &inbound_params(), &sig));
        let candidates = candidate_urls(received, &[fallback]);
        assert!(is_valid_for_any(
            "12345",
            &candidates,
            &inbound_params(),
            &sig
        ));
        // A configured URL for another route lends it nothing but its fragment.
        let other = vec!["https://fallback.example.net/elsewhere".to_string()];
        assert_eq!(candidate_urls(received, &other), vec![received.to_string()]);
    }

    #[test]
    fn non_default_port_is_kept() {
        let params = twilio_example_params();
        let sig = compute("12345", "https://mycompany.com:8443/x", &params);
        assert!(!is_valid("12345", "https://mycompany.com/x", &params, &sig));
        assert!(is_valid(
            "12345",
            "https://mycompany.com:8443/x",
            &params,
            &sig
        ));
    }
}
