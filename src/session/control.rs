//! What a session asks of the control thread, which owns everything unique or shared across
//! cores, and what comes back: session registration at login, and operations on the state the
//! logical units share (resets that end other sessions' tasks and raise unit attentions).

use super::full::Session;
use super::output::Output;
use crate::scsi::pr::ItNexus;

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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LuReply {
    /// The operation was applied, and every task it ended on other sessions has finished.
    Done,
}

/// Tasks the control thread asks a session to end: those of `target` (and `lun`, if given)
/// from every other session, after a reset. They end without status (TAS=0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteAbort {
    pub id: u64,
    pub target: usize,
    pub lun: Option<u16>,
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
        }
        self.after_task_change(out);
    }

    /// Ends the tasks `abort` names; returns whether some still have I/O in flight (the session
    /// then reports `ControlRequest::AbortDrained` once they are gone).
    pub fn handle_remote_abort(&mut self, abort: RemoteAbort, out: &mut Output) -> bool {
        if self.target != Some(abort.target) {
            return false;
        }
        self.abort_where(|t| abort.lun.is_none_or(|l| t.lun == l));
        let draining = self.tasks.iter().any(|(_, t)| t.aborted);
        if draining {
            self.remote_aborts.push(abort);
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
