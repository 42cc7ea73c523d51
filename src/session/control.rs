//! What a session asks of the control thread, which owns everything unique or shared across
//! cores, and what comes back: session registration at login, and operations on the state the
//! logical units share (resets that end other sessions' tasks and raise unit attentions,
//! reservation commands that only the control thread may apply).

use std::sync::Arc;

use super::data_in::Reply;
use super::full::Session;
use super::output::Output;
use super::task::TaskState;
use crate::scsi::pr::{ItNexus, NexusSet};
use crate::scsi::{Completion, SharedOp, UnitAttention};

/// A login that finished negotiating and needs a TSIH (or its TSIH checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub initiator: String,
    pub isid: [u8; 6],
    /// As sent by the initiator; 0 = new session.
    pub tsih: u16,
    pub cid: u16,
    pub target: Option<String>,
    pub discovery: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlRequest {
    /// Allocate a TSIH (or validate the one given), reinstating any session with the same
    /// initiator and ISID; answered with `Connection::handle_registration`.
    Register(Registration),
    /// An operation on shared logical-unit state; answered with `Connection::handle_lu_reply`
    /// carrying the same token.
    Lu { token: u64, request: LuRequest },
    /// Every task ended by `Connection::handle_remote_abort` with this id has finished.
    AbortDrained { id: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LuRequest {
    /// Index of the target in the portal context.
    pub target: usize,
    /// The logical unit, or `None` for the whole target.
    pub lun: Option<u16>,
    /// The nexus asking.
    pub nexus: ItNexus,
    pub op: LuOp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LuOp {
    /// LOGICAL UNIT RESET (SAM-5 §7.7): every task of the unit ends, every nexus gets a unit
    /// attention.
    LunReset,
    /// TARGET WARM RESET: the same for every unit of the target.
    TargetReset,
    /// TARGET COLD RESET (RFC 7143 §11.5.1): a warm reset, then every connection to the target
    /// is closed.
    TargetColdReset,
    /// CLEAR TASK SET (SAM-5 §7.4): every task of the unit ends; the other nexuses learn that
    /// theirs were cleared (COMMANDS CLEARED BY ANOTHER INITIATOR).
    ClearTaskSet,
    /// PERSISTENT RESERVE OUT, RESERVE or RELEASE: the command completes with what applying
    /// it answered ([`LuReply::Completed`]).
    Reservation(SharedOp),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LuReply {
    /// The operation was applied, and every task it ended on other sessions has finished.
    Done,
    /// A reservation command was applied (or refused): its status and sense.
    Completed(Completion),
}

/// Tasks the control thread asks a session to end: those of `target` (and `lun`, if given)
/// from every other session, after a reset. They end without status (TAS=0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteAbort {
    pub id: u64,
    pub target: usize,
    pub lun: Option<u16>,
    /// Only the tasks of these I_T nexuses (PREEMPT AND ABORT); `None` = every nexus.
    pub only: Option<Arc<[NexusSet]>>,
    /// A nexus that lost tasks gets COMMANDS CLEARED BY ANOTHER INITIATOR (SPC-4 PREEMPT AND
    /// ABORT with TAS=0); resets announce themselves with their own unit attention instead.
    pub announce: bool,
}

impl Session {
    /// Sends `op` to the control thread; returns the token its reply will carry.
    pub(super) fn request_lu(&mut self, lun: Option<u16>, op: LuOp) -> Option<u64> {
        let target = self.target?;
        let token = self.next_token;
        self.next_token = self.next_token.wrapping_add(1);
        let request = LuRequest {
            target,
            lun,
            nexus: self.it_nexus.clone(),
            op,
        };
        self.control_out
            .push_back(ControlRequest::Lu { token, request });
        Some(token)
    }

    pub fn handle_lu_reply(&mut self, token: u64, reply: LuReply, out: &mut Output) {
        match reply {
            LuReply::Done => {
                for t in &mut self.tmfs {
                    if t.awaiting == Some(token) {
                        t.awaiting = None;
                    }
                }
            }
            LuReply::Completed(_) if self.logout_release_done(token) => {}
            LuReply::Completed(c) => self.finish_shared(token, &c, out),
        }
        self.after_task_change(out);
    }

    /// Hands a reservation command to the control thread; task `slot` waits for its answer.
    pub(super) fn start_shared(&mut self, slot: usize, op: SharedOp) {
        let lun = self.tasks[slot].lun;
        match self.request_lu(Some(lun), LuOp::Reservation(op)) {
            Some(token) => self.tasks[slot].state = TaskState::Shared { token },
            // Only a discovery session has no target, and it sends no SCSI command.
            None => {
                self.free_task(slot);
            }
        }
    }

    /// The control thread's answer to the reservation command that waited with `token`.
    fn finish_shared(&mut self, token: u64, c: &Completion, out: &mut Output) {
        let Some(slot) = self
            .tasks
            .iter()
            .find(|(_, t)| matches!(t.state, TaskState::Shared { token: k } if k == token))
            .map(|(slot, _)| slot)
        else {
            return;
        };
        let t = self.free_task(slot);
        if !t.aborted {
            self.send_completion(Reply::of(&t), c, out);
        }
    }

    /// Ends the tasks `abort` names; returns whether some still have I/O in flight (the session
    /// then reports `ControlRequest::AbortDrained` once they are gone).
    pub fn handle_remote_abort(&mut self, abort: &RemoteAbort, out: &mut Output) -> bool {
        if self.target != Some(abort.target) {
            return false;
        }
        if let Some(only) = &abort.only {
            if !only.iter().any(|set| set.covers(&self.it_nexus)) {
                return false;
            }
        }
        // A reservation command waiting for the control thread is the one that asked for this
        // abort (PREEMPT AND ABORT from this nexus) or will be answered anyway: it stays.
        let lost = self.abort_where(|t| {
            abort.lun.is_none_or(|l| t.lun == l) && !matches!(t.state, TaskState::Shared { .. })
        });
        if lost && abort.announce {
            if let Some(lun) = abort.lun {
                self.nexus
                    .unit_attentions
                    .establish(lun, UnitAttention::COMMANDS_CLEARED_BY_ANOTHER_INITIATOR);
            }
        }
        let draining = self.tasks.iter().any(|(_, t)| t.aborted);
        if draining {
            self.remote_aborts.push(abort.clone());
        }
        self.after_task_change(out);
        draining
    }

    /// Reports remote aborts whose tasks have all finished.
    pub(super) fn finish_remote_aborts(&mut self) {
        let mut i = 0;
        while i < self.remote_aborts.len() {
            let lun = self.remote_aborts[i].lun;
            let busy = self
                .tasks
                .iter()
                .any(|(_, t)| t.aborted && lun.is_none_or(|l| t.lun == l));
            if busy {
                i += 1;
                continue;
            }
            let done = self.remote_aborts.swap_remove(i);
            self.control_out
                .push_back(ControlRequest::AbortDrained { id: done.id });
        }
    }
}
