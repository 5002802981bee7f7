//! What kind of network an IP address belongs to, so the outbound policy can
//! keep tenant-controlled requests off the hub's own network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    /// Reachable on the internet: always allowed.
    Public,
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// RFC 1918, carrier-grade NAT (100.64.0.0/10), unique-local (fc00::/7).
    Private,
    /// 169.254.0.0/16, fe80::/10.
    LinkLocal,
    /// Cloud instance metadata and platform endpoints (169.254.169.254,
    /// fd00:ec2::254, 100.100.100.200, 168.63.129.16): never reachable.
    Metadata,
    /// 0.0.0.0/8, ::, multicast, broadcast, documentation and reserved ranges.
    Reserved,
}

impl AddressKind {
    /// Loopback and private networks are reachable only on a hub started
    /// with `--allow-private-network`; link-local, metadata and reserved
    /// addresses never are (nothing legitimate lives there for a tenant).
    pub fn allowed(self, allow_private_network: bool) -> bool {
        match self {
            AddressKind::Public => true,
            AddressKind::Loopback | AddressKind::Private => allow_private_network,
            AddressKind::LinkLocal | AddressKind::Metadata | AddressKind::Reserved => false,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            AddressKind::Public => "a public address",
            AddressKind::Loopback => "a loopback address",
            AddressKind::Private => "a private network address",
            AddressKind::LinkLocal => "a link-local address",
            AddressKind::Metadata => "a cloud metadata address",
            AddressKind::Reserved => "a reserved or non-unicast address",
        }
    }
}

pub fn classify(ip: IpAddr) -> AddressKind {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressKind {
    let [a, b, c, d] = ip.octets();
    match (a, b, c, d) {
        (169, 254, 169, 254) | (100, 100, 100, 200) | (168, 63, 129, 16) => AddressKind::Metadata,
        (0, ..) => AddressKind::Reserved,
        (127, ..) => AddressKind::Loopback,
        (10, ..) | (192, 168, ..) => AddressKind::Private,
        (172, 16..=31, ..) => AddressKind::Private,
        (100, 64..=127, ..) => AddressKind::Private,
        (169, 254, ..) => AddressKind::LinkLocal,
        // IETF protocol assignments, documentation, benchmarking.
        (192, 0, 0, _) | (192, 0, 2, _) | (198, 18..=19, ..) | (198, 51, 100, _) | (203, 0, 113, _) => {
            AddressKind::Reserved
        }
        (224..=255, ..) => AddressKind::Reserved,
        _ => AddressKind::Public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressKind {
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    let s = ip.segments();
    if ip == Ipv6Addr::LOCALHOST {
        return AddressKind::Loopback;
    }
    if s == [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x254] {
        return AddressKind::Metadata;
    }
    match s[0] {
        _ if ip.is_unspecified() => AddressKind::Reserved,
        // The rest of ::/96 (IPv4-compatible, deprecated) and other ::/8 forms.
        0x0000 => AddressKind::Reserved,
        0xfe80..=0xfebf => AddressKind::LinkLocal,
        // Site-local (deprecated) still routes inside some networks.
        0xfec0..=0xfeff => AddressKind::Private,
        0xfc00..=0xfdff => AddressKind::Private,
        0xff00..=0xffff => AddressKind::Reserved,
        // Documentation, and Teredo, whose inner address cannot be trusted.
        0x2001 if s[1] == 0x0db8 || s[1] == 0 => AddressKind::Reserved,
        _ => AddressKind::Public,
    }
}

/// The IPv4 address inside an IPv6 one that reaches it: IPv4-mapped
/// (::ffff:a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002::/16).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => Some(v4(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(v4(hi, lo)),
        [0x2002, hi, lo, ..] => Some(v4(hi, lo)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: &str) -> AddressKind {
        classify(s.parse().expect("an address"))
    }

    #[test]
    fn loopback_private_and_metadata_addresses_are_recognised() {
        assert_eq!(kind("127.0.0.1"), AddressKind::Loopback);
        assert_eq!(kind("127.3.4.5"), AddressKind::Loopback);
        assert_eq!(kind("::1"), AddressKind::Loopback);
        assert_eq!(kind("10.0.0.1"), AddressKind::Private);
        assert_eq!(kind("172.16.0.1"), AddressKind::Private);
        assert_eq!(kind("172.31.255.255"), AddressKind::Private);
        assert_eq!(kind("192.168.1.1"), AddressKind::Private);
        assert_eq!(kind("100.64.0.1"), AddressKind::Private);
        assert_eq!(kind("fd00::1"), AddressKind::Private);
        assert_eq!(kind("fc00::1"), AddressKind::Private);
        assert_eq!(kind("169.254.169.254"), AddressKind::Metadata);
        assert_eq!(kind("fd00:ec2::254"), AddressKind::Metadata);
        assert_eq!(kind("100.100.100.200"), AddressKind::Metadata);
        assert_eq!(kind("169.254.1.1"), AddressKind::LinkLocal);
        assert_eq!(kind("fe80::1"), AddressKind::LinkLocal);
    }

    #[test]
    fn ipv4_inside_ipv6_is_judged_as_ipv4() {
        assert_eq!(kind("::ffff:127.0.0.1"), AddressKind::Loopback);
        assert_eq!(kind("::ffff:169.254.169.254"), AddressKind::Metadata);
        assert_eq!(kind("::ffff:10.1.2.3"), AddressKind::Private);
        assert_eq!(kind("64:ff9b::a9fe:a9fe"), AddressKind::Metadata);
        assert_eq!(kind("2002:7f00:1::"), AddressKind::Loopback);
        assert_eq!(kind("::ffff:8.8.8.8"), AddressKind::Public);
    }

    #[test]
    fn unspecified_multicast_and_broadcast_are_reserved() {
        for a in
            ["0.0.0.0", "0.1.2.3", "224.0.0.1", "239.255.255.250", "255.255.255.255", "::", "ff02::1", "::127.0.0.1"]
        {
            assert_eq!(kind(a), AddressKind::Reserved, "{a}");
        }
    }

    #[test]
    fn public_addresses_pass_and_the_flag_opens_only_loopback_and_private() {
        assert_eq!(kind("93.184.216.34"), AddressKind::Public);
        assert_eq!(kind("2606:4700::1111"), AddressKind::Public);
        assert_eq!(kind("172.32.0.1"), AddressKind::Public);
        assert!(AddressKind::Loopback.allowed(true) && !AddressKind::Loopback.allowed(false));
        assert!(AddressKind::Private.allowed(true) && !AddressKind::Private.allowed(false));
        for k in [AddressKind::LinkLocal, AddressKind::Metadata, AddressKind::Reserved] {
            assert!(!k.allowed(true), "{k:?}");
        }
    }
}
