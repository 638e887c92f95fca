//! The UDP sockets LAN discovery and LAN search share: a port several clients on one host can
//! bind (address and port reuse), in a multicast group on one interface, sending there with
//! loopback on so that peers on this host hear each other.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

/// Where a LAN group is joined: an IPv4 interface by its address (any: the kernel's choice),
/// or an IPv6 interface by its index (0: the kernel's choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LanInterface {
    V4(Ipv4Addr),
    V6(u32),
}

impl LanInterface {
    /// The interfaces an address given to `--bind` covers: an IPv4 address (or 0.0.0.0) its
    /// IPv4 interface, the dual-stack `::` any IPv4 and any IPv6 one, another IPv6 address the
    /// interface that holds it.
    pub fn covered_by(bind: IpAddr) -> Vec<LanInterface> {
        match bind {
            IpAddr::V4(v4) => vec![LanInterface::V4(v4)],
            IpAddr::V6(v6) if v6.is_unspecified() => {
                vec![LanInterface::V4(Ipv4Addr::UNSPECIFIED), LanInterface::V6(0)]
            }
            IpAddr::V6(v6) => match interface_index(v6) {
                Some(index) => vec![LanInterface::V6(index)],
                None => {
                    tracing::warn!(address = %v6, "no interface holds the bound address");
                    Vec::new()
                }
            },
        }
    }
}

pub fn group_socket(port: u16, group: Ipv4Addr, interface: Ipv4Addr) -> std::io::Result<UdpSocket> {
    let socket = reusable(
        Domain::IPV4,
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
    )?;
    socket.join_multicast_v4(&group, &interface)?;
    socket.set_multicast_if_v4(&interface)?;
    socket.set_multicast_loop_v4(true)?;
    UdpSocket::from_std(socket.into())
}

/// The IPv6 twin of `group_socket`: IPv6 only, so the IPv4 group's socket keeps its port.
pub fn group_socket_v6(port: u16, group: Ipv6Addr, interface: u32) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_only_v6(true)?;
    let socket = reuse_and_bind(socket, SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)))?;
    socket.join_multicast_v6(&group, interface)?;
    socket.set_multicast_if_v6(interface)?;
    socket.set_multicast_loop_v6(true)?;
    UdpSocket::from_std(socket.into())
}

fn reusable(domain: Domain, at: SocketAddr) -> std::io::Result<Socket> {
    reuse_and_bind(Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?, at)
}

fn reuse_and_bind(socket: Socket, at: SocketAddr) -> std::io::Result<Socket> {
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&at.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// The index of the interface that holds `address`, from the kernel's address list.
fn interface_index(address: Ipv6Addr) -> Option<u32> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we free below; every entry's pointers
    // are read only while it lives, and an address is read as sockaddr_in6 only when its
    // family says it is one.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return None;
        }
        let mut found = None;
        let mut entry = list;
        while let Some(e) = entry.as_ref() {
            if let Some(addr) = e.ifa_addr.as_ref()
                && i32::from(addr.sa_family) == libc::AF_INET6
            {
                let v6 = &*(e.ifa_addr as *const libc::sockaddr_in6);
                if Ipv6Addr::from(v6.sin6_addr.s6_addr) == address {
                    found = Some(libc::if_nametoindex(e.ifa_name)).filter(|i| *i != 0);
                    break;
                }
            }
            entry = e.ifa_next;
        }
        libc::freeifaddrs(list);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loopback_address_is_on_an_interface_and_a_stranger_is_not() {
        assert!(interface_index(Ipv6Addr::LOCALHOST).is_some());
        let stranger: Ipv6Addr = "fd00:dead:beef::77".parse().unwrap();
        assert_eq!(interface_index(stranger), None);
        assert!(LanInterface::covered_by(stranger.into()).is_empty());
    }

    #[test]
    fn the_dual_stack_any_covers_both_families() {
        assert_eq!(
            LanInterface::covered_by(Ipv6Addr::UNSPECIFIED.into()),
            vec![LanInterface::V4(Ipv4Addr::UNSPECIFIED), LanInterface::V6(0)]
        );
        let lo = Ipv4Addr::LOCALHOST;
        assert_eq!(
            LanInterface::covered_by(lo.into()),
            vec![LanInterface::V4(lo)]
        );
    }
}
