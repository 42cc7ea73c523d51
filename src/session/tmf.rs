//! Task management (RFC 7143 §11.5, §11.6; RFC 7144 §4.1 for the SAM-5 functions).

use super::cmdsn::Consumed;
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
        let known_lun = lun.filter(|&l| self.luns.get(l).is_some());
        match req.function {
            TmfFunction::ABORT_TASK => {
                let code = self.abort_task(&req, out);
                self.defer_tmf(req.itt, lun, code, out);
            }
            TmfFunction::ABORT_TASK_SET => {
                self.abort_where(|t| Some(t.lun) == lun);
                self.defer_tmf(req.itt, lun, TmfResponseCode::COMPLETE, out);
            }
            TmfFunction::CLEAR_TASK_SET | TmfFunction::LOGICAL_UNIT_RESET => {
                let Some(l) = known_lun else {
                    return self.send_tmf_response(
                        req.itt,
                        TmfResponseCode::LUN_DOES_NOT_EXIST,
                        out,
                    );
                };
                self.abort_where(|t| t.lun == l);
                let op = if req.function == TmfFunction::CLEAR_TASK_SET {
                    LuOp::ClearTaskSet
                } else {
                    LuOp::LunReset
                };
                let awaiting = self.request_lu(Some(l), op);
                self.defer_tmf_awaiting(req.itt, Some(l), awaiting, out);
            }
            TmfFunction::TARGET_WARM_RESET | TmfFunction::TARGET_COLD_RESET => {
                self.abort_where(|_| true);
                let cold = req.function == TmfFunction::TARGET_COLD_RESET;
                let op = if cold {
                    LuOp::TargetColdReset
                } else {
                    LuOp::TargetReset
                };
                self.nexus_reset |= cold;
                let awaiting = self.request_lu(None, op);
                self.defer_tmf_awaiting(req.itt, None, awaiting, out);
            }
            TmfFunction::I_T_NEXUS_RESET => {
                // SAM-5 §7.8: every task of the nexus ends; then the nexus itself does (RFC 7144
                // §4.1: the session is closed once the response is sent).
                self.abort_where(|_| true);
                self.nexus_reset = true;
                self.defer_tmf(req.itt, None, TmfResponseCode::COMPLETE, out);
            }
            TmfFunction::QUERY_TASK => {
                let itt = req.referenced_task_tag;
                let exists = self
                    .tasks
                    .iter()
                    .any(|(_, t)| t.itt == itt && !t.aborted && !t.detached)
                    || self.window.has_queued(|c| c.bhs.itt() == itt);
                self.send_query_response(req.itt, exists, [0; 3], out);
            }
            TmfFunction::QUERY_TASK_SET => {
                let Some(l) = known_lun else {
                    return self.send_tmf_response(
                        req.itt,
                        TmfResponseCode::LUN_DOES_NOT_EXIST,
                        out,
                    );
                };
                let exists = self
                    .tasks
                    .iter()
                    .any(|(_, t)| t.lun == l && !t.aborted && !t.detached)
                    || self
                        .window
                        .has_queued(|c| decode_lun(c.bhs.lun()) == Some(l));
                self.send_query_response(req.itt, exists, [0; 3], out);
            }
            TmfFunction::QUERY_ASYNC_EVENT => {
                let Some(l) = known_lun else {
                    return self.send_tmf_response(
                        req.itt,
                        TmfResponseCode::LUN_DOES_NOT_EXIST,
                        out,
                    );
                };
                // SAM-5 §7.6: reports (without clearing) the unit attention a command would get.
                self.refresh_lu(l);
                match self.nexus.unit_attentions.peek(l) {
                    Some(ua) => {
                        self.send_query_response(req.itt, true, [0x06, ua.asc, ua.ascq], out)
                    }
                    None => self.send_query_response(req.itt, false, [0; 3], out),
                }
            }
            _ => self.send_tmf_response(req.itt, TmfResponseCode::NOT_SUPPORTED, out),
        }
    }

    /// RFC 7143 §11.5.1 ABORT TASK: a task in progress ends; a command still waiting behind a
    /// CmdSN gap is dropped; a command not received yet whose RefCmdSN lies in the window before
    /// the TMF counts as received (so a late copy is ignored). Each of these is Function
    /// Complete. A RefCmdSN outside the window (e.g. a command already answered) names no task.
    fn abort_task(&mut self, req: &TmfRequest, out: &mut Output) -> TmfResponseCode {
        let itt = req.referenced_task_tag;
        if self.abort_where(|t| t.itt == itt) || self.window.abort_queued(itt) {
            return TmfResponseCode::COMPLETE;
        }
        match self.window.consume(req.ref_cmd_sn, req.cmd_sn) {
            Consumed::AtExpected => {
                let next = self.advance_window();
                self.unexecuted -= 1;
                self.deliver_queued(next, out);
                TmfResponseCode::COMPLETE
            }
            Consumed::Marked => TmfResponseCode::COMPLETE,
            Consumed::Outside => TmfResponseCode::TASK_DOES_NOT_EXIST,
        }
    }

    /// RFC 7144 §4.2: a QUERY function answers Function Succeeded when it found what it asked
    /// about, else Function Complete.
    fn send_query_response(&mut self, itt: u32, found: bool, info: [u8; 3], out: &mut Output) {
        let code = if found {
            TmfResponseCode::SUCCEEDED
        } else {
            TmfResponseCode::COMPLETE
        };
        self.send_tmf_response_with(itt, code, info, out);
    }

    /// Ends matching tasks: those with nothing in flight are freed now; the others finish
    /// silently when their I/O completes; a sanitize operation goes on detached (SBC-4 §4.11).
    /// Returns whether any task matched.
    pub(super) fn abort_where(&mut self, pred: impl Fn(&super::task::Task) -> bool) -> bool {
        let mut found = false;
        let slots: Vec<usize> = self
            .tasks
            .iter()
            .filter(|(_, t)| !t.detached && pred(t))
            .map(|(k, _)| k)
            .collect();
        for slot in slots {
            found = true;
            if self.outlives_abort(slot) {
                self.detach(slot);
                continue;
            }
            let cancelled = self.cancel_lock_waiting(slot);
            match &mut self.tasks[slot].state {
                TaskState::Receiving(w) => {
                    w.writes_in_flight -= cancelled;
                    self.end_receiving_task_quietly(slot);
                }
                TaskState::Deferred(_) => {
                    self.free_task(slot);
                }
                TaskState::Draining { writes_in_flight } => {
                    *writes_in_flight -= cancelled;
                    if *writes_in_flight == 0 {
                        self.free_task(slot);
                    }
                }
                // Its one operation never reached the store.
                TaskState::Io(_) | TaskState::Job { .. } if cancelled > 0 => {
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
        self.send_tmf_response_with(itt, response, [0; 3], out);
    }

    fn send_tmf_response_with(
        &mut self,
        itt: u32,
        response: TmfResponseCode,
        additional_info: [u8; 3],
        out: &mut Output,
    ) {
        let rsp = TmfResponse {
            response,
            itt,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn(),
            max_cmd_sn: self.max_cmd_sn(),
            additional_info,
        };
        out.pdu(&rsp.encode(), &[]);
        if self.nexus_reset && self.tmfs.is_empty() {
            // The I_T nexus ends with its reset (RFC 7144 §4.1).
            self.close = Some(super::conn::CloseReason::NexusReset);
        }
    }
}
