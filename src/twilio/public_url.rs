//! Can `http.public_url` be the URL Twilio calls? Ingress checks every signature against it,
//! so a wrong one refuses every genuine webhook (403), and a URL Twilio cannot reach loses
//! them all. Checked at start-up; each problem is logged as a warning.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::ConnectionOverrides;

/// One reason the configuration cannot work as Twilio's webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlProblem {
    /// Not an absolute http(s) URL.
    NotAUrl,
    /// `http://`: Twilio's docs ask for HTTPS; the auth-token signed traffic travels in clear.
    NotHttps,
    /// A host Twilio cannot reach from the internet.
    NotPublic(String),
    /// A path before our routes: only right behind a proxy that strips that prefix.
    HasPath(String),
    /// A query or fragment: our route would be appended after it and never match.
    HasQueryOrFragment,
    /// The overrides do not make Twilio retry a 5xx: every 503 loses the message.
    NoRetryOf5xx,
    /// The overrides make Twilio retry a 4xx: a refused (forged, malformed) request is sent again.
    RetriesOf4xx,
    /// Twilio stops waiting before ingress answers 503 (`rt` at or under `kafka.produce_deadline`).
    ReadTimeoutTooShort { rt_ms: u32, deadline: Duration },
    /// The overrides do not parse.
    BadOverrides(String),
}

impl fmt::Display for UrlProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlProblem::NotAUrl => write!(f, "http.public_url is not an absolute http(s) URL; Twilio cannot call it and no signature can match"),
            UrlProblem::NotHttps => write!(f, "http.public_url is plain http: Twilio's webhooks should use https (a trusted certificate, not self-signed)"),
            UrlProblem::NotPublic(host) => write!(f, "http.public_url names {host}, which Twilio cannot reach from the internet: set it to the public https URL Twilio calls"),
            UrlProblem::HasPath(path) => write!(f, "http.public_url has the path {path:?}: signatures are checked against it plus the received path, so this works only behind a proxy that strips {path:?}"),
            UrlProblem::HasQueryOrFragment => write!(f, "http.public_url carries a query or fragment: routes are appended to it, so no webhook URL can match; put connection overrides in twilio.webhooks.overrides"),
            UrlProblem::NoRetryOf5xx => write!(f, "twilio.webhooks.overrides do not retry 5xx (need rc >= 1 and rp with 5xx): every 503 from ingress loses that message"),
            UrlProblem::RetriesOf4xx => write!(f, "twilio.webhooks.overrides retry 4xx (rp has 4xx or all): refused requests (403, 400, 413, 415) are sent again"),
            UrlProblem::ReadTimeoutTooShort { rt_ms, deadline } => write!(f, "twilio.webhooks.overrides rt={rt_ms} ms is not above kafka.produce_deadline ({} ms): Twilio gives up before ingress answers", deadline.as_millis()),
            UrlProblem::BadOverrides(e) => write!(f, "twilio.webhooks.overrides: {e}"),
        }
    }
}

/// Every problem with this public URL, overrides and produce deadline.
pub fn problems(public_url: &str, overrides: &str, produce_deadline: Duration) -> Vec<UrlProblem> {
    let mut out = Vec::new();
    match url::Url::parse(public_url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            if u.scheme() == "http" {
                out.push(UrlProblem::NotHttps);
            }
            if let Some(host) = u.host() {
                if let Some(why) = not_public(&host) {
                    out.push(UrlProblem::NotPublic(why));
                }
            }
            let path = u.path().trim_end_matches('/');
            if !path.is_empty() {
                out.push(UrlProblem::HasPath(path.to_owned()));
            }
            if u.query().is_some() || u.fragment().is_some() || public_url.contains('#') {
                out.push(UrlProblem::HasQueryOrFragment);
            }
        }
        _ => out.push(UrlProblem::NotAUrl),
    }
    match ConnectionOverrides::parse(overrides) {
        Ok(o) => {
            if !o.retries_5xx() {
                out.push(UrlProblem::NoRetryOf5xx);
            }
            if o.retries_4xx() {
                out.push(UrlProblem::RetriesOf4xx);
            }
            if let Some(rt) = o.read_timeout_ms {
                if u128::from(rt) <= produce_deadline.as_millis() {
                    out.push(UrlProblem::ReadTimeoutTooShort {
                        rt_ms: rt,
                        deadline: produce_deadline,
                    });
                }
            }
        }
        Err(e) => out.push(UrlProblem::BadOverrides(e.to_string())),
    }
    out
}

