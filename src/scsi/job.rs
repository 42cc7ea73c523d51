//! Multi-step commands: the ones that need more than one backing-store operation (WRITE SAME,
//! UNMAP, COMPARE AND WRITE, ORWRITE, VERIFY with BYTCHK, SANITIZE, EXTENDED COPY, GET LBA
//! STATUS), as a sans-I/O state machine.
//!
//! The transport drives a [`Job`]:
//! 1. [`Job::check_edtl`] with the initiator's EXPECTED DATA TRANSFER LENGTH: `Some` is the
//!    answer and the job never starts (no Data-Out needs to be received);
//! 2. receive [`Job::data_out_len`] bytes of Data-Out (none when it is zero);
//! 3. [`Job::start`] with them, then for each [`Step::Io`] perform the [`JobIo`] on the backing
//!    store of the logical unit it names and call [`Job::resume`] with its [`IoOutcome`], until
//!    [`Step::Done`] gives the completion.
//!
//! A step addresses the command's own logical unit, except for EXTENDED COPY, whose reads and
//! writes go to the units its parameter list names (units of the same target, as the I_T
//! nexus sees them).
//!
//! Memory stays bounded whatever the CDB says: a step reads or writes at most [`STEP_BYTES`]
//! (WRITE SAME over a terabyte is a million 1 MiB writes, never one buffer; EXTENDED COPY moves
//! one step's buffer from its Read to its Write), and the Data-Out a job keeps is limited by
//! the command's own maximum (MAXIMUM TRANSFER LENGTH, MAXIMUM COMPARE AND WRITE LENGTH, one
//! block for WRITE SAME, 64 KiB for UNMAP, the copy manager's MAXIMUM DESCRIPTOR LIST LENGTH).
//!
//! Atomicity: COMPARE AND WRITE (and ORWRITE) read, compare and write in separate steps. SBC-3
//! wants the compare and the write atomic against other commands on the same blocks, so the
//! transport holds an exclusive range lock ([`Job::exclusive_range`], `range_lock`) over them
//! from before the read until after the write. That lock only covers this daemon: where the
//! store can compare and write atomically itself (`LuInfo::store_compare_and_write`, an RBD
//! image, atomic in the cluster and so against other gateways too), COMPARE AND WRITE is one
//! [`JobOp::CompareAndWrite`] instead, and the job reads only to locate a miscompare.

use super::copy;
use super::lba_status::Scan;
use super::pr::ItNexus;
use super::provisioning;
use super::sanitize;
use super::sense::Sense;
use super::{
    check_condition, good, io_error_for, Completion, LuInfo, LunMap, NexusState, ScsiStatus,
};

/// Largest buffer one step reads or writes.
pub const STEP_BYTES: u32 = 1 << 20;

/// Atomic store COMPARE AND WRITEs one command tries while the blocks keep changing between
/// the store's miscompare and the read that locates it; after that it compares and writes in
/// separate steps (atomic against this daemon's writers only).
const STORE_CAW_TRIES: u8 = 4;

/// One backing-store operation the transport performs for a job, on logical unit `lun` of the
/// command's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobIo {
    pub lun: u16,
    pub op: JobOp,
}

/// What a [`JobIo`] does, in blocks of its unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOp {
    /// Read `blocks` blocks at `lba` into a new buffer and hand it to [`Job::resume`].
    Read { lba: u64, blocks: u32 },
    /// Write `data` (a whole number of blocks) at `lba`; `fua` => durable before resuming
    /// (already true when the LU has no volatile write cache).
    Write { lba: u64, data: Vec<u8>, fua: bool },
    /// Write the buffer this job's previous Read filled (`blocks` blocks, unchanged) at `lba`:
    /// the transport keeps that buffer for it, so copied data is never copied again.
    WriteLastRead { lba: u64, blocks: u32, fua: bool },
    /// Deallocate `blocks` blocks at `lba`; reads of the range return zeros afterwards (LBPRZ).
    Discard { lba: u64, blocks: u64 },
    /// Find how far from `lba` (at most `blocks` blocks) the store's allocation stays as it
    /// is at `lba`; resume with [`IoOutcome::Extent`].
    Extent { lba: u64, blocks: u64 },
    /// In one atomic store operation: compare the blocks at `lba` with the first half of `data`
    /// and, if equal, write its second half there. Resumes with `Err(EILSEQ)` on a miscompare
    /// and `Err(EOPNOTSUPP)` or `Err(EINVAL)` when the store cannot do it for this range.
    CompareAndWrite { lba: u64, data: Vec<u8>, fua: bool },
}

