//! SCSI Command execution: CDB dispatch to the SCSI layer, Data-Out collection (immediate,
//! unsolicited, solicited by R2T), backing-store requests and their completions.

use super::conn::{IoCompletion, IoOp, IoRequest};
use super::data_in::{Reply, Source};
use super::full::Session;
use super::misc_pdus::alloc_ttt;
use super::output::Output;
use super::task::{IoKind, IoToken, OpenR2t, Purpose, Task, TaskState, WriteState};
use crate::backstore::IoBuf;
use crate::pdu::reject::RejectReason;
use crate::pdu::scsi::{full_cdb, DataOut, R2t, Residual, ScsiCommand};
use crate::pdu::{Bhs, RESERVED_TAG};
use crate::scsi::{self, decode_lun, Plan, ScsiStatus};

/// What the SCSI layer decided, with the block geometry needed to turn it into bytes.
struct Decided {
    plan: Plan,
    lun: u16,
    block_size: u32,
    write_cache: bool,
}

impl Session {
    pub(super) fn handle_scsi_command(
        &mut self,
        bhs: &Bhs,
        ahs: &[u8],
        imm: &[u8],
        out: &mut Output,
    ) {
        let cmd = ScsiCommand::decode(bhs);
        let Some(target) = self.target else {
            self.reject(bhs, RejectReason::PROTOCOL_ERROR, out);
            return;
        };
        if self.by_itt.contains_key(&cmd.itt) {
            tracing::warn!(
                itt = cmd.itt,
                "SCSI command reuses the ITT of a task in progress"
            );
            self.reject(bhs, RejectReason::TASK_IN_PROGRESS, out);
            return;
        }
        if let Err(why) = self.check_immediate_data(&cmd, imm) {
            tracing::warn!(itt = cmd.itt, "{why}");
            self.reject(bhs, RejectReason::PROTOCOL_ERROR, out);
            return;
        }
        let mut cdb = std::mem::take(&mut self.cdb);
        if full_cdb(&cmd, ahs, &mut cdb).is_none() {
            self.cdb = cdb;
            self.reject(bhs, RejectReason::INVALID_PDU_FIELD, out);
            return;
        }
        let decided = self.decide(target, &cmd, &cdb);
        self.cdb = cdb;
        let reply = Reply {
            itt: cmd.itt,
            lun_raw: cmd.lun,
            edtl: cmd.expected_data_len,
            r2t_count: 0,
        };
        let bs = u64::from(decided.block_size);
        match decided.plan {
            Plan::Complete(c) => self.send_completion(reply, &c, out),
            Plan::Read { lba, blocks } => {
                let len = (u64::from(blocks) * bs) as u32;
                let buf = IoBuf::alloc(len as usize);
                let kind = IoKind::Read { lba, scsi_len: len };
                let op = IoOp::Read {
                    offset: lba * bs,
                    buf,
                };
                self.start_io(target, decided.lun, &cmd, kind, op);
            }
            Plan::Write { lba, blocks, fua } => {
                let len = (u64::from(blocks) * bs) as u32;
                // Without a volatile write cache every write must be durable before its status.
                let fua = fua || !decided.write_cache;
                let purpose = Purpose::Blocks;
                self.start_write(
                    target,
                    decided.lun,
                    &cmd,
                    (lba, len, fua),
                    imm,
                    purpose,
                    out,
                );
            }
            Plan::ReceiveParams { len } => {
                let purpose = Purpose::Params(self.cdb.clone());
                self.start_write(
                    target,
                    decided.lun,
                    &cmd,
                    (0, len, false),
                    imm,
                    purpose,
                    out,
                );
            }
            Plan::Job(job) => {
                let edtl = if cmd.write { cmd.expected_data_len } else { 0 };
                if let Some(c) = job.check_edtl(&self.nexus, edtl) {
                    self.send_completion(reply, &c, out);
                    return;
                }
                let len = job.data_out_len();
                self.start_write(
                    target,
                    decided.lun,
                    &cmd,
                    (0, len, false),
                    imm,
                    Purpose::Job(job),
                    out,
                );
            }
            Plan::Flush { .. } => {
                self.start_io(target, decided.lun, &cmd, IoKind::Flush, IoOp::Flush)
            }
        }
    }

