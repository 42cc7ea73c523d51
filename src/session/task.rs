//! One SCSI task of a session: what it is waiting for, and its data buffer.

use crate::backstore::IoBuf;

/// Names a task across an asynchronous backing-store operation: slot plus generation, so a
/// completion for a task that has since been freed (and its slot reused) is recognised as stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IoToken {
    pub slot: u32,
    pub generation: u32,
}

/// One R2T the target has sent and not yet seen all the data for (RFC 7143 §11.8).
#[derive(Debug, Clone, Copy)]
pub struct OpenR2t {
    pub ttt: u32,
    pub offset: u32,
    pub len: u32,
    pub received: u32,
    /// DataSN of the next Data-Out in this R2T's sequence (each sequence starts at 0).
    pub next_data_sn: u32,
}

#[derive(Debug)]
pub struct WriteState {
    pub lba: u64,
    pub fua: bool,
    /// Bytes the initiator transfers (its EDTL when the W bit is set): data up to here is
    /// accepted, even past what the CDB asks for.
    pub edtl: u32,
    /// Bytes the write needs: min(EDTL, SCSI transfer length). Only these reach the buffer.
    pub need: u32,
    /// End of the unsolicited region (immediate data + unsolicited Data-Out), RFC 7143 §3.2.4.2.
    pub unsolicited_end: u32,
    pub unsolicited_received: u32,
    pub unsolicited_data_sn: u32,
    /// Next offset not yet covered by an R2T.
    pub next_r2t_offset: u32,
    pub open_r2ts: Vec<OpenR2t>,
    /// Length the CDB asks for (blocks × block size); differs from `need` on a residual.
    pub scsi_len: u32,
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
    Job(Box<crate::scsi::Job>),
}

impl WriteState {
    pub fn all_received(&self) -> bool {
        self.unsolicited_received >= self.unsolicited_end
            && self.open_r2ts.is_empty()
            && self.next_r2t_offset >= self.need
    }
}

#[derive(Debug)]
pub enum TaskState {
    /// Collecting Data-Out for a write.
    Receiving(WriteState),
    /// A backing-store operation is in flight.
    Io(IoKind),
    /// A multi-step command waits for one of its backing-store operations (`reading`: a read,
    /// whose buffer goes back to the job).
    Job {
        job: Box<crate::scsi::Job>,
        reading: bool,
    },
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
    pub buf: Option<IoBuf>,
    /// R2TSN of the next R2T, which also counts toward ExpDataSN.
    pub r2t_sn: u32,
    /// Set by a task management function: finish quietly, send no status.
    pub aborted: bool,
}
