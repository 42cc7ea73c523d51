//! SCSI Command execution: CDB dispatch to the SCSI layer, the task table, backing-store
//! requests and their completions. Collecting a write's data is `write.rs`.

use std::ops::Range;

use super::conn::{IoCompletion, IoOp, IoRequest, WriteLock};
use super::data_in::{Reply, Source};
use super::error::SessionError;
use super::full::{DataSegment, Received, Session, LEND_MIN};
use super::output::Output;
use super::stats::OpClass;
use super::task::{Deferred, IoKind, IoToken, Purpose, Task, TaskState};
use super::write::WriteTarget;
use crate::backstore::IoBuf;
use crate::pdu::scsi::{full_cdb, Residual, ScsiCommand};
use crate::pdu::Bhs;
use crate::scsi::{self, decode_lun, Plan, ScsiStatus};

/// What the SCSI layer decided, with the block geometry needed to turn it into bytes.
struct Decided {
    plan: Plan,
    lun: u16,
    block_size: u32,
    write_cache: bool,
    reads_zeros: bool,
}

impl Session {
    pub(super) fn handle_scsi_command(
        &mut self,
        bhs: &Bhs,
        ahs: &[u8],
        imm: DataSegment<'_>,
        out: &mut Output,
    ) {
        let cmd = ScsiCommand::decode(bhs);
        let Some(target) = self.target else {
            self.refuse(bhs, SessionError::NotInDiscovery(bhs.opcode()), out);
            return;
        };
        if self.by_itt.contains_key(&cmd.itt) {
            self.refuse(bhs, SessionError::IttInUse(cmd.itt), out);
            return;
        }
        if let Err(e) = self.check_immediate_data(&cmd, imm.bytes()) {
            self.refuse(bhs, e, out);
            return;
        }
        let reply = Reply {
            itt: cmd.itt,
            lun_raw: cmd.lun,
            edtl: cmd.expected_data_len,
            r2t_count: 0,
            class: OpClass::of_opcode(cmd.cdb[0]),
            started: self.now,
        };
        if self.tasks.len() >= self.ctx.tuning.queue_depth as usize {
            // Only immediate commands (which skip the CmdSN window) can get here: SAM-5 TASK
            // SET FULL, and the initiator retries later.
            let residual = Residual::of(cmd.expected_data_len, 0);
            self.send_response(reply, ScsiStatus::TASK_SET_FULL, &[], residual, 0, out);
            return;
        }
        let mut cdb = std::mem::take(&mut self.cdb);
        if full_cdb(&cmd, ahs, &mut cdb).is_none() {
            self.cdb = cdb;
            self.refuse(bhs, SessionError::InvalidCdb, out);
            return;
        }
        let decided = self.decide(&cmd, &cdb);
        self.cdb = cdb;
        let bs = u64::from(decided.block_size);
        let lun = decided.lun;
        match decided.plan {
            Plan::Complete(c) => self.send_completion(reply, &c, out),
            Plan::Read { blocks, .. } if decided.reads_zeros => {
                let len = (u64::from(blocks) * bs) as usize;
                self.send_read_result(reply, Source::Zeros(len), ScsiStatus::GOOD, &[], out);
            }
            Plan::Read { lba, blocks } => {
                let scsi_len = (u64::from(blocks) * bs) as u32;
                let slot = self.new_task(
                    lun,
                    &cmd,
                    TaskState::Deferred(Deferred::Read { lba, scsi_len }),
                );
                self.run_or_defer(slot);
            }
            Plan::Write { lba, blocks, fua } => {
                let scsi_len = (u64::from(blocks) * bs) as u32;
                // Without a volatile write cache every write must be durable before its status.
                let fua = fua || !decided.write_cache;
                let wt = WriteTarget { lba, scsi_len, fua };
                self.start_write(lun, &cmd, wt, imm, Purpose::Blocks, out);
            }
            Plan::ReceiveParams { len } => {
                let purpose = Purpose::Params(self.cdb.clone());
                let wt = WriteTarget {
                    lba: 0,
                    scsi_len: len,
                    fua: false,
                };
                self.start_write(lun, &cmd, wt, imm, purpose, out);
            }
            Plan::Job(job) => {
                let edtl = if cmd.write { cmd.expected_data_len } else { 0 };
                if let Some(c) = job.check_edtl(&self.nexus, edtl) {
                    self.send_completion(reply, &c, out);
                    return;
                }
                let wt = WriteTarget {
                    lba: 0,
                    scsi_len: job.data_out_len(),
                    fua: false,
                };
                self.start_write(lun, &cmd, wt, imm, Purpose::Job(job), out);
            }
            Plan::Flush { .. } => {
                let slot = self.new_task(lun, &cmd, TaskState::Io(IoKind::Flush));
                self.submit(target, slot, IoOp::Flush);
            }
            Plan::Shared(op) => {
                // The control thread applies it; the task holds the command's place meanwhile.
                let slot = self.new_task(lun, &cmd, TaskState::Io(IoKind::Flush));
                self.start_shared(slot, op);
            }
        }
    }

