//! Full feature phase of one session (one connection: MaxConnections=1): CmdSN ordering, the task
//! table and the dispatch of each PDU family to its handler.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use slab::Slab;

use super::cmdsn::{self, CmdWindow, OwnedPdu, Queued};
use super::conn::{CloseReason, IoCompletion, IoRequest};
use super::context::PortalContext;
use super::control::{ControlRequest, RemoteAbort};
use super::error::SessionError;
use super::logout::PendingLogout;
use super::lu_state::{views_of, LuView};
use super::nop::Keepalive;
use super::output::Output;
use super::ratelog::LogLimiter;
use super::task::Task;
use super::text::{TextReply, TextRequestInProgress};
use super::tmf::PendingTmf;
use crate::backstore::{Budget, IoBuf, RecvBuf};
use crate::login::{LoginOutcome, SessionParams, SessionType};
use crate::pdu::reject::Reject;
use crate::pdu::{Bhs, Frame, Opcode};
use crate::scsi::alua::PortGroups;
use crate::scsi::{InitiatorPort, ItNexus, LunMap, NexusState};

/// A PDU's data segment: still in the connection's receive buffer, or received in place into a
/// buffer of its own (immediate data, see `Session::command_landing`), which a write then keeps
/// as it is instead of copying it.
pub(super) enum DataSegment<'a> {
    Received(&'a [u8]),
    Landed(IoBuf),
}

/// Where a frame's data segment lies in the connection's receive buffer, for lending it out.
#[derive(Clone, Copy)]
pub(super) struct Received<'a> {
    pub rx: &'a RecvBuf,
    pub data_at: usize,
}

/// Smallest immediate data kept as a view of the receive buffer instead of being copied: below
/// a block, the copy costs less than the view's bookkeeping.
pub(super) const LEND_MIN: usize = 512;

impl DataSegment<'_> {
    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            DataSegment::Received(b) => b,
            DataSegment::Landed(buf) => buf.as_slice(),
        }
    }
}

/// How soon a request blocked by another session's range lock is retried.
pub const RANGE_LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(1);

pub struct Session {
    pub(super) ctx: Arc<PortalContext>,
    pub(super) params: SessionParams,
    pub(super) tsih: u16,
    pub(super) cid: u16,
    /// Index of the session's target in the context; `None` for discovery sessions.
    pub(super) target: Option<usize>,
    pub(super) window: CmdWindow,
    pub(super) stat_sn: u32,
    /// The initiator's ExpStatSN in its latest PDU: it had seen every answer before it.
    exp_stat_sn: u32,
    pub(super) tasks: Slab<Task>,
    pub(super) by_itt: super::itt::IttMap,
    pub(super) next_generation: u32,
    pub(super) next_ttt: u32,
    pub(super) nexus: NexusState,
    /// This session's I_T nexus as reservations name it.
    pub(super) it_nexus: ItNexus,
    /// The target's port groups: the access state of the nexus's port.
    pub(super) port_groups: Arc<PortGroups>,
    pub(super) io_queue: VecDeque<IoRequest>,
    pub(super) io_in_flight: usize,
    pub(super) keepalive: Keepalive,
    pub(super) text: Option<TextReply>,
    /// A Text Request still arriving (C=1).
    pub(super) text_rx: Option<TextRequestInProgress>,
    pub(super) logout: Option<PendingLogout>,
    pub(super) tmfs: Vec<PendingTmf>,
    pub(super) close: Option<CloseReason>,
    pub(super) cdb: Vec<u8>,
    /// Emptied R2T lists of finished writes, reused by new ones.
    pub(super) r2t_lists: Vec<Vec<super::task::OpenR2t>>,
    pub(super) local: Option<SocketAddr>,
    /// The logical units this session's initiator sees (all of the target's, or its mask).
    pub(super) luns: Arc<LunMap>,
    /// Buffered bytes of this connection (reads waiting to be sent, write data not yet on disk).
    pub(super) budget: Budget,
    /// Tasks waiting for the budget, in arrival order, by slot and generation.
    pub(super) waiting: VecDeque<(usize, u32)>,
    /// Commands the window has moved past whose tasks do not exist yet (counted as live when
    /// granting CmdSNs, so the window never opens for them twice).
    pub(super) unexecuted: usize,
    /// Tasks going on without their command (`session::sanitize`): not counted as live when
    /// granting CmdSNs.
    pub(super) detached: usize,
    /// Paced sanitize steps waiting for their time, by slot, generation and when.
    pub(super) paced: Vec<(usize, u32, Instant)>,
    /// The daemon is stopping: background work stops before its next step.
    pub(super) stopping: bool,
    pub(super) log: LogLimiter,
    /// Time of the input being handled (the core reads no clock of its own).
    pub(super) now: Instant,
    /// The initiator's address (SendTargets lists only the targets it may reach).
    pub(super) peer: Option<IpAddr>,
    /// This session's I_T nexus, as reservations and unit attentions name it.
    /// The latest shared state seen of each logical unit, in `luns` order.
    pub(super) lu_views: Vec<LuView>,
    /// Requests for the control thread (shared logical-unit state), drained by the connection.
    pub(super) control_out: VecDeque<ControlRequest>,
    pub(super) next_token: u64,
    /// Aborts the control thread asked for whose tasks are still finishing.
    pub(super) remote_aborts: Vec<RemoteAbort>,
    /// An I_T NEXUS RESET or TARGET COLD RESET is pending: the session ends after its response.
    pub(super) nexus_reset: bool,
    /// The core this session runs on (its slot in per-core counters of shared state).
    pub(super) core: usize,
    /// Writes waiting for an overlapping COMPARE AND WRITE elsewhere to release its blocks.
    pub(super) lock_waiting: VecDeque<IoRequest>,
    /// Tasks (slot, generation) waiting to get their blocks to themselves.
    pub(super) exclusive_waiters: Vec<(usize, u32)>,
    /// I/O counters (metrics, `ringtgt ctl`).
    pub(super) stats: super::stats::SessionStats,
    /// The target asked the initiator to log out (Async Message): the connection ends at this
    /// time if it has not.
    pub(super) logout_deadline: Option<Instant>,
}

