//! An in-memory disk that plays the transport: it performs `Plan`s and drives `Job`s the way
//! the session will (check the EDTL, start with the Data-Out, perform each `JobIo`, resume).

use super::{dispatch, execute_params};
use crate::scsi::{Completion, Job, JobIo, LuInfo, LunMap, NexusState, Plan, ScsiStatus, Step};

/// What the disk saw while driving one job.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Trace {
    pub reads: usize,
    pub writes: usize,
    pub discards: usize,
    /// Largest buffer of any one Read or Write step.
    pub largest_buffer: usize,
    /// Every Write's FUA.
    pub fua: Vec<bool>,
    /// Atomic COMPARE AND WRITEs asked of the store.
    pub compare_writes: usize,
}

pub(crate) struct Disk {
    pub bytes: Vec<u8>,
    pub block_size: usize,
    /// Fail the I/O with this index (0 = the first) with EIO.
    pub fail_io: Option<usize>,
    /// How an atomic COMPARE AND WRITE ends: `None` performs it like an RBD image, `Some(errno)`
    /// refuses it.
    pub compare_write_error: Option<i32>,
    /// Another writer's change, made between the store's miscompare and the job's next read.
    pub change_after_miscompare: Option<(u64, Vec<u8>)>,
    pub trace: Trace,
}

impl Disk {
    /// A disk for `lu`, every byte `fill`.
    pub fn new(lu: &LuInfo, fill: u8) -> Self {
        let bs = lu.block_size as usize;
        Self {
            bytes: vec![fill; bs * lu.num_blocks as usize],
            block_size: bs,
            fail_io: None,
            compare_write_error: None,
            change_after_miscompare: None,
            trace: Trace::default(),
        }
    }

    pub fn blocks(&self, lba: u64, blocks: u64) -> &[u8] {
        let bs = self.block_size;
        &self.bytes[lba as usize * bs..(lba + blocks) as usize * bs]
    }

    pub fn fill(&mut self, lba: u64, data: &[u8]) {
        let at = lba as usize * self.block_size;
        self.bytes[at..at + data.len()].copy_from_slice(data);
    }

    /// Drive a job to its completion: EDTL = `data.len()`, like an initiator sending `data`.
    pub fn run_job(
        &mut self,
        job: &mut Job,
        nexus: &NexusState,
        lu: &LuInfo,
        data: &[u8],
    ) -> Completion {
        self.trace = Trace::default();
        if let Some(c) = job.check_edtl(nexus, data.len() as u32) {
            return c;
        }
        let mut step = job.start(nexus, lu, data);
        let mut index = 0;
        loop {
            let io = match step {
                Step::Done(c) => return c,
                Step::Io(io) => io,
            };
            assert!(index < 10_000_000, "job does not end");
            let fail = self.fail_io == Some(index);
            index += 1;
            step = match io {
                JobIo::Read { lba, blocks } => {
                    self.trace.reads += 1;
                    let len = blocks as usize * self.block_size;
                    self.trace.largest_buffer = self.trace.largest_buffer.max(len);
                    if fail {
                        job.resume(nexus, lu, Err(5))
                    } else {
                        let buf = self.blocks(lba, u64::from(blocks)).to_vec();
                        job.resume(nexus, lu, Ok(Some(&buf)))
                    }
                }
                JobIo::Write { lba, data, fua } => {
                    self.trace.writes += 1;
                    self.trace.fua.push(fua);
                    self.trace.largest_buffer = self.trace.largest_buffer.max(data.len());
                    assert_eq!(data.len() % self.block_size, 0, "whole blocks");
                    if fail {
                        job.resume(nexus, lu, Err(5))
                    } else {
                        self.fill(lba, &data);
                        job.resume(nexus, lu, Ok(None))
                    }
                }
                JobIo::CompareAndWrite { lba, data, .. } => {
                    self.trace.compare_writes += 1;
                    let result = self.compare_and_write(lba, &data, fail);
                    job.resume(nexus, lu, result)
                }
                JobIo::Discard { lba, blocks } => {
                    self.trace.discards += 1;
                    if fail {
                        job.resume(nexus, lu, Err(5))
                    } else {
                        let bs = self.block_size;
                        self.bytes[lba as usize * bs..(lba + blocks) as usize * bs].fill(0);
                        job.resume(nexus, lu, Ok(None))
                    }
                }
            };
        }
    }

