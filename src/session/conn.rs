//! The connection: framing of received bytes, the login phase, and hand-over to full feature phase.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use super::context::PortalContext;
pub use super::control::{ControlRequest, LuReply, Registration, RemoteAbort};
use super::full::{Admission, Received, Session};
pub use super::output::{Output, Payload, MAX_STAGED_OUTPUT};
use super::task::IoToken;
use crate::backstore::{Budget, Extent, IoBuf, RecvBuf};
use crate::login::{Login, LoginAction, LoginEnv, LoginOutcome, SessionType};
use crate::pdu::frame::{self, FrameError, Layout, DIGEST_LEN};
use crate::pdu::login::{LoginRequest, LoginStatus};
use crate::pdu::{Bhs, Digests, Frame, Opcode, BHS_LEN};

/// Smallest write payload (Data-Out, or a command's immediate data) received straight into its
/// own buffer rather than through the connection's receive buffer. The reactor receives the
/// bytes after the payload into the receive buffer in the same call, so landing costs no extra
/// receive; below one block, copying is cheaper than setting it up.
const LANDING_MIN: usize = 512;

/// Smallest write payload after which the next PDU's header is received alone
/// ([`Connection::header_alone`]). Large writes come in runs (a burst's Data-Outs, a streaming
/// initiator's next command), so the next header decides where its payload lands and none of
/// that payload is copied; when the next PDU is small after all, its rest costs one more receive,
/// which at this payload size is cheaper than the copy it saves on the others.
const HEADER_ALONE_MIN: usize = 32 * 1024;

/// RFC 7143 §13.12: until negotiated, each side accepts 8192-byte data segments.
const LOGIN_MAX_DATA: usize = 8192;
/// Largest AHS a BHS can announce (TotalAHSLength is one byte of 4-byte words).
const MAX_AHS: usize = 255 * 4;

/// A backing-store operation the reactor must perform for a task.
#[derive(Debug)]
pub struct IoRequest {
    pub token: IoToken,
    pub target: usize,
    pub lun: u16,
    pub op: IoOp,
    /// How a write was admitted past the unit's range locks; the transport hands it back in
    /// the completion.
    pub lock: Option<WriteLock>,
}

#[derive(Debug)]
pub enum IoOp {
    Read {
        offset: u64,
        buf: IoBuf,
    },
    Write {
        offset: u64,
        buf: IoBuf,
        fua: bool,
    },
    Flush,
    /// Deallocate the byte range; later reads of it return zeros.
    Discard {
        offset: u64,
        len: u64,
    },
    /// Find how the store holds the bytes from `offset` on (at most `len` of them): the
    /// completion's `extent` says.
    FindExtent {
        offset: u64,
        len: u64,
    },
    /// Atomically in the store: if the bytes at `offset` equal the first half of `buf`, write
    /// its second half there; otherwise fail with `EILSEQ` and change nothing. Stores that
    /// cannot fail with `EOPNOTSUPP` (the SCSI layer then compares and writes itself).
    CompareAndWrite {
        offset: u64,
        buf: IoBuf,
        fua: bool,
    },
}

/// Write data to be received straight into the buffer it is written from (a Data-Out payload,
/// or a SCSI Command's immediate data): the transport owns `buf` until it hands it back with
/// [`Connection::handle_landed`], and receives the payload's remaining bytes into `buf[range]`,
/// advancing `range.start` as they arrive.
#[derive(Debug)]
pub struct Landing {
    pub bhs: Bhs,
    pub buf: IoBuf,
    pub range: Range<usize>,
}

/// The outcome of an `IoRequest`; `buf` returns the buffer that was lent with it.
#[derive(Debug)]
pub struct IoCompletion {
    pub token: IoToken,
    /// Ok, or the errno.
    pub result: Result<(), i32>,
    pub buf: Option<IoBuf>,
    /// `IoRequest::lock`, returned.
    pub lock: Option<WriteLock>,
    /// The answer to an [`IoOp::FindExtent`] (`None` for every other operation).
    pub extent: Option<Extent>,
}