/// What the connection knows when its login is accepted, beyond the negotiation's outcome.
pub struct Admission {
    pub tsih: u16,
    /// Index of the session's target in the context; `None` for discovery sessions.
    pub target: Option<usize>,
    /// StatSN of the first full-feature response.
    pub stat_sn: u32,
    pub local: Option<SocketAddr>,
    pub budget: Budget,
    pub core: usize,
}

impl Session {
    pub fn new(
        ctx: Arc<PortalContext>,
        outcome: &LoginOutcome,
        admitted: Admission,
        now: Instant,
    ) -> Self {
        let Admission {
            tsih,
            target,
            stat_sn,
            local,
            budget,
            core,
        } = admitted;
        let luns = target.map_or_else(Default::default, |t| {
            ctx.targets[t].view_for(&outcome.params.initiator_name)
        });
        // SAM-5 §5.14: every I_T nexus first hears that its logical units were powered on.
        let mut nexus = NexusState::default();
        for lu in luns.iter() {
            nexus
                .unit_attentions
                .establish(lu.lun, crate::scsi::UnitAttention::POWER_ON_RESET);
        }
        // The portal group the login came through is the nexus's target port (ALUA).
        let port_groups = target.map_or_else(
            || Arc::new(PortGroups::single(outcome.portal_group_tag)),
            |t| ctx.targets[t].port_groups.clone(),
        );
        let it_nexus = ItNexus {
            initiator: InitiatorPort::new(&outcome.params.initiator_name, outcome.isid),
            relative_port: outcome.portal_group_tag,
        };
        let lu_views = views_of(&luns);
        let keepalive = Keepalive::new(ctx.tuning.nop_interval, ctx.tuning.nop_timeout, now);
        let window = CmdWindow::new(outcome.cmd_sn, ctx.tuning.queue_depth);
        Session {
            params: outcome.params.clone(),
            tsih,
            cid: outcome.cid,
            target,
            window,
            stat_sn,
            exp_stat_sn: stat_sn,
            tasks: Slab::new(),
            by_itt: super::itt::new_map(),
            next_generation: 1,
            next_ttt: 1,
            nexus,
            it_nexus,
            port_groups,
            io_queue: VecDeque::new(),
            io_in_flight: 0,
            keepalive,
            text: None,
            text_rx: None,
            logout: None,
            tmfs: Vec::new(),
            close: None,
            cdb: Vec::with_capacity(32),
            r2t_lists: Vec::new(),
            local,
            luns,
            budget,
            waiting: VecDeque::new(),
            unexecuted: 0,
            detached: 0,
            paced: Vec::new(),
            stopping: false,
            log: LogLimiter::default(),
            now,
            peer: outcome.peer,
            lu_views,
            control_out: VecDeque::new(),
            next_token: 1,
            remote_aborts: Vec::new(),
            nexus_reset: false,
            core,
            lock_waiting: VecDeque::new(),
            exclusive_waiters: Vec::new(),
            stats: Default::default(),
            logout_deadline: None,
            ctx,
        }
    }

