//! NOP-Out/NOP-In and keepalive, Text (SendTargets), Logout and task management.

use std::time::{Duration, Instant};

use super::control::LuOp;
use super::error::SessionError;
use super::full::Session;
use super::output::Output;
use super::task::TaskState;
use crate::login::{parse_pairs, text_request_answer, PendingText};
use crate::pdu::logout::{LogoutReason, LogoutRequest, LogoutResponse, LogoutResponseCode};
use crate::pdu::nop::{NopIn, NopOut};
use crate::pdu::text::{TextRequest, TextResponse};
use crate::pdu::tmf::{TmfFunction, TmfRequest, TmfResponse, TmfResponseCode};
use crate::pdu::{Bhs, RESERVED_TAG};
use crate::scsi::decode_lun;

/// Target-initiated NOP-In pings (RFC 7143 §11.19): after `interval` without traffic the target
/// pings; a ping unanswered for `timeout` means the connection is dead.
pub struct Keepalive {
    interval: Option<Duration>,
    timeout: Duration,
    last_rx: Instant,
    outstanding: Option<(u32, Instant)>,
}

impl Keepalive {
    pub fn new(interval: Option<Duration>, timeout: Duration, now: Instant) -> Self {
        Keepalive {
            interval,
            timeout,
            last_rx: now,
            outstanding: None,
        }
    }

    pub fn received(&mut self, now: Instant) {
        self.last_rx = now;
    }

    pub fn answered(&mut self, ttt: u32) -> bool {
        match self.outstanding {
            Some((t, _)) if t == ttt => {
                self.outstanding = None;
                true
            }
            _ => false,
        }
    }

    /// `Ok(Some(ttt))`: send a ping with this tag; `Err`: the connection is dead.
    pub fn on_timer(&mut self, now: Instant, next_ttt: &mut u32) -> Result<Option<u32>, ()> {
        let Some(interval) = self.interval else {
            return Ok(None);
        };
        if let Some((_, deadline)) = self.outstanding {
            return if now >= deadline { Err(()) } else { Ok(None) };
        }
        if now.duration_since(self.last_rx) < interval {
            return Ok(None);
        }
        let ttt = alloc_ttt(next_ttt);
        self.outstanding = Some((ttt, now + self.timeout));
        Ok(Some(ttt))
    }

    pub fn deadline(&self) -> Option<Instant> {
        let interval = self.interval?;
        Some(match self.outstanding {
            Some((_, deadline)) => deadline,
            None => self.last_rx + interval,
        })
    }
}

/// Target Transfer Tags are never the reserved value (RFC 7143 §11.8.3).
pub(super) fn alloc_ttt(next: &mut u32) -> u32 {
    let ttt = *next;
    *next = next.wrapping_add(1);
    if *next == RESERVED_TAG {
        *next = 1;
    }
    ttt
}

/// A Text Response too long for one PDU, handed out as the initiator asks (RFC 7143 §11.10.2).
pub struct TextReply {
    itt: u32,
    ttt: u32,
    pending: PendingText,
}

pub struct PendingLogout {
    itt: u32,
    response: LogoutResponseCode,
}

/// A task management request whose response waits for the tasks it ended to finish their I/O
/// (and, for resets, for the control thread to have ended them on every other session).
pub struct PendingTmf {
    itt: u32,
    lun: Option<u16>,
    /// Token of the control thread's reply still awaited.
    pub(super) awaiting: Option<u64>,
}

impl Session {
    pub(super) fn handle_nop_out(&mut self, bhs: &Bhs, data: &[u8], out: &mut Output) {
        let nop = NopOut::decode(bhs);
        if nop.itt == RESERVED_TAG {
            // The answer to our ping; it wants no reply (RFC 7143 §11.18.3).
            if !self.keepalive.answered(nop.ttt) {
                tracing::debug!(ttt = nop.ttt, "NOP-Out for an unknown ping");
            }
            return;
        }
        let mrdsl = self.params.initiator_mrdsl as usize;
        let echo = &data[..data.len().min(mrdsl)];
        let rsp = NopIn {
            lun: nop.lun,
            itt: nop.itt,
            ttt: RESERVED_TAG,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn(),
            max_cmd_sn: self.max_cmd_sn(),
        };
        out.pdu(&rsp.encode(), echo);
    }

    pub(super) fn send_ping(&mut self, ttt: u32, out: &mut Output) {
        let ping = NopIn {
            lun: 0,
            itt: RESERVED_TAG,
            ttt,
            stat_sn: self.current_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn(),
            max_cmd_sn: self.max_cmd_sn(),
        };
        out.pdu(&ping.encode(), &[]);
    }

