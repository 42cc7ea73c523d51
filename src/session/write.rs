//! Collecting a write's Data-Out (immediate, unsolicited, solicited by R2T; RFC 7143 §3.2.4) into
//! buffers, and writing it to the backing store.
//!
//! Rules that keep one initiator's bytes out of another's I/O and memory bounded:
//! - every Data-Out must start exactly where the previous one of its sequence ended
//!   (DataPDUInOrder=Yes is the only value negotiated), so a repeated, overlapping or skipped
//!   range is a protocol error that ends the task; a buffer is written only when every byte of
//!   it was received for this task;
//! - buffers are taken when data is solicited (one per R2T burst) or arrives (the unsolicited
//!   burst), never for the whole transfer at command arrival, and R2Ts wait while the
//!   connection's buffer budget is full.

use std::ops::Range;

use super::conn::{IoCompletion, IoOp};
use super::data_in::Reply;
use super::error::DataOutError;
use super::full::{DataSegment, Received, Session, LEND_MIN};
use super::nop::alloc_ttt;
use super::output::Output;
use super::task::{IoKind, Layout, Lent, OpenR2t, Purpose, Task, TaskState, WriteState};
use crate::backstore::IoBuf;
use crate::pdu::scsi::{DataOut, R2t, Residual, ScsiCommand};
use crate::pdu::{Bhs, RESERVED_TAG};
use crate::scsi::{self, ScsiStatus};

/// RFC 7143 §11.4.7.2: unsolicited data the target cannot take (ABORTED COMMAND, 0Ch/0Ch).
const UNEXPECTED_UNSOLICITED_DATA: scsi::Sense =
    scsi::Sense::new(scsi::SenseKey::ABORTED_COMMAND, 0x0c, 0x0c);
/// RFC 7143 §11.4.7.2: incorrect amount of data (ABORTED COMMAND, 0Ch/0Dh).
const INCORRECT_AMOUNT_OF_DATA: scsi::Sense =
    scsi::Sense::new(scsi::SenseKey::ABORTED_COMMAND, 0x0c, 0x0d);
/// RFC 7143 §11.4.7.2: protocol service CRC error (ABORTED COMMAND, 47h/05h).
pub(super) const PROTOCOL_SERVICE_CRC_ERROR: scsi::Sense =
    scsi::Sense::new(scsi::SenseKey::ABORTED_COMMAND, 0x47, 0x05);

/// The sequence a Data-Out belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sequence {
    Unsolicited,
    /// Index into `open_r2ts`.
    Solicited(usize),
}

/// A write as decided by the SCSI layer: where its blocks go.
pub(super) struct WriteTarget {
    pub lba: u64,
    pub scsi_len: u32,
    pub fua: bool,
}

/// A Data-Out payload still to be placed in its write's buffer: its bytes, and where they lie
/// in the receive buffer when they may be lent out from there.
pub(super) struct Unplaced<'a> {
    bytes: &'a [u8],
    from: Option<Received<'a>>,
}