    pub fn tsih(&self) -> u16 {
        self.tsih
    }

    pub fn max_cmd_sn(&self) -> u32 {
        self.window.max_cmd_sn()
    }

    pub fn exp_cmd_sn(&self) -> u32 {
        self.window.exp_cmd_sn()
    }

    pub fn max_rx_data(&self) -> usize {
        self.params.target_mrdsl as usize
    }

    pub fn io_in_flight(&self) -> usize {
        self.io_in_flight
    }

    pub fn is_discovery(&self) -> bool {
        self.params.session_type == SessionType::Discovery
    }

    pub fn take_close(&mut self) -> Option<CloseReason> {
        self.close.take()
    }

    /// Takes the next StatSN (RFC 7143 §4.2.2.2: one per status-carrying response).
    pub(super) fn next_stat_sn(&mut self) -> u32 {
        let sn = self.stat_sn;
        self.stat_sn = self.stat_sn.wrapping_add(1);
        sn
    }

    /// StatSN to put in PDUs that do not consume one (R2T, NOP-In pings).
    pub(super) fn current_stat_sn(&self) -> u32 {
        self.stat_sn
    }

    pub fn poll_io(&mut self) -> Option<IoRequest> {
        let req = self.io_queue.pop_front()?;
        self.io_in_flight += 1;
        Some(req)
    }

    /// A complete PDU; `from` says where its data segment lies when it is in a receive buffer
    /// that may lend it out.
    pub fn handle_frame(
        &mut self,
        f: Frame<'_>,
        from: Option<Received<'_>>,
        now: Instant,
        out: &mut Output,
    ) {
        self.now = now;
        self.keepalive.received(now);
        self.note_exp_stat_sn(&f.bhs);
        let op = f.bhs.opcode();
        match op {
            Opcode::DATA_OUT => self.handle_data_out(&f.bhs, f.data, from, out),
            Opcode::SCSI_COMMAND => {
                let data = self.command_data(&f.bhs, f.data, from);
                self.admit(&f.bhs, f.ahs, data, out)
            }
            Opcode::NOP_OUT
            | Opcode::TEXT_REQUEST
            | Opcode::LOGOUT_REQUEST
            | Opcode::TASK_MGMT_REQUEST => {
                self.admit(&f.bhs, f.ahs, DataSegment::Received(f.data), out)
            }
            // RFC 7143 §11.16: SNACK needs ErrorRecoveryLevel > 0, which is never negotiated here.
            Opcode::SNACK_REQUEST => self.refuse(&f.bhs, SessionError::SnackAtErl0, out),
            Opcode::LOGIN_REQUEST => self.refuse(&f.bhs, SessionError::LoginInFullFeature, out),
            _ => self.refuse(&f.bhs, SessionError::UnsupportedOpcode(op), out),
        }
        self.resume_waiting(out);
    }

    /// The transport sent (and so released) buffered output: queued work may fit now.
    pub fn handle_sent(&mut self, now: Instant, out: &mut Output) {
        self.now = now;
        self.resume_waiting(out);
    }

    /// An in-place receive announced by `data_out_landing` or `command_landing` completed into
    /// `buf`: the PDU whose header is `bhs` is complete.
    pub fn handle_landed(&mut self, bhs: &Bhs, buf: IoBuf, now: Instant, out: &mut Output) {
        self.now = now;
        self.keepalive.received(now);
        self.note_exp_stat_sn(bhs);
        if bhs.opcode() == Opcode::SCSI_COMMAND {
            self.admit(bhs, &[], DataSegment::Landed(buf), out);
        } else {
            self.handle_landed_data_out(bhs, buf, out);
        }
        self.resume_waiting(out);
    }

    /// Every PDU an initiator sends in full feature phase carries its ExpStatSN at byte 28.
    fn note_exp_stat_sn(&mut self, bhs: &Bhs) {
        self.exp_stat_sn = bhs.u32_at(28);
    }

