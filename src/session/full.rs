//! Full feature phase of one session (one connection: MaxConnections=1): CmdSN ordering, the task
//! table and the dispatch of each PDU family to its handler.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use slab::Slab;

use super::cmdsn::{Admission, CmdWindow, OwnedPdu, Queued};
use super::conn::{CloseReason, IoCompletion, IoRequest};
use super::context::PortalContext;
use super::misc_pdus::{Keepalive, PendingLogout, PendingTmf, TextReply};
use super::output::Output;
use super::task::Task;
use crate::login::{LoginOutcome, SessionParams, SessionType};
use crate::pdu::reject::{Reject, RejectReason};
use crate::pdu::{Bhs, Frame, Opcode};
use crate::scsi::NexusState;

pub struct Session {
    pub(super) ctx: Arc<PortalContext>,
    pub(super) params: SessionParams,
    pub(super) tsih: u16,
    pub(super) cid: u16,
    /// Index of the session's target in the context; `None` for discovery sessions.
    pub(super) target: Option<usize>,
    pub(super) window: CmdWindow,
    pub(super) stat_sn: u32,
    pub(super) tasks: Slab<Task>,
    pub(super) by_itt: HashMap<u32, usize>,
    pub(super) next_generation: u32,
    pub(super) next_ttt: u32,
    pub(super) nexus: NexusState,
    pub(super) io_queue: VecDeque<IoRequest>,
    pub(super) io_in_flight: usize,
    pub(super) keepalive: Keepalive,
    pub(super) text: Option<TextReply>,
    pub(super) logout: Option<PendingLogout>,
    pub(super) tmfs: Vec<PendingTmf>,
    pub(super) close: Option<CloseReason>,
    pub(super) cdb: Vec<u8>,
    /// Emptied R2T lists of finished writes, reused by new ones.
    pub(super) r2t_lists: Vec<Vec<super::task::OpenR2t>>,
    pub(super) local: Option<SocketAddr>,
    /// The initiator's address (SendTargets lists only the targets it may reach).
    pub(super) peer: Option<IpAddr>,
}

