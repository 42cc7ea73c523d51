//! One TCP connection carrying whole PDUs, framed and digested by `ringtgt::pdu::frame` (the same
//! codec the daemon uses, so the tests exercise one implementation, not two).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use ringtgt::pdu::frame::{self, Digests, Layout};
use ringtgt::pdu::{Bhs, BHS_LEN};

/// How long a blocking read waits before a test fails instead of hanging.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Conn {
    stream: TcpStream,
    /// Digests in force; switched on by the initiator after a login that negotiated them.
    pub digests: Digests,
}

impl Conn {
    pub fn connect(port: u16) -> io::Result<Conn> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        Ok(Conn {
            stream,
            digests: Digests::default(),
        })
    }

    /// Encodes and sends one PDU with the connection's digests.
    pub fn send_pdu(&mut self, bhs: &Bhs, ahs: &[u8], data: &[u8]) -> io::Result<()> {
        let mut wire = Vec::with_capacity(BHS_LEN + ahs.len() + data.len() + 16);
        frame::encode(&mut wire, bhs, ahs, data, self.digests);
        self.send_raw(&wire)
    }

    /// Sends bytes as they are, for tests that corrupt a PDU on purpose.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Receives one complete PDU, checking its digests. Returns the header and the data segment
    /// (without padding); an AHS, which targets do not send us, is dropped.
    pub fn recv_pdu(&mut self) -> io::Result<(Bhs, Vec<u8>)> {
        let mut wire = vec![0u8; BHS_LEN];
        self.stream.read_exact(&mut wire)?;
        let bhs = Bhs::from_slice(&wire).expect("48 bytes read");
        let layout = Layout::of(&bhs, self.digests);
        wire.resize(layout.total_len(), 0);
        self.stream.read_exact(&mut wire[BHS_LEN..])?;
        match frame::parse(&wire, self.digests, usize::MAX) {
            Ok(Some((f, _))) => Ok((f.bhs, f.data.to_vec())),
            Ok(None) => unreachable!("the whole PDU was read"),
            Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        }
    }

    /// Waits up to `wait` for the start of a PDU. `Ok(false)` means nothing arrived; a PDU that
    /// has started is then read with the normal timeout, so a slow sender cannot split it.
    pub fn poll(&mut self, wait: Duration) -> io::Result<bool> {
        self.stream
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        let mut byte = [0u8; 1];
        let res = self.stream.peek(&mut byte);
        self.stream.set_read_timeout(Some(READ_TIMEOUT))?;
        match res {
            Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => Ok(true),
            Err(e) if is_timeout(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Discards whatever arrives until the peer closes the connection. True if it closed (EOF or
    /// reset) within `wait`.
    pub fn wait_closed(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        let mut sink = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let _ = self.stream.set_read_timeout(Some(left));
            match self.stream.read(&mut sink) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if is_timeout(&e) => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return true,
            }
        }
    }

    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// The connection's own TCP port (the daemon logs it as the peer's).
    pub fn local_port(&self) -> u16 {
        self.try_local_port().expect("local address")
    }

    pub fn try_local_port(&self) -> Option<u16> {
        self.stream.local_addr().ok().map(|a| a.port())
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
