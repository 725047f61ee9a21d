//! The IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890),
//! plus multicast and, for IPv6, everything outside global unicast.
//!
//! A server that audits domains typed in by visitors must not let a domain
//! point it at the machine itself, at the operator's internal network, or
//! at addresses no public mail server can have: an MX (or a nameserver)
//! resolving to 127.0.0.1 or 10.0.0.1 is a way to make the server knock on
//! doors its operator never opened. This table says which addresses those
//! are, and why, so a refusal can name the registry entry.

use std::net::IpAddr;
use std::sync::LazyLock;

use ipnet::IpNet;

/// One registry entry.
#[derive(Debug, PartialEq, Eq)]
pub struct Block {
    pub prefix: &'static str,
    pub name: &'static str,
    pub rfc: &'static str,
}

const fn b(prefix: &'static str, name: &'static str, rfc: &'static str) -> Block {
    Block { prefix, name, rfc }
}

/// The registries as of 2025, with multicast (RFC 5771, RFC 4291) and the
/// IPv6 space outside 2000::/3 (not allocated for global unicast: it covers
/// the IPv4-compatible form and whatever IANA adds later below it).
/// Entries marked "globally reachable" by IANA (AS112, AMT, NAT64's
/// well-known prefix) are included too: no mail server lives there, and
/// 64:ff9b::/96 or 2002::/16 embed an IPv4 address that may be private.
pub const BLOCKS: &[Block] = &[
    b("0.0.0.0/8", "\"this network\"", "RFC 791"),
    b("10.0.0.0/8", "private use", "RFC 1918"),
    b("100.64.0.0/10", "shared address space (CGNAT)", "RFC 6598"),
    b("127.0.0.0/8", "loopback", "RFC 1122"),
    b("169.254.0.0/16", "link local", "RFC 3927"),
    b("172.16.0.0/12", "private use", "RFC 1918"),
    b("192.0.0.0/24", "IETF protocol assignments", "RFC 6890"),
    b("192.0.2.0/24", "documentation (TEST-NET-1)", "RFC 5737"),
    b("192.31.196.0/24", "AS112", "RFC 7535"),
    b("192.52.193.0/24", "AMT", "RFC 7450"),
    b(
        "192.88.99.0/24",
        "6to4 relay anycast (deprecated)",
        "RFC 7526",
    ),
    b("192.168.0.0/16", "private use", "RFC 1918"),
    b("192.175.48.0/24", "AS112 direct delegation", "RFC 7534"),
    b("198.18.0.0/15", "benchmarking", "RFC 2544"),
    b("198.51.100.0/24", "documentation (TEST-NET-2)", "RFC 5737"),
    b("203.0.113.0/24", "documentation (TEST-NET-3)", "RFC 5737"),
    b("224.0.0.0/4", "multicast", "RFC 5771"),
    b("240.0.0.0/4", "reserved", "RFC 1112"),
    b("255.255.255.255/32", "limited broadcast", "RFC 919"),
    b(
        "::/8",
        "reserved (unspecified, loopback, IPv4-compatible)",
        "RFC 4291",
    ),
    b("::/128", "unspecified", "RFC 4291"),
    b("::1/128", "loopback", "RFC 4291"),
    b("::ffff:0:0/96", "IPv4-mapped", "RFC 4291"),
    b("64:ff9b::/96", "IPv4/IPv6 translation", "RFC 6052"),
    b(
        "64:ff9b:1::/48",
        "IPv4/IPv6 translation (local use)",
        "RFC 8215",
    ),
    b("100::/64", "discard only", "RFC 6666"),
    b("2001::/23", "IETF protocol assignments", "RFC 2928"),
    b("2001::/32", "Teredo", "RFC 4380"),
    b("2001:2::/48", "benchmarking", "RFC 5180"),
    b("2001:3::/32", "AMT", "RFC 7450"),
    b("2001:4:112::/48", "AS112", "RFC 7535"),
    b("2001:10::/28", "ORCHID (deprecated)", "RFC 4843"),
    b("2001:20::/28", "ORCHIDv2", "RFC 7343"),
    b("2001:30::/28", "drone remote ID", "RFC 9374"),
    b("2001:db8::/32", "documentation", "RFC 3849"),
    b("2002::/16", "6to4", "RFC 3056"),
    b("2620:4f:8000::/48", "AS112 direct delegation", "RFC 7534"),
    b("3fff::/20", "documentation", "RFC 9637"),
    b("5f00::/16", "SRv6 SIDs", "RFC 9602"),
    b("fc00::/7", "unique local", "RFC 4193"),
    b("fe80::/10", "link local", "RFC 4291"),
    b("ff00::/8", "multicast", "RFC 4291"),
];