/// What a performed [`JobIo`] gives back to [`Job::resume`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoOutcome<'a> {
    /// A Read's blocks.
    Data(&'a [u8]),
    /// A Write, WriteLastRead, Discard or CompareAndWrite is done.
    Done,
    /// An Extent's answer: the store holds data at the LBA asked (`allocated`) or not, and
    /// does so for `bytes` bytes from there (at most what was asked).
    Extent { allocated: bool, bytes: u64 },
}

/// What a job needs next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Io(JobIo),
    Done(Completion),
}

/// How the initiator's EXPECTED DATA TRANSFER LENGTH must relate to [`Job::data_out_len`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edtl {
    /// The Data-Out is data for the medium: any other length is refused.
    Exact,
    /// No data is needed; a larger EDTL is refused above this many bytes.
    AtMost(u32),
    /// A parameter list: a shorter one is judged by its contents, a longer one is ignored.
    Any,
}

/// Where the job is: the I/O it waits for, or whether it has not started / has finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    New,
    /// `len`: the bytes the Read must return.
    Reading {
        lba: u64,
        len: u64,
    },
    Writing {
        lba: u64,
        blocks: u32,
    },
    Discarding {
        lba: u64,
    },
    /// Waiting for an Extent answer from `lba`, about `block_size`-byte blocks.
    Locating {
        lba: u64,
        block_size: u32,
    },
    Comparing {
        lba: u64,
    },
    Finished,
}

/// VERIFY BYTCHK 01b compares the whole Data-Out, 11b one block with every block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ByteCheck {
    All,
    OneBlock,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    WriteSame {
        lba: u64,
        blocks: u64,
        unmap: bool,
        ndob: bool,
        /// The one block written everywhere (kept from the Data-Out).
        pattern: Vec<u8>,
        done: u64,
    },
    Unmap {
        ranges: Vec<(u64, u64)>,
        next: usize,
    },
    CompareAndWrite {
        lba: u64,
        blocks: u32,
        fua: bool,
        /// Verify half then write half.
        data: Vec<u8>,
        /// Atomic store operations left to try; 0 = compare and write in separate steps.
        store_tries: u8,
    },
    OrWrite {
        lba: u64,
        blocks: u32,
        fua: bool,
        data: Vec<u8>,
        done: u32,
    },
    Verify {
        lba: u64,
        blocks: u32,
        check: ByteCheck,
        data: Vec<u8>,
        done: u32,
    },
    /// COMPARE AND WRITE of zero blocks: nothing to do, not an error.
    Nothing,
    /// SANITIZE OVERWRITE: the parameter list gives the block written over the whole medium
    /// (then it runs as a WRITE SAME of every block).
    SanitizeOverwrite,
    /// SANITIZE BLOCK ERASE: deallocate every block, `next` onwards, in bounded steps.
    Erase { next: u64, end: u64 },
    /// EXTENDED COPY: the copy, once its parameter list has arrived and been checked.
    /// The copy once started, and the I_T nexus it was sent on: every unit it names checks
    /// that nexus against its reservation.
    ExtendedCopy(Option<Box<copy::Run>>, Box<ItNexus>),
    /// GET LBA STATUS: the descriptors so far.
    LbaStatus(Box<Scan>),
}

/// A command that needs several backing-store operations. Built by `dispatch`, driven by the
/// transport (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The logical unit the command was sent to.
    lun: u16,
    block_size: u32,
    data_out_len: u32,
    edtl: Edtl,
    /// CDB byte of the field that sets the Data-Out length (sense field pointer).
    length_at: u16,
    phase: Phase,
    kind: Kind,
    /// A sanitize operation (SBC-4 §4.11) and its command's bits.
    sanitize: Option<SanitizeBits>,
}

