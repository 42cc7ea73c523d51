//! SCSI logical-unit emulation (SPC-4, SBC-3): decides from each CDB what the transport must do.
//!
//! Pure code: no I/O, no clock, no iSCSI. [`dispatch`] turns a CDB into a [`Plan`]; commands that
//! need the backing store come back as `Read`/`Write`/`Flush` and the transport finishes them with
//! [`good`] or [`io_error`]. Commands that need several backing-store operations (WRITE SAME,
//! UNMAP, COMPARE AND WRITE, ORWRITE, VERIFY with BYTCHK, SANITIZE, EXTENDED COPY, GET LBA
//! STATUS) come back as a [`Job`] the transport drives step by step. Every malformed CDB gets CHECK CONDITION with the sense SPC-4 asks
//! for, in the format the I_T nexus selected.
//!
//! Reservations ([`pr`]) are state every I_T nexus of a logical unit shares, with one writer:
//! `dispatch` reads a snapshot of it ([`LuContext`]) to refuse commands with RESERVATION
//! CONFLICT and to answer PERSISTENT RESERVE IN, and hands the commands that change it
//! (RESERVE, RELEASE, PERSISTENT RESERVE OUT) back as a [`SharedOp`] for [`apply_shared`].
//!
//! Spec references give section numbers (spc4r37) only where they are stable across drafts;
//! elsewhere they name the clause, table or field, since numbering moves between revisions.
#![forbid(unsafe_code)]

pub mod alua;
mod capacity;
mod cdb;
mod commands;
mod compare;
mod copy;
mod defects;
mod inquiry;
mod job;
mod lba_status;
mod lun;
mod medium;
mod mode;
mod nexus;
pub mod pr;
mod provisioning;
pub mod range_lock;
mod report_luns;
mod reservations;
mod rsoc;
mod rw;
mod sanitize;
pub mod sense;
pub mod shared;
mod store_error;
pub mod ua;
mod unit;
mod vpd;

#[cfg(test)]
mod tests;

use cdb::{op, Cdb};
use commands::Ctx;

pub use job::{IoOutcome, Job, JobIo, JobOp, Step, STEP_BYTES};
pub use lun::{decode_lun, encode_lun, LunMap};
pub use medium::{
    HeldJournal, JournalNote, MediumState, Prevents, SanitizeFailure, SanitizeGuard,
    SanitizeJournal, SanitizeRunning,
};
pub use nexus::NexusState;
pub use pr::{
    Access, InitiatorPort, ItNexus, NexusSet, OutEffects, PrState, ProutRequest, Refusal, UaTarget,
};
pub use reservations::{apply_shared, SharedOp, SharedRequest};
pub use sense::{FieldPointer, Sense, SenseFormat, SenseKey};
pub use ua::{UnitAttention, UnitAttentions};

/// Immutable description of one logical unit (built from config by the daemon).
#[derive(Debug, Clone)]
pub struct LuInfo {
    /// 0..=16383.
    pub lun: u16,
    /// 512 or 4096.
    pub block_size: u32,
    pub num_blocks: u64,
    pub read_only: bool,
    /// WCE in the caching mode page.
    pub write_cache: bool,
    /// VPD B1h medium rotation rate = 1 (non-rotating) when true.
    pub non_rotational: bool,
    /// VPD 80h unit serial number (ASCII, <= 32 chars).
    pub serial: String,
    /// 8 chars, space padded on the wire ("RINGTGT").
    pub vendor: String,
    /// 16 chars ("VIRTUAL-DISK").
    pub product: String,
    /// 4 chars ("0001").
    pub revision: String,
    /// NAA IEEE Registered Extended (NAA=6) designator, built by the daemon.
    pub naa_id: [u8; 16],
    /// iSCSI target name; VPD 83h SCSI name strings "<iqn>,t,0x<tpg hex4>" and "<iqn>".
    pub target_name: String,
    /// VPD B0h MAXIMUM TRANSFER LENGTH; larger transfers are refused (0 = no limit).
    pub max_transfer_blocks: u32,
    /// VPD B0h OPTIMAL TRANSFER LENGTH.
    pub optimal_transfer_blocks: u32,
    /// State shared by every core and session: reservations, unit attentions for other nexuses.
    pub shared: std::sync::Arc<shared::LuShared>,
    /// Removable medium (INQUIRY RMB=1): START STOP UNIT with LOEJ ejects and loads it,
    /// PREVENT ALLOW MEDIUM REMOVAL locks it.
    pub removable: bool,
    /// The backing store's physical block and provisioning.
    pub geometry: BlockGeometry,
    /// The backing store performs COMPARE AND WRITE atomically itself (an RBD image: in the
    /// cluster, so against every gateway of the image).
    pub store_compare_and_write: bool,
    /// The store keeps nothing (`null:SIZE`): a read is zeros, sent without a buffer or any
    /// backing-store operation.
    pub reads_zeros: bool,
    /// Bytes per second a sanitize operation may write or deallocate (`None`: as fast as the
    /// store goes), so that one does not starve the other units of the device or the core.
    pub sanitize_rate: Option<u64>,
    /// SANITIZE is supported. Not on a gateway target's units (`failover = "rbd-lock"`): an
    /// operation's state (in progress, failed) would be one gateway's, while the medium is
    /// every gateway's, and a gateway taking over from one that died in the middle would serve
    /// the half-sanitized image as if nothing had happened.
    pub sanitizable: bool,
}

