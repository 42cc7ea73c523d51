//! Task management (RFC 7143 §11.5, §11.6; RFC 7144 §4.1 for the SAM-5 functions).

use super::control::LuOp;
use super::full::Session;
use super::output::Output;
use super::task::TaskState;
use crate::pdu::tmf::{TmfFunction, TmfRequest, TmfResponse, TmfResponseCode};
use crate::pdu::Bhs;
use crate::scsi::decode_lun;

/// A task management request whose response waits for the tasks it ended to finish their I/O
/// (and, for resets, for the control thread to have ended them on every other session).
pub struct PendingTmf {
    itt: u32,
    lun: Option<u16>,
    /// Token of the control thread's reply still awaited.
    pub(super) awaiting: Option<u64>,
}

impl Session {
    pub(super) fn handle_tmf(&mut self, bhs: &Bhs, out: &mut Output) {
        let req = TmfRequest::decode(bhs);
        let lun = decode_lun(req.lun);
        match req.function {
            TmfFunction::ABORT_TASK => {
                let found = self.abort_where(|t| t.itt == req.referenced_task_tag);
                let code = if found || self.window_covers(req.ref_cmd_sn) {
                    TmfResponseCode::COMPLETE
                } else {
                    TmfResponseCode::TASK_DOES_NOT_EXIST
                };
                self.defer_tmf(req.itt, lun, code, out);
            }
            TmfFunction::ABORT_TASK_SET => {
                self.abort_where(|t| Some(t.lun) == lun);
                self.defer_tmf(req.itt, lun, TmfResponseCode::COMPLETE, out);
            }
            TmfFunction::CLEAR_TASK_SET | TmfFunction::LOGICAL_UNIT_RESET => {
                self.abort_where(|t| Some(t.lun) == lun);
                let op = if req.function == TmfFunction::CLEAR_TASK_SET {
                    LuOp::ClearTaskSet
                } else {
                    LuOp::LunReset
                };
                let awaiting = lun.and_then(|l| self.request_lu(Some(l), op));
                self.defer_tmf_awaiting(req.itt, lun, awaiting, out);
            }
            TmfFunction::TARGET_WARM_RESET => {
                self.abort_where(|_| true);
                let awaiting = self.request_lu(None, LuOp::TargetReset);
                self.defer_tmf_awaiting(req.itt, None, awaiting, out);
            }
            _ => self.send_tmf_response(req.itt, TmfResponseCode::NOT_SUPPORTED, out),
        }
    }

    /// RFC 7143 §11.6.1 (b): a referenced command inside the window counts as received.
    fn window_covers(&self, ref_cmd_sn: u32) -> bool {
        super::sn::lt(ref_cmd_sn, self.exp_cmd_sn())
            && super::sn::distance(ref_cmd_sn, self.exp_cmd_sn()) <= self.ctx.tuning.queue_depth
    }

    /// Ends matching tasks: those with nothing in flight are freed now; the others finish
    /// silently when their I/O completes. Returns whether any task matched.
    pub(super) fn abort_where(&mut self, pred: impl Fn(&super::task::Task) -> bool) -> bool {
        let mut found = false;
        let slots: Vec<usize> = self
            .tasks
            .iter()
            .filter(|(_, t)| pred(t))
            .map(|(k, _)| k)
            .collect();
        for slot in slots {
            found = true;
            match self.tasks[slot].state {
                TaskState::Receiving(_) => self.end_receiving_task_quietly(slot),
                TaskState::Deferred(_) => {
                    self.free_task(slot);
                }
                _ => self.tasks[slot].aborted = true,
            }
        }
        found
    }

    fn defer_tmf(&mut self, itt: u32, lun: Option<u16>, code: TmfResponseCode, out: &mut Output) {
        if code != TmfResponseCode::COMPLETE {
            self.send_tmf_response(itt, code, out);
            return;
        }
        self.defer_tmf_awaiting(itt, lun, None, out);
    }

    fn defer_tmf_awaiting(
        &mut self,
        itt: u32,
        lun: Option<u16>,
        awaiting: Option<u64>,
        out: &mut Output,
    ) {
        self.tmfs.push(PendingTmf { itt, lun, awaiting });
        self.finish_tmfs(out);
    }

    pub(super) fn finish_tmfs(&mut self, out: &mut Output) {
        let mut i = 0;
        while i < self.tmfs.len() {
            let lun = self.tmfs[i].lun;
            let busy = self.tmfs[i].awaiting.is_some()
                || self
                    .tasks
                    .iter()
                    .any(|(_, t)| t.aborted && (lun.is_none() || Some(t.lun) == lun));
            if busy {
                i += 1;
                continue;
            }
            let t = self.tmfs.swap_remove(i);
            self.send_tmf_response(t.itt, TmfResponseCode::COMPLETE, out);
        }
    }

    fn send_tmf_response(&mut self, itt: u32, response: TmfResponseCode, out: &mut Output) {
        let rsp = TmfResponse {
            response,
            itt,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn(),
            max_cmd_sn: self.max_cmd_sn(),
        };
        out.pdu(&rsp.encode(), &[]);
    }
}
