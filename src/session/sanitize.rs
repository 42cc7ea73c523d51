//! Sanitize operations that outlive their command (SBC-4 §4.11): the session keeps driving a
//! SANITIZE job after its command is aborted, its unit or the target reset, its nexus reset or
//! its connection lost (a task so left behind is *detached*: it answers nothing, holds no ITT
//! and no CmdSN, and no task management function waits for it); with IMMED the command answers
//! GOOD once the operation has started, and the task goes on detached.
//!
//! While the operation runs the unit's shared [`SanitizeGuard`] refuses the medium to every
//! nexus on every core with SANITIZE IN PROGRESS and its progress. The guard lives in the task,
//! so whatever ends the task (the last step, a failure, the daemon stopping) ends the
//! operation. The daemon stopping is the one thing that interrupts it: it stops before its next
//! step and says so in the log (the medium is then partly sanitized, as after a power loss).
//!
//! A unit with a `sanitize_rate` paces its steps: a step goes out only while the bytes issued
//! stay within the rate since the start (plus one step), else the task waits for the timer.
//!
//! A unit whose medium outlives the daemon has its operation written down first (another
//! thread writes it): the first step, and the GOOD of a command with IMMED, wait for the note,
//! looking again every [`JOURNAL_RETRY`]; so does the GOOD of an operation that completed, for
//! the note that crosses it out (the medium stays refused meanwhile).

use std::time::{Duration, Instant};

use super::data_in::Reply;
use super::full::Session;
use super::output::Output;
use super::task::{Deferred, TaskState};
use crate::scsi::{
    check_condition, good, Completion, Job, LuInfo, SanitizeGuard, Sense, STEP_BYTES,
};

/// How soon a sanitize waiting for its journal note looks again: the writer is another thread,
/// which cannot wake this one, and a durable write takes a few milliseconds.
const JOURNAL_RETRY: Duration = Duration::from_millis(1);

/// What a task running a sanitize operation holds.
#[derive(Debug)]
pub struct SanitizeRun {
    guard: SanitizeGuard,
    pace: Option<Pace>,
    /// The command has IMMED: GOOD goes once the operation is written down.
    answer_when_written: bool,
}

/// Bytes a paced sanitize has issued since it started, against its rate.
#[derive(Debug)]
struct Pace {
    bytes_per_sec: u64,
    started: Instant,
    issued: u64,
}

impl Pace {
    /// When a step of `bytes` may go out: `None` = now (and it is counted), else the earliest
    /// time it will fit.
    fn admit(&mut self, bytes: u64, now: Instant) -> Option<Instant> {
        let elapsed = now.saturating_duration_since(self.started);
        let allowed = (elapsed.as_secs_f64() * self.bytes_per_sec as f64) as u64;
        let after = self.issued.saturating_add(bytes);
        if after <= allowed.saturating_add(u64::from(STEP_BYTES)) {
            self.issued = after;
            return None;
        }
        let due = (after - u64::from(STEP_BYTES)) as f64 / self.bytes_per_sec as f64;
        Some(self.started + Duration::from_secs_f64(due))
    }
}

impl Session {
    /// Starts the sanitize operation of task `slot` on `lu` (its command answers GOOD once the
    /// operation is written down if `immed`); `Err` is the command's answer when one already
    /// runs there (started by another command between its check and this one).
    pub(super) fn begin_sanitize(
        &mut self,
        slot: usize,
        lu: &LuInfo,
        ause: bool,
        immed: bool,
    ) -> Result<(), Completion> {
        let Some(guard) = lu.shared.medium.begin_sanitize(ause) else {
            let progress = lu.shared.medium.sanitize_progress().unwrap_or(0);
            return Err(check_condition(
                &self.nexus,
                Sense::sanitize_in_progress(progress),
            ));
        };
        let pace = lu
            .sanitize_rate
            .filter(|&r| r > 0)
            .map(|bytes_per_sec| Pace {
                bytes_per_sec,
                started: self.now,
                issued: 0,
            });
        self.tasks[slot].sanitize = Some(Box::new(SanitizeRun {
            guard,
            pace,
            answer_when_written: immed,
        }));
        Ok(())
    }

