//! Addresses no tenant may make the operator reach unless the administrator says so: the operator's own host
//! (loopback, and "this host" 0.0.0.0, which Linux connects to loopback), link-local (cloud metadata services live
//! there), multicast and broadcast, and the Kubernetes API server, which trusts the operator's own credentials
//! less than its network position in some clusters.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reserved {
    Loopback,
    Unspecified,
    LinkLocal,
    Metadata,
    Multicast,
    ApiServer,
}

impl Reserved {
    /// How refusals name it.
    pub fn describe(self) -> &'static str {
        match self {
            Reserved::Loopback => "a loopback address",
            Reserved::Unspecified => "an unspecified (this-host) address",
            Reserved::LinkLocal => "a link-local address",
            Reserved::Metadata => "a cloud metadata address",
            Reserved::Multicast => "a multicast or broadcast address",
            Reserved::ApiServer => "the Kubernetes API server",
        }
    }
}

/// AWS's IPv6 instance metadata address (its IPv4 one is link-local).
const AWS_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);

/// Why `ip` is reserved, if it is; `api_server` are the API server's addresses. An IPv4 address written as IPv6
/// (`::ffff:127.0.0.1`) is judged as the IPv4 address it reaches.
pub fn reserved(ip: IpAddr, api_server: &[IpAddr]) -> Option<Reserved> {
    let ip = ip.to_canonical();
    if api_server.iter().any(|a| a.to_canonical() == ip) {
        return Some(Reserved::ApiServer);
    }
    match ip {
        IpAddr::V4(v4) => reserved_v4(v4),
        IpAddr::V6(v6) => reserved_v6(v6),
    }
}

fn reserved_v4(ip: Ipv4Addr) -> Option<Reserved> {
    if ip.is_loopback() {
        Some(Reserved::Loopback)
    } else if ip.octets()[0] == 0 {
        // 0.0.0.0/8, "this network": a connection to 0.0.0.0 reaches the local host.
        Some(Reserved::Unspecified)
    } else if ip.is_link_local() {
        Some(if ip == Ipv4Addr::new(169, 254, 169, 254) { Reserved::Metadata } else { Reserved::LinkLocal })
    } else if ip.is_multicast() || ip.is_broadcast() {
        Some(Reserved::Multicast)
    } else {
        None
    }
}

fn reserved_v6(ip: Ipv6Addr) -> Option<Reserved> {
    if ip.is_loopback() {
        Some(Reserved::Loopback)
    } else if ip.is_unspecified() {
        Some(Reserved::Unspecified)
    } else if ip.is_unicast_link_local() {
        Some(Reserved::LinkLocal)
    } else if ip == AWS_METADATA_V6 {
        Some(Reserved::Metadata)
    } else if ip.is_multicast() {
        Some(Reserved::Multicast)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ranges_are_named_and_others_pass() {
        let api: [IpAddr; 1] = ["10.96.0.1".parse().unwrap()];
        let table = [
            ("127.0.0.1", Some(Reserved::Loopback)),
            ("127.255.0.9", Some(Reserved::Loopback)),
            ("::1", Some(Reserved::Loopback)),
            ("::ffff:127.0.0.1", Some(Reserved::Loopback)),
            ("0.0.0.0", Some(Reserved::Unspecified)),
            ("0.1.2.3", Some(Reserved::Unspecified)),
            ("::", Some(Reserved::Unspecified)),
            ("169.254.169.254", Some(Reserved::Metadata)),
            ("fd00:ec2::254", Some(Reserved::Metadata)),
            ("169.254.3.4", Some(Reserved::LinkLocal)),
            ("fe80::1", Some(Reserved::LinkLocal)),
            ("224.0.0.1", Some(Reserved::Multicast)),
            ("255.255.255.255", Some(Reserved::Multicast)),
            ("ff02::1", Some(Reserved::Multicast)),
            ("10.96.0.1", Some(Reserved::ApiServer)),
            ("::ffff:10.96.0.1", Some(Reserved::ApiServer)),
            ("10.96.0.2", None),
            ("192.168.1.1", None),
            ("8.8.8.8", None),
            ("2001:db8::1", None),
            ("fd00::1", None),
        ];
        for (ip, want) in table {
            assert_eq!(reserved(ip.parse().unwrap(), &api), want, "{ip}");
        }
    }
}