/// A write's admission past the range locks of logical unit `lun`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteLock {
    pub lun: u16,
    pub lock: crate::scsi::range_lock::WriteLock,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    LoginFailed(String),
    LoginTimeout,
    Logout,
    ProtocolError(String),
    KeepaliveTimeout,
    Reinstated,
    TransportClosed,
    /// Closed while logging in, to make room under the ceiling of connections in login.
    Evicted,
    /// The initiator reset its I_T nexus, or the whole target (cold reset).
    NexusReset,
    /// The target asked for a logout (Async Message) and none came in time.
    LogoutTimeout,
    /// The operator dropped the session (`ringtgt ctl session drop`).
    Dropped,
    /// The daemon is stopping.
    Shutdown,
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::LoginFailed(why) => write!(f, "login failed: {why}"),
            CloseReason::LoginTimeout => f.write_str("login timed out"),
            CloseReason::Logout => f.write_str("logout"),
            CloseReason::ProtocolError(why) => write!(f, "protocol error: {why}"),
            CloseReason::KeepaliveTimeout => f.write_str("NOP-In ping not answered"),
            CloseReason::Reinstated => f.write_str("session reinstated by a new login"),
            CloseReason::TransportClosed => f.write_str("connection closed by the peer"),
            CloseReason::Evicted => {
                f.write_str("too many connections logging in (max_login_connections)")
            }
            CloseReason::NexusReset => f.write_str("I_T nexus or target reset"),
            CloseReason::Shutdown => f.write_str("target stopping"),
            CloseReason::LogoutTimeout => f.write_str("asked to log out, did not in time"),
            CloseReason::Dropped => f.write_str("session dropped by the operator"),
        }
    }
}

enum Phase {
    Login {
        login: Box<Login>,
        deadline: Instant,
    },
    Registering {
        login: Box<Login>,
        outcome: Box<LoginOutcome>,
        deadline: Instant,
    },
    Full(Box<Session>),
}

pub struct Connection {
    ctx: Arc<PortalContext>,
    /// The address the initiator reached us on (for SendTargets when a portal is a wildcard).
    local: Option<SocketAddr>,
    /// The initiator's address, for the targets' network access lists.
    peer: Option<SocketAddr>,
    phase: Phase,
    out: Output,
    rx_digests: Digests,
    control: VecDeque<ControlRequest>,
    close: Option<CloseReason>,
    /// Buffered bytes of this connection, shared by the session's buffers wherever they go.
    budget: Budget,
    /// The core (reactor) this connection runs on.
    core: usize,
    /// The status a login was refused with (the reactor counts refusals by reason).
    refused: Option<LoginStatus>,
    /// PDUs whose header or data digest was wrong.
    digest_errors: u64,
    /// Whole PDUs taken in so far (framed, or landed in place).
    pdus_received: u64,
    /// The last PDU taken in carried at least `HEADER_ALONE_MIN` bytes of write data.
    large_writes: bool,
}

/// Whether a PDU with header `bhs` and `len` bytes of data segment is a large write payload.
fn is_large_write(bhs: &Bhs, len: usize) -> bool {
    len >= HEADER_ALONE_MIN && matches!(bhs.opcode(), Opcode::DATA_OUT | Opcode::SCSI_COMMAND)
}

impl Connection {
    pub fn new(
        ctx: Arc<PortalContext>,
        local: Option<SocketAddr>,
        peer: Option<SocketAddr>,
        now: Instant,
    ) -> Self {
        let deadline = now + ctx.tuning.login_timeout;
        Connection {
            local,
            peer,
            phase: Phase::Login {
                login: Box::new(Login::new()),
                deadline,
            },
            out: Output::default(),
            rx_digests: Digests::default(),
            control: VecDeque::new(),
            close: None,
            budget: Budget::new(ctx.tuning.connection_buffer_bytes),
            core: 0,
            refused: None,
            digest_errors: 0,
            pdus_received: 0,
            large_writes: false,
            ctx,
        }
    }