    fn decide(&mut self, target: usize, cmd: &ScsiCommand, cdb: &[u8]) -> Decided {
        let ctx = self.ctx.clone();
        let luns = &ctx.targets[target].luns;
        let plan = scsi::dispatch(luns, &mut self.nexus, cmd.lun, cdb);
        let lun = decode_lun(cmd.lun).unwrap_or(0);
        let (block_size, write_cache) = luns
            .get(lun)
            .map_or((512, true), |l| (l.block_size, l.write_cache));
        Decided {
            plan,
            lun,
            block_size,
            write_cache,
        }
    }

    /// RFC 7143 §13.11, §13.14: immediate data needs ImmediateData=Yes and fits FirstBurstLength.
    fn check_immediate_data(&self, cmd: &ScsiCommand, imm: &[u8]) -> Result<(), String> {
        if imm.is_empty() {
            return Ok(());
        }
        if !self.params.immediate_data {
            return Err("immediate data sent although ImmediateData=No".into());
        }
        if !cmd.write {
            return Err("immediate data on a command without the W bit".into());
        }
        if imm.len() > self.params.first_burst_length as usize
            || imm.len() > cmd.expected_data_len as usize
        {
            return Err(format!(
                "{} bytes of immediate data exceed FirstBurstLength or EDTL",
                imm.len()
            ));
        }
        Ok(())
    }

    fn new_task(
        &mut self,
        lun: u16,
        cmd: &ScsiCommand,
        state: TaskState,
        buf: Option<IoBuf>,
    ) -> usize {
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let slot = self.tasks.insert(Task {
            itt: cmd.itt,
            lun,
            lun_raw: cmd.lun,
            edtl: cmd.expected_data_len,
            generation,
            state,
            buf,
            r2t_sn: 0,
            aborted: false,
        });
        self.by_itt.insert(cmd.itt, slot);
        slot
    }

    pub(super) fn free_task(&mut self, slot: usize) -> Task {
        let mut t = self.tasks.remove(slot);
        self.by_itt.remove(&t.itt);
        if let TaskState::Receiving(w) = &mut t.state {
            let list = std::mem::take(&mut w.open_r2ts);
            self.keep_r2t_list(list);
        }
        t
    }

    fn recycle(&mut self, state: TaskState) {
        if let TaskState::Receiving(w) = state {
            self.keep_r2t_list(w.open_r2ts);
        }
    }

    /// Keeps a finished write's R2T list for the next one, so solicited writes allocate nothing
    /// in steady state (at most one list per command the window allows).
    fn keep_r2t_list(&mut self, mut list: Vec<OpenR2t>) {
        if list.capacity() > 0 && self.r2t_lists.len() < self.ctx.tuning.queue_depth as usize {
            list.clear();
            self.r2t_lists.push(list);
        }
    }

    fn start_io(&mut self, target: usize, lun: u16, cmd: &ScsiCommand, kind: IoKind, op: IoOp) {
        let slot = self.new_task(lun, cmd, TaskState::Io(kind), None);
        self.submit(target, slot, op);
    }

    pub(super) fn submit(&mut self, target: usize, slot: usize, op: IoOp) {
        let t = &self.tasks[slot];
        let token = IoToken {
            slot: slot as u32,
            generation: t.generation,
        };
        self.io_queue.push_back(IoRequest {
            token,
            target,
            lun: t.lun,
            op,
        });
    }

    /// Starts collecting `scsi_len` bytes of Data-Out: blocks to write at `lba`, or the input of
    /// another `purpose`.
    #[allow(clippy::too_many_arguments)]
    fn start_write(
        &mut self,
        target: usize,
        lun: u16,
        cmd: &ScsiCommand,
        (lba, scsi_len, fua): (u64, u32, bool),
        imm: &[u8],
        purpose: Purpose,
        out: &mut Output,
    ) {
        let edtl = if cmd.write { cmd.expected_data_len } else { 0 };
        let need = edtl.min(scsi_len);
        let imm_len = imm.len() as u32;
        let unsolicited_end = if self.params.initial_r2t {
            imm_len
        } else {
            edtl.min(self.params.first_burst_length).max(imm_len)
        };
        let mut buf = IoBuf::alloc(need as usize);
        let keep = imm.len().min(need as usize);
        buf.as_mut_slice()[..keep].copy_from_slice(&imm[..keep]);
        let w = WriteState {
            lba,
            fua,
            edtl,
            need,
            unsolicited_end,
            unsolicited_received: imm_len,
            unsolicited_data_sn: 0,
            next_r2t_offset: unsolicited_end,
            open_r2ts: self.r2t_lists.pop().unwrap_or_default(),
            scsi_len,
            purpose,
        };
        let slot = self.new_task(lun, cmd, TaskState::Receiving(w), Some(buf));
        self.send_r2ts(slot, out);
        self.maybe_write(target, slot, out);
    }