impl LuInfo {
    /// Whether this unit has commands with this operation code: those of the command table,
    /// less SANITIZE on a unit that cannot keep its state (`sanitizable`).
    pub(crate) fn supports_opcode(&self, opcode: u8) -> bool {
        commands::is_supported_opcode(opcode) && (opcode != op::SANITIZE || self.sanitizable)
    }
}

/// What the daemon learnt of the backing store's medium.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockGeometry {
    /// Bytes the medium writes at once: READ CAPACITY (16) LOGICAL BLOCKS PER PHYSICAL BLOCK
    /// EXPONENT, OPTIMAL UNMAP GRANULARITY.
    pub physical_block_size: u32,
    /// The store deallocates ranges that then read as zeros: thin provisioning (LBPME, LBPRZ),
    /// UNMAP and WRITE SAME with UNMAP. Otherwise UNMAP is not supported and WRITE SAME writes.
    pub thin: bool,
    /// The store's deallocation granularity in bytes when coarser than a physical block.
    pub unmap_granularity_bytes: u32,
}

impl Default for BlockGeometry {
    /// 4 KiB pages, holes punched: files, RAM and null stores.
    fn default() -> Self {
        BlockGeometry {
            physical_block_size: 4096,
            thin: true,
            unmap_granularity_bytes: 0,
        }
    }
}

/// SAM-5 status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScsiStatus(pub u8);

impl ScsiStatus {
    pub const GOOD: Self = Self(0x00);
    pub const CHECK_CONDITION: Self = Self(0x02);
    pub const CONDITION_MET: Self = Self(0x04);
    pub const BUSY: Self = Self(0x08);
    pub const RESERVATION_CONFLICT: Self = Self(0x18);
    pub const TASK_SET_FULL: Self = Self(0x28);
    pub const ACA_ACTIVE: Self = Self(0x30);
    pub const TASK_ABORTED: Self = Self(0x40);
}

/// The outcome of a command that needs no backing-store I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub status: ScsiStatus,
    /// Data-In payload, already truncated to the CDB's allocation length.
    pub data: Vec<u8>,
    /// Encoded sense bytes (empty when GOOD), in the requested format.
    pub sense: Vec<u8>,
}

/// What the transport must do for a command: decided from the CDB alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Complete(Completion),
    /// Read `blocks` blocks at `lba` and return them as Data-In (length = blocks * block_size).
    Read {
        lba: u64,
        blocks: u32,
    },
    /// Receive blocks*block_size bytes of Data-Out, write them at `lba`; `fua` => durable before status.
    Write {
        lba: u64,
        blocks: u32,
        fua: bool,
    },
    /// Flush the write cache for the range (SYNCHRONIZE CACHE 10/16); `blocks == 0` means to end of medium.
    Flush {
        lba: u64,
        blocks: u32,
    },
    /// Receive `len` bytes of Data-Out parameter data (MODE SELECT), then hand them to
    /// [`execute_params`] with the same CDB to get the command's completion.
    ReceiveParams {
        len: u32,
    },
    /// A command that needs more than one backing-store operation (WRITE SAME, UNMAP, COMPARE
    /// AND WRITE, ORWRITE, VERIFY with BYTCHK, SANITIZE, EXTENDED COPY, GET LBA STATUS): answer
    /// [`Job::check_edtl`] if it objects to the
    /// initiator's EDTL, else receive [`Job::data_out_len`] bytes of Data-Out and drive the job
    /// with [`Job::start`] and [`Job::resume`] until it is [`Step::Done`].
    Job(Box<Job>),
    /// A command that changes state every I_T nexus shares (RESERVE, RELEASE; PERSISTENT
    /// RESERVE OUT comes back from [`execute_params`] as [`ParamsOutcome::Shared`]): hand it
    /// to the logical unit's one writer, which answers with [`apply_shared`].
    Shared(SharedOp),
}