    /// Whether the connection waits on another core (a range lock) and wants `handle_timeout`
    /// again within a millisecond, sooner than the transport's usual timer tick.
    pub fn wants_prompt_retry(&self) -> bool {
        match &self.phase {
            Phase::Full(s) => s.waits_for_range_locks(),
            _ => false,
        }
    }

    /// About how many requests the initiator has outstanding (`Session::initiator_outstanding`);
    /// zero outside full feature phase.
    pub fn initiator_outstanding(&self) -> usize {
        match &self.phase {
            Phase::Full(s) => s.initiator_outstanding(),
            _ => 0,
        }
    }

    /// The I_T nexus of a normal session in full feature phase, with its target's index: what
    /// ends (I_T nexus loss) when the connection does.
    pub fn it_nexus(&self) -> Option<(usize, crate::scsi::pr::ItNexus)> {
        match &self.phase {
            Phase::Full(s) => s.target.map(|t| (t, s.it_nexus.clone())),
            _ => None,
        }
    }

    /// Tells the connection which core runs it (per-core counters of shared state).
    pub fn set_core(&mut self, core: usize) {
        self.core = core;
    }

    /// Bytes held by this connection's buffers now (reads not yet sent, writes not yet on disk).
    pub fn buffered_bytes(&self) -> usize {
        self.budget.used()
    }

    /// Whether enough output waits for the peer that input should wait too.
    pub fn output_full(&self) -> bool {
        self.out.held_bytes() > MAX_STAGED_OUTPUT
    }

    /// Largest PDU this connection may receive now; the reactor sizes its receive buffer by it.
    pub fn max_pdu_len(&self) -> usize {
        BHS_LEN + MAX_AHS + 2 * DIGEST_LEN + frame::pad4(self.max_rx_data())
    }

    fn max_rx_data(&self) -> usize {
        match &self.phase {
            Phase::Full(s) => s.max_rx_data(),
            _ => LOGIN_MAX_DATA.max(self.ctx.offer.max_recv_data_segment_length as usize),
        }
    }

    /// Consumes as many complete PDUs as `buf` holds, or until the output waiting for the peer
    /// is full (the caller offers the rest again once some was sent); returns the bytes used.
    pub fn handle_input(&mut self, buf: &[u8], now: Instant) -> usize {
        self.input(buf, None, now)
    }

    /// `handle_input` for the first `len` bytes of the receive buffer `rx`, whose write data
    /// the session may keep as read-only views of `rx` instead of copying it
    /// ([`crate::backstore::Budget::lend`]); `rx` must then not be received into while
    /// `rx.is_lent()`.
    pub fn handle_received(&mut self, rx: &RecvBuf, len: usize, now: Instant) -> usize {
        self.input(&rx.as_slice()[..len], Some(rx), now)
    }

    fn input(&mut self, buf: &[u8], rx: Option<&RecvBuf>, now: Instant) -> usize {
        let mut used = 0;
        while self.close.is_none() && !self.output_full() {
            let rest = &buf[used..];
            match frame::parse(rest, self.rx_digests, self.max_rx_data()) {
                Ok(Some((f, n))) => {
                    let data_at = used + Layout::of(&f.bhs, self.rx_digests).header_len();
                    used += n;
                    self.handle_frame(f, rx.map(|rx| Received { rx, data_at }), now);
                }
                Ok(None) => break,
                Err(FrameError::DataDigest { .. }) => {
                    self.digest_errors += 1;
                    // The header was sound, so the PDU can be skipped and refused on its own.
                    let Some(bhs) = crate::pdu::Bhs::from_slice(rest) else {
                        break;
                    };
                    used += Layout::of(&bhs, self.rx_digests).total_len();
                    if let Phase::Full(s) = &mut self.phase {
                        s.data_digest_error(&bhs, now, &mut self.out);
                    } else {
                        self.close = Some(CloseReason::ProtocolError(
                            "data digest error during login".into(),
                        ));
                    }
                }
                Err(e) => {
                    if matches!(e, FrameError::HeaderDigest { .. }) {
                        self.digest_errors += 1;
                    }
                    // A bad header digest or an oversized segment leaves no trustworthy length:
                    // the stream cannot be resynchronised (RFC 7143 §7.8), so the connection ends.
                    tracing::warn!(error = %e, "unrecoverable framing error");
                    self.close = Some(CloseReason::ProtocolError(e.to_string()));
                }
            }
        }
        used
    }

