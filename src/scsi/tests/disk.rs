//! An in-memory disk that plays the transport: it performs `Plan`s and drives `Job`s the way
//! the session will (check the EDTL, start with the Data-Out, perform each `JobIo`, resume).

use super::{dispatch, execute_params};
use crate::scsi::{
    Completion, IoOutcome, Job, JobIo, JobOp, LuInfo, LunMap, NexusState, Plan, ScsiStatus, Step,
};

/// What a performed step gives back.
enum Done {
    Read,
    Other,
    Extent(bool, u64),
}

/// What the disk saw while driving one job.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Trace {
    pub reads: usize,
    pub writes: usize,
    pub discards: usize,
    /// GET LBA STATUS store queries.
    pub extents: usize,
    /// Largest buffer of any one Read or Write step.
    pub largest_buffer: usize,
    /// Every Write's FUA.
    pub fua: Vec<bool>,
    /// (LUN, LBA) of every Read and Write, in order.
    pub accesses: Vec<(u16, u64)>,
    /// Atomic COMPARE AND WRITEs asked of the store.
    pub compare_writes: usize,
}

/// The store of another unit of the target (EXTENDED COPY reaches it).
pub(crate) struct Store {
    pub lun: u16,
    pub block_size: usize,
    pub bytes: Vec<u8>,
    pub mapped: Vec<bool>,
}