/// What dispatch needs to know beyond the CDB: who sends it and the reservations of the
/// addressed logical unit (a snapshot; [`pr::IDLE`] for a unit with none).
#[derive(Debug, Clone, Copy)]
pub struct LuContext<'a> {
    /// The reservation state of the logical unit `lun_raw` addresses.
    pub pr: &'a PrState,
    /// The I_T nexus the command arrived on; its relative port is its target port group.
    pub it_nexus: &'a ItNexus,
    /// The target's port groups and their access states.
    pub port_groups: &'a alua::PortGroups,
}

/// What [`execute_params`] decided once the Data-Out arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamsOutcome {
    Done(Completion),
    /// PERSISTENT RESERVE OUT: apply it where the unit's state lives ([`apply_shared`]).
    Shared(SharedOp),
}

/// Dispatch one CDB addressed to `lun_raw` (8-byte LUN field) through the target's `luns`,
/// from the I_T nexus and with the reservations `unit` gives.
///
/// Unknown LUN: INQUIRY answers with peripheral qualifier 011b / device type 1Fh, REPORT LUNS and
/// REQUEST SENSE work, everything else is CHECK CONDITION, LOGICAL UNIT NOT SUPPORTED.
pub fn dispatch(
    luns: &LunMap,
    nexus: &mut NexusState,
    unit: LuContext<'_>,
    lun_raw: u64,
    cdb: &[u8],
) -> Plan {
    let lu = decode_lun(lun_raw).and_then(|n| luns.get(n));
    let cdb = Cdb::new(cdb);
    let result = match lu {
        Some(lu) => route(luns, nexus, unit, lu, cdb),
        None => route_without_lu(luns, nexus, cdb),
    };
    match result {
        Ok(plan) => {
            if let Some(lu) = lu.filter(|_| plan_writes(&plan)) {
                lu.shared.medium.note_write();
            }
            plan
        }
        Err(sense) => Plan::Complete(check_condition(nexus, sense)),
    }
}

/// Whether a plan maps blocks (so they are no longer known to be deallocated).
fn plan_writes(plan: &Plan) -> bool {
    match plan {
        Plan::Write { .. } => true,
        Plan::Job(job) => job.maps_blocks(),
        _ => false,
    }
}

/// Finish a command that returned [`Plan::ReceiveParams`], given the Data-Out bytes received.
pub fn execute_params(
    luns: &LunMap,
    nexus: &mut NexusState,
    lun_raw: u64,
    cdb: &[u8],
    params: &[u8],
) -> ParamsOutcome {
    let cdb = Cdb::new(cdb);
    let result = match decode_lun(lun_raw).and_then(|n| luns.get(n)) {
        None => Err(Sense::lun_not_supported()),
        Some(lu) => params_for(lu, nexus, cdb, params),
    };
    match result {
        Ok(None) => ParamsOutcome::Done(good()),
        Ok(Some(op)) => ParamsOutcome::Shared(op),
        Err(sense) => ParamsOutcome::Done(check_condition(nexus, sense)),
    }
}

/// Build the Completion for a failed backing-store I/O (MEDIUM ERROR, UNRECOVERED READ ERROR
/// for reads, WRITE ERROR for writes, INFORMATION = `lba`) in the nexus's sense format.
pub fn io_error(nexus: &NexusState, is_write: bool, lba: u64) -> Completion {
    io_error_for(nexus, is_write, lba, libc::EIO)
}

/// Build the Completion for a backing-store I/O that failed with `errno`: NOT READY when the
/// store could not be reached (a storage cluster that does not answer), otherwise as
/// [`io_error`].
pub fn io_error_for(nexus: &NexusState, is_write: bool, lba: u64, errno: i32) -> Completion {
    check_condition(nexus, store_error::sense_of(errno, is_write, lba))
}

/// GOOD status, no data, no sense.
pub fn good() -> Completion {
    Completion {
        status: ScsiStatus::GOOD,
        data: Vec::new(),
        sense: Vec::new(),
    }
}

/// CHECK CONDITION with arbitrary sense, in the nexus's format.
pub fn check_condition(nexus: &NexusState, sense: Sense) -> Completion {
    check_condition_as(nexus.sense_format(), sense)
}

/// CHECK CONDITION with arbitrary sense, in the given format.
pub fn check_condition_as(format: SenseFormat, sense: Sense) -> Completion {
    Completion {
        status: ScsiStatus::CHECK_CONDITION,
        data: Vec::new(),
        sense: sense.encode(format),
    }
}

/// RESERVATION CONFLICT status: no data, no sense (SAM-5).
pub fn reservation_conflict() -> Completion {
    Completion {
        status: ScsiStatus::RESERVATION_CONFLICT,
        data: Vec::new(),
        sense: Vec::new(),
    }
}

/// GOOD with Data-In, cut to the allocation length (SPC-4 ALLOCATION LENGTH: never an error).
fn data_in(mut data: Vec<u8>, allocation_length: u32) -> Plan {
    data.truncate(usize::try_from(allocation_length).unwrap_or(usize::MAX));
    Plan::Complete(Completion {
        status: ScsiStatus::GOOD,
        data,
        sense: Vec::new(),
    })
}