impl Session {
    /// Starts collecting the Data-Out of a write (blocks at `wt.lba`, or the input of another
    /// `purpose`). Immediate data `imm` is taken at once.
    pub(super) fn start_write(
        &mut self,
        lun: u16,
        cmd: &ScsiCommand,
        wt: WriteTarget,
        imm: DataSegment<'_>,
        purpose: Purpose,
        out: &mut Output,
    ) {
        let edtl = if cmd.write { cmd.expected_data_len } else { 0 };
        let need = edtl.min(wt.scsi_len);
        let imm_len = imm.bytes().len() as u32;
        // RFC 7143 §11.3.1: F=1 says no unsolicited Data-Out follows the command.
        let unsolicited_end = if self.params.initial_r2t || cmd.final_bit {
            imm_len
        } else {
            edtl.min(self.params.first_burst_length).max(imm_len)
        };
        let mut w = WriteState {
            lba: wt.lba,
            fua: wt.fua,
            edtl,
            need,
            scsi_len: wt.scsi_len,
            layout: Layout::Whole,
            unsolicited_end,
            unsolicited_next: imm_len,
            unsolicited_data_sn: 0,
            unsolicited: None,
            whole: None,
            next_r2t_offset: unsolicited_end,
            burst_len: self.params.max_burst_length.max(512),
            open_r2ts: self.r2t_lists.pop().unwrap_or_default(),
            writes_in_flight: 0,
            failed: None,
            lent: None,
            purpose,
        };
        self.choose_layout(lun, &mut w);
        let keep = (imm_len as usize).min(need as usize);
        let unsolicited_need = w.unsolicited_need() as usize;
        if keep > 0 {
            w.unsolicited = Some(match imm {
                // Received in place, and exactly the unsolicited burst: written as it is.
                DataSegment::Landed(buf) if buf.len() == unsolicited_need && keep == buf.len() => {
                    buf
                }
                imm => {
                    let mut buf = self.budget.alloc(unsolicited_need);
                    buf.copy_write_data(0, &imm.bytes()[..keep]);
                    buf
                }
            });
        }
        let slot = self.new_task(lun, cmd, TaskState::Receiving(w));
        self.write_progress(slot, out);
    }

    /// Bursts can be written one by one only if each starts and ends on a block boundary.
    fn choose_layout(&self, lun: u16, w: &mut WriteState) {
        let bs = self.block_size(lun);
        let aligned_burst = w.burst_len / bs * bs;
        let bursts = matches!(w.purpose, Purpose::Blocks)
            && w.need.is_multiple_of(bs)
            && w.unsolicited_need().is_multiple_of(bs)
            && aligned_burst > 0;
        if bursts {
            w.layout = Layout::Bursts;
            w.burst_len = aligned_burst;
        }
    }

    /// Moves a receiving write forward: solicits what the budget allows, writes complete
    /// bursts, and finishes the task once everything is in and on disk.
    pub(super) fn write_progress(&mut self, slot: usize, out: &mut Output) {
        if self.send_r2ts(slot, out) {
            self.defer(slot);
        }
        self.write_unsolicited_burst(slot);
        let Some(t) = self.tasks.get(slot) else {
            return;
        };
        if let TaskState::Receiving(w) = &t.state {
            if w.settled() {
                self.finish_write(slot, out);
            }
        }
    }

    /// Keeps up to MaxOutstandingR2T R2Ts open, each at most MaxBurstLength (RFC 7143 §3.2.4.3),
    /// for the bytes the write needs. Returns true when the budget holds an R2T back.
    pub(super) fn send_r2ts(&mut self, slot: usize, out: &mut Output) -> bool {
        let max_open = usize::from(self.params.max_outstanding_r2t.max(1));
        loop {
            let Some(Task {
                state: TaskState::Receiving(w),
                ..
            }) = self.tasks.get(slot)
            else {
                return false;
            };
            if w.lent.is_some() || w.open_r2ts.len() >= max_open || w.next_r2t_offset >= w.need {
                return false;
            }
            let len = w.burst_len.min(w.need - w.next_r2t_offset);
            let take = match w.layout {
                Layout::Bursts => len,
                Layout::Whole if w.whole.is_none() => w.need,
                Layout::Whole => 0,
            };
            if take > 0 && !self.may_take(slot, take as usize) {
                return true;
            }
            let buf = (take > 0).then(|| self.budget.alloc_gated(take as usize));
            let ttt = alloc_ttt(&mut self.next_ttt);
            let (exp_cmd_sn, max_cmd_sn, stat_sn) =
                (self.exp_cmd_sn(), self.max_cmd_sn(), self.current_stat_sn());
            let t = &mut self.tasks[slot];
            let TaskState::Receiving(w) = &mut t.state else {
                return false;
            };
            let offset = w.next_r2t_offset;
            let burst_buf = match w.layout {
                Layout::Bursts => buf,
                Layout::Whole => {
                    if let Some(mut whole) = buf {
                        // Unsolicited data received so far moves into the whole buffer; the
                        // rest of it will be received there.
                        if let Some(u) = w.unsolicited.take() {
                            let got = w.unsolicited_next.min(w.unsolicited_need()) as usize;
                            whole.copy_write_data(0, &u.as_slice()[..got]);
                        }
                        w.whole = Some(whole);
                    }
                    None
                }
            };
            w.next_r2t_offset += len;
            w.open_r2ts.push(OpenR2t {
                ttt,
                offset,
                len,
                received: 0,
                next_data_sn: 0,
                buf: burst_buf,
            });
            let r2t = R2t {
                lun: t.lun_raw,
                itt: t.itt,
                ttt,
                stat_sn,
                exp_cmd_sn,
                max_cmd_sn,
                r2t_sn: t.r2t_sn,
                buffer_offset: offset,
                desired_len: len,
            };
            t.r2t_sn = t.r2t_sn.wrapping_add(1);
            out.pdu(&r2t.encode(), &[]);
        }
    }

