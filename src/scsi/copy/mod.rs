//! Third-party copy (SPC-4): EXTENDED COPY (LID1) between block devices of this target, and
//! RECEIVE COPY RESULTS (COPY STATUS, OPERATING PARAMETERS).
//!
//! The copy manager is the logical unit the EXTENDED COPY is sent to. Its parameter list names
//! the units taking part by their VPD 83h designators (CSCD identification descriptors) and
//! the blocks to move (block device to block device segment descriptors); units the I_T nexus
//! does not see (LUN masking) cannot be named. The copy itself is a [`super::Job`]: a Read of at
//! most one step on the source unit, then a Write of that same buffer on the destination unit,
//! until every segment is done; writes pass the destination unit's range locks like any other.
//!
//! Everything is bounded, and the bounds are what OPERATING PARAMETERS and the Third-party
//! Copy VPD page report: [`MAX_CSCD_DESCRIPTORS`], [`MAX_SEGMENT_DESCRIPTORS`],
//! [`MAX_DESCRIPTOR_LIST_LENGTH`] (so the parameter list is at most [`MAX_PARAMETER_LIST`]
//! bytes), [`MAX_SEGMENT_BYTES`] per segment and so [`MAX_BYTES_PER_COMMAND`] per command, and
//! per I_T nexus at most `status::MAX_IDENTIFIED_COPIES` copies with a list identifier.

mod capabilities;
mod list;
mod run;
mod status;

pub(super) use capabilities::third_party_copy_page;
pub(super) use run::Run;
pub use status::CopyRecords;

use super::cdb::Cdb;
use super::job::Job;
use super::pr::{Access, ItNexus};
use super::sense::{Sense, SenseKey};
use super::{done, LuInfo, LunMap, NexusState, Plan};
use list::ListIdUsage;

/// EXTENDED COPY (LID1) is service action 00h of operation code 83h (SPC-4).
pub(super) const SA_EXTENDED_COPY_LID1: u8 = 0x00;
/// RECEIVE COPY RESULTS service actions supported (LID1).
pub(super) const SA_COPY_STATUS: u8 = 0x00;
pub(super) const SA_OPERATING_PARAMETERS: u8 = 0x03;

/// MAXIMUM CSCD DESCRIPTOR COUNT: enough for copies among several units in one command.
pub(super) const MAX_CSCD_DESCRIPTORS: u16 = 8;
/// MAXIMUM SEGMENT DESCRIPTOR COUNT.
pub(super) const MAX_SEGMENT_DESCRIPTORS: u16 = 8;
/// MAXIMUM DESCRIPTOR LIST LENGTH: the largest lists the counts allow are 8 × 32 + 8 × 28 = 480
/// bytes; 512 leaves room for one descriptor too many of either kind, which is then reported
/// as too many descriptors rather than as a list too long.
pub(super) const MAX_DESCRIPTOR_LIST_LENGTH: u32 = 512;
/// The largest parameter list worth receiving: header, descriptor lists, no inline data.
/// Bytes beyond it could only be beyond what the header describes, which is ignored.
pub(super) const MAX_PARAMETER_LIST: u32 = list::HEADER_LEN as u32 + MAX_DESCRIPTOR_LIST_LENGTH;
/// MAXIMUM SEGMENT LENGTH: 65535 (the 16-bit NUMBER OF BLOCKS) 4096-byte blocks fit.
pub(super) const MAX_SEGMENT_BYTES: u64 = 256 << 20;
/// What one EXTENDED COPY moves at most (2 GiB): COPY STATUS counts it in bytes.
pub(super) const MAX_BYTES_PER_COMMAND: u64 = MAX_SEGMENT_DESCRIPTORS as u64 * MAX_SEGMENT_BYTES;
/// EXTENDED COPY byte 10: PARAMETER LIST LENGTH (4 bytes).
const PARAMETER_LIST_LENGTH_AT: u16 = 10;

/// SPC-4 EXTENDED COPY (LID1). A PARAMETER LIST LENGTH of zero copies nothing and is not an
/// error; one shorter than the header is PARAMETER LIST LENGTH ERROR. The rest is judged once
/// the list has arrived ([`begin`]).
pub(super) fn extended_copy(lu: &LuInfo, it_nexus: &ItNexus, cdb: Cdb) -> Result<Plan, Sense> {
    let len = cdb.be32(usize::from(PARAMETER_LIST_LENGTH_AT));
    if len == 0 {
        return Ok(done());
    }
    if len < list::HEADER_LEN as u32 {
        return Err(Sense::parameter_list_length_error());
    }
    let receive = len.min(MAX_PARAMETER_LIST);
    Ok(Plan::Job(Box::new(Job::new_extended_copy(
        lu,
        it_nexus,
        receive,
        PARAMETER_LIST_LENGTH_AT,
    ))))
}

/// Starts the copy a parameter list describes, sent to `own` on this I_T nexus: checks the
/// list, registers its list identifier, and gives the [`Run`] that carries it out.
pub(super) fn begin(
    nexus: &mut NexusState,
    it_nexus: &ItNexus,
    luns: &LunMap,
    own: &LuInfo,
    data: &[u8],
) -> Result<Run, Sense> {
    let list = list::parse(data, luns, own)?;
    check_reservations(&list.segments, it_nexus, luns, own)?;
    let progress = match list.usage {
        ListIdUsage::Hold => Some(nexus.copies.register(own.lun, list.list_id, true)?),
        ListIdUsage::Discard => Some(nexus.copies.register(own.lun, list.list_id, false)?),
        ListIdUsage::None => None,
    };
    for seg in &list.segments {
        if let Some(dst) = luns.get(seg.dst_lun) {
            // Written blocks are mapped: no longer known to be deallocated (GET LBA STATUS).
            dst.shared.medium.note_write();
        }
    }
    Ok(Run::new(list.segments, progress))
}

/// Units other than the copy manager's own (which dispatch checked as for any command) are
/// read or written for this I_T nexus as if it had sent the READ or WRITE itself: a unit that
/// would answer RESERVATION CONFLICT ends the copy before any block moves, as an error its copy
/// target reported (COPY ABORTED, ERROR DETECTED BY THIRD PARTY TEMPORARY INITIATOR).
fn check_reservations(
    segments: &[list::Segment],
    it_nexus: &ItNexus,
    luns: &LunMap,
    own: &LuInfo,
) -> Result<(), Sense> {
    for (index, seg) in segments.iter().enumerate() {
        for (lun, access) in [(seg.src_lun, Access::Read), (seg.dst_lun, Access::Write)] {
            let Some(lu) = luns.get(lun).filter(|lu| lu.lun != own.lun) else {
                continue;
            };
            if lu.shared.snapshot().pr.conflict(it_nexus, access) {
                let number = u16::try_from(index).unwrap_or(u16::MAX);
                return Err(
                    Sense::new(SenseKey::COPY_ABORTED, 0x0D, 0x00).in_copy_segment(number, None)
                );
            }
        }
    }
    Ok(())
}

/// SPC-4 RECEIVE COPY RESULTS (LID1 service actions; the table routes only supported ones).
pub(super) fn receive_copy_results(
    nexus: &NexusState,
    lu: &LuInfo,
    cdb: Cdb,
) -> Result<Plan, Sense> {
    match super::cdb::service_action(&cdb) {
        SA_OPERATING_PARAMETERS => Ok(capabilities::operating_parameters(lu, cdb)),
        SA_COPY_STATUS => status::copy_status(nexus, lu.lun, cdb),
        _ => Err(Sense::invalid_field_in_cdb().at_cdb(1, Some(4))),
    }
}