/// IPv6 addresses outside this prefix are not global unicast.
const GLOBAL_UNICAST_V6: &str = "2000::/3";
static NOT_GLOBAL_UNICAST: Block = b("outside 2000::/3", "not global unicast", "RFC 4291");

/// The table, parsed once.
static NETS: LazyLock<Vec<(IpNet, &'static Block)>> =
    LazyLock::new(|| BLOCKS.iter().map(|b| (net(b.prefix), b)).collect());

fn net(prefix: &str) -> IpNet {
    // The table is constant and tested to parse.
    prefix
        .parse()
        .expect("a valid prefix in the special-purpose table")
}

/// The most specific registry entry that holds `ip`, if any.
pub fn block(ip: IpAddr) -> Option<&'static Block> {
    let found = NETS
        .iter()
        .filter(|(n, _)| n.contains(&ip))
        .max_by_key(|(n, _)| n.prefix_len())
        .map(|(_, b)| *b);
    match (found, ip) {
        (Some(b), _) => Some(b),
        (None, IpAddr::V6(_)) if !net(GLOBAL_UNICAST_V6).contains(&ip) => Some(&NOT_GLOBAL_UNICAST),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(ip: &str) -> Option<&'static str> {
        block(ip.parse().unwrap()).map(|b| b.name)
    }

    #[test]
    fn every_prefix_parses() {
        for b in BLOCKS {
            assert!(b.prefix.parse::<IpNet>().is_ok(), "{}", b.prefix);
            assert!(b.rfc.starts_with("RFC "), "{}", b.prefix);
        }
        net(GLOBAL_UNICAST_V6);
    }

    #[test]
    fn refuses_what_a_visitor_must_not_reach() {
        assert_eq!(name("127.0.0.1"), Some("loopback"));
        assert_eq!(name("10.0.0.1"), Some("private use"));
        assert_eq!(name("172.31.255.255"), Some("private use"));
        assert_eq!(name("192.168.1.1"), Some("private use"));
        assert_eq!(name("100.100.0.1"), Some("shared address space (CGNAT)"));
        assert_eq!(name("169.254.169.254"), Some("link local"));
        assert_eq!(name("192.0.2.25"), Some("documentation (TEST-NET-1)"));
        assert_eq!(name("198.51.100.53"), Some("documentation (TEST-NET-2)"));
        assert_eq!(name("203.0.113.7"), Some("documentation (TEST-NET-3)"));
        assert_eq!(name("0.0.0.0"), Some("\"this network\""));
        assert_eq!(name("239.1.1.1"), Some("multicast"));
        assert_eq!(name("255.255.255.255"), Some("limited broadcast"));
        assert_eq!(name("::1"), Some("loopback"));
        assert_eq!(name("::"), Some("unspecified"));
        assert_eq!(name("::ffff:127.0.0.1"), Some("IPv4-mapped"));
        assert_eq!(
            name("::127.0.0.1"),
            Some("reserved (unspecified, loopback, IPv4-compatible)")
        );
        assert_eq!(name("fd00::1"), Some("unique local"));
        assert_eq!(name("fe80::1"), Some("link local"));
        assert_eq!(name("ff02::1"), Some("multicast"));
        assert_eq!(name("2001:db8:25::1"), Some("documentation"));
        assert_eq!(name("2002:7f00:1::1"), Some("6to4"));
        assert_eq!(name("64:ff9b::a00:1"), Some("IPv4/IPv6 translation"));
        assert_eq!(name("4000::1"), Some("not global unicast"));
    }

    #[test]
    fn most_specific_entry_wins() {
        assert_eq!(name("2001:0:1::1"), Some("Teredo"));
        assert_eq!(name("2001:1ff::1"), Some("IETF protocol assignments"));
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "192.0.3.1",
            "172.32.0.1",
            "100.128.0.1",
            "2a00:1450:4001::1b",
            "2001:4860:4860::8888",
        ] {
            assert_eq!(name(ip), None, "{ip}");
        }
    }
}
