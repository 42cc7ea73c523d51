//! What an I_T nexus can learn about its EXTENDED COPY commands afterwards: the copies it
//! identified with a list identifier (LIST ID USAGE 00b or 10b), their progress while they run
//! and, for LIST ID USAGE 00b, their outcome once they are done (RECEIVE COPY RESULTS, COPY
//! STATUS).
//!
//! State stays small and bounded: at most [`MAX_IDENTIFIED_COPIES`] records per I_T nexus, each
//! a LUN, a list identifier and a shared progress counter the running job updates. A job that is
//! dropped without finishing (its task aborted) leaves its record behind; the record notices
//! (the job's handle is gone) and reports the copy as ended with errors, so an aborted copy never
//! keeps its list identifier or its slot busy.

use std::sync::atomic::{AtomicU16, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use super::super::cdb::Cdb;
use super::super::sense::Sense;
use super::super::{data_in, NexusState, Plan};

/// MAXIMUM CONCURRENT COPIES: identified copies (LIST ID USAGE 00b or 10b) one I_T nexus may
/// have running or held at once; the oldest finished one makes room for a new one.
pub(in crate::scsi) const MAX_IDENTIFIED_COPIES: usize = 4;

/// SPC-4 COPY STATUS COPY MANAGER STATUS (byte 4 bits 6..0).
const STATUS_IN_PROGRESS: u8 = 0x00;
const STATUS_COMPLETED: u8 = 0x01;
const STATUS_FAILED: u8 = 0x02;
/// COPY STATUS TRANSFER COUNT UNITS 00h: bytes. A command copies at most
/// [`super::MAX_BYTES_PER_COMMAND`], which a 32-bit count of bytes always holds.
const UNITS_BYTES: u8 = 0x00;
const _: () = assert!(super::MAX_BYTES_PER_COMMAND <= u32::MAX as u64);
/// COPY STATUS parameter data: AVAILABLE DATA (4 bytes) then 8 bytes.
const COPY_STATUS_LEN: usize = 12;
/// RECEIVE COPY RESULTS byte 2: LIST IDENTIFIER.
const LIST_ID_AT: u16 = 2;

/// How far one copy got: written by its job, read by COPY STATUS. Relaxed atomics suffice: one
/// session (one thread) writes and reads them; atomics only make the handle shareable.
#[derive(Debug, Default)]
pub(in crate::scsi) struct CopyProgress {
    state: AtomicU8,
    segments: AtomicU16,
    bytes: AtomicU64,
}

/// The running job's side of a [`CopyProgress`]; the nexus's record holds the other.
#[derive(Debug, Clone)]
pub(in crate::scsi) struct ProgressHandle(Arc<CopyProgress>);

/// Jobs compare equal field by field; two handles are the same when they share the record.
impl PartialEq for ProgressHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ProgressHandle {}

impl ProgressHandle {
    /// A segment was copied completely, `bytes` with it.
    pub fn segment_done(&self, bytes: u64) {
        self.0.segments.fetch_add(1, Ordering::Relaxed);
        self.0.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Part of a segment was copied.
    pub fn copied(&self, bytes: u64) {
        self.0.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The copy ended: every segment copied, or not.
    pub fn finish(&self, ok: bool) {
        let state = if ok { STATUS_COMPLETED } else { STATUS_FAILED };
        self.0.state.store(state, Ordering::Relaxed);
    }
}

/// One identified copy of this I_T nexus.
#[derive(Debug, Clone)]
struct Record {
    lun: u16,
    list_id: u8,
    /// LIST ID USAGE 00b: the outcome is kept for COPY STATUS (10b: only while it runs).
    hold: bool,
    /// Age, to give up the oldest finished record first.
    seq: u64,
    progress: Arc<CopyProgress>,
}

impl Record {
    /// Still running: not finished, and its job still exists to finish it.
    fn running(&self) -> bool {
        self.progress.state.load(Ordering::Relaxed) == STATUS_IN_PROGRESS
            && Arc::strong_count(&self.progress) > 1
    }

    /// COPY MANAGER STATUS; a job dropped before it finished (an aborted task) failed.
    fn status(&self) -> u8 {
        match self.progress.state.load(Ordering::Relaxed) {
            STATUS_IN_PROGRESS if !self.running() => STATUS_FAILED,
            state => state,
        }
    }

    /// Whether COPY STATUS may still report it.
    fn reportable(&self) -> bool {
        self.hold || self.running()
    }
}

/// The identified copies of one I_T nexus (part of [`NexusState`]).
#[derive(Debug, Clone, Default)]
pub struct CopyRecords {
    slots: [Option<Record>; MAX_IDENTIFIED_COPIES],
    next_seq: u64,
}

impl CopyRecords {
    /// Registers a new identified copy: OPERATION IN PROGRESS while one with the same list
    /// identifier still runs on this unit, INSUFFICIENT RESOURCES when every slot holds a
    /// running copy. A finished copy with the same identifier is replaced (SPC-4: its held
    /// results are discarded).
    pub(in crate::scsi) fn register(
        &mut self,
        lun: u16,
        list_id: u8,
        hold: bool,
    ) -> Result<ProgressHandle, Sense> {
        let same = |r: &Record| r.lun == lun && r.list_id == list_id;
        if self.slots.iter().flatten().any(|r| same(r) && r.running()) {
            return Err(Sense::operation_in_progress());
        }
        for slot in &mut self.slots {
            if slot.as_ref().is_some_and(|r| same(r) || !r.reportable()) {
                *slot = None;
            }
        }
        let free = match self.slots.iter().position(Option::is_none) {
            Some(i) => i,
            None => self
                .oldest_finished()
                .ok_or(Sense::insufficient_resources())?,
        };
        let progress = Arc::new(CopyProgress::default());
        self.next_seq += 1;
        self.slots[free] = Some(Record {
            lun,
            list_id,
            hold,
            seq: self.next_seq,
            progress: progress.clone(),
        });
        Ok(ProgressHandle(progress))
    }

    fn oldest_finished(&self) -> Option<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().filter(|r| !r.running()).map(|r| (i, r.seq)))
            .min_by_key(|&(_, seq)| seq)
            .map(|(i, _)| i)
    }

    fn find(&self, lun: u16, list_id: u8) -> Option<&Record> {
        self.slots
            .iter()
            .flatten()
            .filter(|r| r.lun == lun && r.list_id == list_id && r.reportable())
            .max_by_key(|r| r.seq)
    }
}

/// SPC-4 RECEIVE COPY RESULTS, COPY STATUS (LID1): the copy this I_T nexus sent to `lun` with
/// the CDB's LIST IDENTIFIER, or INVALID FIELD IN CDB at the LIST IDENTIFIER when there is none
/// (never identified, LIST ID USAGE 10b and finished, or given up for a newer one).
pub(super) fn copy_status(nexus: &NexusState, lun: u16, cdb: Cdb) -> Result<Plan, Sense> {
    let record = nexus
        .copies
        .find(lun, cdb.u8(2))
        .ok_or_else(|| Sense::invalid_field_in_cdb().at_cdb(LIST_ID_AT, None))?;
    let p = &record.progress;
    let bytes = p.bytes.load(Ordering::Relaxed);
    let mut d = vec![0u8; COPY_STATUS_LEN];
    d[0..4].copy_from_slice(&((COPY_STATUS_LEN - 4) as u32).to_be_bytes());
    // HDD (bit 7) stays clear: no held data is ever kept, so none is discarded.
    d[4] = record.status();
    d[5..7].copy_from_slice(&p.segments.load(Ordering::Relaxed).to_be_bytes());
    d[7] = UNITS_BYTES;
    d[8..12].copy_from_slice(&u32::try_from(bytes).unwrap_or(u32::MAX).to_be_bytes());
    Ok(data_in(d, cdb.be32(10)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(records: &CopyRecords, lun: u16, list_id: u8) -> Option<u8> {
        records.find(lun, list_id).map(Record::status)
    }

    #[test]
    fn a_running_list_identifier_cannot_be_reused_a_finished_one_can() {
        let mut r = CopyRecords::default();
        let job = r.register(0, 7, true).expect("registered");
        assert_eq!(status_of(&r, 0, 7), Some(STATUS_IN_PROGRESS));
        assert_eq!(
            r.register(0, 7, true).err(),
            Some(Sense::operation_in_progress())
        );
        assert!(r.register(1, 7, true).is_ok(), "another unit's list");
        job.finish(true);
        assert_eq!(status_of(&r, 0, 7), Some(STATUS_COMPLETED));
        let again = r.register(0, 7, true).expect("finished: replaced");
        assert_eq!(status_of(&r, 0, 7), Some(STATUS_IN_PROGRESS));
        drop(again);
    }

    #[test]
    fn a_dropped_job_reports_failed_and_frees_its_identifier() {
        let mut r = CopyRecords::default();
        let job = r.register(0, 1, true).expect("registered");
        job.segment_done(4096);
        drop(job);
        assert_eq!(status_of(&r, 0, 1), Some(STATUS_FAILED));
        assert!(r.register(0, 1, true).is_ok());
    }

    #[test]
    fn discard_usage_is_reported_only_while_running() {
        let mut r = CopyRecords::default();
        let job = r.register(0, 3, false).expect("registered");
        assert_eq!(status_of(&r, 0, 3), Some(STATUS_IN_PROGRESS));
        job.finish(true);
        assert_eq!(status_of(&r, 0, 3), None);
    }

    #[test]
    fn slots_are_bounded_the_oldest_finished_record_goes_first() {
        let mut r = CopyRecords::default();
        let mut running: Vec<_> = (0..MAX_IDENTIFIED_COPIES as u8)
            .map(|id| r.register(0, id, true).expect("room"))
            .collect();
        assert_eq!(
            r.register(0, 100, true).err(),
            Some(Sense::insufficient_resources())
        );
        running[2].finish(true);
        running[1].finish(false);
        let newest = r
            .register(0, 100, true)
            .expect("a finished record made room");
        assert_eq!(status_of(&r, 0, 1), None, "the oldest finished one went");
        assert_eq!(status_of(&r, 0, 2), Some(STATUS_COMPLETED));
        running.push(newest);
    }
}