    /// SANITIZE with IMMED, written down: GOOD now, the operation goes on without its command.
    fn answer_started(&mut self, slot: usize, reply: Reply, out: &mut Output) {
        self.send_completion(reply, &good(), out);
        self.detach(slot);
    }

    /// Whether task `slot` runs a sanitize operation that must outlive it: an abort detaches it
    /// instead of ending it.
    pub(super) fn outlives_abort(&self, slot: usize) -> bool {
        let t = &self.tasks[slot];
        t.sanitize.is_some()
            && matches!(
                &t.state,
                TaskState::Job { .. }
                    | TaskState::Deferred(Deferred::Job { .. })
                    | TaskState::Ending
            )
    }

    /// The task answers nothing from now on and gives its ITT and CmdSN back: the initiator
    /// may reuse both.
    pub(super) fn detach(&mut self, slot: usize) {
        let t = &mut self.tasks[slot];
        if t.detached {
            return;
        }
        t.detached = true;
        let itt = t.itt;
        if self.by_itt.get(&itt) == Some(&slot) {
            self.by_itt.remove(&itt);
        }
        self.detached += 1;
        self.regrant();
    }

    /// After a step of a sanitize job: publish how far it got.
    pub(super) fn note_sanitize_progress(&self, slot: usize, job: &Job) {
        if let Some(run) = &self.tasks[slot].sanitize {
            let (done, total) = job.progress();
            run.guard.set_progress(done, total);
        }
    }

    /// Whether the next step (of `bytes`) of task `slot`, deferred, must wait for the
    /// operation's journal note or its pace (the task is then queued until the time it may go
    /// out), or stop because the daemon is stopping or the unit was removed (the task is then
    /// freed, which ends the operation; a command still waiting for it is told its unit is
    /// gone). A command with IMMED is answered here, once the operation is written down.
    pub(super) fn hold_sanitize_step(&mut self, slot: usize, out: &mut Output) -> bool {
        let now = self.now;
        let bytes = match &self.tasks[slot].state {
            TaskState::Deferred(Deferred::Job { io, .. }) => {
                super::budget::job_io_bytes(io, u64::from(self.block_size(io.lun)))
            }
            _ => 0,
        };
        let removed = self.luns.get(self.tasks[slot].lun).is_none();
        let t = &mut self.tasks[slot];
        let Some(run) = &mut t.sanitize else {
            return false;
        };
        if self.stopping || removed {
            let (done, total) = match &t.state {
                TaskState::Deferred(Deferred::Job { job, .. }) => job.progress(),
                _ => (0, 0),
            };
            let why = if removed {
                "the LUN was removed"
            } else {
                "the daemon is stopping"
            };
            tracing::warn!(
                lun = t.lun,
                done_blocks = done,
                total_blocks = total,
                "{why}: sanitize interrupted, the medium is partly sanitized"
            );
            let t = self.free_task(slot);
            if removed && !t.detached {
                let c = check_condition(&self.nexus, Sense::lun_not_supported());
                self.send_completion(Reply::of(&t), &c, out);
            }
            return true;
        }
        let generation = t.generation;
        if !run.guard.is_journaled() {
            self.paced.push((slot, generation, now + JOURNAL_RETRY));
            return true;
        }
        if std::mem::take(&mut run.answer_when_written) && !t.detached {
            let reply = Reply::of(t);
            self.answer_started(slot, reply, out);
        }
        let t = &mut self.tasks[slot];
        let Some(due) = t
            .sanitize
            .as_mut()
            .and_then(|run| run.pace.as_mut())
            .and_then(|p| p.admit(bytes as u64, now))
        else {
            return false;
        };
        self.paced.push((slot, generation, due));
        true
    }

