//! A connection's socket side: receive into the connection's buffer, feed the protocol core,
//! send what it produced, and close only once every operation that borrows its buffers is done.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types};
use socket2::Socket;

use super::token::{Kind, Token};
use super::Reactor;
use crate::backstore::RecvBuf;
use crate::control::{ConnRef, ToControl};
use crate::session::{
    payload_bytes, CloseReason, Connection, ControlRequest, Landing, Output, MAX_STAGED_OUTPUT,
};

/// A new connection's receive buffer. An idle session only ever receives PDU headers (logins,
/// NOP-Outs), so it starts at one page; the buffer grows to the connection's largest PDU the first
/// time less than a page is free (`post_recv`), i.e. as soon as traffic needs it. (It started at
/// 64 KiB: with allocator reuse every idle session kept 64 KiB resident.)
const INITIAL_RECV_BUF: usize = 4096;
/// How long a closing connection may take to flush its last PDUs to a peer that stopped reading.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// What a failed receive or send means for its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SocketError {
    /// Interrupted: the operation is posted again. (Not EAGAIN: io_uring waits for a blocking
    /// socket to be ready, so an EAGAIN would come back at once, each time, and spin the core.)
    Retry,
    /// The peer or the path to it is gone, or this reactor shut the socket: the connection ends
    /// as if the peer had closed it.
    Gone,
    /// Anything else is this host's problem (memory, a bad buffer): the connection ends and the
    /// operator is told.
    Local,
}

impl SocketError {
    fn of(errno: i32) -> SocketError {
        match errno {
            libc::EINTR => SocketError::Retry,
            libc::ECONNRESET
            | libc::ECONNABORTED
            | libc::EPIPE
            | libc::ETIMEDOUT
            | libc::EHOSTUNREACH
            | libc::ENETUNREACH
            | libc::ENETDOWN
            | libc::ENOTCONN
            | libc::ESHUTDOWN
            | libc::ECANCELED => SocketError::Gone,
            _ => SocketError::Local,
        }
    }
}

pub struct ConnSlot {
    pub generation: u32,
    pub sock: Socket,
    pub conn: Connection,
    pub span: tracing::Span,
    /// The received bytes not consumed yet, at its start (`rlen` of them). While a receive-ring
    /// buffer is being consumed it is that buffer, and the connection's own is in `parked`.
    rbuf: RecvBuf,
    rlen: usize,
    parked: Option<RecvBuf>,
    recv_posted: bool,
    /// The posted receive takes a buffer from the core's receive ring.
    ring_recv: bool,
    /// The last receive from the ring found it empty: the next receives into `rbuf`.
    ring_starved: bool,
    sending: Sending,
    send_posted: bool,
    pub blocks_in_flight: usize,
    pub tsih: Option<u16>,
    pub awaiting_registration: bool,
    /// The initiator's address as text (listings, the span).
    peer: String,
    shut: bool,
    close_deadline: Option<Instant>,
    /// The control thread was told the session ended while its detached work (a sanitize)
    /// goes on in this slot.
    ended: bool,
    /// Write data being received straight into the buffer it will be written from, which the
    /// session lent for it: owned here until the payload is in, so the kernel writes only memory
    /// this slot owns, and handed back with `handle_landed`.
    landing: Option<Landing>,
    /// The scatter list of a receive that fills the landing range and then `rbuf`.
    scatter: Box<Scatter>,
    /// When the connection was accepted (the oldest connection still logging in is the first
    /// to go when too many are).
    pub accepted: Instant,
}

/// The connection's gathered send: staged headers and the I/O buffers whose payloads it sends
/// without copying, owned here until the kernel is done with them. It is kept for the whole
/// connection and its vectors swap with the session's output, so steady state allocates nothing.
struct Sending {
    out: Output,
    iov: Vec<libc::iovec>,
    /// First iovec not yet completely sent.
    first: usize,
    msg: Box<libc::msghdr>,
    active: bool,
}

impl Sending {
    fn new() -> Sending {
        // SAFETY: msghdr is plain old data; all-zero is a valid empty header.
        let msg = Box::new(unsafe { std::mem::zeroed::<libc::msghdr>() });
        Sending {
            out: Output::default(),
            iov: Vec::new(),
            first: 0,
            msg,
            active: false,
        }
    }