/// SANITIZE byte 1: IMMED (the command answers once the operation has started rather than
/// when it is done) and AUSE (a failure of it may be left with EXIT FAILURE MODE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SanitizeBits {
    pub immed: bool,
    pub ause: bool,
}

impl Job {
    /// Whether this is a sanitize operation: it runs to its end whatever becomes of its
    /// command (aborted, its LU reset) or of the nexus that sent it, and every nexus is refused
    /// the medium meanwhile.
    pub fn is_sanitize(&self) -> bool {
        self.sanitize.is_some()
    }

    /// Whether the command answers GOOD once started, the job going on without it (SANITIZE
    /// with IMMED).
    pub fn answers_when_started(&self) -> bool {
        self.sanitize.is_some_and(|b| b.immed)
    }

    /// The AUSE bit of a sanitize operation's command.
    pub fn sanitize_ause(&self) -> bool {
        self.sanitize.is_some_and(|b| b.ause)
    }

    /// Blocks done and blocks to do, for a job that goes over the medium (a sanitize);
    /// `(0, 0)` for the others.
    pub fn progress(&self) -> (u64, u64) {
        match &self.kind {
            Kind::WriteSame { blocks, done, .. } => (*done, *blocks),
            Kind::Erase { next, end } => (*next, *end),
            _ => (0, 0),
        }
    }

    /// The byte range that must stay untouched by every other writer from the job's first read
    /// to its last write (SBC-3 COMPARE AND WRITE; ORWRITE reads, merges and writes too), or
    /// `None` for jobs without a read-modify-write.
    pub fn exclusive_range(&self) -> Option<(u64, u64)> {
        let bs = u64::from(self.block_size);
        match &self.kind {
            Kind::CompareAndWrite { lba, blocks, .. } | Kind::OrWrite { lba, blocks, .. } => {
                Some((lba * bs, (lba + u64::from(*blocks)) * bs))
            }
            _ => None,
        }
    }

    /// Bytes of Data-Out the command needs before it can start (0 when none).
    pub fn data_out_len(&self) -> u32 {
        self.data_out_len
    }

    /// Check the initiator's EXPECTED DATA TRANSFER LENGTH before receiving anything: `Some`
    /// is the command's answer (CHECK CONDITION, INVALID FIELD IN CDB at the length field)
    /// when the command cannot run with that much Data-Out; `None` to go on.
    pub fn check_edtl(&self, nexus: &NexusState, edtl: u32) -> Option<Completion> {
        let fits = match self.edtl {
            Edtl::Exact => edtl == self.data_out_len,
            Edtl::AtMost(limit) => edtl <= limit,
            Edtl::Any => true,
        };
        (!fits).then(|| check_condition(nexus, self.length_mismatch()))
    }

