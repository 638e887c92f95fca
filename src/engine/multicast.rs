//! The UDP socket LAN discovery and LAN search share: a port several clients on one host can
//! bind (address and port reuse), in an IPv4 group on one interface, sending there with
//! loopback on so that peers on this host hear each other.

use std::net::{Ipv4Addr, SocketAddr};

use tokio::net::UdpSocket;

pub fn group_socket(port: u16, group: Ipv4Addr, interface: Ipv4Addr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())?;
    socket.join_multicast_v4(&group, &interface)?;
    socket.set_multicast_if_v4(&interface)?;
    socket.set_multicast_loop_v4(true)?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}