    /// Takes everything `out` holds (leaving it this object's emptied vectors) and lays out the
    /// iovecs for it.
    fn start(&mut self, out: &mut Output) {
        std::mem::swap(&mut self.out.staged, &mut out.staged);
        std::mem::swap(&mut self.out.payloads, &mut out.payloads);
        std::mem::swap(&mut self.out.bufs, &mut out.bufs);
        self.iov.clear();
        self.first = 0;
        let (iov, o) = (&mut self.iov, &self.out);
        let mut push = |b: &[u8]| {
            if !b.is_empty() {
                iov.push(libc::iovec {
                    iov_base: b.as_ptr() as *mut libc::c_void,
                    iov_len: b.len(),
                });
            }
        };
        let mut from = 0;
        for p in &o.payloads {
            push(&o.staged[from..p.at]);
            push(payload_bytes(&o.bufs, p));
            from = p.at;
        }
        push(&o.staged[from..]);
        self.active = true;
    }

    /// The send is complete: buffers go back to the pool, vectors are kept for the next one.
    fn finish(&mut self) {
        self.out.clear();
        self.iov.clear();
        self.active = false;
    }

    /// Points the message header at the iovecs still to send (at most IOV_MAX of them).
    fn prepare(&mut self) -> *const libc::msghdr {
        let rest = &mut self.iov[self.first..];
        self.msg.msg_iov = rest.as_mut_ptr();
        self.msg.msg_iovlen = rest.len().min(IOV_MAX);
        &*self.msg
    }

    /// Accounts for `n` bytes sent; returns whether everything is out.
    fn advance(&mut self, mut n: usize) -> bool {
        while n > 0 && self.first < self.iov.len() {
            let v = &mut self.iov[self.first];
            if n >= v.iov_len {
                n -= v.iov_len;
                self.first += 1;
            } else {
                // SAFETY: n < iov_len, so the new base stays inside the same buffer.
                v.iov_base = unsafe { v.iov_base.cast::<u8>().add(n) }.cast();
                v.iov_len -= n;
                n = 0;
            }
        }
        self.first >= self.iov.len()
    }
}

/// The first `max` bytes of `free` (all of it for `None`).
fn limit(free: &mut [u8], max: Option<usize>) -> &mut [u8] {
    let n = max.map_or(free.len(), |m| m.min(free.len()));
    &mut free[..n]
}

/// Linux's limit on iovecs per sendmsg (UIO_MAXIOV).
const IOV_MAX: usize = 1024;

/// A receive into two places: the rest of a landing payload, then the connection's receive
/// buffer for whatever follows it on the stream (the next PDUs), so that receiving a payload in
/// place costs no extra receive. Boxed, so its address holds while the kernel has it.
struct Scatter {
    msg: libc::msghdr,
    iov: [libc::iovec; 2],
}

impl Scatter {
    fn new() -> Box<Scatter> {
        // SAFETY: msghdr and iovec are plain old data; all-zero is a valid empty value.
        unsafe { Box::new(std::mem::zeroed::<Scatter>()) }
    }

    /// Points the message at `first` then `second`; the memory must stay valid and owned by the
    /// connection until the receive completes (the landing buffer and `rbuf` are, see
    /// `Reactor::post_recv`).
    fn prepare(&mut self, first: &mut [u8], second: &mut [u8]) -> *mut libc::msghdr {
        self.iov = [
            libc::iovec {
                iov_base: first.as_mut_ptr().cast(),
                iov_len: first.len(),
            },
            libc::iovec {
                iov_base: second.as_mut_ptr().cast(),
                iov_len: second.len(),
            },
        ];
        self.msg.msg_iov = self.iov.as_mut_ptr();
        self.msg.msg_iovlen = 2;
        &mut self.msg
    }
}

impl ConnSlot {
    pub fn new(
        generation: u32,
        sock: Socket,
        peer: Option<SocketAddr>,
        conn: Connection,
        core: usize,
    ) -> Self {
        let peer = peer.map(|p| p.to_string()).unwrap_or_default();
        // One session can be followed through the log by any of these; the login fills in the
        // initiator, ISID, CID and TSIH.
        let span = tracing::info_span!(
            "conn",
            %peer,
            core,
            initiator = tracing::field::Empty,
            isid = tracing::field::Empty,
            tsih = tracing::field::Empty,
            cid = tracing::field::Empty,
        );
        ConnSlot {
            generation,
            sock,
            conn,
            span,
            rbuf: RecvBuf::new(INITIAL_RECV_BUF),
            rlen: 0,
            parked: None,
            recv_posted: false,
            ring_recv: false,
            ring_starved: false,
            sending: Sending::new(),
            send_posted: false,
            blocks_in_flight: 0,
            tsih: None,
            awaiting_registration: false,
            peer,
            shut: false,
            close_deadline: None,
            ended: false,
            landing: None,
            scatter: Scatter::new(),
            accepted: Instant::now(),
        }
    }

