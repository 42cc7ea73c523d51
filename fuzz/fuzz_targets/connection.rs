//! A whole connection, driven the way the reactor drives it, against memory and a virtual clock.
//!
//! Input: one byte of options, four bytes of CmdSN (big endian), then operations.
//!   options: bit 0 log in with HeaderDigest=CRC32C and DataDigest=CRC32C; bit 1 solicited data
//!            only (InitialR2T=Yes, ImmediateData=No, small bursts); bit 2 a CmdSN window of 4;
//!            bit 3 a connection buffer budget of 64 KiB (work waits for buffers); bit 4 unit 0
//!            has a sanitize journal, whose notes are written when the clock advances (a
//!            SANITIZE waits for its note before touching the medium).
//!   The harness logs in first (a correct Login Request for a normal session to the configured
//!   target with that CmdSN, registered with TSIH 1), so that the operations start in full
//!   feature phase. A recorded session's PDUs after its login replay with its own first CmdSN.
//!   Each operation is one byte `op` and its arguments:
//!     op & 7 in 0..=3  a PDU as on the wire without digests (BHS, AHS, data, padding), framed by
//!                      the harness with the negotiated digests; `op >> 3` (if not 0) splits it
//!                      into two receives at that many 32nds of its length;
//!     op & 7 == 4      u16 length, then that many raw bytes received as they are;
//!   Bytes are received as the reactor receives them: a payload landing in place takes its
//!   rest first, and after a large write payload the next header is received alone.
//!     op == 5          u8: complete one pending backing-store request (index = byte mod count;
//!                      the top bits pick an errno for some), then submit what follows;
//!     op & 7 == 5, op > 5: complete every pending request (and those that follow) successfully;
//!     op & 7 == 6      u8: advance the clock (below 128: tenths of a second, else seconds) and
//!                      call `handle_timeout`;
//!     op & 7 == 7      the reactor's send completes: drain the output.
//!   At the end every pending request completes and the output is drained; a sanitize left
//!   running by a closed connection (detached) then runs to its end as time passes.
//!
//! Checks: no panic; memory stays bounded (libFuzzer's -rss_limit_mb / -malloc_limit_mb);
//! every backing-store access lies inside its unit; the output is a stream of well-formed PDUs
//! with correct digests; an incomplete PDU never outgrows what the reactor's receive buffer holds;
//! the Data-In of a read of the null unit is zeros, whatever buffers earlier commands left behind.
#![no_main]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use ringtgt::backstore::RecvBuf;
use ringtgt::control::lu::{LuAction, LuRegistry};
use ringtgt::control::ConnRef;
use ringtgt::login::TargetOffer;
use ringtgt::pdu::frame;
use ringtgt::pdu::login::{LoginRequest, LoginResponse, Stage};
use ringtgt::pdu::{Bhs, Digests, Opcode};
use ringtgt::scsi::{decode_lun, HeldJournal};
use ringtgt::session::{
    Connection, ControlRequest, IoCompletion, IoOp, IoRequest, Landing, PortalContext,
    TargetRuntime, Tuning,
};
use ringtgt_fuzz::{login_targets, lun_map, MemStore, Reader, WirePdu, NULL_LUN, TARGET};

/// The reactor's receive buffer is at least this large (reactor/conn.rs).
const INITIAL_RECV_BUF: usize = 64 * 1024;
/// Completions one `complete_all` may take before the I/O is declared endless.
const MAX_COMPLETIONS: usize = 100_000;
/// Clock advances a detached sanitize may take, after the input, before it is declared endless
/// (unit 0 is 1 MiB; its steps take far fewer).
const MAX_BACKGROUND_TICKS: usize = 10_000;
const TSIH: u16 = 1;
/// This connection, as the control thread names it.
const ME: ConnRef = ConnRef { core: 0, key: 1 };
const PORTAL: &str = "127.0.0.1:3260";
/// Errnos a failed backing-store request reports.
const ERRNOS: [i32; 4] = [5, 28, 19, 11]; // EIO, ENOSPC, ENODEV, EAGAIN
const EOPNOTSUPP: i32 = 95;