    fn decide(&mut self, cmd: &ScsiCommand, cdb: &[u8]) -> Decided {
        let view = decode_lun(cmd.lun).and_then(|lun| self.refresh_lu(lun));
        let luns = self.luns.clone();
        let unit = scsi::LuContext {
            pr: view.map_or(&scsi::pr::IDLE, |i| &self.lu_views[i].snapshot().pr),
            it_nexus: &self.it_nexus,
            port_groups: &self.port_groups,
        };
        let plan = scsi::dispatch(&luns, &mut self.nexus, unit, cmd.lun, cdb);
        let lun = decode_lun(cmd.lun).unwrap_or(0);
        let (block_size, write_cache, reads_zeros) =
            luns.get(lun).map_or((512, true, false), |l| {
                (l.block_size, l.write_cache, l.reads_zeros)
            });
        Decided {
            plan,
            lun,
            block_size,
            write_cache,
            reads_zeros,
        }
    }

    /// Where the immediate data of the SCSI Command whose header is `bhs` can be received in
    /// place: a buffer of its own, with `prefix` (the part already received) placed in it and
    /// the range the rest goes to. The command itself is handled once the whole segment is in
    /// (`handle_landed`), exactly as if it had come in one piece; a write then keeps the buffer
    /// as its data instead of copying it. `None` for anything the ordinary path refuses, so
    /// nothing is allocated for a segment that is going to be dropped.
    pub(super) fn command_landing(
        &mut self,
        bhs: &Bhs,
        prefix: &[u8],
    ) -> Option<(IoBuf, Range<usize>)> {
        let len = bhs.data_segment_len();
        if !(self.takes_immediate_data(bhs, len) && prefix.len() < len) {
            return None;
        }
        // Charged like the immediate-data buffer it becomes (data the target must accept).
        let mut buf = self.budget.alloc(len);
        buf.copy_write_data(0, prefix);
        Some((buf, prefix.len()..len))
    }