    /// Hands received bytes to the protocol core. It may leave complete PDUs unconsumed while
    /// its output waits for the peer; they are offered again once a send completes.
    ///
    /// Write data that came whole with its header may be kept by the session as views of the
    /// receive buffer; the buffer is then replaced (the unconsumed bytes move to the new one) and
    /// lives on until the last view is dropped. Only so many replaced buffers may be held per
    /// core (`RecvBuf::may_lend`); past that, write data is copied out of the receive buffer.
    ///
    /// A receive-ring buffer is left after one pass: what it holds of an incomplete PDU moves to
    /// the connection's own buffer, and it goes back to the ring once no write data lent from it
    /// is left (the ring's size bounds those, not `may_lend`).
    fn consume_input(&mut self, now: Instant) {
        let from_ring = self.rbuf.is_from_ring();
        let used = if from_ring || RecvBuf::may_lend() {
            self.conn.handle_received(&self.rbuf, self.rlen, now)
        } else {
            self.conn
                .handle_input(&self.rbuf.as_slice()[..self.rlen], now)
        };
        // A PDU cut by the end of the input whose payload can land in place: what came of it
        // goes from where it was received straight to where it is written, not moved to the
        // front of the connection's own buffer first.
        if used < self.rlen && !self.conn.output_full() {
            if let Some(l) = self.conn.landing(&self.rbuf.as_slice()[used..self.rlen]) {
                tracing::trace!(
                    itt = l.bhs.itt(),
                    remaining = l.range.len(),
                    "receiving Data-Out payload in place"
                );
                self.drop_input(from_ring, self.rlen);
                self.rlen = 0;
                self.landing = Some(l);
                return;
            }
        }
        self.drop_input(from_ring, used);
        self.rlen -= used;
    }

    /// Drops the first `used` bytes of the input: what follows them moves to the front of the
    /// connection's own buffer (from a ring buffer, which goes back to the ring).
    fn drop_input(&mut self, from_ring: bool, used: usize) {
        if from_ring {
            self.leave_ring_buffer(used);
        } else {
            self.unlend(used);
        }
    }

    /// Goes back from the receive-ring buffer being consumed to the connection's own buffer,
    /// taking along the bytes after the first `used`.
    fn leave_ring_buffer(&mut self, used: usize) {
        let mut own = self
            .parked
            .take()
            .unwrap_or_else(|| RecvBuf::new(INITIAL_RECV_BUF));
        self.rbuf.carry(used..self.rlen, &mut own);
        self.rbuf = own;
    }

    /// Drops the first `used` bytes of the receive buffer, moving the rest to its start; when
    /// some of it is lent out, that happens in a new buffer of the same size.
    fn unlend(&mut self, used: usize) {
        match self.rbuf.spare_mut() {
            Some(b) if used > 0 => b.copy_within(used..self.rlen, 0),
            Some(_) => {}
            None => {
                let len = self.rbuf.len();
                self.rbuf.replace(used..self.rlen, len);
            }
        }
    }

    /// Memory the output to the peer holds outside the session's budget (`Output::held_bytes`).
    fn staged_output(&mut self) -> usize {
        let sending = if self.sending.active {
            self.sending.out.held_bytes()
        } else {
            0
        };
        self.conn.output().held_bytes() + sending
    }

    pub fn peer_label(&self) -> &str {
        &self.peer
    }

    pub fn timer_due(&self, now: Instant) -> bool {
        self.conn.poll_timeout().is_some_and(|t| t <= now)
            || self.close_deadline.is_some_and(|t| t <= now)
    }
}