    /// Keeps up to MaxOutstandingR2T R2Ts open, each at most MaxBurstLength (RFC 7143 §3.2.4.3).
    /// Only the bytes the write needs are solicited.
    fn send_r2ts(&mut self, slot: usize, out: &mut Output) {
        let max_open = usize::from(self.params.max_outstanding_r2t.max(1));
        let burst = self.params.max_burst_length.max(512);
        loop {
            let exp_cmd_sn = self.exp_cmd_sn();
            let max_cmd_sn = self.max_cmd_sn();
            let stat_sn = self.current_stat_sn();
            let t = &mut self.tasks[slot];
            let TaskState::Receiving(w) = &mut t.state else {
                return;
            };
            if w.open_r2ts.len() >= max_open || w.next_r2t_offset >= w.need {
                return;
            }
            let ttt = alloc_ttt(&mut self.next_ttt);
            let offset = w.next_r2t_offset;
            let len = burst.min(w.need - offset);
            w.next_r2t_offset += len;
            w.open_r2ts.push(OpenR2t {
                ttt,
                offset,
                len,
                received: 0,
                next_data_sn: 0,
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

    pub(super) fn handle_data_out(&mut self, bhs: &Bhs, data: &[u8], out: &mut Output) {
        let d = DataOut::decode(bhs);
        let Some(&slot) = self.by_itt.get(&d.itt) else {
            self.data_out_without_task(&d, bhs, data);
            return;
        };
        self.after_data_out(slot, &d, bhs, data.len() as u32, Some(data), out);
    }

    /// Data-Out for a command still waiting behind a CmdSN gap waits with it; any other is late
    /// data for a task that has ended (e.g. completed early with CHECK CONDITION) and is dropped.
    fn data_out_without_task(&mut self, d: &DataOut, bhs: &Bhs, data: &[u8]) {
        let limit = self.params.first_burst_length as usize;
        if let Some(q) = self.window.queued_mut(d.itt) {
            if d.ttt == RESERVED_TAG && q.data_bytes + data.len() <= limit {
                q.data_bytes += data.len();
                q.data_outs.push(super::cmdsn::OwnedPdu {
                    bhs: *bhs,
                    ahs: Vec::new(),
                    data: data.to_vec(),
                });
                return;
            }
        }
        tracing::debug!(itt = d.itt, "Data-Out for no active task dropped");
    }

    /// Checks a Data-Out of `len` bytes against its task (RFC 7143 §11.7, §3.2.4.2) without
    /// changing anything; returns the index of the R2T it answers, if solicited.
    fn check_data_out(&self, slot: usize, d: &DataOut, len: u32) -> Result<Option<usize>, String> {
        let TaskState::Receiving(w) = &self.tasks[slot].state else {
            return Err("Data-Out for a task that is not receiving data".into());
        };
        let end = u64::from(d.buffer_offset) + u64::from(len);
        if end > u64::from(w.edtl) {
            return Err(format!(
                "Data-Out ends at {end}, beyond the EDTL of {}",
                w.edtl
            ));
        }
        if d.ttt == RESERVED_TAG {
            if end > u64::from(w.unsolicited_end) {
                return Err("unsolicited Data-Out beyond FirstBurstLength".into());
            }
            if d.data_sn != w.unsolicited_data_sn {
                return Err(format!(
                    "DataSN {} where {} was expected",
                    d.data_sn, w.unsolicited_data_sn
                ));
            }
            return Ok(None);
        }
        let Some(i) = w.open_r2ts.iter().position(|r| r.ttt == d.ttt) else {
            return Err("Data-Out with an unknown Target Transfer Tag".into());
        };
        let r = &w.open_r2ts[i];
        if d.buffer_offset < r.offset || end > u64::from(r.offset + r.len) {
            return Err("Data-Out outside the range its R2T asked for".into());
        }
        if d.data_sn != r.next_data_sn {
            return Err(format!(
                "DataSN {} where {} was expected",
                d.data_sn, r.next_data_sn
            ));
        }
        Ok(Some(i))
    }

    /// Accounts for one Data-Out of `len` bytes and copies its payload when `data` is given
    /// (`None`: it was received in place). Returns whether it completed an R2T's burst.
    fn accept_data_out(
        &mut self,
        slot: usize,
        d: &DataOut,
        len: u32,
        data: Option<&[u8]>,
    ) -> Result<bool, String> {
        let r2t = self.check_data_out(slot, d, len)?;
        let t = &mut self.tasks[slot];
        let TaskState::Receiving(w) = &mut t.state else {
            return Ok(false);
        };
        let mut closed = false;
        match r2t {
            None => {
                w.unsolicited_data_sn = w.unsolicited_data_sn.wrapping_add(1);
                w.unsolicited_received += len;
            }
            Some(i) => {
                let r = &mut w.open_r2ts[i];
                r.next_data_sn = r.next_data_sn.wrapping_add(1);
                r.received += len;
                if r.received >= r.len {
                    w.open_r2ts.swap_remove(i);
                    closed = true;
                }
            }
        }
        // Bytes past what the CDB asks for are accepted from the wire and dropped (residual).
        if let (Some(data), Some(buf)) = (data, t.buf.as_mut()) {
            let need = w.need as usize;
            let start = (d.buffer_offset as usize).min(need);
            let stop = (d.buffer_offset as usize + data.len()).min(need);
            buf.as_mut_slice()[start..stop].copy_from_slice(&data[..stop - start]);
        }
        Ok(closed)
    }

    /// Where the payload of the Data-Out whose header is `bhs` can be received straight into its
    /// task's buffer: `prefix` (the part already received) is placed now, and the rest of the
    /// buffer range is returned. `None` when the PDU must take the ordinary path (unknown task,
    /// invalid fields, or bytes beyond the buffer).
    pub(super) fn data_out_landing(&mut self, bhs: &Bhs, prefix: &[u8]) -> Option<&mut [u8]> {
        let d = DataOut::decode(bhs);
        let len = bhs.data_segment_len();
        let &slot = self.by_itt.get(&d.itt)?;
        self.check_data_out(slot, &d, len as u32).ok()?;
        let t = &mut self.tasks[slot];
        let TaskState::Receiving(w) = &t.state else {
            return None;
        };
        let start = d.buffer_offset as usize;
        if start + len > w.need as usize || prefix.len() > len {
            return None;
        }
        let region = &mut t.buf.as_mut()?.as_mut_slice()[start..start + len];
        region[..prefix.len()].copy_from_slice(prefix);
        Some(&mut region[prefix.len()..])
    }

    /// The payload of a Data-Out announced by `data_out_landing` has arrived in place.
    pub(super) fn handle_landed_data_out(&mut self, bhs: &Bhs, out: &mut Output) {
        let d = DataOut::decode(bhs);
        let Some(&slot) = self.by_itt.get(&d.itt) else {
            return;
        };
        let len = bhs.data_segment_len() as u32;
        self.after_data_out(slot, &d, bhs, len, None, out);
    }

    fn after_data_out(
        &mut self,
        slot: usize,
        d: &DataOut,
        bhs: &Bhs,
        len: u32,
        data: Option<&[u8]>,
        out: &mut Output,
    ) {
        match self.accept_data_out(slot, d, len, data) {
            Ok(r2t_closed) => {
                if r2t_closed {
                    self.send_r2ts(slot, out);
                }
                if let Some(target) = self.target {
                    self.maybe_write(target, slot, out);
                }
            }
            Err(why) => {
                // At ErrorRecoveryLevel 0 a sequence error cannot be repaired: the PDU is
                // rejected and its task ends, so the initiator sees the command fail.
                tracing::warn!(
                    itt = d.itt,
                    ttt = d.ttt,
                    data_sn = d.data_sn,
                    offset = d.buffer_offset,
                    len,
                    "{why}"
                );
                self.reject(bhs, RejectReason::PROTOCOL_ERROR, out);
                if matches!(self.tasks[slot].state, TaskState::Receiving(_)) {
                    self.free_task(slot);
                    self.after_task_change(out);
                }
            }
        }
    }

    /// Once all data is in, the write goes to the backing store.
    fn maybe_write(&mut self, target: usize, slot: usize, out: &mut Output) {
        let bs = self.block_size(target, self.tasks[slot].lun);
        let t = &mut self.tasks[slot];
        let TaskState::Receiving(w) = &t.state else {
            return;
        };
        if !w.all_received() {
            return;
        }
        let (lba, scsi_len, need, fua) = (w.lba, w.scsi_len, w.need, w.fua);
        let reply = Reply {
            itt: t.itt,
            lun_raw: t.lun_raw,
            edtl: t.edtl,
            r2t_count: t.r2t_sn,
        };
        let residual = Residual::of(t.edtl, u64::from(scsi_len));
        match w.purpose {
            Purpose::Blocks => {}
            Purpose::Params(_) => return self.finish_params(target, slot, reply, out),
            Purpose::Job(_) => return self.start_job(target, slot, reply, out),
        }
        if need % bs != 0 || need == 0 {
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
            return;
        }
        let Some(buf) = t.buf.take() else { return };
        let receiving =
            std::mem::replace(&mut t.state, TaskState::Io(IoKind::Write { lba, scsi_len }));
        self.recycle(receiving);
        self.submit(
            target,
            slot,
            IoOp::Write {
                offset: lba * u64::from(bs),
                buf,
                fua,
            },
        );
    }

    fn finish_params(&mut self, target: usize, slot: usize, reply: Reply, out: &mut Output) {
        let mut t = self.free_task(slot);
        let TaskState::Receiving(w) = &mut t.state else {
            return;
        };
        let Purpose::Params(cdb) = std::mem::replace(&mut w.purpose, Purpose::Blocks) else {
            return;
        };
        let params = t.buf.as_ref().map_or(&[][..], |b| b.as_slice());
        let ctx = self.ctx.clone();
        let c = scsi::execute_params(
            &ctx.targets[target].luns,
            &mut self.nexus,
            t.lun_raw,
            &cdb,
            params,
        );
        self.send_completion(reply, &c, out);
        self.after_task_change(out);
    }

    pub(super) fn block_size(&self, target: usize, lun: u16) -> u32 {
        self.ctx.targets[target]
            .luns
            .get(lun)
            .map_or(512, |l| l.block_size)
    }

    pub(super) fn complete_io(&mut self, c: IoCompletion, out: &mut Output) {
        let slot = c.token.slot as usize;
        match self.tasks.get(slot) {
            Some(t) if t.generation == c.token.generation => {}
            _ => {
                tracing::debug!(?c.token, "completion for a task that no longer exists");
                return;
            }
        }
        if matches!(self.tasks[slot].state, TaskState::Job { .. }) {
            return self.job_io_done(slot, c, out);
        }
        let t = self.free_task(slot);
        if t.aborted {
            return;
        }
        let TaskState::Io(kind) = t.state else { return };
        let reply = Reply {
            itt: t.itt,
            lun_raw: t.lun_raw,
            edtl: t.edtl,
            r2t_count: t.r2t_sn,
        };
        if let Err(errno) = c.result {
            let (is_write, lba) = match kind {
                IoKind::Read { lba, .. } => (false, lba),
                IoKind::Write { lba, .. } => (true, lba),
                IoKind::Flush => (true, 0),
            };
            tracing::error!(itt = t.itt, lun = t.lun, errno, "backing store I/O failed");
            let completion = scsi::io_error(&self.nexus, is_write, lba);
            self.send_completion(reply, &completion, out);
            return;
        }
        match kind {
            IoKind::Read { scsi_len, .. } => {
                let Some(buf) = c.buf.filter(|b| b.len() == scsi_len as usize) else {
                    tracing::error!(itt = t.itt, "read completed without its buffer");
                    let completion = scsi::io_error(&self.nexus, false, 0);
                    self.send_completion(reply, &completion, out);
                    return;
                };
                self.send_read_result(reply, Source::Buf(buf), ScsiStatus::GOOD, &[], out);
            }
            IoKind::Write { scsi_len, .. } => {
                let residual = Residual::of(t.edtl, u64::from(scsi_len));
                self.send_response(reply, ScsiStatus::GOOD, &[], residual, 0, out);
            }
            IoKind::Flush => {
                let residual = Residual::of(t.edtl, 0);
                self.send_response(reply, ScsiStatus::GOOD, &[], residual, 0, out);
            }
        }
    }
}