    /// The data segment of a SCSI Command that arrived whole in the receive buffer: lent out
    /// as a read-only view of it (no copy) when it is write data the command is going to keep,
    /// as `command_landing` would receive it in place.
    pub(super) fn command_data<'a>(
        &self,
        bhs: &Bhs,
        data: &'a [u8],
        from: Option<Received<'_>>,
    ) -> DataSegment<'a> {
        let view = from
            .filter(|_| data.len() >= LEND_MIN && self.takes_immediate_data(bhs, data.len()))
            .and_then(|r| {
                self.budget
                    .lend(r.rx, r.data_at..r.data_at + data.len(), false)
            });
        match view {
            Some(view) => DataSegment::Landed(view),
            None => DataSegment::Received(data),
        }
    }

    /// Whether `len` bytes of immediate data are what the command with header `bhs` may carry
    /// (what `check_immediate_data` accepts), so that giving them a buffer of their own is not
    /// wasted on data about to be refused.
    fn takes_immediate_data(&self, bhs: &Bhs, len: usize) -> bool {
        let cmd = ScsiCommand::decode(bhs);
        self.target.is_some()
            && self.params.immediate_data
            && cmd.write
            && len as u64 <= u64::from(self.params.first_burst_length.min(cmd.expected_data_len))
    }

    /// RFC 7143 §13.11, §13.14: immediate data needs ImmediateData=Yes and fits FirstBurstLength.
    fn check_immediate_data(&self, cmd: &ScsiCommand, imm: &[u8]) -> Result<(), SessionError> {
        if imm.is_empty() {
            return Ok(());
        }
        if !self.params.immediate_data {
            return Err(SessionError::ImmediateDataNotNegotiated);
        }
        if !cmd.write {
            return Err(SessionError::ImmediateDataWithoutWrite);
        }
        if imm.len() > self.params.first_burst_length as usize
            || imm.len() > cmd.expected_data_len as usize
        {
            return Err(SessionError::ImmediateDataTooLong { len: imm.len() });
        }
        Ok(())
    }

    pub(super) fn new_task(&mut self, lun: u16, cmd: &ScsiCommand, state: TaskState) -> usize {
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let slot = self.tasks.insert(Task {
            itt: cmd.itt,
            lun,
            lun_raw: cmd.lun,
            edtl: cmd.expected_data_len,
            generation,
            state,
            hold: None,
            exclusive: None,
            r2t_sn: 0,
            waiting: false,
            aborted: false,
            sanitize: None,
            detached: false,
            class: OpClass::of_opcode(cmd.cdb[0]),
            started: self.now,
        });
        self.by_itt.insert(cmd.itt, slot);
        slot
    }

    /// Removes a task; its buffers go back to the pool and the budget, and the CmdSN window
    /// opens by one.
    pub(super) fn free_task(&mut self, slot: usize) -> Task {
        let mut t = self.tasks.remove(slot);
        if t.detached {
            self.detached -= 1;
        }
        // A task ended early gave its ITT up already, maybe to a newer task.
        if self.by_itt.get(&t.itt) == Some(&slot) {
            self.by_itt.remove(&t.itt);
        }
        if t.waiting {
            let generation = t.generation;
            self.waiting.retain(|&w| w != (slot, generation));
        }
        if let TaskState::Receiving(w) = &mut t.state {
            let list = std::mem::take(&mut w.open_r2ts);
            self.keep_r2t_list(list);
        }
        self.regrant();
        t
    }

    /// Queues a backing-store operation of task `slot` on its own unit.
    pub(super) fn submit(&mut self, target: usize, slot: usize, op: IoOp) {
        self.submit_to(target, slot, self.tasks[slot].lun, op);
    }

    /// Queues a backing-store operation of task `slot` on unit `lun` (another unit of the
    /// target for EXTENDED COPY). A write or discard first passes that unit's range locks: it
    /// waits (in `lock_waiting`) while an overlapping COMPARE AND WRITE holds its blocks, unless
    /// the task itself holds them.
    pub(super) fn submit_to(&mut self, target: usize, slot: usize, lun: u16, op: IoOp) {
        let t = &self.tasks[slot];
        let token = IoToken {
            slot: slot as u32,
            generation: t.generation,
        };
        let req = IoRequest {
            token,
            target,
            lun,
            op,
            lock: None,
        };
        let owns_range = lun == t.lun && t.exclusive.as_ref().is_some_and(|e| e.is_held());
        if owns_range || write_range(&req.op).is_none() {
            self.io_queue.push_back(req);
        } else if let Some(req) = self.admit_write(req) {
            self.lock_waiting.push_back(req);
        }
    }

    /// Passes a write through its unit's range locks into the I/O queue; gives it back if an
    /// overlapping exclusive lock is held.
    fn admit_write(&mut self, mut req: IoRequest) -> Option<IoRequest> {
        let Some((start, end)) = write_range(&req.op) else {
            self.io_queue.push_back(req);
            return None;
        };
        let Some(lu) = self.luns.get(req.lun) else {
            self.io_queue.push_back(req);
            return None;
        };
        match lu.shared.ranges.begin_write(self.core, start, end) {
            Some(lock) => {
                req.lock = Some(WriteLock { lun: req.lun, lock });
                self.io_queue.push_back(req);
                None
            }
            None => Some(req),
        }
    }

    /// Retries what waits for range locks: writes, and multi-step commands that need their
    /// blocks to themselves. Called whenever locks may have been released.
    pub(super) fn retry_range_locks(&mut self) {
        for _ in 0..self.lock_waiting.len() {
            let Some(req) = self.lock_waiting.pop_front() else {
                break;
            };
            if let Some(req) = self.admit_write(req) {
                self.lock_waiting.push_back(req);
            }
        }
        let waiters = std::mem::take(&mut self.exclusive_waiters);
        for (slot, generation) in waiters {
            let ready = match self.tasks.get_mut(slot) {
                Some(t) if t.generation == generation => {
                    t.exclusive.as_mut().is_some_and(|e| e.poll())
                }
                _ => continue,
            };
            if ready {
                self.run_or_defer(slot);
            } else {
                self.exclusive_waiters.push((slot, generation));
            }
        }
    }

    /// Drops the writes of task `slot` still waiting for a range lock (they never reach the
    /// store); returns how many.
    pub(super) fn cancel_lock_waiting(&mut self, slot: usize) -> u32 {
        let generation = self.tasks[slot].generation;
        let before = self.lock_waiting.len();
        self.lock_waiting
            .retain(|r| (r.token.slot as usize, r.token.generation) != (slot, generation));
        (before - self.lock_waiting.len()) as u32
    }

    /// Whether something waits for another session's range lock to go (the transport then
    /// checks again soon, since that session lives on another core).
    pub fn waits_for_range_locks(&self) -> bool {
        !self.lock_waiting.is_empty() || !self.exclusive_waiters.is_empty()
    }

    pub(super) fn block_size(&self, lun: u16) -> u32 {
        self.luns.get(lun).map_or(512, |l| l.block_size)
    }

    pub(super) fn complete_io(&mut self, mut c: IoCompletion, out: &mut Output) {
        if let Some(l) = c.lock.take() {
            if let Some(lu) = self.luns.get(l.lun) {
                lu.shared.ranges.end_write(l.lock);
            }
        }
        let slot = c.token.slot as usize;
        match self.tasks.get(slot) {
            Some(t) if t.generation == c.token.generation => {}
            _ => {
                tracing::debug!(?c.token, "completion for a task that no longer exists");
                return;
            }
        }
        match self.tasks[slot].state {
            TaskState::Job { .. } => return self.job_io_done(slot, c, out),
            TaskState::Receiving(_) | TaskState::Draining { .. } => {
                return self.burst_written(slot, c, out)
            }
            _ => {}
        }
        let t = self.free_task(slot);
        if t.aborted {
            return;
        }
        let TaskState::Io(kind) = t.state else { return };
        let reply = Reply::of(&t);
        if let Err(errno) = c.result {
            let (is_write, lba) = match kind {
                IoKind::Read { lba, .. } => (false, lba),
                IoKind::Write { lba, .. } => (true, lba),
                IoKind::Flush => (true, 0),
            };
            // A failing store fails every command: a burst, then one line a second.
            crate::log_limited!(
                tracing::Level::ERROR,
                self.log,
                self.now,
                itt = t.itt,
                lun = t.lun,
                errno,
                "backing store I/O failed"
            );
            let completion = scsi::io_error_for(&self.nexus, is_write, lba, errno);
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

/// The bytes a medium-changing operation touches.
fn write_range(op: &IoOp) -> Option<(u64, u64)> {
    match op {
        IoOp::Write { offset, buf, .. } => Some((*offset, offset + buf.len() as u64)),
        IoOp::Discard { offset, len } => Some((*offset, offset + len)),
        IoOp::CompareAndWrite { offset, buf, .. } => Some((*offset, offset + buf.len() as u64 / 2)),
        IoOp::Read { .. } | IoOp::Flush | IoOp::FindExtent { .. } => None,
    }
}