    /// Paced sanitize steps whose time has come go out; sanitize operations waiting for the
    /// journal look again.
    pub(super) fn resume_paced(&mut self, out: &mut Output) {
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.paced)
            .into_iter()
            .partition(|&(_, _, at)| at <= now);
        self.paced = later;
        for (slot, generation, _) in due {
            let Some(t) = self.tasks.get(slot).filter(|t| t.generation == generation) else {
                continue;
            };
            let ending = matches!(t.state, TaskState::Ending);
            let stepping = matches!(t.state, TaskState::Deferred(Deferred::Job { .. }));
            if ending {
                self.answer_sanitize_end(slot, out);
            } else if stepping && !self.hold_sanitize_step(slot, out) {
                self.run_or_defer(slot);
            }
        }
    }

    /// When the next paced step is due.
    pub(super) fn next_paced(&self) -> Option<Instant> {
        self.paced.iter().map(|&(_, _, at)| at).min()
    }

    /// Task `slot`'s job ended with `c`: a sanitize operation it ran completed if `c` is GOOD
    /// (else it failed when its guard goes with the task). A completed one waits, `Ending`,
    /// for the journal to cross it out: returns whether the task does.
    pub(super) fn end_sanitize(&mut self, slot: usize, c: &Completion) -> bool {
        if c.status != good().status {
            return false;
        }
        let t = &mut self.tasks[slot];
        let Some(run) = &mut t.sanitize else {
            return false;
        };
        run.guard.completed();
        t.state = TaskState::Ending;
        true
    }

    /// Task `slot`, `Ending`, answers GOOD (or, detached, logs it) once the journal has crossed
    /// its operation out: until then the medium stays refused, and a restart would find the
    /// operation failed, which an initiator told GOOD must never see.
    pub(super) fn answer_sanitize_end(&mut self, slot: usize, out: &mut Output) {
        let t = &self.tasks[slot];
        if !t
            .sanitize
            .as_ref()
            .is_none_or(|run| run.guard.is_journaled())
        {
            self.paced
                .push((slot, t.generation, self.now + JOURNAL_RETRY));
            return;
        }
        let reply = Reply::of(t);
        let t = self.free_task(slot);
        if t.detached {
            Self::log_detached_end(t.lun, &good());
        } else {
            self.send_completion(reply, &good(), out);
        }
        self.after_task_change(out);
    }

    /// A detached task's job ended: nobody to answer, so its outcome goes to the log.
    pub(super) fn log_detached_end(lun: u16, c: &Completion) {
        if c.status == good().status {
            tracing::info!(lun, "sanitize completed");
        } else {
            tracing::error!(lun, sense = ?c.sense, "sanitize failed");
        }
    }

    /// The nexus is lost (the connection is closing): what outlives it goes on detached.
    /// Returns whether that is all that is left, so that the session may end meanwhile.
    pub fn leave_to_background(&mut self) -> bool {
        let outliving: Vec<usize> = self
            .tasks
            .iter()
            .filter(|(_, t)| !t.detached)
            .map(|(slot, _)| slot)
            .filter(|&slot| self.outlives_abort(slot))
            .collect();
        for slot in outliving {
            self.detach(slot);
        }
        self.tasks.iter().all(|(_, t)| t.detached)
    }

    /// Whether a detached task still runs.
    pub fn has_background_work(&self) -> bool {
        self.detached > 0
    }

    /// Backing-store operations in flight for tasks that are not detached.
    pub(super) fn attached_io_in_flight(&self) -> usize {
        let detached_in_flight = self
            .tasks
            .iter()
            .filter(|(_, t)| t.detached && matches!(t.state, TaskState::Job { .. }))
            .count();
        self.io_in_flight.saturating_sub(detached_in_flight)
    }

    /// The daemon is stopping: sanitize operations stop before their next step.
    pub fn stop_background_work(&mut self) {
        self.stopping = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pace_admits_one_step_ahead_of_the_rate_then_waits_for_it() {
        let start = Instant::now();
        let step = u64::from(STEP_BYTES);
        let mut p = Pace {
            bytes_per_sec: 4 * step,
            started: start,
            issued: 0,
        };
        assert_eq!(p.admit(step, start), None);
        let due = p
            .admit(step, start)
            .expect("a second step at once exceeds the rate");
        assert_eq!(due, start + Duration::from_millis(250));
        assert_eq!(p.issued, step, "a refused step is not counted");
        assert_eq!(p.admit(step, due), None);
        let later = start + Duration::from_secs(10);
        assert_eq!(p.admit(step, later), None, "an idle pace admits at once");
    }
}