pub(crate) struct Disk {
    /// The store of the unit commands are sent to (`lun`).
    pub bytes: Vec<u8>,
    pub block_size: usize,
    pub lun: u16,
    /// Which of its blocks the store holds, as a sparse file would: a write maps blocks, a
    /// discard deallocates them (GET LBA STATUS reads this). A new disk holds every block.
    pub mapped: Vec<bool>,
    pub others: Vec<Store>,
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
            lun: lu.lun,
            mapped: vec![true; lu.num_blocks as usize],
            others: Vec::new(),
            fail_io: None,
            compare_write_error: None,
            change_after_miscompare: None,
            trace: Trace::default(),
        }
    }

    /// Adds the store of another unit, every byte `fill`.
    pub fn add(&mut self, lu: &LuInfo, fill: u8) {
        let bs = lu.block_size as usize;
        self.others.push(Store {
            lun: lu.lun,
            block_size: bs,
            bytes: vec![fill; bs * lu.num_blocks as usize],
            mapped: vec![true; lu.num_blocks as usize],
        });
    }

    pub fn blocks(&self, lba: u64, blocks: u64) -> &[u8] {
        let bs = self.block_size;
        &self.bytes[lba as usize * bs..(lba + blocks) as usize * bs]
    }

    pub fn fill(&mut self, lba: u64, data: &[u8]) {
        let at = lba as usize * self.block_size;
        self.bytes[at..at + data.len()].copy_from_slice(data);
        let bs = self.block_size;
        self.mapped[lba as usize..(at + data.len()).div_ceil(bs)].fill(true);
    }

    /// Drive a job to its completion: EDTL = `data.len()`, like an initiator sending `data`,
    /// with `lu` the only unit of the target.
    pub fn run_job(
        &mut self,
        job: &mut Job,
        nexus: &mut NexusState,
        lu: &LuInfo,
        data: &[u8],
    ) -> Completion {
        let luns = LunMap::new(vec![lu.clone()]);
        self.run_job_with(job, nexus, &luns, lu, data)
    }

    /// Drive a job sent to `lu` among the target's `luns`.
    pub fn run_job_with(
        &mut self,
        job: &mut Job,
        nexus: &mut NexusState,
        luns: &LunMap,
        lu: &LuInfo,
        data: &[u8],
    ) -> Completion {
        self.trace = Trace::default();
        if let Some(c) = job.check_edtl(nexus, data.len() as u32) {
            return c;
        }
        let mut step = job.start(nexus, luns, lu, data);
        let mut last_read: Option<Vec<u8>> = None;
        let mut index = 0;
        loop {
            let io = match step {
                Step::Done(c) => return c,
                Step::Io(io) => io,
            };
            assert!(index < 10_000_000, "job does not end");
            let fail = self.fail_io == Some(index);
            index += 1;
            if let JobOp::CompareAndWrite { lba, data, .. } = &io.op {
                assert_eq!(
                    io.lun, self.lun,
                    "an atomic compare on the command's own unit"
                );
                self.trace.compare_writes += 1;
                let result = self.compare_and_write(*lba, data, fail);
                step = job.resume(nexus, lu, result);
                continue;
            }
            let result = self.perform(io, fail, &mut last_read);
            step = match result {
                Err(errno) => job.resume(nexus, lu, Err(errno)),
                Ok(Done::Read) => {
                    let buf = last_read.as_deref().expect("read data");
                    job.resume(nexus, lu, Ok(IoOutcome::Data(buf)))
                }
                Ok(Done::Other) => job.resume(nexus, lu, Ok(IoOutcome::Done)),
                Ok(Done::Extent(allocated, bytes)) => {
                    job.resume(nexus, lu, Ok(IoOutcome::Extent { allocated, bytes }))
                }
            };
        }
    }

    /// Performs one step on the store of the unit it names (nothing when it is to fail).
    fn perform(
        &mut self,
        io: JobIo,
        fail: bool,
        last_read: &mut Option<Vec<u8>>,
    ) -> Result<Done, i32> {
        let lun = io.lun;
        let trace = &mut self.trace;
        if let JobOp::Read { lba, .. }
        | JobOp::Write { lba, .. }
        | JobOp::WriteLastRead { lba, .. } = io.op
        {
            trace.accesses.push((lun, lba));
        }
        let (bytes, mapped, bs) = match lun == self.lun {
            true => (&mut self.bytes, &mut self.mapped, self.block_size),
            false => {
                let s = self
                    .others
                    .iter_mut()
                    .find(|s| s.lun == lun)
                    .unwrap_or_else(|| panic!("I/O for LUN {lun}, which has no store"));
                (&mut s.bytes, &mut s.mapped, s.block_size)
            }
        };
        let range = |lba: u64, blocks: u64| lba as usize * bs..(lba + blocks) as usize * bs;
        let mut write = |lba: u64, data: &[u8], trace: &mut Trace| {
            trace.writes += 1;
            trace.largest_buffer = trace.largest_buffer.max(data.len());
            assert_eq!(data.len() % bs, 0, "whole blocks");
            if !fail {
                bytes[range(lba, (data.len() / bs) as u64)].copy_from_slice(data);
                mapped[lba as usize..lba as usize + data.len() / bs].fill(true);
            }
        };
        let done = match io.op {
            JobOp::Read { lba, blocks } => {
                trace.reads += 1;
                let len = blocks as usize * bs;
                trace.largest_buffer = trace.largest_buffer.max(len);
                *last_read = Some(bytes[range(lba, u64::from(blocks))].to_vec());
                Done::Read
            }
            JobOp::Write { lba, data, fua } => {
                trace.fua.push(fua);
                write(lba, &data, trace);
                Done::Other
            }
            JobOp::WriteLastRead { lba, blocks, fua } => {
                trace.fua.push(fua);
                let data = last_read.take().expect("a Read before WriteLastRead");
                assert_eq!(data.len(), blocks as usize * bs, "the whole read buffer");
                write(lba, &data, trace);
                Done::Other
            }
            JobOp::Discard { lba, blocks } => {
                trace.discards += 1;
                if !fail {
                    bytes[range(lba, blocks)].fill(0);
                    mapped[lba as usize..(lba + blocks) as usize].fill(false);
                }
                Done::Other
            }
            JobOp::CompareAndWrite { .. } => unreachable!("performed by compare_and_write"),
            JobOp::Extent { lba, blocks } => {
                trace.extents += 1;
                let from = lba as usize;
                let state = mapped[from];
                let run = mapped[from..from + blocks as usize]
                    .iter()
                    .take_while(|&&m| m == state)
                    .count();
                Done::Extent(state, (run * bs) as u64)
            }
        };
        if fail {
            Err(5)
        } else {
            Ok(done)
        }
    }

    /// The store's atomic COMPARE AND WRITE of `data` (compare half, write half) at `lba`.
    fn compare_and_write(
        &mut self,
        lba: u64,
        data: &[u8],
        fail: bool,
    ) -> Result<IoOutcome<'static>, i32> {
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
        Ok(IoOutcome::Done)
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
            Plan::Job(mut job) => self.run_job_with(&mut job, nexus, luns, &lu, data),
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