/// Why this host is not reachable from the internet, if it is not.
fn not_public(host: &url::Host<&str>) -> Option<String> {
    match host {
        url::Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            let local_suffix = [".localhost", ".local", ".internal", ".lan", ".home.arpa"]
                .iter()
                .any(|s| d.ends_with(s));
            if d == "localhost" || local_suffix {
                Some(format!("the local name {d}"))
            } else if !d.contains('.') {
                Some(format!("the single-label name {d}"))
            } else {
                None
            }
        }
        url::Host::Ipv4(ip) => private_v4(*ip).then(|| format!("the non-public address {ip}")),
        url::Host::Ipv6(ip) => {
            let mapped = ip.to_ipv4_mapped();
            let private = mapped.map(private_v4).unwrap_or_else(|| private_v6(*ip));
            private.then(|| format!("the non-public address {}", IpAddr::V6(*ip)))
        }
    }
}

fn private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        // 100.64.0.0/10, carrier-grade NAT.
        || (a == 100 && (64..128).contains(&b))
}

fn private_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        // fc00::/7 unique local, fe80::/10 link-local.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = super::super::settings::RECOMMENDED_OVERRIDES;
    const DEADLINE: Duration = Duration::from_secs(3);

    #[test]
    fn a_public_https_origin_with_the_recommended_overrides_is_fine() {
        for url in [
            "https://sms.example.com",
            "https://sms.example.com/",
            "https://sms.example.com:8443",
            "https://203.0.113.7.nip.io",
        ] {
            assert_eq!(problems(url, GOOD, DEADLINE), vec![], "{url}");
        }
    }

    #[test]
    fn local_private_and_plain_http_urls_are_named() {
        let cases = [
            ("http://127.0.0.1:8080", 2),
            ("https://localhost", 1),
            ("https://ingress", 1),
            ("https://10.1.2.3", 1),
            ("https://192.168.0.10", 1),
            ("https://100.64.0.1", 1),
            ("https://169.254.169.254", 1),
            ("https://[::1]", 1),
            ("https://[fd00::1]", 1),
            ("https://[::ffff:10.0.0.1]", 1),
            ("https://svc.cluster.local", 1),
        ];
        for (url, n) in cases {
            let p = problems(url, GOOD, DEADLINE);
            assert_eq!(p.len(), n, "{url}: {p:?}");
            assert!(
                p.iter().any(|p| matches!(p, UrlProblem::NotPublic(_))),
                "{url}: {p:?}"
            );
        }
        assert_eq!(
            problems("http://sms.example.com", GOOD, DEADLINE),
            vec![UrlProblem::NotHttps]
        );
    }

    #[test]
    fn a_path_query_or_fragment_in_the_public_url_is_named() {
        assert_eq!(
            problems("https://sms.example.com/sms/", GOOD, DEADLINE),
            vec![UrlProblem::HasPath("/sms".into())]
        );
        assert_eq!(
            problems("https://sms.example.com#rc=3&rp=5xx", GOOD, DEADLINE),
            vec![UrlProblem::HasQueryOrFragment]
        );
        assert_eq!(
            problems("https://sms.example.com/?a=1", GOOD, DEADLINE),
            vec![UrlProblem::HasQueryOrFragment]
        );
        assert_eq!(
            problems("sms.example.com", GOOD, DEADLINE),
            vec![UrlProblem::NotAUrl]
        );
    }

    #[test]
    fn overrides_that_lose_a_503_or_retry_a_403_or_time_out_first_are_named() {
        let url = "https://sms.example.com";
        assert_eq!(problems(url, "", DEADLINE), vec![UrlProblem::NoRetryOf5xx]);
        assert_eq!(
            problems(url, "rc=3&rp=ct,rt", DEADLINE),
            vec![UrlProblem::NoRetryOf5xx]
        );
        assert_eq!(
            problems(url, "rc=3&rp=all", DEADLINE),
            vec![UrlProblem::RetriesOf4xx]
        );
        assert_eq!(
            problems(url, "rt=3000&rc=3&rp=5xx", DEADLINE),
            vec![UrlProblem::ReadTimeoutTooShort {
                rt_ms: 3000,
                deadline: DEADLINE
            }]
        );
        assert!(matches!(
            problems(url, "rc=10", DEADLINE).as_slice(),
            [UrlProblem::BadOverrides(_)]
        ));
    }
}