    /// Starts the job once its Data-Out has arrived: exactly `data_out_len` bytes, or what the
    /// initiator sent when its EDTL was different (then the command answers as SBC-3 says).
    /// `lu` is the unit the command was sent to, `luns` every unit the I_T nexus sees (an
    /// EXTENDED COPY may name any of them), `nexus` its state (which keeps copy results).
    pub fn start(
        &mut self,
        nexus: &mut NexusState,
        luns: &LunMap,
        lu: &LuInfo,
        data: &[u8],
    ) -> Step {
        if self.phase != Phase::New {
            return self.fail(nexus, Sense::internal_target_failure());
        }
        if self.edtl == Edtl::Exact && data.len() != self.data_out_len as usize {
            return self.fail(nexus, self.length_mismatch());
        }
        let fua = !lu.write_cache;
        match &mut self.kind {
            Kind::WriteSame {
                lba,
                blocks,
                unmap,
                ndob,
                pattern,
                ..
            } => {
                if *unmap {
                    // Deallocate whatever the block holds: the range then reads as zeros
                    // (LBPRZ), as with LIO; libiscsi WriteSame10.UnmapUntilEnd expects that.
                    let io = JobOp::Discard {
                        lba: *lba,
                        blocks: *blocks,
                    };
                    return self.issue(io);
                }
                *pattern = if *ndob {
                    vec![0; self.block_size as usize]
                } else {
                    data.to_vec()
                };
                self.next_write_same(fua)
            }
            Kind::Unmap { ranges, .. } => {
                match provisioning::unmap_ranges(lu, data, self.data_out_len) {
                    Ok(parsed) => *ranges = parsed,
                    Err(sense) => return self.fail(nexus, sense),
                }
                self.next_unmap()
            }
            Kind::CompareAndWrite {
                lba,
                blocks,
                fua: want_fua,
                data: kept,
                store_tries,
            } => {
                *want_fua |= fua;
                *kept = data.to_vec();
                let io = if *store_tries > 0 {
                    JobOp::CompareAndWrite {
                        lba: *lba,
                        data: kept.clone(),
                        fua: *want_fua,
                    }
                } else {
                    JobOp::Read {
                        lba: *lba,
                        blocks: *blocks,
                    }
                };
                self.issue(io)
            }
            Kind::OrWrite {
                fua: want_fua,
                data: kept,
                ..
            } => {
                *want_fua |= fua;
                *kept = data.to_vec();
                self.next_read()
            }
            Kind::Verify { data: kept, .. } => {
                *kept = data.to_vec();
                self.next_read()
            }
            Kind::Nothing => self.finish(good()),
            Kind::SanitizeOverwrite => {
                match sanitize::overwrite_block(lu, data, self.data_out_len) {
                    Ok(block) => {
                        self.kind = Kind::WriteSame {
                            lba: 0,
                            blocks: lu.num_blocks,
                            unmap: false,
                            ndob: false,
                            pattern: block,
                            done: 0,
                        };
                    }
                    Err(sense) => return self.fail(nexus, sense),
                }
                self.next_write_same(fua)
            }
            Kind::Erase { .. } => self.next_erase(lu),
            Kind::ExtendedCopy(run, it_nexus) => {
                match copy::begin(nexus, it_nexus, luns, lu, data) {
                    Ok(started) => *run = Some(Box::new(started)),
                    Err(sense) => return self.fail(nexus, sense),
                }
                self.next_copy(nexus)
            }
            Kind::LbaStatus(_) => self.next_extent(nexus),
        }
    }

    /// Whether the job writes data to the medium it was sent to (so the blocks it covers become
    /// mapped). EXTENDED COPY marks its destination units itself once it knows them.
    pub(super) fn maps_blocks(&self) -> bool {
        match &self.kind {
            Kind::WriteSame { unmap, .. } => !unmap,
            Kind::CompareAndWrite { .. } | Kind::OrWrite { .. } | Kind::SanitizeOverwrite => true,
            Kind::Unmap { .. }
            | Kind::Verify { .. }
            | Kind::Nothing
            | Kind::Erase { .. }
            | Kind::ExtendedCopy(..)
            | Kind::LbaStatus(_) => false,
        }
    }

    /// Continues after the previous [`JobIo`] completed with its outcome, or `Err(errno)` on
    /// failure (by the errno: NOT READY for a store that cannot be reached, else MEDIUM ERROR
    /// with the failing operation's LBA; for EXTENDED COPY, COPY ABORTED in the segment being
    /// copied).
    pub fn resume(
        &mut self,
        nexus: &NexusState,
        lu: &LuInfo,
        result: Result<IoOutcome<'_>, i32>,
    ) -> Step {
        let phase = std::mem::replace(&mut self.phase, Phase::Finished);
        let fua = !lu.write_cache;
        match (phase, result) {
            (Phase::Reading { lba, .. } | Phase::Locating { lba, .. }, Err(errno)) => {
                self.io_failed(nexus, false, lba, errno)
            }
            (Phase::Comparing { .. }, Err(libc::EILSEQ)) => self.locate_miscompare(false),
            (Phase::Comparing { .. }, Err(libc::EOPNOTSUPP | libc::EINVAL)) => {
                self.locate_miscompare(true)
            }
            (
                Phase::Writing { lba, .. } | Phase::Discarding { lba } | Phase::Comparing { lba },
                Err(errno),
            ) => self.io_failed(nexus, true, lba, errno),
            (Phase::Comparing { .. }, Ok(IoOutcome::Done)) => self.finish(good()),
            (Phase::Reading { lba, len }, Ok(IoOutcome::Data(bytes))) => {
                if bytes.len() as u64 != len {
                    return self.fail(nexus, Sense::internal_target_failure());
                }
                self.after_read(nexus, lba, bytes)
            }
            (Phase::Writing { blocks, .. }, Ok(IoOutcome::Done)) => {
                self.after_write(nexus, blocks, fua)
            }
            (Phase::Discarding { .. }, Ok(IoOutcome::Done)) => self.after_discard(nexus, lu),
            (Phase::Locating { block_size, .. }, Ok(IoOutcome::Extent { allocated, bytes })) => {
                self.after_extent(nexus, allocated, bytes, block_size)
            }
            // Resumed before start, after the end, or a Read completed without its data.
            _ => self.fail(nexus, Sense::internal_target_failure()),
        }
    }