    fn handle_frame(&mut self, f: Frame<'_>, from: Option<Received<'_>>, now: Instant) {
        self.pdus_received += 1;
        self.large_writes = is_large_write(&f.bhs, f.data.len());
        match &mut self.phase {
            Phase::Full(s) => {
                s.handle_frame(f, from, now, &mut self.out);
                if let Some(reason) = s.take_close() {
                    self.close = Some(reason);
                }
            }
            Phase::Login { .. } => self.handle_login_frame(f),
            Phase::Registering { .. } => {
                // RFC 7143 §6.1: the initiator waits for the Login Response before sending more.
                self.close = Some(CloseReason::ProtocolError(format!(
                    "{:?} received while the login response was pending",
                    f.bhs.opcode()
                )));
            }
        }
    }

    fn handle_login_frame(&mut self, f: Frame<'_>) {
        if f.bhs.opcode() != Opcode::LOGIN_REQUEST {
            // RFC 7143 §6.3: only Login Requests are allowed before full feature phase.
            tracing::warn!(opcode = ?f.bhs.opcode(), "non-login PDU during login");
            self.close = Some(CloseReason::ProtocolError(format!(
                "{:?} during login",
                f.bhs.opcode()
            )));
            return;
        }
        let Phase::Login { login, deadline } = &mut self.phase else {
            return;
        };
        let req = LoginRequest::decode(&f.bhs);
        let env = LoginEnv {
            targets: &self.ctx.login_targets,
            portal_group_tag: self.ctx.portal_group_tag,
            local: self.local,
            offer: &self.ctx.offer,
            discovery_chap: self.ctx.discovery_chap.as_ref(),
            peer: self.peer.map(|p| p.ip()),
        };
        match login.handle(&env, &req, f.data) {
            LoginAction::Respond(rsp, data) => self.out.pdu(&rsp.encode(), &data),
            LoginAction::Fail(rsp, data, why) => {
                let initiator = login.initiator_name().unwrap_or("(not given)");
                tracing::warn!(%initiator, reason = %why, status = %rsp.status, "login failed");
                self.refused = Some(rsp.status);
                self.out.pdu(&rsp.encode(), &data);
                self.close = Some(CloseReason::LoginFailed(why));
            }
            LoginAction::Ready(outcome) => {
                let p = &outcome.params;
                self.control
                    .push_back(ControlRequest::Register(Registration {
                        initiator: p.initiator_name.clone(),
                        isid: outcome.isid,
                        tsih: outcome.tsih,
                        cid: outcome.cid,
                        target: p.target_name.clone(),
                        discovery: p.session_type == SessionType::Discovery,
                    }));
                let login = std::mem::replace(login, Box::new(Login::new()));
                let deadline = *deadline;
                self.phase = Phase::Registering {
                    login,
                    outcome,
                    deadline,
                };
            }
        }
    }

    /// `pending` holds received bytes that begin with an incomplete PDU. When that PDU carries
    /// write data that can be received straight into the buffer it is written from (a Data-Out
    /// into its task's buffer, a SCSI Command's immediate data into one of its own), the bytes
    /// already here are placed and that buffer is lent with the range the rest of the payload
    /// goes to (all of `pending` is then consumed): the caller receives it there and calls
    /// `handle_landed`.
    pub fn landing(&mut self, pending: &[u8]) -> Option<Landing> {
        let Phase::Full(s) = &mut self.phase else {
            return None;
        };
        if self.rx_digests != Digests::default() || self.close.is_some() {
            return None;
        }
        let bhs = Bhs::from_slice(pending)?;
        let len = bhs.data_segment_len();
        let landable = bhs.total_ahs_len() == 0
            && len >= LANDING_MIN
            && len % 4 == 0
            && len <= s.max_rx_data()
            && pending.len() < BHS_LEN + len;
        if !landable {
            return None;
        }
        let prefix = &pending[BHS_LEN..];
        let (buf, range) = match bhs.opcode() {
            Opcode::DATA_OUT => s.data_out_landing(&bhs, prefix)?,
            Opcode::SCSI_COMMAND => s.command_landing(&bhs, prefix)?,
            _ => return None,
        };
        self.large_writes = is_large_write(&bhs, len);
        Some(Landing { bhs, buf, range })
    }