    /// A complete Data-Out; `from` says where its payload lies when it is in a receive buffer
    /// that may lend it out.
    pub(super) fn handle_data_out(
        &mut self,
        bhs: &Bhs,
        data: &[u8],
        from: Option<Received<'_>>,
        out: &mut Output,
    ) {
        let d = DataOut::decode(bhs);
        let Some(&slot) = self.by_itt.get(&d.itt) else {
            self.data_out_without_task(&d, bhs, data);
            return;
        };
        let payload = Unplaced { bytes: data, from };
        self.after_data_out(slot, &d, bhs, data.len() as u32, Some(payload), out);
    }

    /// Data-Out for a command still waiting behind a CmdSN gap waits with it; any other is late
    /// data for a task that has ended (e.g. completed early, or aborted) and is dropped.
    fn data_out_without_task(&mut self, d: &DataOut, bhs: &Bhs, data: &[u8]) {
        let limit = self.params.first_burst_length as usize;
        if let Some(q) = self.window.queued_mut(d.itt) {
            // Headers count too, so that empty PDUs cannot pile up without limit.
            let cost = data.len() + crate::pdu::BHS_LEN;
            if d.ttt == RESERVED_TAG && q.data_bytes + cost <= limit + crate::pdu::BHS_LEN {
                q.data_bytes += cost;
                q.data_outs.push(super::cmdsn::OwnedPdu {
                    bhs: *bhs,
                    ahs: Vec::new(),
                    data: data.to_vec(),
                    dropped_data: None,
                });
                return;
            }
        }
        tracing::debug!(itt = d.itt, "Data-Out for no active task dropped");
    }

    /// Checks a Data-Out of `len` bytes against its task without changing anything.
    fn check_data_out(&self, slot: usize, d: &DataOut, len: u32) -> Result<Sequence, DataOutError> {
        let TaskState::Receiving(w) = &self.tasks[slot].state else {
            return Err(DataOutError::NotReceiving);
        };
        let end = u64::from(d.buffer_offset) + u64::from(len);
        if end > u64::from(w.edtl) {
            return Err(DataOutError::BeyondEdtl { end, edtl: w.edtl });
        }
        let (expected_offset, expected_sn, seq) = if d.ttt == RESERVED_TAG {
            if end > u64::from(w.unsolicited_end) {
                return Err(DataOutError::BeyondFirstBurst {
                    end,
                    limit: w.unsolicited_end,
                });
            }
            let seq = Sequence::Unsolicited;
            (w.unsolicited_next, w.unsolicited_data_sn, seq)
        } else {
            let Some(i) = w.open_r2ts.iter().position(|r| r.ttt == d.ttt) else {
                return Err(DataOutError::UnknownTtt { ttt: d.ttt });
            };
            let r = &w.open_r2ts[i];
            if d.buffer_offset < r.offset || end > u64::from(r.offset + r.len) {
                return Err(DataOutError::OutsideR2t {
                    offset: d.buffer_offset,
                    end,
                    from: r.offset,
                    to: r.offset + r.len,
                });
            }
            (r.next_offset(), r.next_data_sn, Sequence::Solicited(i))
        };
        if d.buffer_offset != expected_offset {
            return Err(DataOutError::OutOfOrder {
                offset: d.buffer_offset,
                expected: expected_offset,
            });
        }
        if d.data_sn != expected_sn {
            return Err(DataOutError::DataSn {
                got: d.data_sn,
                expected: expected_sn,
            });
        }
        Ok(seq)
    }