    pub(super) fn new_write_same(
        lu: &LuInfo,
        lba: u64,
        blocks: u64,
        unmap: bool,
        ndob: bool,
        length_at: u16,
    ) -> Self {
        let data_out_len = if ndob { 0 } else { lu.block_size };
        let pattern = Vec::new();
        let kind = Kind::WriteSame {
            lba,
            blocks,
            unmap,
            ndob,
            pattern,
            done: 0,
        };
        Self::new(lu, data_out_len, Edtl::Exact, length_at, kind)
    }

    pub(super) fn new_unmap(lu: &LuInfo, parameter_list_length: u16, length_at: u16) -> Self {
        let kind = Kind::Unmap {
            ranges: Vec::new(),
            next: 0,
        };
        let len = u32::from(parameter_list_length);
        Self::new(lu, len, Edtl::Any, length_at, kind)
    }

    /// `data_out_len` is 2 × `blocks` × block size, already checked to fit.
    pub(super) fn new_compare_and_write(
        lu: &LuInfo,
        lba: u64,
        blocks: u32,
        fua: bool,
        data_out_len: u32,
        length_at: u16,
    ) -> Self {
        let kind = Kind::CompareAndWrite {
            lba,
            blocks,
            fua,
            data: Vec::new(),
            store_tries: if lu.store_compare_and_write {
                STORE_CAW_TRIES
            } else {
                0
            },
        };
        Self::new(lu, data_out_len, Edtl::Exact, length_at, kind)
    }

    /// A COMPARE AND WRITE of no blocks: GOOD without any transfer, but an EDTL above
    /// `limit` (more than any COMPARE AND WRITE may carry) is refused.
    pub(super) fn new_empty_compare_and_write(lu: &LuInfo, limit: u32, length_at: u16) -> Self {
        Self::new(lu, 0, Edtl::AtMost(limit), length_at, Kind::Nothing)
    }

    pub(super) fn new_orwrite(
        lu: &LuInfo,
        lba: u64,
        blocks: u32,
        fua: bool,
        data_out_len: u32,
        length_at: u16,
    ) -> Self {
        let kind = Kind::OrWrite {
            lba,
            blocks,
            fua,
            data: Vec::new(),
            done: 0,
        };
        Self::new(lu, data_out_len, Edtl::Exact, length_at, kind)
    }

    pub(super) fn new_verify(
        lu: &LuInfo,
        lba: u64,
        blocks: u32,
        check: ByteCheck,
        data_out_len: u32,
        length_at: u16,
    ) -> Self {
        let kind = Kind::Verify {
            lba,
            blocks,
            check,
            data: Vec::new(),
            done: 0,
        };
        Self::new(lu, data_out_len, Edtl::Exact, length_at, kind)
    }

    /// SANITIZE OVERWRITE with a `parameter_list_length`-byte parameter list (already checked
    /// to hold a header and at most one block of pattern).
    pub(super) fn new_sanitize_overwrite(
        lu: &LuInfo,
        parameter_list_length: u16,
        length_at: u16,
        bits: SanitizeBits,
    ) -> Self {
        let len = u32::from(parameter_list_length);
        let mut job = Self::new(lu, len, Edtl::Any, length_at, Kind::SanitizeOverwrite);
        job.sanitize = Some(bits);
        job
    }

