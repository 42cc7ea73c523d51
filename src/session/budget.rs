//! Work that waits for the connection's buffer budget: reads, R2T bursts and the steps of
//! multi-step commands take their buffers only when the budget admits them, in arrival order.
//! The budget is released as buffers are dropped (sent, written, or freed with their task), and
//! the queue is retried at the end of every input the session handles.

use super::conn::IoOp;
use super::full::Session;
use super::output::Output;
use super::task::{Deferred, IoKind, TaskState};
use crate::backstore::buf::Hold;
use crate::backstore::IoBuf;
use crate::scsi::{JobIo, JobOp};

impl Session {
    /// Whether task `slot` may take a budgeted buffer of `bytes` now: nothing queued ahead of it
    /// (so a large transfer is not starved by a stream of small ones) and the budget admits it,
    /// beside the data the task itself keeps (a multi-step command's parameter data, which is
    /// released only when the task ends).
    pub(super) fn may_take(&self, slot: usize, bytes: usize) -> bool {
        let own = self.tasks[slot].hold.as_ref().map_or(0, Hold::bytes);
        self.waiting.front().is_none_or(|&(s, _)| s == slot)
            && self.budget.admits_beside(bytes, own)
    }

    /// Queues task `slot` until the budget has room for it.
    pub(super) fn defer(&mut self, slot: usize) {
        let t = &mut self.tasks[slot];
        if !t.waiting {
            t.waiting = true;
            self.waiting.push_back((slot, t.generation));
        }
    }

    /// Starts a task in the `Deferred` state now if the budget allows, else queues it.
    pub(super) fn run_or_defer(&mut self, slot: usize) {
        if !self.start_deferred(slot) {
            self.defer(slot);
        }
    }

    /// Retries queued work in order until one item still does not fit.
    pub(super) fn resume_waiting(&mut self, out: &mut Output) {
        while let Some(&(slot, generation)) = self.waiting.front() {
            let live = self
                .tasks
                .get(slot)
                .is_some_and(|t| t.generation == generation && t.waiting);
            if live {
                let blocked = match self.tasks[slot].state {
                    TaskState::Receiving(_) => self.send_r2ts(slot, out),
                    TaskState::Deferred(_) => !self.start_deferred(slot),
                    _ => false,
                };
                if blocked {
                    return;
                }
                self.tasks[slot].waiting = false;
            }
            self.waiting.pop_front();
        }
    }

    /// Takes the buffer a deferred task needs and submits its I/O; false if it must wait.
    fn start_deferred(&mut self, slot: usize) -> bool {
        let Some(target) = self.target else {
            return false;
        };
        let bytes = match &self.tasks[slot].state {
            TaskState::Deferred(Deferred::Read { scsi_len, .. }) => *scsi_len as usize,
            TaskState::Deferred(Deferred::Job { io, .. }) => {
                job_io_bytes(io, u64::from(self.block_size(io.lun)))
            }
            _ => return true,
        };
        if !self.may_take(slot, bytes) {
            return false;
        }
        let lun = self.tasks[slot].lun;
        let state = std::mem::replace(&mut self.tasks[slot].state, TaskState::Io(IoKind::Flush));
        let (state, lun, op) = match state {
            TaskState::Deferred(Deferred::Read { lba, scsi_len }) => {
                let bs = u64::from(self.block_size(lun));
                let op = IoOp::Read {
                    offset: lba * bs,
                    buf: self.budget.alloc_gated(bytes),
                };
                (TaskState::Io(IoKind::Read { lba, scsi_len }), lun, op)
            }
            TaskState::Deferred(Deferred::Job { job, io }) => {
                let reading = matches!(io.op, JobOp::Read { .. });
                let lun = io.lun;
                let Some(op) = self.job_op(&io.op, lun, bytes) else {
                    // `drive_job` performs these itself, with the buffer the Read filled: one
                    // here is a bug. It stays deferred (nothing reaches the store) until the
                    // initiator aborts it.
                    tracing::error!(slot, "job step deferred without the buffer it writes");
                    self.tasks[slot].state = TaskState::Deferred(Deferred::Job { job, io });
                    return true;
                };
                (TaskState::Job { job, reading }, lun, op)
            }
            other => {
                self.tasks[slot].state = other;
                return true;
            }
        };
        self.tasks[slot].state = state;
        self.submit_to(target, slot, lun, op);
        true
    }

    /// The backing-store operation of one job step on unit `lun`, with its buffer taken from
    /// the budget; `None` for a step that writes the buffer of the Read before it.
    fn job_op(&self, op: &JobOp, lun: u16, bytes: usize) -> Option<IoOp> {
        let bs = u64::from(self.block_size(lun));
        Some(match *op {
            JobOp::Read { lba, .. } => IoOp::Read {
                offset: lba * bs,
                buf: self.budget.alloc_gated(bytes),
            },
            JobOp::Write { lba, ref data, fua } => IoOp::Write {
                offset: lba * bs,
                buf: self.filled(bytes, data),
                fua,
            },
            JobOp::WriteLastRead { .. } => return None,
            JobOp::Discard { lba, blocks } => IoOp::Discard {
                offset: lba * bs,
                len: blocks * bs,
            },
            JobOp::Extent { lba, blocks } => IoOp::FindExtent {
                offset: lba * bs,
                len: blocks.saturating_mul(bs),
            },
            JobOp::CompareAndWrite { lba, ref data, fua } => IoOp::CompareAndWrite {
                offset: lba * bs,
                buf: self.filled(bytes, data),
                fua,
            },
        })
    }

    /// A buffer from the budget holding `data` (`bytes` long).
    fn filled(&self, bytes: usize, data: &[u8]) -> IoBuf {
        let mut buf: IoBuf = self.budget.alloc_gated(bytes);
        buf.as_mut_slice().copy_from_slice(data);
        buf
    }
}

/// Buffer bytes one job step takes from the budget.
pub(super) fn job_io_bytes(io: &JobIo, bs: u64) -> usize {
    match &io.op {
        JobOp::Read { blocks, .. } => (u64::from(*blocks) * bs) as usize,
        JobOp::Write { data, .. } | JobOp::CompareAndWrite { data, .. } => data.len(),
        JobOp::WriteLastRead { .. } | JobOp::Discard { .. } | JobOp::Extent { .. } => 0,
    }
}