    /// About how many requests the initiator has outstanding: those this session holds (live
    /// tasks, and commands waiting for their CmdSN turn) plus the answers sent that it had not
    /// seen when it sent its latest PDU. Recomputed from the live state each time, so an
    /// answer that consumes no task (a NOP-In, a Reject) cannot make it drift; an ExpStatSN
    /// outside the answers sent so far (bogus, or a hostile initiator's) counts as none seen
    /// missing.
    pub fn initiator_outstanding(&self) -> usize {
        let unseen = self.stat_sn.wrapping_sub(self.exp_stat_sn) as usize;
        let held = self.tasks.len() - self.detached + self.unexecuted;
        let window = self.ctx.tuning.queue_depth as usize;
        held + if unseen <= window { unseen } else { 0 }
    }

    /// Part of an in-place receive arrived: the peer is alive.
    pub fn note_received(&mut self, now: Instant) {
        self.keepalive.received(now);
    }

    /// Opens the CmdSN window as far as the live tasks allow.
    pub(super) fn regrant(&mut self) {
        self.window
            .grant(self.tasks.len() - self.detached + self.unexecuted);
    }

    /// Refuses a PDU: one rate-limited warning and a Reject carrying its header (RFC 7143 §11.17).
    pub(super) fn refuse(&mut self, bhs: &Bhs, err: SessionError, out: &mut Output) {
        crate::warn_limited!(self.log, self.now, opcode = ?bhs.opcode(), itt = bhs.itt(), "{err}");
        self.reject(bhs, err, out);
    }

    /// CmdSN admission (RFC 7143 §3.2.2.1): immediate commands run at once; others in CmdSN order.
    fn admit(&mut self, bhs: &Bhs, ahs: &[u8], data: DataSegment<'_>, out: &mut Output) {
        if self.is_discovery()
            && !matches!(
                bhs.opcode(),
                Opcode::TEXT_REQUEST | Opcode::LOGOUT_REQUEST | Opcode::NOP_OUT
            )
        {
            // RFC 7143 §4.3: a discovery session carries only Text, Logout and NOP.
            self.refuse(bhs, SessionError::NotInDiscovery(bhs.opcode()), out);
            return;
        }
        if bhs.immediate() {
            self.execute(bhs, ahs, data, out);
            return;
        }
        let cmd_sn = bhs.u32_at(24);
        // A waiting command keeps at most a first burst of data (the most any command may carry
        // before its turn); a longer segment is refused when the command's turn comes.
        let bytes = data.bytes();
        let keep = bytes.len() <= self.params.first_burst_length as usize;
        let admission = self.window.admit(cmd_sn, || OwnedPdu {
            bhs: *bhs,
            ahs: ahs.to_vec(),
            data: if keep { bytes.to_vec() } else { Vec::new() },
            dropped_data: (!keep).then_some(bytes.len()),
        });
        match admission {
            cmdsn::Admission::Now => {
                // ExpCmdSN moves past the command before it runs, so its own response already
                // acknowledges it (RFC 7143 §4.2.2.1).
                let next = self.advance_window();
                self.execute(bhs, ahs, data, out);
                self.unexecuted -= 1;
                self.deliver_queued(next, out);
            }
            cmdsn::Admission::Queued => {
                tracing::debug!(
                    cmd_sn,
                    exp = self.window.exp_cmd_sn(),
                    "command queued behind a CmdSN gap"
                );
            }
            cmdsn::Admission::Ignore => {
                crate::warn_limited!(
                    self.log,
                    self.now,
                    cmd_sn,
                    exp_cmd_sn = self.window.exp_cmd_sn(),
                    max_cmd_sn = self.window.max_cmd_sn(),
                    "CmdSN outside the window: command ignored"
                );
            }
        }
    }

    /// Executes the commands that waited behind the one just delivered, in CmdSN order.
    pub(super) fn deliver_queued(&mut self, mut next: Option<Queued>, out: &mut Output) {
        while let Some(q) = next {
            next = self.advance_window();
            self.execute_queued(q, out);
            self.unexecuted -= 1;
        }
        self.regrant();
    }

    pub(super) fn advance_window(&mut self) -> Option<Queued> {
        self.unexecuted += 1;
        self.window.advance()
    }

    fn execute_queued(&mut self, q: Queued, out: &mut Output) {
        if let Some(len) = q.cmd.dropped_data {
            let err = match q.cmd.bhs.opcode() {
                Opcode::SCSI_COMMAND => SessionError::ImmediateDataTooLong { len },
                _ => SessionError::HeldDataTooLong { len },
            };
            self.refuse(&q.cmd.bhs, err, out);
            return;
        }
        let data = DataSegment::Received(&q.cmd.data);
        self.execute(&q.cmd.bhs, &q.cmd.ahs, data, out);
        for d in q.data_outs {
            self.handle_data_out(&d.bhs, &d.data, None, out);
        }
    }