fn context(options: u8) -> Arc<PortalContext> {
    let tuning = Tuning {
        queue_depth: if options & 4 != 0 { 4 } else { 128 },
        connection_buffer_bytes: if options & 8 != 0 { 64 << 10 } else { 32 << 20 },
        ..Tuning::default()
    };
    Arc::new(PortalContext {
        targets: vec![TargetRuntime::new(TARGET.into(), lun_map())],
        login_targets: login_targets(),
        portals: vec![PORTAL.parse().expect("portal address")],
        portal_group_tag: 1,
        offer: TargetOffer::default(),
        tuning,
        discovery_chap: None,
    })
}

/// The one place a Connection is built.
fn new_connection(ctx: Arc<PortalContext>, now: Instant) -> Connection {
    let local: SocketAddr = PORTAL.parse().expect("portal address");
    let peer: SocketAddr = "127.0.0.1:40000".parse().expect("peer address");
    Connection::new(ctx, Some(local), Some(peer), now)
}

/// The operational-stage keys of the login prefix: what libiscsi sends, with the variants.
fn login_text(options: u8) -> String {
    let digest = if options & 1 != 0 { "CRC32C" } else { "None" };
    let (initial_r2t, immediate, burst) = if options & 2 != 0 {
        ("Yes", "No", "8192")
    } else {
        ("No", "Yes", "262144")
    };
    [
        "InitiatorName=iqn.2026-11.test:fuzz".to_string(),
        "InitiatorAlias=fuzz".into(),
        format!("TargetName={TARGET}"),
        "SessionType=Normal".into(),
        format!("HeaderDigest={digest}"),
        format!("DataDigest={digest}"),
        "DefaultTime2Wait=2".into(),
        "DefaultTime2Retain=0".into(),
        "IFMarker=No".into(),
        "OFMarker=No".into(),
        "ErrorRecoveryLevel=0".into(),
        format!("InitialR2T={initial_r2t}"),
        format!("ImmediateData={immediate}"),
        format!("MaxBurstLength={burst}"),
        format!("FirstBurstLength={burst}"),
        "MaxOutstandingR2T=1".into(),
        "MaxConnections=1".into(),
        "DataPDUInOrder=Yes".into(),
        "DataSequenceInOrder=Yes".into(),
        "MaxRecvDataSegmentLength=262144".into(),
    ]
    .iter()
    .map(|kv| format!("{kv}\0"))
    .collect()
}

struct Harness {
    conn: Connection,
    now: Instant,
    /// The receive buffer, as the reactor keeps it: its first `rlen` bytes are received and not
    /// consumed yet; write data in it may be lent out to the session as views.
    rx: RecvBuf,
    rlen: usize,
    /// Backing-store requests submitted and not completed yet.
    pending: Vec<IoRequest>,
    /// A Data-Out payload being received in place, as the reactor does.
    landing: Option<Landing>,
    store: MemStore,
    digests: Digests,
    /// The control thread's writer of shared logical-unit state, with no reactor to ask.
    registry: LuRegistry,
    zero_reads: ZeroReads,
    /// Unit 0's sanitize journal (option bit 4).
    journal: Option<Arc<HeldJournal>>,
    /// The connection closed and its session ended for the control thread, while a sanitize
    /// it started may go on (detached), as the reactor keeps the slot for it.
    ended: bool,
}

/// Which tasks are reads of the null unit, whose Data-In must be zeros. Only commands given as
/// whole PDUs are known: after raw bytes (which may hold any command) nothing is checked, nor is
/// an ITT seen on more than one command.
#[derive(Default)]
struct ZeroReads {
    by_itt: std::collections::HashMap<u32, bool>,
    reused: std::collections::HashSet<u32>,
    unknown_commands: bool,
}

impl ZeroReads {
    fn command(&mut self, bhs: &Bhs) {
        let itt = bhs.itt();
        let read = matches!(bhs.0[32], 0x08 | 0x28 | 0x88 | 0xa8);
        let zeros = read && decode_lun(bhs.lun()) == Some(NULL_LUN);
        if self.reused.contains(&itt) || self.by_itt.insert(itt, zeros).is_some() {
            self.by_itt.remove(&itt);
            self.reused.insert(itt);
        }
    }

