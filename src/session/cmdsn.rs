//! Command numbering (RFC 7143 §4.2.2.1, §3.2.2.1): the CmdSN window and in-order delivery of
//! non-immediate commands. Commands that arrive ahead of a gap wait here until it is filled.
//!
//! The window is credit: MaxCmdSN only moves forward (an initiator ignores a smaller one), so a
//! granted CmdSN cannot be taken back. It is granted when a task ends, not when a command
//! arrives: live tasks + CmdSNs granted and not yet used never exceed the queue depth, so an
//! initiator that never lets its commands finish can have at most `depth` of them.

use super::sn;
use crate::pdu::Bhs;

/// An owned copy of a PDU waiting for its turn (only out-of-order commands are ever copied).
#[derive(Debug, Clone)]
pub struct OwnedPdu {
    pub bhs: Bhs,
    pub ahs: Vec<u8>,
    pub data: Vec<u8>,
    /// Length of a data segment too long to keep (it is refused when the command's turn comes;
    /// refusing it now would leave a CmdSN gap that nothing fills).
    pub dropped_data: Option<usize>,
}

/// A command held back by a CmdSN gap, with any unsolicited Data-Out that followed it.
#[derive(Debug)]
pub struct Queued {
    pub cmd: OwnedPdu,
    pub data_outs: Vec<OwnedPdu>,
    /// Data held for it (immediate and unsolicited), plus a header's worth per Data-Out.
    pub data_bytes: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// The next expected command: execute now.
    Now,
    /// Within the window but after a gap: queued.
    Queued,
    /// Outside the window (already seen, or beyond MaxCmdSN): RFC 7143 §4.2.2.1 says ignore it.
    Ignore,
}

/// What the window knows of one CmdSN ahead of ExpCmdSN.
#[derive(Debug, Default)]
enum Slot {
    #[default]
    Empty,
    Waiting(Queued),
    /// Counts as received without being executed: its command was aborted while it waited, or
    /// an ABORT TASK named it before it arrived (RFC 7143 §11.5.1). A copy that arrives later
    /// is ignored.
    Consumed,
}

pub struct CmdWindow {
    exp_cmd_sn: u32,
    max_cmd_sn: u32,
    depth: u32,
    /// Slot `i` is the command with CmdSN `exp_cmd_sn + i`.
    waiting: std::collections::VecDeque<Slot>,
}

/// What `CmdWindow::consume` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Consumed {
    /// The CmdSN is ExpCmdSN: the caller advances the window past it (delivering what waits).
    AtExpected,
    Marked,
    /// Not a CmdSN the window can still receive.
    Outside,
}

impl CmdWindow {
    pub fn new(first_cmd_sn: u32, depth: u32) -> Self {
        let depth = depth.max(1);
        CmdWindow {
            exp_cmd_sn: first_cmd_sn,
            max_cmd_sn: first_cmd_sn.wrapping_add(depth - 1),
            depth,
            waiting: Default::default(),
        }
    }

    /// Opens the window as far as `live` tasks allow: ExpCmdSN − 1 + (depth − live), never
    /// moving MaxCmdSN back.
    pub fn grant(&mut self, live: usize) {
        let free = self
            .depth
            .saturating_sub(live.min(u32::MAX as usize) as u32);
        let max = self.exp_cmd_sn.wrapping_add(free).wrapping_sub(1);
        if sn::lt(self.max_cmd_sn, max) {
            self.max_cmd_sn = max;
        }
    }

    pub fn exp_cmd_sn(&self) -> u32 {
        self.exp_cmd_sn
    }

    pub fn max_cmd_sn(&self) -> u32 {
        self.max_cmd_sn
    }

    /// CmdSNs from ExpCmdSN to MaxCmdSN (0 when the window is closed: MaxCmdSN = ExpCmdSN − 1).
    fn open_len(&self) -> u32 {
        sn::distance(self.exp_cmd_sn, self.max_cmd_sn.wrapping_add(1))
    }