impl Reactor {
    /// Moves a connection forward after anything happened to it: hands its requests to the
    /// control thread and the backing store, sends its output, re-arms its receive, or closes it.
    pub(super) fn service(&mut self, idx: usize) {
        loop {
            let mut progressed = false;
            while let Some(req) = self.conns[idx].conn.poll_control() {
                let conn = ConnRef {
                    core: self.index,
                    key: self.conn_key(idx),
                };
                let msg = match req {
                    ControlRequest::Register(req) => {
                        self.conns[idx].awaiting_registration = true;
                        ToControl::Register { conn, req }
                    }
                    ControlRequest::Lu { token, request } => ToControl::Lu {
                        conn,
                        token,
                        request,
                    },
                    ControlRequest::AbortDrained { id } => ToControl::AbortDrained { id },
                };
                let _ = self.to_control.send(msg);
            }
            while let Some(io) = self.conns[idx].conn.poll_io() {
                self.start_block(idx, io);
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        self.flush_output(idx);
        if self.conns[idx].conn.wants_prompt_retry() {
            self.arm_soon();
        }
        if self.conns[idx].conn.close_reason().is_some() {
            self.progress_close(idx);
        } else {
            self.post_recv(idx);
        }
    }

    fn flush_output(&mut self, idx: usize) {
        let slot = &mut self.conns[idx];
        if slot.send_posted || slot.conn.output().is_empty() || slot.shut {
            return;
        }
        slot.sending.start(slot.conn.output());
        self.post_send(idx);
    }

    /// The connection a socket completion is for, unless its slot has been reused since.
    fn live_slot(&mut self, t: Token) -> Option<&mut ConnSlot> {
        self.conns
            .get_mut(t.index as usize)
            .filter(|s| s.generation == t.generation)
    }

    fn post_send(&mut self, idx: usize) {
        let slot = &mut self.conns[idx];
        let msg = slot.sending.prepare();
        let sqe = opcode::SendMsg::new(types::Fd(slot.sock.as_raw_fd()), msg)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build()
            .user_data(Token::new(Kind::Send, idx, slot.generation).encode());
        slot.send_posted = true;
        self.push(sqe);
    }

    pub(super) fn on_send(&mut self, t: Token, res: i32) {
        let idx = t.index as usize;
        let Some(slot) = self.live_slot(t) else {
            return;
        };
        slot.send_posted = false;
        if res < 0 && SocketError::of(-res) == SocketError::Retry {
            self.post_send(idx);
            return;
        } else if res < 0 {
            slot.span
                .in_scope(|| tracing::debug!(errno = -res, "send failed"));
            slot.sending.finish();
            slot.conn.kill_transport();
            if SocketError::of(-res) == SocketError::Local {
                let span = slot.span.clone();
                self.warn_socket_error(&span, "send", -res);
            }
        } else if slot.sending.advance(res as usize) {
            slot.sending.finish();
            let now = Instant::now();
            slot.conn.handle_sent(now);
            if slot.rlen > 0 && slot.landing.is_none() {
                let _guard = slot.span.clone().entered();
                slot.consume_input(now);
            }
        } else {
            self.post_send(idx);
            return;
        }
        self.service(idx);
    }

    fn post_recv(&mut self, idx: usize) {
        let ring = self.recv_ring.is_some();
        let slot = &mut self.conns[idx];
        if slot.recv_posted || slot.shut || slot.awaiting_registration {
            return;
        }
        // Back-pressure: no new requests while their answers would have nowhere to go. Payloads
        // sent from I/O buffers are bounded by the session's budget instead. A landing payload
        // is still received: its PDU is already under way.
        let more_input = slot.staged_output() <= MAX_STAGED_OUTPUT;
        let fd = types::Fd(slot.sock.as_raw_fd());
        // The session may want the next header alone, so that its payload lands in place.
        let header_alone = slot.conn.header_alone(slot.rlen);
        // Waiting for a new PDU: the kernel picks a ring buffer when the data comes.
        if ring
            && more_input
            && slot.rlen == 0
            && slot.landing.is_none()
            && !slot.ring_starved
            && header_alone.is_none()
        {
            let sqe = opcode::Recv::new(fd, std::ptr::null_mut(), 0)
                .buf_group(super::recv_ring::GROUP)
                .build()
                .flags(squeue::Flags::BUFFER_SELECT)
                .user_data(Token::new(Kind::Recv, idx, slot.generation).encode());
            slot.recv_posted = true;
            slot.ring_recv = true;
            self.push(sqe);
            return;
        }
        slot.ring_starved = false;
        if more_input {
            // A landing means traffic: what follows the payload may be a whole batch of PDUs.
            let max = slot.conn.max_pdu_len().max(INITIAL_RECV_BUF);
            let short = (slot.landing.is_some() && header_alone.is_none())
                || slot.rbuf.len() - slot.rlen < 4096;
            if short && slot.rbuf.len() < max {
                slot.rbuf.replace(0..slot.rlen, max);
            }
        }
        // Never lent here (`consume_input` moves on from a lent buffer), but receiving into one
        // would overwrite write data: make sure.
        slot.unlend(0);
        // Buffer lifetime: every byte range handed to the kernel here belongs to this slot
        // (the lent landing buffer, `rbuf`) and is neither moved nor reused until the receive
        // completes (`on_recv`); a slot is not removed while `recv_posted`.
        let sqe = match &mut slot.landing {
            Some(l) => {
                let rest = &mut l.buf.as_mut_slice()[l.range.clone()];
                let free = slot
                    .rbuf
                    .spare_mut()
                    .map_or(&mut [][..], |b| &mut b[slot.rlen..]);
                let free = limit(free, header_alone);
                if more_input && !free.is_empty() {
                    opcode::RecvMsg::new(fd, slot.scatter.prepare(rest, free)).build()
                } else {
                    let len = rest.len().min(u32::MAX as usize) as u32;
                    opcode::Recv::new(fd, rest.as_mut_ptr(), len).build()
                }
            }
            None if more_input => {
                let Some(free) = slot.rbuf.spare_mut().map(|b| &mut b[slot.rlen..]) else {
                    return;
                };
                let free = limit(free, header_alone);
                opcode::Recv::new(fd, free.as_mut_ptr(), free.len() as u32).build()
            }
            None => return,
        };
        let sqe = sqe.user_data(Token::new(Kind::Recv, idx, slot.generation).encode());
        slot.recv_posted = true;
        slot.ring_recv = false;
        self.push(sqe);
    }

    /// A receive completed; `ring_buf` is the receive-ring buffer the kernel put the bytes in,
    /// if it took one.
    pub(super) fn on_recv(&mut self, t: Token, res: i32, ring_buf: Option<u16>) {
        let idx = t.index as usize;
        // Taken whatever happens next, so that it goes back to the ring when dropped.
        if let (Some(_), Some(r)) = (ring_buf, self.recv_ring.as_mut()) {
            r.took();
        }
        let ring_buf = ring_buf.and_then(RecvBuf::from_ring);
        if ring_buf.is_some() && res > 0 {
            self.counters.recv_ring_bytes += res as u64;
        }
        let coalescing = !self.coalesce.is_zero();
        let Some(slot) = self.live_slot(t) else {
            return;
        };
        slot.recv_posted = false;
        if slot.ring_recv && res == -libc::ENOBUFS {
            // Every ring buffer is out (held by write data in flight): this connection
            // receives into its own buffer once, then tries the ring again.
            slot.ring_starved = true;
            self.counters.recv_ring_starved += 1;
            if let Some(r) = self.recv_ring.as_mut() {
                r.starved();
            }
            self.service(idx);
            return;
        }
        if slot.ring_recv && res > 0 && ring_buf.is_none() {
            // The kernel says it received into no ring buffer we know of: the bytes are lost
            // to us, and the stream with them.
            tracing::error!(
                res,
                "receive from the ring came without a known buffer; closing the connection"
            );
            slot.conn.kill_transport();
            self.service(idx);
            return;
        }
        if res <= 0 {
            let error = (res < 0).then(|| SocketError::of(-res));
            if error == Some(SocketError::Retry) {
                self.service(idx);
                return;
            }
            if !slot.shut {
                slot.span
                    .in_scope(|| tracing::debug!(errno = -res, "peer closed the connection"));
            }
            slot.landing = None;
            slot.conn.kill_transport();
            if error == Some(SocketError::Local) {
                let span = slot.span.clone();
                self.warn_socket_error(&span, "receive", -res);
            }
            self.service(idx);
            return;
        }
        let _guard = slot.span.clone().entered();
        let now = Instant::now();
        let pdus_before = slot.conn.pdus_received();
        if let Some(l) = slot.landing.as_mut() {
            // The kernel filled the lent range first, then `rbuf` with what followed it.
            let landed = (res as usize).min(l.range.len());
            l.range.start += landed;
            let after = res as usize - landed;
            if l.range.is_empty() {
                if let Some(done) = slot.landing.take() {
                    slot.conn.handle_landed(done, now);
                }
                slot.rlen += after;
                if slot.rlen > 0 {
                    slot.consume_input(now);
                }
            } else {
                slot.conn.note_received(now);
            }
        } else if let Some(rx) = ring_buf {
            // Posted with `rlen == 0` (`post_recv`): the ring buffer holds the whole input.
            debug_assert_eq!(slot.rlen, 0);
            slot.parked = Some(std::mem::replace(&mut slot.rbuf, rx));
            slot.rlen = (res as usize).min(slot.rbuf.len());
            slot.consume_input(now);
        } else {
            slot.rlen += res as usize;
            slot.consume_input(now);
        }
        drop(_guard);
        // Only a reactor that may coalesce its waits looks at what the receive was like.
        if coalescing {
            let outstanding = slot.conn.initiator_outstanding();
            let pdus = slot.conn.pdus_received() - pdus_before;
            self.turn.receives += 1;
            self.turn.gathered |= res as usize >= super::LARGE_RECEIVE || pdus > 1;
            self.turn.outstanding = self.turn.outstanding.saturating_add(outstanding);
        }
        self.service(idx);
    }

    /// A socket operation failed for a reason of this host's (not the peer's, not the network's):
    /// the operator must hear of it, where a closed connection would otherwise only say that the
    /// peer went away.
    fn warn_socket_error(&mut self, span: &tracing::Span, op: &'static str, errno: i32) {
        let _guard = span.enter();
        let error = std::io::Error::from_raw_os_error(errno);
        crate::warn_limited!(
            self.log,
            Instant::now(),
            op,
            %error,
            "socket operation failed: closing the connection"
        );
    }

    fn progress_close(&mut self, idx: usize) {
        let now = Instant::now();
        let slot = &mut self.conns[idx];
        if !slot.shut {
            let deadline = *slot.close_deadline.get_or_insert(now + CLOSE_FLUSH_TIMEOUT);
            let flushed = !slot.send_posted && slot.conn.output().is_empty();
            if !flushed && now < deadline {
                return;
            }
            match slot.conn.close_reason() {
                // Already said, in the one line that names the initiator and the status.
                Some(CloseReason::LoginFailed(_)) | None => {}
                Some(reason) => slot
                    .span
                    .in_scope(|| tracing::info!(%reason, "closing connection")),
            }
            let suppressed = slot.conn.take_suppressed_warnings();
            if suppressed > 0 {
                slot.span.in_scope(|| {
                    tracing::warn!(
                        suppressed,
                        "warnings about this connection were rate-limited"
                    )
                });
            }
            // Ends the posted receive (and any stuck send) so their buffers come back.
            let _ = slot.sock.shutdown(std::net::Shutdown::Both);
            slot.shut = true;
        }
        let sockets_done = !slot.recv_posted && !slot.send_posted;
        if !sockets_done
            || slot.blocks_in_flight > 0
            || slot.conn.io_in_flight() > 0
            || slot.conn.has_background_work()
        {
            // A sanitize outlives its nexus (SBC-4 §4.11): the session ends for the control
            // thread (its TSIH, its reservations' nexus, a reinstatement) while the slot keeps
            // the operation's buffers until it is done.
            if sockets_done && !slot.ended && slot.conn.leave_to_background() {
                slot.ended = true;
                self.report_ended(idx);
            }
            return;
        }
        let ended = self.conns[idx].ended;
        if !ended {
            self.report_ended(idx);
        }
        let slot = self.conns.remove(idx);
        self.loads.closed(self.index);
        self.counters.retire(&slot);
        match (slot.conn.login_refusal(), slot.conn.close_reason()) {
            (Some(status), _) => self.counters.login_refused(status),
            (None, Some(CloseReason::LoginTimeout)) => self.counters.login_failures.other += 1,
            (None, Some(CloseReason::Evicted)) => self.counters.login_failures.resources += 1,
            _ => {}
        }
    }

    /// Tells the control thread the connection's session is over.
    fn report_ended(&mut self, idx: usize) {
        let slot = &self.conns[idx];
        let conn = ConnRef {
            core: self.index,
            key: (u64::from(slot.generation) << 32) | idx as u64,
        };
        if slot.tsih.is_some() || slot.awaiting_registration {
            let _ = self.to_control.send(ToControl::Ended {
                conn,
                tsih: slot.tsih,
                nexus: slot.conn.it_nexus(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SocketError;

    #[test]
    fn socket_errors_are_retried_taken_as_the_peer_leaving_or_reported() {
        assert_eq!(SocketError::of(libc::EINTR), SocketError::Retry);
        for errno in [
            libc::ECONNRESET,
            libc::EPIPE,
            libc::ETIMEDOUT,
            libc::ECANCELED,
        ] {
            assert_eq!(SocketError::of(errno), SocketError::Gone, "{errno}");
        }
        for errno in [
            libc::EAGAIN,
            libc::ENOMEM,
            libc::EFAULT,
            libc::EINVAL,
            libc::EBADF,
            libc::ENOBUFS,
        ] {
            assert_eq!(SocketError::of(errno), SocketError::Local, "{errno}");
        }
    }
}