    fn must_be_zeros(&self, itt: u32) -> bool {
        !self.unknown_commands && self.by_itt.get(&itt) == Some(&true)
    }
}

impl Harness {
    /// A connection that has logged in: the login prefix, registration, the final response.
    fn logged_in(options: u8, cmd_sn: u32) -> Harness {
        let ctx = context(options);
        let store = MemStore::new(&ctx.targets[0].luns);
        let now = Instant::now();
        let registry = LuRegistry::new(&ctx, 0, None);
        let journal = (options & 16 != 0).then(|| {
            let journal = Arc::new(HeldJournal::default());
            if let Some(lu) = ctx.targets[0].luns.get(0) {
                lu.shared.medium.attach_journal(journal.clone(), None);
            }
            journal
        });
        let mut h = Harness {
            registry,
            journal,
            ended: false,
            zero_reads: ZeroReads::default(),
            conn: new_connection(ctx, now),
            now,
            rx: RecvBuf::new(INITIAL_RECV_BUF),
            rlen: 0,
            pending: Vec::new(),
            landing: None,
            store,
            digests: Digests::default(),
        };
        let mut req = LoginRequest::decode(&Bhs::new(Opcode::LOGIN_REQUEST));
        req.immediate = true;
        req.transit = true;
        req.csg = Stage::OPERATIONAL;
        req.nsg = Stage::FULL_FEATURE;
        req.isid = [0x80, 0x12, 0x34, 0x56, 0x78, 0x9a];
        req.cmd_sn = cmd_sn;
        let mut wire = Vec::new();
        frame::encode(
            &mut wire,
            &req.encode(),
            &[],
            login_text(options).as_bytes(),
            h.digests,
        );
        assert_eq!(h.conn.handle_input(&wire, now), wire.len());
        let register = h.conn.poll_control();
        assert!(
            matches!(register, Some(ControlRequest::Register(_))),
            "the login prefix asks for registration"
        );
        h.conn.handle_registration(Ok(TSIH), h.now);
        let wire = h.conn.output().to_wire();
        h.conn.output().clear();
        let (f, _) = frame::parse(&wire, Digests::default(), 1 << 24)
            .expect("login response framing")
            .expect("a complete login response");
        let rsp = LoginResponse::decode(&f.bhs);
        assert!(rsp.status.is_success() && rsp.transit && rsp.nsg == Stage::FULL_FEATURE);
        h.digests = Digests {
            header: options & 1 != 0,
            data: options & 1 != 0,
        };
        h
    }

    /// Bytes arrive from the socket, in the pieces the reactor's receives would take them.
    fn receive(&mut self, mut bytes: &[u8]) {
        loop {
            let n = self.next_receive_len().min(bytes.len());
            let (now, rest) = bytes.split_at(n);
            self.receive_once(now);
            bytes = rest;
            if bytes.is_empty() {
                return;
            }
        }
    }

    /// At most how many bytes the reactor's next receive takes (never 0): the rest of a landing
    /// payload, then the next header alone if the connection wants it so.
    fn next_receive_len(&self) -> usize {
        let after = |buffered| self.conn.header_alone(buffered).unwrap_or(usize::MAX);
        match &self.landing {
            Some(l) => l.range.len().saturating_add(after(0)),
            None => after(self.rlen),
        }
        .max(1)
    }

