//! One SCSI task of a session: what it is waiting for, and the buffers it holds.

use crate::backstore::buf::Hold;
use crate::backstore::IoBuf;
use crate::scsi::range_lock::ExclusiveRequest;
use crate::scsi::{Job, JobIo};

/// Names a task across an asynchronous backing-store operation: slot plus generation, so a
/// completion for a task that has since been freed (and its slot reused) is recognised as stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IoToken {
    pub slot: u32,
    pub generation: u32,
}

/// One R2T the target has sent and not yet seen all the data for (RFC 7143 §11.8).
#[derive(Debug)]
pub struct OpenR2t {
    pub ttt: u32,
    pub offset: u32,
    pub len: u32,
    pub received: u32,
    /// DataSN of the next Data-Out in this R2T's sequence (each sequence starts at 0).
    pub next_data_sn: u32,
    /// [`Layout::Bursts`]: this burst's own buffer, for its bytes below `need`. `None` while it is
    /// lent to the transport to receive a payload in place.
    pub buf: Option<IoBuf>,
}

impl OpenR2t {
    /// The offset the next Data-Out of this sequence must start at (DataPDUInOrder=Yes).
    pub fn next_offset(&self) -> u32 {
        self.offset + self.received
    }
}

/// How a write's data is held until it goes to the backing store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Each burst (the unsolicited one, then one per R2T) has its own buffer, taken when the
    /// burst is solicited or its data arrives, and is written as soon as it is complete. Needs
    /// every burst to start and end on a block boundary.
    Bursts,
    /// One buffer for the whole transfer, taken when the first R2T is sent (unsolicited data
    /// waits in its own buffer until then), written or handed to the SCSI layer at the end. For
    /// parameter lists, multi-step commands and writes whose bursts cannot be block-aligned.
    Whole,
}

#[derive(Debug)]
pub struct WriteState {
    pub lba: u64,
    pub fua: bool,
    /// Bytes the initiator transfers (its EDTL when the W bit is set): data up to here is
    /// accepted, even past what the CDB asks for.
    pub edtl: u32,
    /// Bytes the write needs: min(EDTL, SCSI transfer length). Only these reach a buffer.
    pub need: u32,
    /// Length the CDB asks for (blocks × block size); differs from `need` on a residual.
    pub scsi_len: u32,
    pub layout: Layout,
    /// End of the unsolicited region (immediate data + unsolicited Data-Out), RFC 7143 §3.2.4.2.
    pub unsolicited_end: u32,
    /// Where the next unsolicited Data-Out must start (after the immediate data at first).
    pub unsolicited_next: u32,
    pub unsolicited_data_sn: u32,
    /// Bytes [0, min(unsolicited_end, need)): taken when unsolicited data first arrives.
    pub unsolicited: Option<IoBuf>,
    /// [`Layout::Whole`]: bytes [0, need), taken with the first R2T.
    pub whole: Option<IoBuf>,
    /// Next offset not yet covered by an R2T.
    pub next_r2t_offset: u32,
    /// Largest R2T this write sends (block-aligned for [`Layout::Bursts`]).
    pub burst_len: u32,
    pub open_r2ts: Vec<OpenR2t>,
    /// [`Layout::Bursts`]: burst writes submitted and not yet completed.
    pub writes_in_flight: u32,
    /// The first burst write that failed: errno and the LBA it started at.
    pub failed: Option<(i32, u64)>,
    /// Which buffer of this task is lent to the transport for an in-place receive.
    pub lent: Option<Lent>,
    /// What the collected data is for.
    pub purpose: Purpose,
}

/// What a task's Data-Out is for once it has all arrived.
#[derive(Debug)]
pub enum Purpose {
    /// Blocks to write at `lba`.
    Blocks,
    /// A parameter list for the SCSI layer (MODE SELECT), with the CDB that asked for it.
    Params(Vec<u8>),
    /// Input of a multi-step command (WRITE SAME, UNMAP, COMPARE AND WRITE, ...).
    Job(Box<Job>),
}

impl WriteState {
    /// Every byte the initiator will send has arrived (none is still solicited or expected).
    pub fn all_received(&self) -> bool {
        self.unsolicited_next >= self.unsolicited_end
            && self.open_r2ts.is_empty()
            && self.next_r2t_offset >= self.need
    }

    /// All data is in and nothing borrowed is still out: the task can finish.
    pub fn settled(&self) -> bool {
        self.all_received() && self.writes_in_flight == 0 && self.lent.is_none()
    }

    /// Bytes below `need` that the unsolicited region covers.
    pub fn unsolicited_need(&self) -> u32 {
        self.unsolicited_end.min(self.need)
    }
}

/// The buffer of a write that is out for an in-place receive, so it goes back where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lent {
    Whole,
    Unsolicited,
    /// The burst of the R2T with this Target Transfer Tag.
    Burst(u32),
}

/// Work a task cannot start until the connection's buffer budget admits its buffer.
#[derive(Debug)]
pub enum Deferred {
    Read { lba: u64, scsi_len: u32 },
    Job { job: Box<Job>, io: JobIo },
}

// Tasks live in the session's slab, reused in place: boxing the write state to shrink the enum
// would cost an allocation per write command.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum TaskState {
    /// Collecting Data-Out for a write (burst writes may already be in flight).
    Receiving(WriteState),
    /// Waiting for buffer budget.
    Deferred(Deferred),
    /// A backing-store operation is in flight.
    Io(IoKind),
    /// A multi-step command waits for one of its backing-store operations (`reading`: a read,
    /// whose buffer goes back to the job).
    Job { job: Box<Job>, reading: bool },
    /// Aborted while burst writes were in flight: ends silently once they complete.
    Draining { writes_in_flight: u32 },
    /// A reservation command waits for the control thread's answer to request `token`.
    Shared { token: u64 },
    /// A sanitize operation completed: its GOOD waits for the journal to cross it out.
    Ending,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoKind {
    Read { lba: u64, scsi_len: u32 },
    Write { lba: u64, scsi_len: u32 },
    Flush,
}

#[derive(Debug)]
pub struct Task {
    pub itt: u32,
    pub lun: u16,
    pub lun_raw: u64,
    pub edtl: u32,
    pub generation: u32,
    pub state: TaskState,
    /// Budget held for data a multi-step command keeps in its own memory.
    pub hold: Option<Hold>,
    /// The blocks a COMPARE AND WRITE or ORWRITE keeps to itself (released with the task).
    /// Boxed, as the sanitize run below: rare, and every task is moved whole when it is made
    /// and freed.
    pub exclusive: Option<Box<ExclusiveRequest>>,
    /// R2TSN of the next R2T, which also counts toward ExpDataSN.
    pub r2t_sn: u32,
    /// The task is in the session's queue of work waiting for buffer budget.
    pub waiting: bool,
    /// Set by a task management function: finish quietly, send no status.
    pub aborted: bool,
    /// The sanitize operation the task runs (ended with the task).
    pub sanitize: Option<Box<super::sanitize::SanitizeRun>>,
    /// The task goes on without its command: it answers nothing and holds no ITT or CmdSN
    /// (see `session::sanitize`).
    pub detached: bool,
    /// Read, write or other, for the session's counters.
    pub class: super::stats::OpClass,
    /// When the command arrived (its latency ends with its status).
    pub started: std::time::Instant,
}