    /// The store's atomic COMPARE AND WRITE of `data` (compare half, write half) at `lba`.
    fn compare_and_write(
        &mut self,
        lba: u64,
        data: &[u8],
        fail: bool,
    ) -> Result<Option<&'static [u8]>, i32> {
        if fail {
            return Err(5);
        }
        if let Some(errno) = self.compare_write_error {
            return Err(errno);
        }
        let (compare, write) = data.split_at(data.len() / 2);
        let blocks = (compare.len() / self.block_size) as u64;
        if self.blocks(lba, blocks) != compare {
            if let Some((at, change)) = self.change_after_miscompare.take() {
                self.fill(at, &change);
            }
            return Err(libc::EILSEQ);
        }
        self.fill(lba, write);
        Ok(None)
    }

    /// Send one command the way an initiator does (EDTL = `data.len()` for writes) and perform
    /// what `dispatch` asks; returns the completion (Data-In in `data` for reads).
    pub fn exec(
        &mut self,
        luns: &LunMap,
        nexus: &mut NexusState,
        cdb: &[u8],
        data: &[u8],
    ) -> Completion {
        let lu = luns.get(0).expect("LUN 0").clone();
        match dispatch(luns, nexus, 0, cdb) {
            Plan::Complete(c) => c,
            Plan::Read { lba, blocks } => Completion {
                status: ScsiStatus::GOOD,
                data: self.blocks(lba, u64::from(blocks)).to_vec(),
                sense: Vec::new(),
            },
            Plan::Write { lba, blocks, .. } => {
                assert_eq!(data.len(), blocks as usize * self.block_size, "{cdb:02x?}");
                self.fill(lba, data);
                crate::scsi::good()
            }
            Plan::Flush { .. } => crate::scsi::good(),
            Plan::ReceiveParams { .. } => execute_params(luns, nexus, 0, cdb, data),
            Plan::Job(mut job) => self.run_job(&mut job, nexus, &lu, data),
            Plan::Shared(op) => panic!("{cdb:02x?}: shared operation {op:?}"),
        }
    }
}

/// (sense key, ASC, ASCQ) of a CHECK CONDITION in either sense format; `None` for GOOD.
pub(crate) fn sense_of(c: &Completion) -> Option<(u8, u8, u8)> {
    let s = &c.sense;
    match c.status {
        ScsiStatus::GOOD => {
            assert!(s.is_empty());
            None
        }
        ScsiStatus::CHECK_CONDITION if s.first().map(|b| b & 0x7F) == Some(0x72) => {
            Some((s[1] & 0x0F, s[2], s[3]))
        }
        ScsiStatus::CHECK_CONDITION => Some((s[2] & 0x0F, s[12], s[13])),
        other => panic!("unexpected status {other:?}"),
    }
}

/// The fixed-format INFORMATION field, when VALID.
pub(crate) fn information(c: &Completion) -> Option<u32> {
    let s = &c.sense;
    (s.len() >= 7 && s[0] & 0x80 != 0).then(|| u32::from_be_bytes([s[3], s[4], s[5], s[6]]))
}

/// The fixed-format sense-key specific field pointer: (C/D, byte).
pub(crate) fn field_pointer(c: &Completion) -> Option<(bool, u16)> {
    let s = &c.sense;
    (s.len() >= 18 && s[15] & 0x80 != 0)
        .then(|| (s[15] & 0x40 != 0, u16::from_be_bytes([s[16], s[17]])))
}

/// One logical unit over an in-memory disk, driven by one nexus (others may be passed in):
/// what the libiscsi replays run their CDBs against.
pub(crate) struct OneLu {
    pub luns: LunMap,
    pub nexus: NexusState,
    pub disk: Disk,
}

impl OneLu {
    pub fn with(unit: LuInfo) -> Self {
        let disk = Disk::new(&unit, 0);
        Self {
            luns: LunMap::new(vec![unit]),
            nexus: NexusState::new(),
            disk,
        }
    }

    pub fn new() -> Self {
        Self::with(super::lu(0))
    }

    pub fn lu(&self) -> &LuInfo {
        self.luns.get(0).expect("LUN 0")
    }

    /// Sends on this test's nexus; returns the completion.
    pub fn run(&mut self, cdb: &[u8], data: &[u8]) -> Completion {
        self.disk.exec(&self.luns, &mut self.nexus, cdb, data)
    }

    /// Sends on another nexus.
    pub fn run_on(&mut self, nexus: &mut NexusState, cdb: &[u8], data: &[u8]) -> Completion {
        self.disk.exec(&self.luns, nexus, cdb, data)
    }
}