    /// When the next PDU's header should be received alone, how many more bytes that takes
    /// (`buffered` bytes of it are in already): after a large write payload the next PDU is
    /// likely one too, and with only its header in, `landing` receives all of its payload where
    /// it is written. `None`: receive as much as there is.
    pub fn header_alone(&self, buffered: usize) -> Option<usize> {
        let lands = matches!(self.phase, Phase::Full(_))
            && self.rx_digests == Digests::default()
            && self.close.is_none();
        (lands && self.large_writes && buffered < BHS_LEN).then(|| BHS_LEN - buffered)
    }

    /// The payload announced by `landing` has been received in place (`range` is empty).
    pub fn handle_landed(&mut self, landing: Landing, now: Instant) {
        self.pdus_received += 1;
        if let Phase::Full(s) = &mut self.phase {
            s.handle_landed(&landing.bhs, landing.buf, now, &mut self.out);
            if let Some(reason) = s.take_close() {
                self.close = Some(reason);
            }
        }
    }

    /// Part of a landed payload arrived: the peer is alive (keepalive).
    pub fn note_received(&mut self, now: Instant) {
        if let Phase::Full(s) = &mut self.phase {
            s.note_received(now);
        }
    }

    /// The transport finished sending what `output()` held (its buffers are released): work
    /// waiting for buffer budget may go on.
    pub fn handle_sent(&mut self, now: Instant) {
        if let Phase::Full(s) = &mut self.phase {
            s.handle_sent(now, &mut self.out);
        }
    }

    /// The control thread's answer to `ControlRequest::Register`: the session's TSIH, or the login
    /// status to refuse with.
    pub fn handle_registration(&mut self, result: Result<u16, LoginStatus>, now: Instant) {
        let Phase::Registering { login, outcome, .. } = &mut self.phase else {
            return;
        };
        match result {
            Ok(tsih) => {
                let target = outcome
                    .params
                    .target_name
                    .as_deref()
                    .and_then(|n| self.ctx.target_index(n));
                let depth = self.ctx.tuning.queue_depth.max(1);
                let (rsp, data) = login.accept(tsih, outcome.cmd_sn.wrapping_add(depth - 1));
                self.out.pdu(&rsp.encode(), &data);
                let admitted = Admission {
                    tsih,
                    target,
                    stat_sn: login.next_stat_sn(),
                    local: self.local,
                    budget: self.budget.clone(),
                    core: self.core,
                };
                let session = Session::new(self.ctx.clone(), outcome, admitted, now);
                let p = &outcome.params;
                let digests = Digests {
                    header: p.header_digest,
                    data: p.data_digest,
                };
                let target = p.target_name.as_deref().unwrap_or("(discovery)");
                tracing::info!(initiator = %p.initiator_name, %target, tsih, %digests, "session in full feature phase");
                // RFC 7143 §13.1: digests apply from the first PDU after the login phase.
                self.out.digests = digests;
                self.rx_digests = digests;
                self.phase = Phase::Full(Box::new(session));
            }
            Err(status) => {
                let initiator = &outcome.params.initiator_name;
                tracing::warn!(%initiator, %status, "login refused");
                self.refused = Some(status);
                let (rsp, data) = login.refuse(status);
                self.out.pdu(&rsp.encode(), &data);
                self.close = Some(CloseReason::LoginFailed(format!("refused with {status}")));
            }
        }
    }

