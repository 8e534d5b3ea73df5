//! Binding listening sockets with socket2: one per worker, sharing the port.
//!
//! Every socket gets SO_REUSEADDR (a restart never fails with "address in use") and
//! SO_REUSEPORT (the kernel spreads connections and datagrams over the workers). A request for
//! port 0 binds the first socket to an ephemeral port and the others to that same port.

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::SocketAddr;

/// Creates `count` non-blocking TCP listeners on `addr`, all sharing one port.
pub fn bind_tcp(
    addr: SocketAddr,
    count: usize,
    backlog: i32,
) -> io::Result<Vec<mio::net::TcpListener>> {
    bind_group(addr, count, Type::STREAM, |addr| {
        let socket = new_socket(addr, Type::STREAM, Protocol::TCP)?;
        socket.bind(&SockAddr::from(addr))?;
        socket.listen(backlog)?;
        Ok(socket)
    })
    .map(|sockets| {
        sockets
            .into_iter()
            .map(|s| mio::net::TcpListener::from_std(s.into()))
            .collect()
    })
}

/// Creates `count` UDP sockets on `addr`, all sharing one port, each asking the kernel for
/// `buffer` bytes of receive buffer (it caps them at `net.core.rmem_max`): a deep receive
/// queue absorbs the bursts of many agents.
pub fn bind_udp(
    addr: SocketAddr,
    count: usize,
    buffer: usize,
) -> io::Result<Vec<std::net::UdpSocket>> {
    bind_group(addr, count, Type::DGRAM, |addr| {
        let socket = new_socket(addr, Type::DGRAM, Protocol::UDP)?;
        socket.set_recv_buffer_size(buffer)?;
        socket.bind(&SockAddr::from(addr))?;
        Ok(socket)
    })
    .map(|sockets| sockets.into_iter().map(Into::into).collect())
}

fn bind_group(
    addr: SocketAddr,
    count: usize,
    ty: Type,
    bind_one: impl Fn(SocketAddr) -> io::Result<Socket>,
) -> io::Result<Vec<Socket>> {
    if addr.port() != 0 {
        probe_free(addr, ty)?;
    }
    let first = bind_one(addr)?;
    let bound = first
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("bound address is not an IP address"))?;
    let mut sockets = vec![first];
    for _ in 1..count.max(1) {
        sockets.push(bind_one(bound)?);
    }
    Ok(sockets)
}

/// Fails with AddrInUse when another socket holds `addr`.
///
/// SO_REUSEPORT would otherwise let a second node bind the same port and silently take half
/// the traffic. The probe binds without SO_REUSEPORT (TCP keeps SO_REUSEADDR so connections in
/// TIME_WAIT from a previous run do not count) and is closed at once.
fn probe_free(addr: SocketAddr, ty: Type) -> io::Result<()> {
    let probe = Socket::new(Domain::for_address(addr), ty, None)?;
    if addr.is_ipv6() {
        probe.set_only_v6(true)?;
    }
    probe.set_reuse_address(ty == Type::STREAM)?;
    probe.bind(&SockAddr::from(addr)).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot bind {addr}: {e} (is another node running?)"),
        )
    })
}

fn new_socket(addr: SocketAddr, ty: Type, protocol: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), ty, Some(protocol))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_group_shares_one_port() {
        let listeners = bind_tcp("127.0.0.1:0".parse().unwrap(), 3, 16).unwrap();
        let ports: Vec<_> = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        assert!(ports.iter().all(|p| *p == ports[0] && *p != 0), "{ports:?}");
        let udp = bind_udp("[::1]:0".parse().unwrap(), 2, 1 << 20).unwrap();
        assert_eq!(udp[0].local_addr().unwrap(), udp[1].local_addr().unwrap());
    }

    #[test]
    fn rebinding_a_just_closed_port_works() {
        let first = bind_tcp("127.0.0.1:0".parse().unwrap(), 1, 16).unwrap();
        let addr = first[0].local_addr().unwrap();
        let client = std::net::TcpStream::connect(addr).unwrap();
        drop(first);
        drop(client);
        bind_tcp(addr, 1, 16).unwrap();
    }

    #[test]
    fn a_port_in_use_is_refused_not_shared() {
        let tcp = bind_tcp("127.0.0.1:0".parse().unwrap(), 1, 16).unwrap();
        let err = bind_tcp(tcp[0].local_addr().unwrap(), 1, 16).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        let udp = bind_udp("127.0.0.1:0".parse().unwrap(), 1, 1 << 20).unwrap();
        let err = bind_udp(udp[0].local_addr().unwrap(), 1, 1 << 20).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }
}
