//! Which IP addresses the media fetcher may connect to: never loopback, private, link-local,
//! cloud metadata or other internal ranges, however they are spelled, unless configured.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is refused, or `None` when it is a public unicast address.
pub fn forbidden_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => {
            // ::ffff:10.0.0.1 and friends reach IPv4 hosts: judge the IPv4 address.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_reason(v4).or(Some("IPv4-mapped address"));
            }
            v6_reason(v6)
        }
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) {
        Some("cloud metadata address")
    } else if ip.is_loopback() {
        Some("loopback address")
    } else if ip.is_private() {
        Some("private address")
    } else if ip.is_link_local() {
        Some("link-local address")
    } else if ip.is_unspecified() || o[0] == 0 {
        Some("unspecified address")
    } else if ip.is_broadcast() || ip.is_multicast() || o[0] >= 240 {
        Some("broadcast, multicast or reserved address")
    } else if o[0] == 100 && (64..128).contains(&o[1]) {
        Some("carrier-grade NAT address")
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        Some("IETF protocol assignment address")
    } else if o[0] == 198 && (o[1] == 18 || o[1] == 19) {
        Some("benchmarking address")
    } else {
        None
    }
}

fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    let seg = ip.segments();
    if ip.is_loopback() {
        Some("loopback address")
    } else if ip.is_unspecified() {
        Some("unspecified address")
    } else if ip.is_multicast() {
        Some("multicast address")
    } else if ip.is_unicast_link_local() {
        Some("link-local address")
    } else if ip.is_unique_local() {
        // Includes fd00:ec2::254, the AWS IPv6 metadata endpoint.
        Some("unique local (private) address")
    } else if seg[0] == 0 && seg[1] == 0 && seg[2] == 0 && seg[3] == 0 && seg[4] == 0 && seg[5] == 0
    {
        Some("IPv4-compatible address")
    } else if seg[0] == 0x64 && seg[1] == 0xff9b {
        Some("NAT64 address")
    } else if seg[0] == 0x2002 {
        Some("6to4 address")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(s: &str) -> bool {
        forbidden_reason(s.parse().unwrap()).is_some()
    }

    #[test]
    fn internal_addresses_are_refused_in_every_spelling() {
        for a in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.1.1",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "fc00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::1",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(refused(a), "{a} must be refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for a in [
            "54.172.60.1",
            "8.8.8.8",
            "2600:1f18::1",
            "2a00:1450:4001::1",
        ] {
            assert!(!refused(a), "{a} is public");
        }
    }
}
