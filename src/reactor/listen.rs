//! Portal listeners: one per portal per reactor, bound with `SO_REUSEPORT` so the kernel spreads
//! incoming connections over the cores.

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Fails with `EADDRINUSE` when another process listens on `addr`. `SO_REUSEPORT` would
/// otherwise let a second daemon silently share the portal and take half its connections.
pub fn ensure_free(addr: SocketAddr) -> std::io::Result<()> {
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let probe = Socket::new(domain, Type::STREAM.cloexec(), Some(Protocol::TCP))?;
    probe.set_reuse_address(true)?;
    if addr.is_ipv6() {
        probe.set_only_v6(true)?;
    }
    probe.bind(&addr.into())
}

pub fn bind(addr: SocketAddr) -> std::io::Result<Socket> {
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(domain, Type::STREAM.cloexec(), Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
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