    /// Classifies a non-immediate command; a queued command is stored here.
    pub fn admit(&mut self, cmd_sn: u32, pdu: impl FnOnce() -> OwnedPdu) -> Admission {
        let d = sn::distance(self.exp_cmd_sn, cmd_sn);
        if d >= self.open_len() || d >= self.depth {
            return Admission::Ignore;
        }
        if d == 0 {
            return Admission::Now;
        }
        let d = d as usize;
        if self.waiting.len() <= d {
            self.waiting.resize_with(d + 1, Slot::default);
        }
        if !matches!(self.waiting[d], Slot::Empty) {
            // A duplicate of a command already waiting, or one already aborted: ignored.
            return Admission::Ignore;
        }
        let cmd = pdu();
        // Immediate data counts toward the first burst its unsolicited Data-Out may fill.
        let data_bytes = cmd.data.len();
        self.waiting[d] = Slot::Waiting(Queued {
            cmd,
            data_outs: Vec::new(),
            data_bytes,
        });
        Admission::Queued
    }

    /// Marks the expected command as delivered (and any consumed ones after it) and returns
    /// the next one if it is already waiting.
    pub fn advance(&mut self) -> Option<Queued> {
        loop {
            self.exp_cmd_sn = self.exp_cmd_sn.wrapping_add(1);
            self.waiting.pop_front();
            match self.waiting.front_mut() {
                Some(slot @ Slot::Waiting(_)) => match std::mem::take(slot) {
                    Slot::Waiting(q) => return Some(q),
                    _ => return None,
                },
                Some(Slot::Consumed) => continue,
                _ => return None,
            }
        }
    }

    /// Finds a queued command by ITT, so that unsolicited Data-Out can wait with it.
    pub fn queued_mut(&mut self, itt: u32) -> Option<&mut Queued> {
        self.queued().find(|q| q.cmd.bhs.itt() == itt)
    }

    fn queued(&mut self) -> impl Iterator<Item = &mut Queued> {
        self.waiting.iter_mut().filter_map(|s| match s {
            Slot::Waiting(q) => Some(q),
            _ => None,
        })
    }

    /// Whether a command waits behind a gap with this ITT / for this LUN field.
    pub fn has_queued(&self, pred: impl Fn(&OwnedPdu) -> bool) -> bool {
        self.waiting
            .iter()
            .any(|s| matches!(s, Slot::Waiting(q) if pred(&q.cmd)))
    }

    /// Drops the waiting command with this ITT (ABORT TASK); its CmdSN counts as received.
    pub fn abort_queued(&mut self, itt: u32) -> bool {
        for slot in self.waiting.iter_mut() {
            if matches!(slot, Slot::Waiting(q) if q.cmd.bhs.itt() == itt) {
                *slot = Slot::Consumed;
                return true;
            }
        }
        false
    }