impl Session {
    pub fn new(
        ctx: Arc<PortalContext>,
        outcome: &LoginOutcome,
        tsih: u16,
        target: Option<usize>,
        stat_sn: u32,
        local: Option<SocketAddr>,
        now: Instant,
    ) -> Self {
        let keepalive = Keepalive::new(ctx.tuning.nop_interval, ctx.tuning.nop_timeout, now);
        let window = CmdWindow::new(outcome.cmd_sn, ctx.tuning.queue_depth);
        Session {
            params: outcome.params.clone(),
            tsih,
            cid: outcome.cid,
            target,
            window,
            stat_sn,
            tasks: Slab::new(),
            by_itt: HashMap::new(),
            next_generation: 1,
            next_ttt: 1,
            nexus: NexusState::default(),
            io_queue: VecDeque::new(),
            io_in_flight: 0,
            keepalive,
            text: None,
            logout: None,
            tmfs: Vec::new(),
            close: None,
            cdb: Vec::with_capacity(32),
            r2t_lists: Vec::new(),
            local,
            peer: outcome.peer,
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

    pub fn handle_frame(&mut self, f: Frame<'_>, now: Instant, out: &mut Output) {
        self.keepalive.received(now);
        let op = f.bhs.opcode();
        match op {
            Opcode::DATA_OUT => self.handle_data_out(&f.bhs, f.data, out),
            Opcode::SCSI_COMMAND
            | Opcode::NOP_OUT
            | Opcode::TEXT_REQUEST
            | Opcode::LOGOUT_REQUEST
            | Opcode::TASK_MGMT_REQUEST => self.admit(f, out),
            Opcode::SNACK_REQUEST => {
                // RFC 7143 §11.16: SNACK needs ErrorRecoveryLevel > 0, which is never negotiated here.
                tracing::warn!("SNACK at ErrorRecoveryLevel 0");
                self.reject(&f.bhs, RejectReason::SNACK_REJECT, out);
            }
            Opcode::LOGIN_REQUEST => {
                tracing::warn!("Login Request in full feature phase");
                self.reject(&f.bhs, RejectReason::PROTOCOL_ERROR, out);
            }
            _ => {
                tracing::warn!(opcode = ?op, "unsupported opcode");
                self.reject(&f.bhs, RejectReason::COMMAND_NOT_SUPPORTED, out);
            }
        }
    }

    /// CmdSN admission (RFC 7143 §3.2.2.1): immediate commands run at once; others in CmdSN order.
    fn admit(&mut self, f: Frame<'_>, out: &mut Output) {
        if self.is_discovery()
            && !matches!(
                f.bhs.opcode(),
                Opcode::TEXT_REQUEST | Opcode::LOGOUT_REQUEST | Opcode::NOP_OUT
            )
        {
            // RFC 7143 §4.3: a discovery session carries only Text, Logout and NOP.
            tracing::warn!(opcode = ?f.bhs.opcode(), "command not allowed in a discovery session");
            self.reject(&f.bhs, RejectReason::PROTOCOL_ERROR, out);
            return;
        }
        if f.bhs.immediate() {
            self.execute(&f.bhs, f.ahs, f.data, out);
            return;
        }
        let cmd_sn = f.bhs.u32_at(24);
        let admission = self.window.admit(cmd_sn, || OwnedPdu {
            bhs: f.bhs,
            ahs: f.ahs.to_vec(),
            data: f.data.to_vec(),
        });
        match admission {
            Admission::Now => {
                // ExpCmdSN moves past the command before it runs, so its own response already
                // acknowledges it (RFC 7143 §4.2.2.1).
                let mut next = self.window.advance();
                self.execute(&f.bhs, f.ahs, f.data, out);
                while let Some(q) = next {
                    next = self.window.advance();
                    self.execute_queued(q, out);
                }
            }
            Admission::Queued => {
                tracing::debug!(
                    cmd_sn,
                    exp = self.window.exp_cmd_sn(),
                    "command queued behind a CmdSN gap"
                );
            }
            Admission::Ignore => {
                tracing::warn!(
                    cmd_sn,
                    exp_cmd_sn = self.window.exp_cmd_sn(),
                    max_cmd_sn = self.window.max_cmd_sn(),
                    "CmdSN outside the window: command ignored"
                );
            }
        }
    }

    fn execute_queued(&mut self, q: Queued, out: &mut Output) {
        self.execute(&q.cmd.bhs, &q.cmd.ahs, &q.cmd.data, out);
        for d in q.data_outs {
            self.handle_data_out(&d.bhs, &d.data, out);
        }
    }

    fn execute(&mut self, bhs: &Bhs, ahs: &[u8], data: &[u8], out: &mut Output) {
        if self.logout.is_some() && bhs.opcode() != Opcode::LOGOUT_REQUEST {
            self.reject(bhs, RejectReason::WAITING_FOR_LOGOUT, out);
            return;
        }
        match bhs.opcode() {
            Opcode::SCSI_COMMAND => self.handle_scsi_command(bhs, ahs, data, out),
            Opcode::NOP_OUT => self.handle_nop_out(bhs, data, out),
            Opcode::TEXT_REQUEST => self.handle_text(bhs, data, out),
            Opcode::LOGOUT_REQUEST => self.handle_logout(bhs, out),
            Opcode::TASK_MGMT_REQUEST => self.handle_tmf(bhs, out),
            _ => {}
        }
    }

    /// Refuses a PDU with a Reject carrying its header (RFC 7143 §11.17).
    pub(super) fn reject(&mut self, bhs: &Bhs, reason: RejectReason, out: &mut Output) {
        let r = Reject {
            reason,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.window.exp_cmd_sn(),
            max_cmd_sn: self.window.max_cmd_sn(),
            data_sn: 0,
        };
        out.pdu(&r.encode(), &bhs.0);
    }

    pub fn data_digest_error(&mut self, bhs: &Bhs, out: &mut Output) {
        // RFC 7143 §7.8: the PDU is discarded and rejected; at ERL 0 the initiator recovers by
        // retrying the task or the session.
        self.reject(bhs, RejectReason::DATA_DIGEST_ERROR, out);
    }

    pub fn handle_io_completion(&mut self, c: IoCompletion, now: Instant, out: &mut Output) {
        let _ = now;
        self.io_in_flight = self.io_in_flight.saturating_sub(1);
        self.complete_io(c, out);
        self.after_task_change(out);
    }

    /// Work that waits for tasks to drain: deferred logout and task management responses.
    pub(super) fn after_task_change(&mut self, out: &mut Output) {
        self.finish_tmfs(out);
        self.finish_logout(out);
    }

    pub fn handle_timeout(&mut self, now: Instant, out: &mut Output) {
        let ping = self.keepalive.on_timer(now, &mut self.next_ttt);
        match ping {
            Ok(Some(ttt)) => self.send_ping(ttt, out),
            Ok(None) => {}
            Err(()) => {
                tracing::warn!("no answer to NOP-In within the timeout: connection is dead");
                self.close = Some(CloseReason::KeepaliveTimeout);
            }
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.keepalive.deadline()
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