fn done() -> Plan {
    Plan::Complete(good())
}

/// Validate length and CONTROL byte of a supported opcode.
fn check_frame(cdb: Cdb) -> Result<(), Sense> {
    // Every opcode routed here has a fixed-length group code; 16 keeps the check total.
    cdb.check_frame(cdb::length_for_opcode(cdb.opcode()).unwrap_or(16))
}

fn route_without_lu(luns: &LunMap, nexus: &mut NexusState, cdb: Cdb) -> Result<Plan, Sense> {
    if cdb.len() == 0 {
        return Err(Sense::invalid_field_in_cdb().at_cdb(0, None));
    }
    match cdb.opcode() {
        op::INQUIRY => check_frame(cdb).and_then(|()| inquiry::inquiry(None, luns, cdb)),
        op::REPORT_LUNS => check_frame(cdb).and_then(|()| report_luns::report_luns(luns, cdb)),
        op::REQUEST_SENSE => {
            check_frame(cdb).map(|()| nexus::request_sense(nexus, cdb, None, None))
        }
        _ => Err(Sense::lun_not_supported()),
    }
}

fn route(
    luns: &LunMap,
    nexus: &mut NexusState,
    unit: LuContext<'_>,
    lu: &LuInfo,
    cdb: Cdb,
) -> Result<Plan, Sense> {
    if cdb.len() == 0 {
        return Err(Sense::invalid_field_in_cdb().at_cdb(0, None));
    }
    if !nexus.unit_attentions.is_empty() {
        unit_attention_gate(nexus, lu.lun, cdb.opcode())?;
    }
    if !lu.supports_opcode(cdb.opcode()) {
        return Err(Sense::invalid_opcode());
    }
    // Length first: the service action lookup reads byte 1.
    check_frame(cdb)?;
    let command = commands::lookup(cdb)?;
    let access = command.access.for_cdb(cdb.bytes());
    // SPC-4 / SBC-3 reservation tables: once the command is known, before it does anything.
    // An unreserved unit (the common case) costs the idle check alone.
    let conflict = !unit.pr.is_idle() && unit.pr.conflict(unit.it_nexus, access);
    let port = unit.it_nexus.relative_port;
    // A gateway follower's flush is checked as any other and then answered, and does not ask
    // for the locks.
    let nothing_to_flush = alua::nothing_to_flush(unit.port_groups, port, cdb);
    // A write the reservation refuses anyway does not move a gateway's locks.
    alua::check_port(
        unit.port_groups,
        port,
        cdb,
        access == Access::Write && !conflict && !nothing_to_flush,
    )?;
    if conflict {
        return Ok(Plan::Complete(reservation_conflict()));
    }
    unit::check_medium(lu, cdb.opcode())?;
    let mut ctx = Ctx {
        luns,
        nexus,
        lu,
        unit,
    };
    match (command.handler)(&mut ctx, cdb)? {
        Plan::Flush { .. } if nothing_to_flush => Ok(Plan::Complete(good())),
        plan => Ok(plan),
    }
}

/// SAM-5 §5.14: a pending unit attention ends the command with CHECK CONDITION and is cleared,
/// except for INQUIRY and REQUEST SENSE (which reports it), and REPORT LUNS, which runs and only
/// clears REPORTED LUNS DATA HAS CHANGED (SPC-4 REPORT LUNS).
fn unit_attention_gate(nexus: &mut NexusState, lun: u16, opcode: u8) -> Result<(), Sense> {
    match opcode {
        op::INQUIRY | op::REQUEST_SENSE => Ok(()),
        op::REPORT_LUNS => {
            let changed = ua::UnitAttention::REPORTED_LUNS_DATA_HAS_CHANGED;
            nexus.unit_attentions.clear(lun, changed);
            Ok(())
        }
        _ => match nexus.unit_attentions.take(lun) {
            Some(ua) => Err(ua.sense()),
            None => Ok(()),
        },
    }
}

/// The parameter-list half of a command: `Some` when it must be applied to shared state.
fn params_for(
    lu: &LuInfo,
    nexus: &mut NexusState,
    cdb: Cdb,
    params: &[u8],
) -> Result<Option<SharedOp>, Sense> {
    match cdb.opcode() {
        op::MODE_SELECT_6 | op::MODE_SELECT_10 => {
            check_frame(cdb)?;
            mode::apply_mode_select(lu, nexus, cdb, params).map(|()| None)
        }
        op::PERSISTENT_RESERVE_OUT => {
            check_frame(cdb)?;
            reservations::persistent_reserve_out_params(lu, nexus, cdb, params).map(Some)
        }
        _ => Err(Sense::invalid_opcode()),
    }
}
