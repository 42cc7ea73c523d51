//! Driving the SCSI layer's multi-step commands (WRITE SAME, UNMAP, COMPARE AND WRITE, ORWRITE,
//! VERIFY with BYTCHK, SANITIZE, EXTENDED COPY, GET LBA STATUS): each `JobIo` step becomes one
//! backing-store operation on the unit it names, whose result is handed back until the job is
//! done.

use super::conn::{IoCompletion, IoOp};
use super::data_in::Reply;
use super::full::Session;
use super::output::Output;
use super::task::{Deferred, IoKind, Purpose, TaskState};
use crate::backstore::IoBuf;
use crate::scsi::{IoOutcome, Job, JobIo, JobOp, Step};

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
        let TaskState::Receiving(w) = &mut self.tasks[slot].state else {
            return;
        };
        let data = Self::received_data(w);
        let received = data.len();
        let step = job.start(&mut self.nexus, &luns, lu, data);
        // A sanitize operation starts with its first step, before it goes out: a command
        // refused for its parameter list started none (and leaves no failure behind).
        if job.is_sanitize() && matches!(step, Step::Io(_)) {
            let immed = job.answers_when_started();
            if let Err(c) = self.begin_sanitize(slot, lu, job.sanitize_ause(), immed) {
                self.free_task(slot);
                self.send_completion(reply, &c, out);
                return self.after_task_change(out);
            }
        }
        // The job keeps its own copy of what it needs: the budget keeps counting it.
        let hold = self.budget.hold(received);
        let t = &mut self.tasks[slot];
        t.hold = Some(hold);
        if let Some((start, end)) = job.exclusive_range() {
            t.exclusive = Some(Box::new(lu.shared.ranges.request_exclusive(start, end)));
        }
        if job.is_sanitize() && matches!(step, Step::Io(_)) {
            tracing::info!(lun = lu.lun, "sanitize started");
        }
        self.drive_job(slot, job, step, reply, None, out);
    }

    /// Performs the job's next step: its I/O once the budget admits its buffer, or its answer.
    /// `last_read`: the buffer the job's previous Read filled, for a step that writes it on.
    fn drive_job(
        &mut self,
        slot: usize,
        mut job: Box<Job>,
        step: Step,
        reply: Reply,
        last_read: Option<IoBuf>,
        out: &mut Output,
    ) {
        match step {
            Step::Done(c) => {
                if self.end_sanitize(slot, &c) {
                    return self.answer_sanitize_end(slot, out);
                }
                let t = self.free_task(slot);
                if t.detached {
                    Self::log_detached_end(t.lun, &c);
                } else {
                    self.send_completion(reply, &c, out);
                }
                self.after_task_change(out);
            }
            Step::Io(JobIo {
                lun,
                op: JobOp::WriteLastRead { lba, blocks, fua },
            }) => {
                // The Read's buffer, already the budget's, goes straight to the write: no new
                // buffer, so nothing to wait for (and no copy of the data).
                let bs = u64::from(self.block_size(lun));
                let whole = |b: &IoBuf| b.len() as u64 == u64::from(blocks) * bs;
                let (Some(target), Some(buf)) = (self.target, last_read.filter(whole)) else {
                    tracing::error!(slot, "a job writes a read buffer it does not have");
                    let luns = self.luns.clone();
                    let Some(lu) = luns.get(self.tasks[slot].lun) else {
                        return;
                    };
                    let step = job.resume(&self.nexus, lu, Err(libc::EIO));
                    return self.drive_job(slot, job, step, reply, None, out);
                };
                self.tasks[slot].state = TaskState::Job {
                    job,
                    reading: false,
                };
                let op = IoOp::Write {
                    offset: lba * bs,
                    buf,
                    fua,
                };
                self.submit_to(target, slot, lun, op);
            }
            Step::Io(io) => {
                let sanitizing = self.tasks[slot].sanitize.is_some();
                if sanitizing {
                    self.note_sanitize_progress(slot, &job);
                }
                self.tasks[slot].state = TaskState::Deferred(Deferred::Job { job, io });
                if sanitizing && self.hold_sanitize_step(slot, out) {
                    return self.after_task_change(out);
                }
                let t = &mut self.tasks[slot];
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
        let result = match (&c.result, c.extent, &c.buf) {
            (Err(errno), ..) => Err(*errno),
            (Ok(()), Some(e), _) => Ok(IoOutcome::Extent {
                allocated: e.allocated,
                bytes: e.len,
            }),
            (Ok(()), None, Some(buf)) if reading => Ok(IoOutcome::Data(buf.as_slice())),
            (Ok(()), None, _) => Ok(IoOutcome::Done),
        };
        let step = job.resume(&self.nexus, lu, result);
        let last_read = if reading { c.buf } else { None };
        self.drive_job(slot, job, step, reply, last_read, out);
    }
}