    /// SANITIZE BLOCK ERASE: no Data-Out (a larger EDTL than none is refused).
    pub(super) fn new_block_erase(lu: &LuInfo, length_at: u16, bits: SanitizeBits) -> Self {
        let kind = Kind::Erase {
            next: 0,
            end: lu.num_blocks,
        };
        let mut job = Self::new(lu, 0, Edtl::AtMost(0), length_at, kind);
        job.sanitize = Some(bits);
        job
    }

    /// EXTENDED COPY with `receive` bytes of its parameter list (the rest, if any, is beyond
    /// the largest list there can be and is ignored).
    pub(super) fn new_extended_copy(
        lu: &LuInfo,
        it_nexus: &ItNexus,
        receive: u32,
        length_at: u16,
    ) -> Self {
        let kind = Kind::ExtendedCopy(None, Box::new(it_nexus.clone()));
        Self::new(lu, receive, Edtl::Any, length_at, kind)
    }

    /// GET LBA STATUS: asks the store extent by extent (no Data-Out).
    pub(super) fn new_lba_status(lu: &LuInfo, scan: Scan, length_at: u16) -> Self {
        let kind = Kind::LbaStatus(Box::new(scan));
        Self::new(lu, 0, Edtl::AtMost(0), length_at, kind)
    }

    fn new(lu: &LuInfo, data_out_len: u32, edtl: Edtl, length_at: u16, kind: Kind) -> Self {
        Self {
            lun: lu.lun,
            block_size: lu.block_size.max(1),
            data_out_len,
            edtl,
            length_at,
            phase: Phase::New,
            kind,
            sanitize: None,
        }
    }

    /// Blocks per Read/Write step: as many as fit in [`STEP_BYTES`], at least one.
    fn step_blocks(&self) -> u32 {
        (STEP_BYTES / self.block_size).max(1)
    }

    fn length_mismatch(&self) -> Sense {
        Sense::invalid_field_in_cdb().at_cdb(self.length_at, None)
    }

    /// Issues `op` on the command's own unit.
    fn issue(&mut self, op: JobOp) -> Step {
        let io = JobIo { lun: self.lun, op };
        self.issue_io(io, self.block_size)
    }

    /// Issues `io` on a unit of `block_size`-byte blocks, and waits for it.
    fn issue_io(&mut self, io: JobIo, block_size: u32) -> Step {
        let bs = u64::from(block_size);
        self.phase = match &io.op {
            JobOp::Read { lba, blocks } => Phase::Reading {
                lba: *lba,
                len: u64::from(*blocks) * bs,
            },
            JobOp::Write { lba, data, .. } => Phase::Writing {
                lba: *lba,
                blocks: u32::try_from(data.len() as u64 / bs).unwrap_or(u32::MAX),
            },
            JobOp::WriteLastRead { lba, blocks, .. } => Phase::Writing {
                lba: *lba,
                blocks: *blocks,
            },
            JobOp::Discard { lba, .. } => Phase::Discarding { lba: *lba },
            JobOp::Extent { lba, .. } => Phase::Locating {
                lba: *lba,
                block_size,
            },
            JobOp::CompareAndWrite { lba, .. } => Phase::Comparing { lba: *lba },
        };
        Step::Io(io)
    }

    /// A backing-store operation failed with `errno`: its sense (see [`io_error_for`]), or for
    /// EXTENDED COPY the same condition as the failure of the segment being copied.
    fn io_failed(&mut self, nexus: &NexusState, is_write: bool, lba: u64, errno: i32) -> Step {
        if let Kind::ExtendedCopy(Some(run), _) = &self.kind {
            let sense = if is_write {
                Sense::write_error()
            } else {
                Sense::unrecovered_read_error()
            };
            let sense = run.failed(sense);
            return self.fail(nexus, sense);
        }
        self.finish(io_error_for(nexus, is_write, lba, errno))
    }

    fn finish(&mut self, completion: Completion) -> Step {
        self.phase = Phase::Finished;
        Step::Done(completion)
    }

    fn fail(&mut self, nexus: &NexusState, sense: Sense) -> Step {
        self.finish(check_condition(nexus, sense))
    }