    pub fn handle_io_completion(&mut self, c: IoCompletion, now: Instant) {
        if let Phase::Full(s) = &mut self.phase {
            s.handle_io_completion(c, now, &mut self.out);
            if let Some(reason) = s.take_close() {
                self.close = Some(reason);
            }
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.phase {
            Phase::Login { deadline, .. } | Phase::Registering { deadline, .. } => {
                if now >= *deadline && self.close.is_none() {
                    tracing::warn!("login timed out");
                    self.close = Some(CloseReason::LoginTimeout);
                }
            }
            Phase::Full(s) => {
                s.handle_timeout(now, &mut self.out);
                if let Some(reason) = s.take_close() {
                    self.close = Some(reason);
                }
            }
        }
    }

    /// Ends the connection at the control thread's request (session reinstatement).
    pub fn kill(&mut self) {
        self.close.get_or_insert(CloseReason::Reinstated);
        // The old session's initiator has already moved on: nothing left to flush to it.
        self.out.clear();
    }

    /// Warnings held back by the connection's rate limit and not reported yet.
    pub fn take_suppressed_warnings(&mut self) -> u64 {
        match &mut self.phase {
            Phase::Full(s) => s.log.take_suppressed(),
            _ => 0,
        }
    }

    /// Whether the connection is still negotiating its login (not yet registered).
    pub fn in_login(&self) -> bool {
        matches!(self.phase, Phase::Login { .. }) && self.close.is_none()
    }

    /// Ends a connection still logging in, for a newer one (ceiling of connections in login).
    pub fn evict(&mut self) {
        self.close.get_or_insert(CloseReason::Evicted);
        self.out.clear();
    }

    /// The daemon is stopping: the connection closes once what it has started is done, and
    /// background work (a sanitize) stops before its next step.
    pub fn shut_down(&mut self) {
        self.close.get_or_insert(CloseReason::Shutdown);
        if let Phase::Full(s) = &mut self.phase {
            s.stop_background_work();
        }
    }

    /// The daemon is stopping with `grace` for logouts: a session is asked to log out within
    /// it (and dropped after it, its I/O done); a connection still logging in, or any with no
    /// grace, shuts down at once.
    pub fn stop(&mut self, grace: std::time::Duration, now: Instant) {
        match &mut self.phase {
            Phase::Full(s) if !grace.is_zero() && self.close.is_none() => {
                s.now = now;
                s.stop_background_work();
                s.request_logout(grace, &mut self.out);
            }
            _ => self.shut_down(),
        }
    }

    /// The transport failed or the peer closed: nothing more can be sent.
    pub fn kill_transport(&mut self) {
        self.close.get_or_insert(CloseReason::TransportClosed);
        self.out.clear();
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Login { deadline, .. } | Phase::Registering { deadline, .. } => Some(*deadline),
            Phase::Full(s) => s.poll_timeout(),
        }
    }

    pub fn poll_io(&mut self) -> Option<IoRequest> {
        match &mut self.phase {
            Phase::Full(s) => s.poll_io(),
            _ => None,
        }
    }

    pub fn poll_control(&mut self) -> Option<ControlRequest> {
        if let Some(r) = self.control.pop_front() {
            return Some(r);
        }
        match &mut self.phase {
            Phase::Full(s) => s.control_out.pop_front(),
            _ => None,
        }
    }

    /// The control thread's answer to a `ControlRequest::Lu`.
    pub fn handle_lu_reply(&mut self, token: u64, reply: LuReply, now: Instant) {
        if let Phase::Full(s) = &mut self.phase {
            s.now = now;
            s.handle_lu_reply(token, reply, &mut self.out);
        }
    }

    /// The control thread ends tasks of this session (a reset from another nexus); returns
    /// whether some are still finishing (`ControlRequest::AbortDrained` follows).
    pub fn handle_remote_abort(&mut self, abort: &RemoteAbort, now: Instant) -> bool {
        match &mut self.phase {
            Phase::Full(s) => {
                s.now = now;
                s.handle_remote_abort(abort, &mut self.out)
            }
            _ => false,
        }
    }

