//! Driving the SCSI layer's multi-step commands (WRITE SAME, UNMAP, COMPARE AND WRITE, ORWRITE,
//! VERIFY with BYTCHK): each `JobIo` step becomes one backing-store operation, whose result is
//! handed back until the job is done.

use super::conn::IoCompletion;
use super::data_in::Reply;
use super::full::Session;
use super::output::Output;
use super::task::{Deferred, IoKind, Purpose, TaskState};
use crate::scsi::{Job, Step};

impl Session {
    /// All Data-Out of a job's task has arrived: start the job with it.
    pub(super) fn start_job(&mut self, slot: usize, reply: Reply, out: &mut Output) {
        let t = &mut self.tasks[slot];
        let TaskState::Receiving(w) = &mut t.state else {
            return;
        };
        let Purpose::Job(mut job) = std::mem::replace(&mut w.purpose, Purpose::Blocks) else {
            return;
        };
        let luns = self.luns.clone();
        let Some(lu) = luns.get(t.lun) else {
            return;
        };
        let data = Self::received_data(w);
        let step = job.start(&self.nexus, lu, data);
        // The job keeps its own copy of what it needs: the budget keeps counting it.
        t.hold = Some(self.budget.hold(data.len()));
        if let Some((start, end)) = job.exclusive_range() {
            t.exclusive = Some(lu.shared.ranges.request_exclusive(start, end));
        }
        self.drive_job(slot, job, step, reply, out);
    }

    /// Performs the job's next step: its I/O once the budget admits its buffer, or its answer.
    fn drive_job(
        &mut self,
        slot: usize,
        job: Box<Job>,
        step: Step,
        reply: Reply,
        out: &mut Output,
    ) {
        match step {
            Step::Done(c) => {
                self.free_task(slot);
                self.send_completion(reply, &c, out);
                self.after_task_change(out);
            }
            Step::Io(io) => {
                let t = &mut self.tasks[slot];
                t.state = TaskState::Deferred(Deferred::Job { job, io });
                if t.exclusive.as_mut().is_some_and(|e| !e.poll()) {
                    let generation = t.generation;
                    self.exclusive_waiters.push((slot, generation));
                    return;
                }
                self.run_or_defer(slot);
            }
        }
    }

    /// One of a job's operations finished: resume the job with its result.
    pub(super) fn job_io_done(&mut self, slot: usize, c: IoCompletion, out: &mut Output) {
        let t = &mut self.tasks[slot];
        let TaskState::Job { mut job, reading } =
            std::mem::replace(&mut t.state, TaskState::Io(IoKind::Flush))
        else {
            return;
        };
        let reply = Reply::of(t);
        if t.aborted {
            self.free_task(slot);
            return;
        }
        let luns = self.luns.clone();
        let Some(lu) = luns.get(t.lun) else {
            return;
        };
        let result = match (&c.result, &c.buf) {
            (Err(errno), _) => Err(*errno),
            (Ok(()), Some(buf)) if reading => Ok(Some(buf.as_slice())),
            (Ok(()), _) => Ok(None),
        };
        let step = job.resume(&self.nexus, lu, result);
        drop(c.buf);
        self.drive_job(slot, job, step, reply, out);
    }
}