    fn execute(&mut self, bhs: &Bhs, ahs: &[u8], data: DataSegment<'_>, out: &mut Output) {
        if self.logout.is_some() && bhs.opcode() != Opcode::LOGOUT_REQUEST {
            self.refuse(bhs, SessionError::WaitingForLogout(bhs.opcode()), out);
            return;
        }
        match bhs.opcode() {
            Opcode::SCSI_COMMAND => self.handle_scsi_command(bhs, ahs, data, out),
            Opcode::NOP_OUT => self.handle_nop_out(bhs, data.bytes(), out),
            Opcode::TEXT_REQUEST => self.handle_text(bhs, data.bytes(), out),
            Opcode::LOGOUT_REQUEST => self.handle_logout(bhs, out),
            Opcode::TASK_MGMT_REQUEST => self.handle_tmf(bhs, out),
            _ => {}
        }
    }

    /// A Reject carrying the refused PDU's header (RFC 7143 §11.17).
    fn reject(&mut self, bhs: &Bhs, err: SessionError, out: &mut Output) {
        let r = Reject {
            reason: err.reject_reason(),
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.window.exp_cmd_sn(),
            max_cmd_sn: self.window.max_cmd_sn(),
            data_sn: 0,
        };
        out.pdu(&r.encode(), &bhs.0);
    }

    pub fn data_digest_error(&mut self, bhs: &Bhs, now: Instant, out: &mut Output) {
        // RFC 7143 §7.8: the PDU is discarded and rejected; at ERL 0 the initiator recovers by
        // retrying the task or the session.
        self.now = now;
        self.refuse(bhs, SessionError::DataDigest, out);
        if bhs.opcode() != Opcode::DATA_OUT {
            return;
        }
        // The data is lost, so its task cannot complete: it ends with CHECK CONDITION.
        let slot = self.by_itt.get(&bhs.itt()).copied();
        if let Some(slot) = slot {
            if matches!(self.tasks[slot].state, super::task::TaskState::Receiving(_)) {
                let sense = super::write::PROTOCOL_SERVICE_CRC_ERROR;
                self.end_receiving_task(slot, sense, out);
            }
        }
    }

    pub fn handle_io_completion(&mut self, c: IoCompletion, now: Instant, out: &mut Output) {
        self.now = now;
        self.io_in_flight = self.io_in_flight.saturating_sub(1);
        self.complete_io(c, out);
        self.after_task_change(out);
        self.resume_waiting(out);
        if self.waits_for_range_locks() {
            self.retry_range_locks();
        }
    }

    /// Work that waits for tasks to drain: deferred logout and task management responses.
    pub(super) fn after_task_change(&mut self, out: &mut Output) {
        self.finish_tmfs(out);
        self.finish_logout(out);
        if !self.remote_aborts.is_empty() {
            self.finish_remote_aborts();
        }
    }

    pub fn handle_timeout(&mut self, now: Instant, out: &mut Output) {
        self.now = now;
        if self.logout_deadline.is_some_and(|d| now >= d) && self.close.is_none() {
            tracing::warn!("no Logout within the time the target gave: connection dropped");
            self.close = Some(CloseReason::LogoutTimeout);
        }
        if self.waits_for_range_locks() {
            self.retry_range_locks();
        }
        if !self.paced.is_empty() {
            self.resume_paced(out);
        }
        let ping = self.keepalive.on_timer(now, &mut self.next_ttt);
        match ping {
            Ok(Some(ttt)) => self.send_ping(ttt, out),
            Ok(None) => {}
            Err(()) => {
                crate::warn_limited!(
                    self.log,
                    now,
                    "no answer to NOP-In within the timeout: connection is dead"
                );
                self.close = Some(CloseReason::KeepaliveTimeout);
            }
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.waits_for_range_locks() {
            // The lock is held by a session on another core, which cannot wake this one: look
            // again very soon.
            return Some(self.now + RANGE_LOCK_RETRY);
        }
        [
            self.keepalive.deadline(),
            self.logout_deadline,
            self.next_paced(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Portals to advertise: a wildcard portal is named by the address this connection reached.
    pub(super) fn advertised_portals(&self) -> Vec<SocketAddr> {
        self.ctx
            .portals
            .iter()
            .map(|p| match self.local {
                Some(l) if p.ip().is_unspecified() && l.is_ipv4() == p.is_ipv4() => {
                    SocketAddr::new(l.ip(), p.port())
                }
                _ => *p,
            })
            .collect()
    }
}