    /// Accounts for one accepted Data-Out and places its payload when `data` is given (`None`:
    /// it was received in place). Bytes past what the write needs are accepted from the wire and
    /// dropped (residual).
    fn accept_data_out(
        &mut self,
        slot: usize,
        seq: Sequence,
        d: &DataOut,
        len: u32,
        data: Option<Unplaced<'_>>,
    ) {
        if let Some(data) = data {
            self.place(slot, seq, d.buffer_offset, data);
        }
        let t = &mut self.tasks[slot];
        let TaskState::Receiving(w) = &mut t.state else {
            return;
        };
        match seq {
            Sequence::Unsolicited => {
                w.unsolicited_data_sn = w.unsolicited_data_sn.wrapping_add(1);
                w.unsolicited_next += len;
            }
            Sequence::Solicited(i) => {
                let r = &mut w.open_r2ts[i];
                r.next_data_sn = r.next_data_sn.wrapping_add(1);
                r.received += len;
                if r.received >= r.len {
                    let r = w.open_r2ts.swap_remove(i);
                    if let Some(buf) = r.buf {
                        self.write_burst(slot, r.offset, buf);
                    }
                }
            }
        }
    }

    /// Copies payload bytes at transfer offset `offset` into the buffer that receives them; a
    /// payload that is the whole of that buffer becomes it instead, as a view of the receive
    /// buffer it arrived in (no copy).
    fn place(&mut self, slot: usize, seq: Sequence, offset: u32, payload: Unplaced<'_>) {
        let budget = self.budget.clone();
        let Some((buf, base)) = self.destination(slot, seq, offset) else {
            return;
        };
        let start = (offset - base) as usize;
        let data = payload.bytes;
        if start == 0 && data.len() == buf.len() && data.len() >= LEND_MIN {
            // Charged as the buffer it replaces was (a solicited burst is gated).
            let gated = matches!(seq, Sequence::Solicited(_));
            let range = |r: Received<'_>| r.data_at..r.data_at + data.len();
            if let Some(view) = payload
                .from
                .and_then(|r| budget.lend(r.rx, range(r), gated))
            {
                *buf = view;
                return;
            }
        }
        let room = buf.len().saturating_sub(start);
        let n = data.len().min(room);
        buf.copy_write_data(start, &data[..n]);
    }

    /// The buffer receiving bytes of `seq` at `offset`, with the transfer offset its first byte
    /// stands for; `None` when those bytes lie past what the write needs. The unsolicited
    /// buffer is taken here, when its first data arrives.
    fn destination(
        &mut self,
        slot: usize,
        seq: Sequence,
        offset: u32,
    ) -> Option<(&mut IoBuf, u32)> {
        let budget = self.budget.clone();
        let TaskState::Receiving(w) = &mut self.tasks[slot].state else {
            return None;
        };
        if offset >= w.need {
            return None;
        }
        if w.whole.is_some() {
            return w.whole.as_mut().map(|b| (b, 0));
        }
        match seq {
            Sequence::Unsolicited => {
                let len = w.unsolicited_need() as usize;
                let buf = w.unsolicited.get_or_insert_with(|| budget.alloc(len));
                Some((buf, 0))
            }
            Sequence::Solicited(i) => {
                let r = &mut w.open_r2ts[i];
                Some((r.buf.as_mut()?, r.offset))
            }
        }
    }

