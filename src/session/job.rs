//! Driving the SCSI layer's multi-step commands (WRITE SAME, UNMAP, COMPARE AND WRITE, ORWRITE,
//! VERIFY with BYTCHK): each `JobIo` step becomes one backing-store operation, whose result is
//! handed back until the job is done.

use super::conn::{IoCompletion, IoOp};
use super::data_in::Reply;
use super::full::Session;
use super::output::Output;
use super::task::{IoKind, Purpose, TaskState};
use crate::backstore::IoBuf;
use crate::scsi::{Job, JobIo, Step};

impl Session {
    /// All Data-Out of a job's task has arrived: start the job with it.
    pub(super) fn start_job(&mut self, target: usize, slot: usize, reply: Reply, out: &mut Output) {
        let t = &mut self.tasks[slot];
        let TaskState::Receiving(w) = &mut t.state else {
            return;
        };
        let Purpose::Job(mut job) = std::mem::replace(&mut w.purpose, Purpose::Blocks) else {
            return;
        };
        let ctx = self.ctx.clone();
        let Some(lu) = ctx.targets[target].luns.get(t.lun) else {
            return;
        };
        let data = t.buf.as_ref().map_or(&[][..], |b| b.as_slice());
        let step = job.start(&self.nexus, lu, data);
        t.buf = None;
        self.drive_job(target, slot, job, step, reply, out);
    }

    fn drive_job(
        &mut self,
        target: usize,
        slot: usize,
        job: Box<Job>,
        step: Step,
        reply: Reply,
        out: &mut Output,
    ) {
        let io = match step {
            Step::Done(c) => {
                self.free_task(slot);
                self.send_completion(reply, &c, out);
                self.after_task_change(out);
                return;
            }
            Step::Io(io) => io,
        };
        let bs = u64::from(self.block_size(target, self.tasks[slot].lun));
        let reading = matches!(io, JobIo::Read { .. });
        let op = match io {
            JobIo::Read { lba, blocks } => IoOp::Read {
                offset: lba * bs,
                buf: IoBuf::alloc((u64::from(blocks) * bs) as usize),
            },
            JobIo::Write { lba, data, fua } => {
                let mut buf = IoBuf::alloc(data.len());
                buf.as_mut_slice().copy_from_slice(&data);
                IoOp::Write {
                    offset: lba * bs,
                    buf,
                    fua,
                }
            }
            JobIo::Discard { lba, blocks } => IoOp::Discard {
                offset: lba * bs,
                len: blocks * bs,
            },
        };
        self.tasks[slot].state = TaskState::Job { job, reading };
        self.submit(target, slot, op);
    }

    /// One of a job's operations finished: resume the job with its result.
    pub(super) fn job_io_done(&mut self, slot: usize, c: IoCompletion, out: &mut Output) {
        let Some(target) = self.target else { return };
        let t = &mut self.tasks[slot];
        let TaskState::Job { mut job, reading } =
            std::mem::replace(&mut t.state, TaskState::Io(IoKind::Flush))
        else {
            return;
        };
        let reply = Reply {
            itt: t.itt,
            lun_raw: t.lun_raw,
            edtl: t.edtl,
            r2t_count: t.r2t_sn,
        };
        if t.aborted {
            self.free_task(slot);
            return;
        }
        let ctx = self.ctx.clone();
        let Some(lu) = ctx.targets[target].luns.get(t.lun) else {
            return;
        };
        let result = match (&c.result, &c.buf) {
            (Err(errno), _) => Err(*errno),
            (Ok(()), Some(buf)) if reading => Ok(Some(buf.as_slice())),
            (Ok(()), _) => Ok(None),
        };
        let step = job.resume(&self.nexus, lu, result);
        self.drive_job(target, slot, job, step, reply, out);
    }
}