    fn next_write_same(&mut self, fua: bool) -> Step {
        let step = u64::from(self.step_blocks());
        let Kind::WriteSame {
            lba,
            blocks,
            pattern,
            done,
            ..
        } = &mut self.kind
        else {
            return self.finish(good());
        };
        if *done >= *blocks {
            return self.finish(good());
        }
        let n = step.min(*blocks - *done);
        let at = *lba + *done;
        *done += n;
        let data = pattern.repeat(n as usize);
        self.issue(JobOp::Write { lba: at, data, fua })
    }

    fn next_unmap(&mut self) -> Step {
        let Kind::Unmap { ranges, next } = &mut self.kind else {
            return self.finish(good());
        };
        let Some(&(lba, blocks)) = ranges.get(*next) else {
            return self.finish(good());
        };
        *next += 1;
        self.issue(JobOp::Discard { lba, blocks })
    }

    /// The next chunk of an ORWRITE or VERIFY.
    fn next_read(&mut self) -> Step {
        let step = self.step_blocks();
        let (lba, blocks, done) = match &self.kind {
            Kind::OrWrite {
                lba, blocks, done, ..
            }
            | Kind::Verify {
                lba, blocks, done, ..
            } => (*lba, *blocks, *done),
            _ => return self.finish(good()),
        };
        if done >= blocks {
            return self.finish(good());
        }
        let n = step.min(blocks - done);
        self.issue(JobOp::Read {
            lba: lba + u64::from(done),
            blocks: n,
        })
    }

    fn after_read(&mut self, nexus: &NexusState, lba: u64, bytes: &[u8]) -> Step {
        let bs = self.block_size as usize;
        match &mut self.kind {
            Kind::CompareAndWrite {
                lba: at,
                fua,
                data,
                store_tries,
                ..
            } => {
                let half = data.len() / 2;
                if let Some(offset) = first_difference(bytes, &data[..half]) {
                    return self.fail(nexus, miscompare(offset));
                }
                if *store_tries > 0 {
                    // The store saw a difference that is gone now: another writer changed the
                    // blocks in between. Try the atomic operation again.
                    let io = JobOp::CompareAndWrite {
                        lba: *at,
                        data: data.clone(),
                        fua: *fua,
                    };
                    return self.issue(io);
                }
                let write = data.split_off(half);
                let io = JobOp::Write {
                    lba: *at,
                    data: write,
                    fua: *fua,
                };
                self.issue(io)
            }
            Kind::OrWrite {
                fua, data, done, ..
            } => {
                let start = *done as usize * bs;
                let mut out = bytes.to_vec();
                let src = data.get(start..).unwrap_or_default();
                for (o, d) in out.iter_mut().zip(src) {
                    *o |= d;
                }
                let io = JobOp::Write {
                    lba,
                    data: out,
                    fua: *fua,
                };
                self.issue(io)
            }
            Kind::Verify {
                check, data, done, ..
            } => {
                let base = *done as usize * bs;
                let mismatch = match check {
                    ByteCheck::All => {
                        let expected = data.get(base..).unwrap_or_default();
                        first_difference(bytes, expected).map(|k| base + k)
                    }
                    ByteCheck::OneBlock => bytes.chunks(bs).enumerate().find_map(|(i, block)| {
                        first_difference(block, data).map(|k| base + i * bs + k)
                    }),
                };
                if let Some(offset) = mismatch {
                    return self.fail(nexus, miscompare(offset));
                }
                *done += u32::try_from(bytes.len() / bs).unwrap_or(u32::MAX);
                self.next_read()
            }
            Kind::ExtendedCopy(Some(run), _) => {
                let Some(io) = run.write_chunk() else {
                    return self.fail(nexus, Sense::internal_target_failure());
                };
                let bs = run.block_size();
                self.issue_io(io, bs)
            }
            _ => self.fail(nexus, Sense::internal_target_failure()),
        }
    }