    pub(super) fn after_data_out(
        &mut self,
        slot: usize,
        d: &DataOut,
        bhs: &Bhs,
        len: u32,
        data: Option<Unplaced<'_>>,
        out: &mut Output,
    ) {
        if matches!(self.tasks[slot].state, TaskState::Draining { .. }) {
            // Data still in flight for an aborted task.
            return;
        }
        match self.check_data_out(slot, d, len) {
            Ok(seq) => {
                self.accept_data_out(slot, seq, d, len, data);
                self.write_progress(slot, out);
            }
            Err(e) => {
                // At ErrorRecoveryLevel 0 a sequence error cannot be repaired: the PDU is
                // rejected and the task ends with CHECK CONDITION (RFC 7143 §11.17.1: a Reject
                // never ends a task implicitly); what it received is never written.
                let sense = if d.ttt == RESERVED_TAG {
                    UNEXPECTED_UNSOLICITED_DATA
                } else {
                    INCORRECT_AMOUNT_OF_DATA
                };
                self.refuse(bhs, e.into(), out);
                self.end_receiving_task(slot, sense, out);
            }
        }
    }

    /// Ends a task that is collecting data with CHECK CONDITION `sense`, without writing what
    /// it holds. Its ITT is free at once; the task itself lives on, anonymous, until burst
    /// writes still in flight have completed.
    pub(super) fn end_receiving_task(&mut self, slot: usize, sense: scsi::Sense, out: &mut Output) {
        let reply = Reply::of(&self.tasks[slot]);
        self.end_receiving_task_quietly(slot);
        if let Some(t) = self.tasks.get(slot) {
            if self.by_itt.get(&t.itt) == Some(&slot) {
                self.by_itt.remove(&t.itt);
            }
        }
        let c = scsi::check_condition(&self.nexus, sense);
        self.send_completion(reply, &c, out);
        self.after_task_change(out);
    }

    /// Ends a task that is collecting data: at once, or (sending nothing) once its burst writes
    /// in flight have completed.
    pub(super) fn end_receiving_task_quietly(&mut self, slot: usize) {
        let t = &mut self.tasks[slot];
        let TaskState::Receiving(w) = &mut t.state else {
            return;
        };
        let writes_in_flight = w.writes_in_flight;
        if writes_in_flight > 0 {
            let old = std::mem::replace(&mut t.state, TaskState::Draining { writes_in_flight });
            t.aborted = true;
            self.recycle(old);
        } else {
            self.free_task(slot);
        }
    }

    /// With [`Layout::Bursts`], the unsolicited burst is written as soon as all of it is in.
    fn write_unsolicited_burst(&mut self, slot: usize) {
        let Some(t) = self.tasks.get_mut(slot) else {
            return;
        };
        let TaskState::Receiving(w) = &mut t.state else {
            return;
        };
        if w.layout != Layout::Bursts || w.unsolicited_next < w.unsolicited_need() {
            return;
        }
        if let Some(buf) = w.unsolicited.take() {
            self.write_burst(slot, 0, buf);
        }
    }

    /// Submits one complete burst (bytes at transfer `offset`) to the backing store. After a
    /// failed burst nothing more is written: the task will end with the error.
    fn write_burst(&mut self, slot: usize, offset: u32, buf: IoBuf) {
        let Some(target) = self.target else { return };
        let bs = u64::from(self.block_size(self.tasks[slot].lun));
        let TaskState::Receiving(w) = &mut self.tasks[slot].state else {
            return;
        };
        if w.failed.is_some() {
            return;
        }
        w.writes_in_flight += 1;
        let op = IoOp::Write {
            offset: w.lba * bs + u64::from(offset),
            buf,
            fua: w.fua,
        };
        self.submit(target, slot, op);
    }