    /// One receive: the connection consumes the complete PDUs, or a payload being received in
    /// place takes the bytes first.
    fn receive_once(&mut self, mut bytes: &[u8]) {
        if self.conn.close_reason().is_some() {
            return; // the reactor no longer receives on a closing connection
        }
        if let Some(l) = self.landing.as_mut() {
            let n = bytes.len().min(l.range.len());
            let at = l.range.start;
            l.buf.as_mut_slice()[at..at + n].copy_from_slice(&bytes[..n]);
            l.range.start += n;
            bytes = &bytes[n..];
            if !l.range.is_empty() {
                self.conn.note_received(self.now);
                return;
            }
            let done = self.landing.take().expect("landing in progress");
            self.conn.handle_landed(done, self.now);
            self.service();
        }
        // A buffer with views of it alive is never received into: the reactor moves on.
        let need = self.rlen + bytes.len();
        if self.rx.is_lent() || need > self.rx.len() {
            self.rx.replace(0..self.rlen, need.max(self.rx.len()));
        }
        let spare = self
            .rx
            .spare_mut()
            .expect("a receive buffer nobody borrows");
        spare[self.rlen..need].copy_from_slice(bytes);
        self.rlen = need;
        loop {
            let used = self.conn.handle_received(&self.rx, self.rlen, self.now);
            assert!(used <= self.rlen);
            match self.rx.spare_mut() {
                Some(b) => b.copy_within(used..self.rlen, 0),
                None => {
                    let len = self.rx.len();
                    self.rx.replace(used..self.rlen, len);
                }
            }
            self.rlen -= used;
            if !self.conn.output_full() || self.conn.close_reason().is_some() {
                break;
            }
            // Back-pressure: the reactor offers the rest again once its sends completed.
            self.drain_output();
        }
        if self.conn.close_reason().is_none() && self.digests == Digests::default() {
            if let Some(l) = self.conn.landing(&self.rx.as_slice()[..self.rlen]) {
                self.rlen = 0;
                self.landing = Some(l);
            }
        }
        if self.conn.close_reason().is_none() {
            let room = self.conn.max_pdu_len().max(INITIAL_RECV_BUF);
            assert!(
                self.rlen < room,
                "{} bytes of an incomplete PDU, the receive buffer holds {room}",
                self.rlen
            );
        }
        self.service();
    }

    /// What the reactor does after every event: answer the control thread's part, submit I/O.
    fn service(&mut self) {
        // The control thread's part: registrations, and shared-state operations (resets,
        // reservations) applied by the real registry, as with no other session.
        while let Some(req) = self.conn.poll_control() {
            match req {
                ControlRequest::Register(_) => self.conn.handle_registration(Ok(TSIH), self.now),
                ControlRequest::Lu { token, request } => {
                    for action in self.registry.request(ME, token, request) {
                        if let LuAction::Reply { token, reply, .. } = action {
                            self.conn.handle_lu_reply(token, reply, self.now);
                        }
                    }
                }
                ControlRequest::AbortDrained { .. } => {}
            }
        }
        while let Some(io) = self.conn.poll_io() {
            self.pending.push(io);
        }
        // A closed connection whose work goes on: the reactor ends the session for the control
        // thread once every task left is detached (a sanitize outlives its nexus).
        if self.conn.close_reason().is_some() && !self.ended {
            self.ended = self.conn.leave_to_background();
        }
    }

    /// After the input: a detached sanitize runs to its end, as the reactor lets it, with time
    /// passing (its journal's notes are written, paced steps go out) and its I/O completing.
    fn finish_background_work(&mut self) {
        let mut ticks = 0;
        while self.ended && self.conn.has_background_work() {
            ticks += 1;
            assert!(
                ticks <= MAX_BACKGROUND_TICKS,
                "a detached sanitize never ends"
            );
            self.complete_all();
            self.advance(1);
        }
    }

    fn pdu(&mut self, op: u8, pdu: WirePdu<'_>) {
        if pdu.bhs.opcode() == Opcode::SCSI_COMMAND {
            self.zero_reads.command(&pdu.bhs);
        }
        let mut ahs = pdu.ahs.to_vec();
        ahs.resize(frame::pad4(ahs.len()), 0);
        let mut wire = Vec::new();
        frame::encode(&mut wire, &pdu.bhs, &ahs, pdu.data, self.digests);
        let split = usize::from(op >> 3) * wire.len() / 32;
        if split == 0 {
            self.receive(&wire);
        } else {
            self.receive(&wire[..split]);
            self.receive(&wire[split..]);
        }
    }