    /// The store's COMPARE AND WRITE failed: on a miscompare (`fallback` false), read the blocks
    /// to name the first differing byte; where the store cannot do it (`fallback`), read to
    /// compare and write in separate steps under this daemon's range lock.
    fn locate_miscompare(&mut self, fallback: bool) -> Step {
        let Kind::CompareAndWrite {
            lba,
            blocks,
            store_tries,
            ..
        } = &mut self.kind
        else {
            return self.finish(good());
        };
        *store_tries = if fallback {
            0
        } else {
            store_tries.saturating_sub(1)
        };
        let io = JobOp::Read {
            lba: *lba,
            blocks: *blocks,
        };
        self.issue(io)
    }

    fn after_write(&mut self, nexus: &NexusState, blocks: u32, fua: bool) -> Step {
        match &mut self.kind {
            Kind::WriteSame { .. } => self.next_write_same(fua),
            Kind::CompareAndWrite { .. } => self.finish(good()),
            Kind::OrWrite { done, .. } => {
                *done += blocks;
                self.next_read()
            }
            Kind::ExtendedCopy(Some(run), _) => {
                run.chunk_written();
                self.next_copy(nexus)
            }
            _ => self.fail(nexus, Sense::internal_target_failure()),
        }
    }

    /// The next chunk of an EXTENDED COPY, or its GOOD status once every segment is copied.
    fn next_copy(&mut self, nexus: &NexusState) -> Step {
        let Kind::ExtendedCopy(Some(run), _) = &mut self.kind else {
            return self.fail(nexus, Sense::internal_target_failure());
        };
        let Some(io) = run.next_read() else {
            run.finish(true);
            return self.finish(good());
        };
        let bs = run.block_size();
        self.issue_io(io, bs)
    }

    /// The next store query of a GET LBA STATUS, or its parameter data once it has enough.
    fn next_extent(&mut self, nexus: &NexusState) -> Step {
        let Kind::LbaStatus(scan) = &self.kind else {
            return self.fail(nexus, Sense::internal_target_failure());
        };
        match scan.next_query() {
            Some((lba, blocks)) => self.issue(JobOp::Extent { lba, blocks }),
            None => {
                let data = scan.finish();
                self.finish(Completion {
                    status: ScsiStatus::GOOD,
                    data,
                    sense: Vec::new(),
                })
            }
        }
    }

    fn after_extent(
        &mut self,
        nexus: &NexusState,
        allocated: bool,
        bytes: u64,
        block_size: u32,
    ) -> Step {
        let Kind::LbaStatus(scan) = &mut self.kind else {
            return self.fail(nexus, Sense::internal_target_failure());
        };
        scan.record_bytes(allocated, bytes, block_size);
        self.next_extent(nexus)
    }

    /// The next bounded Discard of a BLOCK ERASE; once the last is done the whole medium is
    /// known to be deallocated (GET LBA STATUS reports it).
    fn next_erase(&mut self, lu: &LuInfo) -> Step {
        let step = provisioning::max_blocks_per_command(lu);
        let Kind::Erase { next, end } = &mut self.kind else {
            return self.finish(good());
        };
        if *next >= *end {
            lu.shared.medium.set_deallocated();
            return self.finish(good());
        }
        let lba = *next;
        let blocks = step.min(*end - lba);
        *next += blocks;
        self.issue(JobOp::Discard { lba, blocks })
    }

    fn after_discard(&mut self, nexus: &NexusState, lu: &LuInfo) -> Step {
        match &self.kind {
            Kind::WriteSame { .. } => self.finish(good()),
            Kind::Unmap { .. } => self.next_unmap(),
            Kind::Erase { .. } => self.next_erase(lu),
            _ => self.fail(nexus, Sense::internal_target_failure()),
        }
    }
}

/// Offset of the first byte where `got` and `want` differ, over the shorter of the two.
fn first_difference(got: &[u8], want: &[u8]) -> Option<usize> {
    got.iter().zip(want).position(|(g, w)| g != w)
}

/// SBC-3 COMPARE AND WRITE / VERIFY: MISCOMPARE, MISCOMPARE DURING VERIFY OPERATION, with the
/// offset of the first differing byte in the INFORMATION field.
fn miscompare(offset: usize) -> Sense {
    Sense::miscompare_during_verify().with_info(offset as u64)
}