    /// A burst write of a task still receiving (or drained after an abort) completed.
    pub(super) fn burst_written(&mut self, slot: usize, c: IoCompletion, out: &mut Output) {
        // The buffer goes back to the pool (and the budget) now.
        drop(c.buf);
        match &mut self.tasks[slot].state {
            TaskState::Draining { writes_in_flight } => {
                *writes_in_flight -= 1;
                if *writes_in_flight > 0 {
                    return;
                }
                self.free_task(slot);
                self.after_task_change(out);
            }
            TaskState::Receiving(w) => {
                w.writes_in_flight -= 1;
                if let (Err(errno), None) = (c.result, w.failed) {
                    // The sense names the command's first block: which burst failed is not
                    // something the initiator can act on.
                    w.failed = Some((errno, w.lba));
                }
                self.write_progress(slot, out);
            }
            _ => {}
        }
    }

    /// Every byte is in (and with bursts, on disk): answer, or hand the data on.
    fn finish_write(&mut self, slot: usize, out: &mut Output) {
        let Some(target) = self.target else { return };
        let bs = self.block_size(self.tasks[slot].lun);
        let t = &mut self.tasks[slot];
        let reply = Reply::of(t);
        let TaskState::Receiving(w) = &mut t.state else {
            return;
        };
        let residual = Residual::of(t.edtl, u64::from(w.scsi_len));
        if w.layout == Layout::Bursts {
            let failed = w.failed;
            self.free_task(slot);
            match failed {
                Some((errno, lba)) => {
                    crate::log_limited!(
                        tracing::Level::ERROR,
                        self.log,
                        self.now,
                        itt = reply.itt,
                        errno,
                        lba,
                        "backing store write failed"
                    );
                    let c = scsi::io_error_for(&self.nexus, true, lba, errno);
                    self.send_completion(reply, &c, out);
                }
                None => self.send_response(reply, ScsiStatus::GOOD, &[], residual, 0, out),
            }
            self.after_task_change(out);
            return;
        }
        match w.purpose {
            Purpose::Blocks => {}
            Purpose::Params(_) => return self.finish_params(slot, reply, out),
            Purpose::Job(_) => return self.start_job(slot, reply, out),
        }
        let (lba, scsi_len, need, fua) = (w.lba, w.scsi_len, w.need, w.fua);
        let buf = w.whole.take().or_else(|| w.unsolicited.take());
        match buf {
            Some(buf) if need % bs == 0 && need > 0 => {
                let old =
                    std::mem::replace(&mut t.state, TaskState::Io(IoKind::Write { lba, scsi_len }));
                self.recycle(old);
                let op = IoOp::Write {
                    offset: lba * u64::from(bs),
                    buf,
                    fua,
                };
                self.submit(target, slot, op);
            }
            _ => {
                // Nothing whole to write: either no data at all (GOOD with residual), or an EDTL
                // that ends inside a block, which SAM-5 lets the target refuse.
                self.free_task(slot);
                if need == 0 {
                    self.send_response(reply, ScsiStatus::GOOD, &[], residual, 0, out);
                } else {
                    // SPC-4: INVALID FIELD IN INFORMATION UNIT (0Eh/03h).
                    let sense = scsi::Sense::new(scsi::SenseKey::ILLEGAL_REQUEST, 0x0e, 0x03);
                    let c = scsi::check_condition(&self.nexus, sense);
                    self.send_response(reply, c.status, &c.sense, residual, 0, out);
                }
                self.after_task_change(out);
            }
        }
    }

    /// The data a parameter-list or multi-step command received, for the SCSI layer.
    pub(super) fn received_data(w: &WriteState) -> &[u8] {
        w.whole
            .as_ref()
            .or(w.unsolicited.as_ref())
            .map_or(&[][..], |b| b.as_slice())
    }

    fn finish_params(&mut self, slot: usize, reply: Reply, out: &mut Output) {
        let luns = self.luns.clone();
        let t = &self.tasks[slot];
        let TaskState::Receiving(w) = &t.state else {
            return;
        };
        let Purpose::Params(cdb) = &w.purpose else {
            return;
        };
        let outcome = scsi::execute_params(
            &luns,
            &mut self.nexus,
            t.lun_raw,
            cdb,
            Self::received_data(w),
        );
        match outcome {
            scsi::ParamsOutcome::Done(c) => {
                self.free_task(slot);
                self.send_completion(reply, &c, out);
            }
            scsi::ParamsOutcome::Shared(op) => {
                // The parameter list is parsed into `op`: its buffers can go now.
                let old =
                    std::mem::replace(&mut self.tasks[slot].state, TaskState::Io(IoKind::Flush));
                self.recycle(old);
                self.start_shared(slot, op);
            }
        }
        self.after_task_change(out);
    }