    /// The backing store finishes request `which` (mod the number pending).
    fn complete(&mut self, which: u8) {
        if self.pending.is_empty() {
            return;
        }
        let io = self
            .pending
            .swap_remove(usize::from(which) % self.pending.len());
        let errno = match which >> 5 {
            7 => Some(ERRNOS[usize::from(which) % ERRNOS.len()]),
            _ => None,
        };
        let c = self.perform(io, errno);
        self.conn.handle_io_completion(c, self.now);
        self.service();
    }

    fn perform(&mut self, io: IoRequest, mut errno: Option<i32>) -> IoCompletion {
        assert_eq!(io.target, 0, "I/O for a target that does not exist");
        let lun = io.lun;
        let mut extent = None;
        let buf = match io.op {
            IoOp::Read { offset, mut buf } => {
                self.store.read(lun, offset, buf.as_mut_slice());
                Some(buf)
            }
            IoOp::Write { offset, buf, .. } => {
                if errno.is_none() {
                    self.store.write(lun, offset, buf.as_slice());
                }
                Some(buf)
            }
            IoOp::Flush => None,
            IoOp::Discard { offset, len } => {
                if errno.is_none() {
                    self.store.discard(lun, offset, len);
                }
                None
            }
            IoOp::FindExtent { offset, len } => {
                extent = errno.is_none().then(|| self.store.extent(lun, offset, len));
                None
            }
            // Like a file store: the SCSI layer compares and writes itself.
            IoOp::CompareAndWrite { buf, .. } => {
                errno = errno.or(Some(EOPNOTSUPP));
                Some(buf)
            }
        };
        IoCompletion {
            token: io.token,
            result: errno.map_or(Ok(()), Err),
            buf,
            lock: io.lock,
            extent,
        }
    }

    fn advance(&mut self, amount: u8) {
        if let Some(j) = &self.journal {
            j.write_all();
        }
        self.now += if amount < 128 {
            Duration::from_millis(100 * u64::from(amount))
        } else {
            Duration::from_secs(u64::from(amount - 128))
        };
        self.conn.handle_timeout(self.now);
        self.service();
    }

    /// The send completes: every PDU staged so far must parse with the session's digests.
    fn drain_output(&mut self) {
        let out = self.conn.output();
        let wire = out.to_wire();
        let digests = out.digests;
        out.clear();
        self.conn.handle_sent(self.now);
        let mut rest = &wire[..];
        while !rest.is_empty() {
            let (f, n) = frame::parse(rest, digests, 1 << 24)
                .expect("the target sends PDUs with valid digests")
                .expect("the target sends whole PDUs");
            assert!(
                f.bhs.opcode().0 >= 0x20,
                "{:?} is not a target opcode",
                f.bhs.opcode()
            );
            if f.bhs.opcode() == Opcode::DATA_IN && self.zero_reads.must_be_zeros(f.bhs.itt()) {
                assert!(
                    f.data.iter().all(|&b| b == 0),
                    "a read of the null unit sent data that is not zeros"
                );
            }
            rest = &rest[n..];
        }
    }

    /// The backing store finishes every request, and those they lead to.
    fn complete_all(&mut self) {
        let mut completed = 0;
        while !self.pending.is_empty() {
            completed += 1;
            assert!(completed <= MAX_COMPLETIONS, "backing-store I/O never ends");
            self.complete(0);
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let mut r = Reader::new(input);
    let options = r.u8();
    let cmd_sn = r.u32();
    let mut h = Harness::logged_in(options, cmd_sn);
    while !r.is_empty() {
        let op = r.u8();
        match op & 7 {
            0..=3 => {
                if let Some(pdu) = r.pdu() {
                    h.pdu(op, pdu);
                }
            }
            4 => {
                let len = usize::from(r.u16());
                let bytes = r.take(len);
                h.zero_reads.unknown_commands = true;
                h.receive(bytes);
            }
            5 if op == 5 => {
                let which = r.u8();
                h.complete(which);
            }
            5 => h.complete_all(),
            6 => {
                let amount = r.u8();
                h.advance(amount);
            }
            _ => h.drain_output(),
        }
    }
    // End of input: the backing store finishes everything, the last output is sent.
    h.complete_all();
    h.drain_output();
    h.finish_background_work();
});