    /// RFC 7143 §11.5.1: an ABORT TASK for a command not received yet, whose RefCmdSN lies in
    /// the window before the TMF's own CmdSN, makes that CmdSN count as received.
    pub fn consume(&mut self, cmd_sn: u32, before: u32) -> Consumed {
        let d = sn::distance(self.exp_cmd_sn, cmd_sn);
        if d >= self.open_len() || d >= self.depth || !sn::lt(cmd_sn, before) {
            return Consumed::Outside;
        }
        if d == 0 {
            return Consumed::AtExpected;
        }
        let d = d as usize;
        if self.waiting.len() <= d {
            self.waiting.resize_with(d + 1, Slot::default);
        }
        if matches!(self.waiting[d], Slot::Empty) {
            self.waiting[d] = Slot::Consumed;
        }
        Consumed::Marked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::Opcode;

    fn pdu(itt: u32) -> OwnedPdu {
        let mut bhs = Bhs::new(Opcode::SCSI_COMMAND);
        bhs.set_itt(itt);
        OwnedPdu {
            bhs,
            ahs: vec![],
            data: vec![],
            dropped_data: None,
        }
    }

    #[test]
    fn in_order_commands_execute_now() {
        let mut w = CmdWindow::new(10, 4);
        assert_eq!(w.admit(10, || pdu(1)), Admission::Now);
        assert!(w.advance().is_none());
        w.grant(0);
        assert_eq!(w.exp_cmd_sn(), 11);
        assert_eq!(w.max_cmd_sn(), 14);
    }

    #[test]
    fn gap_is_filled_in_order() {
        let mut w = CmdWindow::new(0, 8);
        assert_eq!(w.admit(2, || pdu(22)), Admission::Queued);
        assert_eq!(w.admit(1, || pdu(11)), Admission::Queued);
        assert_eq!(w.admit(0, || pdu(0)), Admission::Now);
        let next = w.advance().unwrap();
        assert_eq!(next.cmd.bhs.itt(), 11);
        let next = w.advance().unwrap();
        assert_eq!(next.cmd.bhs.itt(), 22);
        assert!(w.advance().is_none());
        assert_eq!(w.exp_cmd_sn(), 3);
    }

    #[test]
    fn outside_window_is_ignored() {
        let mut w = CmdWindow::new(100, 4);
        assert_eq!(w.admit(104, || pdu(1)), Admission::Ignore);
        assert_eq!(w.admit(99, || pdu(1)), Admission::Ignore);
        assert_eq!(w.admit(u32::MAX, || pdu(1)), Admission::Ignore);
        assert!(w.queued_mut(1).is_none());
    }

    #[test]
    fn window_opens_as_tasks_end_not_as_commands_arrive() {
        let mut w = CmdWindow::new(0, 2);
        assert_eq!(w.max_cmd_sn(), 1);
        assert_eq!(w.admit(0, || pdu(1)), Admission::Now);
        w.advance();
        w.grant(1);
        assert_eq!(w.admit(1, || pdu(2)), Admission::Now);
        w.advance();
        w.grant(2);
        // Two live tasks fill a depth of 2: the window is closed (MaxCmdSN = ExpCmdSN - 1).
        assert_eq!(w.max_cmd_sn(), 1);
        assert_eq!(w.admit(2, || pdu(3)), Admission::Ignore);
        w.grant(1);
        assert_eq!(w.max_cmd_sn(), 2);
        assert_eq!(w.admit(2, || pdu(3)), Admission::Now);
        // A grant never moves MaxCmdSN back.
        w.advance();
        w.grant(2);
        assert_eq!(w.max_cmd_sn(), 2);
    }

    #[test]
    fn aborted_and_consumed_cmdsns_are_skipped_in_order() {
        let mut w = CmdWindow::new(0, 8);
        assert_eq!(w.admit(1, || pdu(11)), Admission::Queued);
        assert_eq!(w.admit(3, || pdu(33)), Admission::Queued);
        assert!(w.abort_queued(11));
        assert!(!w.has_queued(|c| c.bhs.itt() == 11));
        // CmdSN 2 is aborted before it arrives; a late copy is ignored.
        assert_eq!(w.consume(2, 5), Consumed::Marked);
        assert_eq!(w.admit(2, || pdu(22)), Admission::Ignore);
        assert_eq!(w.consume(6, 5), Consumed::Outside, "not before the TMF");
        assert_eq!(w.consume(0, 5), Consumed::AtExpected);
        // Delivering CmdSN 0 skips 1 and 2 and hands out 3.
        assert_eq!(w.advance().unwrap().cmd.bhs.itt(), 33);
        assert_eq!(w.exp_cmd_sn(), 3);
    }

    #[test]
    fn window_wraps_around_zero() {
        let mut w = CmdWindow::new(u32::MAX, 4);
        assert_eq!(w.admit(1, || pdu(5)), Admission::Queued);
        assert_eq!(w.admit(u32::MAX, || pdu(4)), Admission::Now);
        assert!(w.advance().is_none());
        assert_eq!(w.exp_cmd_sn(), 0);
        assert_eq!(w.admit(0, || pdu(3)), Admission::Now);
        assert_eq!(w.advance().unwrap().cmd.bhs.itt(), 5);
    }
}
