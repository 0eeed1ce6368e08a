//! The PROXY protocol v2 header (`proxy_protocol: v2`) a backend gets before the client's
//! bytes, so it sees the client's address rather than strait's. Built by the `ppp` crate.

use std::net::{SocketAddr, SocketAddrV6};

use ppp::v2::{Builder, Command, Protocol, Version};

/// The header for a TCP connection from `client` to `local` (strait's address it arrived on).
pub(crate) fn v2(client: SocketAddr, local: SocketAddr) -> std::io::Result<Vec<u8>> {
    // Both addresses must be of one family; a v4 client on a v6 socket is written as v6.
    let (client, local) = match (client, local) {
        (SocketAddr::V4(c), SocketAddr::V6(l)) => (v6(c), SocketAddr::V6(l)),
        (SocketAddr::V6(c), SocketAddr::V4(l)) => (SocketAddr::V6(c), v6(l)),
        same => same,
    };
    Builder::with_addresses(
        Version::Two | Command::Proxy,
        Protocol::Stream,
        (client, local),
    )
    .build()
}

fn v6(a: std::net::SocketAddrV4) -> SocketAddr {
    SocketAddr::V6(SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_both_addresses() {
        let client: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        let header = v2(client, local).unwrap();
        // The v2 signature, then version 2 / PROXY, TCP over IPv4, 12 address bytes.
        assert_eq!(&header[..12], b"\r\n\r\n\0\r\nQUIT\n");
        assert_eq!(&header[12..16], &[0x21, 0x11, 0, 12]);
        assert_eq!(&header[16..20], &[192, 0, 2, 7]);
        assert_eq!(&header[24..26], &40000u16.to_be_bytes());
        let parsed = ppp::v2::Header::try_from(&header[..]).unwrap();
        assert_eq!(parsed.addresses, (client, local).into());
    }
}
