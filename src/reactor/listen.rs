//! Portal listeners: one per portal, on the accepting reactor, which places each connection on
//! the least-loaded reactor (`place.rs`).

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Binds and listens on `addr`. Without `SO_REUSEPORT`, a second daemon on the same portal
/// fails here with `EADDRINUSE` instead of silently taking a share of the connections.
pub fn bind(addr: SocketAddr) -> std::io::Result<Socket> {
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(domain, Type::STREAM.cloexec(), Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        // Lets "[::]:3260" and "0.0.0.0:3260" be configured side by side.
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s)
}

/// Per-connection socket options: iSCSI is request/response, so Nagle only adds latency.
pub fn tune(s: &Socket) {
    if let Err(e) = s.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY");
    }
}