    /// Switches to a new portal context (live configuration change; see `Session::adopt`).
    pub fn adopt(&mut self, ctx: Arc<PortalContext>) {
        if let Phase::Full(s) = &mut self.phase {
            s.adopt(ctx.clone());
        }
        self.ctx = ctx;
    }

    /// The session, for listings; `None` before full feature phase.
    pub fn session_info(&self) -> Option<super::SessionInfo> {
        match &self.phase {
            Phase::Full(s) => Some(s.info()),
            _ => None,
        }
    }

    /// The session's I/O counters; `None` before full feature phase.
    pub fn stats(&self) -> Option<&super::stats::SessionStats> {
        match &self.phase {
            Phase::Full(s) => Some(&s.stats),
            _ => None,
        }
    }

    /// The initiator's name, once its login named it.
    pub fn initiator_name(&self) -> Option<&str> {
        match &self.phase {
            Phase::Login { login, .. } => login.initiator_name(),
            Phase::Registering { outcome, .. } => Some(&outcome.params.initiator_name),
            Phase::Full(s) => Some(&s.params.initiator_name),
        }
    }

    /// Where the connection is: "login", "registering" or "full".
    pub fn phase_name(&self) -> &'static str {
        match &self.phase {
            Phase::Login { .. } => "login",
            Phase::Registering { .. } => "registering",
            Phase::Full(_) => "full",
        }
    }

    /// Tasks of target `target`'s unit `lun` still running on this connection.
    pub fn tasks_on(&self, target: usize, lun: u16) -> usize {
        match &self.phase {
            Phase::Full(s) => s.tasks_on(target, lun),
            _ => 0,
        }
    }

    /// Asks the initiator to log out within `within` (Async Message); a connection not yet in
    /// full feature phase is closed at once.
    pub fn request_logout(&mut self, within: std::time::Duration, now: Instant) {
        match &mut self.phase {
            Phase::Full(s) => {
                s.now = now;
                s.request_logout(within, &mut self.out);
            }
            _ => {
                self.close.get_or_insert(CloseReason::Dropped);
            }
        }
    }

    /// Ends the connection at the operator's request (`ringtgt ctl session drop`): a reset, with
    /// nothing more sent.
    pub fn drop_session(&mut self) {
        self.close.get_or_insert(CloseReason::Dropped);
        self.out.clear();
    }

    /// The status the login was refused with, if it was.
    pub fn login_refusal(&self) -> Option<LoginStatus> {
        self.refused
    }

    /// PDUs received with a wrong header or data digest.
    /// Whole PDUs taken in so far: how many one receive brought is how the peer sends.
    pub fn pdus_received(&self) -> u64 {
        self.pdus_received
    }

    pub fn digest_errors(&self) -> u64 {
        self.digest_errors
    }

    /// PDUs ready to send. The reactor takes them out and sends them.
    pub fn output(&mut self) -> &mut Output {
        &mut self.out
    }

    /// Set once the connection must end; the reactor flushes `output()` first.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        self.close.as_ref()
    }

    /// The session's TSIH once in full feature phase.
    pub fn tsih(&self) -> Option<u16> {
        match &self.phase {
            Phase::Full(s) => Some(s.tsih()),
            _ => None,
        }
    }

    /// The connection is closing: work that outlives its nexus (a sanitize) goes on detached.
    /// Returns whether that is all that is left, so that its session may end meanwhile.
    pub fn leave_to_background(&mut self) -> bool {
        match &mut self.phase {
            Phase::Full(s) => s.leave_to_background(),
            _ => true,
        }
    }

    /// Whether detached work (a sanitize) still runs, I/O in flight or not (a paced step).
    pub fn has_background_work(&self) -> bool {
        match &self.phase {
            Phase::Full(s) => s.has_background_work(),
            _ => false,
        }
    }

    /// Whether backing-store operations are still in flight (their buffers are lent out).
    pub fn io_in_flight(&self) -> usize {
        match &self.phase {
            Phase::Full(s) => s.io_in_flight(),
            _ => 0,
        }
    }
}