    pub(super) fn handle_text(&mut self, bhs: &Bhs, data: &[u8], out: &mut Output) {
        let req = TextRequest::decode(bhs);
        if req.ttt != RESERVED_TAG {
            // Continuation of a long answer.
            match self.text.take() {
                Some(t) if t.ttt == req.ttt && t.itt == req.itt => self.send_text_chunk(t, out),
                _ => self.refuse(bhs, SessionError::UnknownTextContinuation, out),
            }
            return;
        }
        if req.cont {
            // Multi-PDU text requests are not needed for any key this target answers in full
            // feature phase; refuse rather than buffer an unbounded request.
            self.refuse(bhs, SessionError::MultiPduText, out);
            return;
        }
        let answer = match parse_pairs(data) {
            Ok(pairs) => {
                let ctx = self.ctx.clone();
                let portals = self.advertised_portals();
                text_request_answer(
                    &pairs,
                    &self.params,
                    self.peer,
                    &ctx.login_targets,
                    &portals,
                    ctx.portal_group_tag,
                )
            }
            Err(e) => {
                self.refuse(bhs, SessionError::MalformedText(e), out);
                return;
            }
        };
        let reply = TextReply {
            itt: req.itt,
            ttt: 0,
            pending: PendingText::new(answer),
        };
        self.send_text_chunk(reply, out);
    }

    fn send_text_chunk(&mut self, mut t: TextReply, out: &mut Output) {
        let (chunk, more) = t.pending.next_chunk(self.params.initiator_mrdsl as usize);
        let ttt = if more {
            super::misc_pdus::alloc_ttt(&mut self.next_ttt)
        } else {
            RESERVED_TAG
        };
        let rsp = TextResponse {
            final_bit: !more,
            cont: more,
            lun: 0,
            itt: t.itt,
            ttt,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn(),
            max_cmd_sn: self.max_cmd_sn(),
        };
        out.pdu(&rsp.encode(), &chunk);
        if more {
            t.ttt = ttt;
            self.text = Some(t);
        }
    }

    pub(super) fn handle_logout(&mut self, bhs: &Bhs, out: &mut Output) {
        let req = LogoutRequest::decode(bhs);
        let response = match req.reason {
            LogoutReason::CLOSE_SESSION => LogoutResponseCode::SUCCESS,
            LogoutReason::CLOSE_CONNECTION if req.cid == self.cid => LogoutResponseCode::SUCCESS,
            LogoutReason::CLOSE_CONNECTION => LogoutResponseCode::CID_NOT_FOUND,
            // RFC 7143 §11.15.1: connection recovery needs ErrorRecoveryLevel 2.
            LogoutReason::REMOVE_FOR_RECOVERY => LogoutResponseCode::RECOVERY_NOT_SUPPORTED,
            other => {
                self.refuse(bhs, SessionError::InvalidLogoutReason(other.0), out);
                return;
            }
        };
        self.logout = Some(PendingLogout {
            itt: req.itt,
            response,
        });
        self.finish_logout(out);
    }

    /// RFC 7143 §11.14: the Logout Response goes out once the connection's tasks are done.
    pub(super) fn finish_logout(&mut self, out: &mut Output) {
        if self.io_in_flight > 0 || !self.tmfs.is_empty() {
            return;
        }
        let Some(l) = self.logout.take() else { return };
        let rsp = LogoutResponse {
            response: l.response,
            itt: l.itt,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn(),
            max_cmd_sn: self.max_cmd_sn(),
            time2wait: self.params.default_time2wait,
            time2retain: self.params.default_time2retain,
        };
        out.pdu(&rsp.encode(), &[]);
        if l.response == LogoutResponseCode::SUCCESS {
            self.close = Some(super::conn::CloseReason::Logout);
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_pings_after_idle_and_fails_after_timeout() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(Some(Duration::from_secs(5)), Duration::from_secs(10), t0);
        let mut next = 7;
        assert_eq!(k.on_timer(t0 + Duration::from_secs(4), &mut next), Ok(None));
        let ttt = k
            .on_timer(t0 + Duration::from_secs(5), &mut next)
            .unwrap()
            .unwrap();
        assert_eq!(ttt, 7);
        assert_eq!(
            k.on_timer(t0 + Duration::from_secs(14), &mut next),
            Ok(None)
        );
        assert_eq!(k.on_timer(t0 + Duration::from_secs(15), &mut next), Err(()));
    }

    #[test]
    fn answered_ping_rearms() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(Some(Duration::from_secs(1)), Duration::from_secs(1), t0);
        let mut next = 1;
        let ttt = k
            .on_timer(t0 + Duration::from_secs(1), &mut next)
            .unwrap()
            .unwrap();
        assert!(!k.answered(ttt + 1));
        assert!(k.answered(ttt));
        k.received(t0 + Duration::from_secs(2));
        assert_eq!(k.deadline(), Some(t0 + Duration::from_secs(3)));
    }

    #[test]
    fn ttt_skips_reserved_value() {
        let mut next = RESERVED_TAG - 1;
        assert_eq!(alloc_ttt(&mut next), RESERVED_TAG - 1);
        assert_eq!(next, 1);
    }
}