    /// Where the payload of the Data-Out whose header is `bhs` can be received straight into
    /// its buffer: `prefix` (the part already received) is placed now, and the buffer is lent
    /// with the range that receives the rest. `None` when the PDU must take the ordinary path
    /// (unknown task, invalid fields, bytes past what the write needs).
    pub(super) fn data_out_landing(
        &mut self,
        bhs: &Bhs,
        prefix: &[u8],
    ) -> Option<(IoBuf, Range<usize>)> {
        let d = DataOut::decode(bhs);
        let len = bhs.data_segment_len() as u32;
        let &slot = self.by_itt.get(&d.itt)?;
        let seq = self.check_data_out(slot, &d, len).ok()?;
        let TaskState::Receiving(w) = &self.tasks[slot].state else {
            return None;
        };
        if u64::from(d.buffer_offset) + u64::from(len) > u64::from(w.need)
            || prefix.len() > len as usize
        {
            return None;
        }
        let (buf, base) = self.destination(slot, seq, d.buffer_offset)?;
        let start = (d.buffer_offset - base) as usize;
        let end = start + len as usize;
        if end > buf.len() {
            return None;
        }
        buf.copy_write_data(start, prefix);
        let TaskState::Receiving(w) = &mut self.tasks[slot].state else {
            return None;
        };
        let (from, lent) = if w.whole.is_some() {
            (Lent::Whole, w.whole.take())
        } else {
            match seq {
                Sequence::Unsolicited => (Lent::Unsolicited, w.unsolicited.take()),
                Sequence::Solicited(i) => (Lent::Burst(d.ttt), w.open_r2ts[i].buf.take()),
            }
        };
        w.lent = Some(from);
        Some((lent?, start + prefix.len()..end))
    }

    /// The payload of a Data-Out announced by `data_out_landing` has arrived in `buf`.
    pub(super) fn handle_landed_data_out(&mut self, bhs: &Bhs, buf: IoBuf, out: &mut Output) {
        let d = DataOut::decode(bhs);
        let Some(&slot) = self.by_itt.get(&d.itt) else {
            return;
        };
        let len = bhs.data_segment_len() as u32;
        let TaskState::Receiving(w) = &mut self.tasks[slot].state else {
            return;
        };
        let home = match w.lent.take() {
            Some(Lent::Whole) => &mut w.whole,
            Some(Lent::Unsolicited) => &mut w.unsolicited,
            Some(Lent::Burst(ttt)) => match w.open_r2ts.iter_mut().find(|r| r.ttt == ttt) {
                Some(r) => &mut r.buf,
                None => return,
            },
            None => return,
        };
        *home = Some(buf);
        self.after_data_out(slot, &d, bhs, len, None, out);
    }

    pub(super) fn recycle(&mut self, state: TaskState) {
        if let TaskState::Receiving(w) = state {
            self.keep_r2t_list(w.open_r2ts);
        }
    }

    /// Keeps a finished write's R2T list for the next one, so solicited writes allocate nothing
    /// in steady state (at most one list per command the window allows).
    pub(super) fn keep_r2t_list(&mut self, mut list: Vec<OpenR2t>) {
        if list.capacity() > 0 && self.r2t_lists.len() < self.ctx.tuning.queue_depth as usize {
            list.clear();
            self.r2t_lists.push(list);
        }
    }
}

impl Reply {
    pub(super) fn of(t: &Task) -> Reply {
        Reply {
            itt: t.itt,
            lun_raw: t.lun_raw,
            edtl: t.edtl,
            r2t_count: t.r2t_sn,
            class: t.class,
            started: t.started,
        }
    }
}
