//! The EXTENDED COPY (LID1) parameter list (SPC-4): a 16-byte header, CSCD descriptors that
//! name the logical units taking part, segment descriptors that say what to copy. Everything is
//! checked before a single block moves, so a list that cannot be carried out out copies nothing.
//!
//! Errors in the list's form (lengths, counts, descriptor types) are ILLEGAL REQUEST, as SPC-4
//! asks for errors found before segment processing. Errors in what a segment asks of a copy
//! target (a CSCD it cannot reach, blocks beyond the end, a write-protected destination) are
//! reported as that segment's failure, COPY ABORTED with the segment's number, which is what
//! SPC-4's segment processing rules and libiscsi (ExtendedCopy.ValidSegDescr) expect even though
//! ringtgt finds them up front.

use super::super::rw::check_range;
use super::super::sense::{Sense, SenseKey};
use super::super::vpd::lu_designators;
use super::super::{LuInfo, LunMap};
use super::{
    MAX_CSCD_DESCRIPTORS, MAX_DESCRIPTOR_LIST_LENGTH, MAX_SEGMENT_BYTES, MAX_SEGMENT_DESCRIPTORS,
};

/// SPC-4 parameter list header length; CSCD descriptors start right after it.
pub(super) const HEADER_LEN: usize = 16;
/// SPC-4 CSCD descriptors of type codes E0h..E9h are 32 bytes.
pub(super) const CSCD_LEN: usize = 32;
/// Identification CSCD descriptor: the logical unit named by a VPD 83h designator.
pub(super) const CSCD_IDENTIFICATION: u8 = 0xE4;
/// Block device to block device segment descriptor, and its DESCRIPTOR LENGTH (bytes after
/// the first four).
pub(super) const SEGMENT_BLOCK_TO_BLOCK: u8 = 0x02;
const BLOCK_TO_BLOCK_LEN: usize = 28;
/// Segment descriptor header: type code, flags, DESCRIPTOR LENGTH (2 bytes).
const SEGMENT_HEADER_LEN: usize = 4;
/// CSCD DESCRIPTOR ID FFFFh: the logical unit the EXTENDED COPY was sent to.
pub(super) const CSCD_ID_COPY_MANAGER: u16 = 0xFFFF;
/// CSCD descriptor byte 1 PERIPHERAL DEVICE TYPE (bits 4..0): 00h, direct access block device.
const DEVICE_TYPE_BLOCK: u8 = 0x00;
/// Header byte 1 LIST ID USAGE (bits 4..3), and the byte offsets of the header's fields.
const LIST_ID_USAGE_SHIFT: u8 = 3;
const CSCD_LIST_LENGTH_AT: u16 = 2;
const SEGMENT_LIST_LENGTH_AT: u16 = 8;
const INLINE_DATA_LENGTH_AT: u16 = 12;
/// Block to block segment descriptor fields (offsets within the descriptor).
const SOURCE_ID_AT: u16 = 4;
const DESTINATION_ID_AT: u16 = 6;
const BLOCKS_AT: u16 = 10;
const SOURCE_LBA_AT: u16 = 12;
const DESTINATION_LBA_AT: u16 = 20;

/// SPC-4 LIST ID USAGE: what the copy manager keeps of a copy for RECEIVE COPY RESULTS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ListIdUsage {
    /// 00b: the list identifier is unique while the copy runs; its status is held afterwards.
    Hold,
    /// 10b: unique while it runs, nothing held afterwards.
    Discard,
    /// 11b: no list identifier; nothing is kept.
    None,
}

/// One block device to block device segment, resolved to the logical units it copies between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Segment {
    pub src_lun: u16,
    pub dst_lun: u16,
    pub src_lba: u64,
    pub dst_lba: u64,
    pub blocks: u64,
    /// Both units' logical block length (they must agree).
    pub block_size: u32,
    /// The destination has no volatile write cache: its writes must be durable at once.
    pub dst_fua: bool,
}

/// A checked parameter list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CopyList {
    pub list_id: u8,
    pub usage: ListIdUsage,
    pub segments: Vec<Segment>,
}

/// A CSCD descriptor as received (only identification descriptors are supported).
#[derive(Debug, Clone, Copy)]
struct Cscd<'a> {
    /// The 32 bytes of the descriptor.
    bytes: &'a [u8],
}

impl Cscd<'_> {
    fn device_type(&self) -> u8 {
        self.bytes[1] & 0x1F
    }

    /// DISK BLOCK LENGTH of the block device type specific parameters (bytes 29..=31).
    fn disk_block_length(&self) -> u32 {
        u32::from_be_bytes([0, self.bytes[29], self.bytes[30], self.bytes[31]])
    }

    /// Whether the designation descriptor (bytes 4..=27) names `lu`: one of the designators
    /// its Device Identification page reports for the unit itself (NAA, T10 vendor ID). PIV
    /// and PROTOCOL IDENTIFIER mean nothing for a logical unit designator and are not compared.
    fn names(&self, lu: &LuInfo) -> bool {
        let d = &self.bytes[4..28];
        let len = usize::from(d[3]);
        let Some(value) = d.get(4..4 + len) else {
            return false;
        };
        lu_designators(lu).iter().any(|own| {
            own[0] & 0x0F == d[0] & 0x0F && own[1] & 0x3F == d[1] & 0x3F && own[4..] == *value
        })
    }
}

/// A segment descriptor as received.
#[derive(Debug, Clone, Copy)]
struct SegmentDescriptor {
    src_id: u16,
    dst_id: u16,
    blocks: u16,
    src_lba: u64,
    dst_lba: u64,
}

/// Checks the parameter list received for an EXTENDED COPY sent to `own` (`data` is what
/// arrived, at most the CDB's PARAMETER LIST LENGTH) and resolves its segments against the
/// units this I_T nexus can see.
pub(super) fn parse(data: &[u8], luns: &LunMap, own: &LuInfo) -> Result<CopyList, Sense> {
    let header = data
        .get(..HEADER_LEN)
        .ok_or(Sense::parameter_list_length_error())?;
    let cscd_len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let segment_len = be32(&header[8..12]) as usize;
    let inline_len = be32(&header[12..16]);
    // SPC-4 MAXIMUM DESCRIPTOR LIST LENGTH, checked first (as LIO does; libiscsi
    // ExtendedCopy.DescrLimits sends too many of both kinds and expects this error).
    if cscd_len.saturating_add(segment_len) > MAX_DESCRIPTOR_LIST_LENGTH as usize {
        return Err(Sense::parameter_list_length_error());
    }
    if inline_len != 0 {
        // MAXIMUM INLINE DATA LENGTH is zero: no segment descriptor type that uses it is
        // supported.
        return Err(invalid_param(INLINE_DATA_LENGTH_AT));
    }
    let lists = data
        .get(HEADER_LEN..HEADER_LEN + cscd_len + segment_len)
        .ok_or(Sense::parameter_list_length_error())?;
    let usage = match (header[1] >> LIST_ID_USAGE_SHIFT) & 0x03 {
        0b00 => ListIdUsage::Hold,
        0b10 => ListIdUsage::Discard,
        0b11 => ListIdUsage::None,
        _ => return Err(Sense::invalid_field_in_param_list().at_param(1, Some(4))),
    };
    let (cscd_list, segment_list) = lists.split_at(cscd_len);
    let cscds = cscds(cscd_list)?;
    let descriptors = segments(segment_list, HEADER_LEN + cscd_len)?;
    let segments = descriptors
        .iter()
        .enumerate()
        .map(|(i, d)| resolve(i, d, &cscds, luns, own))
        .collect::<Result<_, _>>()?;
    Ok(CopyList {
        list_id: header[0],
        usage,
        segments,
    })
}

/// The CSCD descriptor list: at most [`MAX_CSCD_DESCRIPTORS`], identification descriptors
/// only. SPC-4 made the LU ID TYPE field and the NUL bit of these obsolete: both are ignored.
fn cscds(list: &[u8]) -> Result<Vec<Cscd<'_>>, Sense> {
    if list.len() > usize::from(MAX_CSCD_DESCRIPTORS) * CSCD_LEN {
        return Err(Sense::too_many_target_descriptors());
    }
    let mut found = Vec::with_capacity(list.len() / CSCD_LEN);
    let mut at = 0;
    while at < list.len() {
        let offset = HEADER_LEN + at;
        if list[at] != CSCD_IDENTIFICATION {
            return Err(Sense::unsupported_target_descriptor_type().at_param(field(offset), None));
        }
        let bytes = list
            .get(at..at + CSCD_LEN)
            .ok_or(invalid_param(CSCD_LIST_LENGTH_AT))?;
        found.push(Cscd { bytes });
        at += CSCD_LEN;
    }
    Ok(found)
}

/// The segment descriptor list (`base`: its offset in the parameter list): at most
/// [`MAX_SEGMENT_DESCRIPTORS`], block device to block device only.
fn segments(list: &[u8], base: usize) -> Result<Vec<SegmentDescriptor>, Sense> {
    let mut found = Vec::new();
    let mut at = 0;
    while at < list.len() {
        let offset = base + at;
        if found.len() == usize::from(MAX_SEGMENT_DESCRIPTORS) {
            return Err(Sense::too_many_segment_descriptors());
        }
        let Some(head) = list.get(at..at + SEGMENT_HEADER_LEN) else {
            return Err(invalid_param(SEGMENT_LIST_LENGTH_AT));
        };
        if head[0] != SEGMENT_BLOCK_TO_BLOCK {
            return Err(Sense::unsupported_segment_descriptor_type().at_param(field(offset), None));
        }
        let len = SEGMENT_HEADER_LEN + usize::from(u16::from_be_bytes([head[2], head[3]]));
        if len != BLOCK_TO_BLOCK_LEN {
            return Err(invalid_param(field(offset + 2)));
        }
        let d = list
            .get(at..at + len)
            .ok_or(invalid_param(SEGMENT_LIST_LENGTH_AT))?;
        found.push(SegmentDescriptor {
            src_id: u16::from_be_bytes([d[4], d[5]]),
            dst_id: u16::from_be_bytes([d[6], d[7]]),
            blocks: u16::from_be_bytes([d[10], d[11]]),
            src_lba: be64(&d[12..20]),
            dst_lba: be64(&d[20..28]),
        });
        at += len;
    }
    Ok(found)
}

/// Resolves segment `index` to the units it copies between, checking everything its copy
/// targets would refuse (see the module documentation for why these are COPY ABORTED).
fn resolve(
    index: usize,
    d: &SegmentDescriptor,
    cscds: &[Cscd<'_>],
    luns: &LunMap,
    own: &LuInfo,
) -> Result<Segment, Sense> {
    let number = u16::try_from(index).unwrap_or(u16::MAX);
    let failed = |sense: Sense, at: u16| sense.in_copy_segment(number, Some(at));
    let src = copy_target(d.src_id, cscds, luns, own).map_err(|s| failed(s, SOURCE_ID_AT))?;
    let dst = copy_target(d.dst_id, cscds, luns, own).map_err(|s| failed(s, DESTINATION_ID_AT))?;
    if src.block_size != dst.block_size {
        // Copies between units of different block lengths are not supported (nor by LIO).
        return Err(failed(invalid_copy_operation(), DESTINATION_ID_AT));
    }
    let blocks = u64::from(d.blocks);
    if blocks * u64::from(src.block_size) > MAX_SEGMENT_BYTES {
        // Unreachable with 16-bit block counts of at most 4096-byte blocks; kept so the
        // reported MAXIMUM SEGMENT LENGTH holds whatever block lengths units get.
        return Err(failed(Sense::invalid_field_in_param_list(), BLOCKS_AT));
    }
    // Blocks beyond either end: what the copy target would refuse as LOGICAL BLOCK ADDRESS
    // OUT OF RANGE. libiscsi ExtendedCopy.ValidSegDescr accepts only NO ADDITIONAL SENSE
    // INFORMATION, UNREACHABLE COPY TARGET or COPY TARGET DEVICE NOT REACHABLE here; the first
    // is the one that claims nothing false, and the segment pointer names the LBA field.
    let beyond = Sense::new(SenseKey::COPY_ABORTED, 0x00, 0x00);
    check_range(src, d.src_lba, blocks).map_err(|_| failed(beyond.clone(), SOURCE_LBA_AT))?;
    check_range(dst, d.dst_lba, blocks).map_err(|_| failed(beyond, DESTINATION_LBA_AT))?;
    for lu in [src, dst] {
        if lu.removable && !lu.shared.medium.is_present() {
            return Err(Sense::medium_not_present().in_copy_segment(number, None));
        }
    }
    if dst.is_write_protected() {
        return Err(failed(Sense::write_protected(), DESTINATION_ID_AT));
    }
    Ok(Segment {
        src_lun: src.lun,
        dst_lun: dst.lun,
        src_lba: d.src_lba,
        dst_lba: d.dst_lba,
        blocks,
        block_size: src.block_size,
        dst_fua: !dst.write_cache,
    })
}

/// The unit a segment's CSCD DESCRIPTOR ID names: FFFFh for the copy manager's own unit, else
/// an index into the CSCD list whose designator names a block device this I_T nexus sees (a
/// masked unit is as unreachable as a missing one).
fn copy_target<'a>(
    id: u16,
    cscds: &[Cscd<'_>],
    luns: &'a LunMap,
    own: &'a LuInfo,
) -> Result<&'a LuInfo, Sense> {
    if id == CSCD_ID_COPY_MANAGER {
        return Ok(own);
    }
    let cscd = cscds
        .get(usize::from(id))
        .ok_or(Sense::unreachable_copy_target())?;
    if cscd.device_type() != DEVICE_TYPE_BLOCK {
        return Err(incorrect_copy_target_type());
    }
    let mut named = luns.iter().filter(|lu| cscd.names(lu));
    let lu = named.next().ok_or(Sense::unreachable_copy_target())?;
    if named.next().is_some() {
        // A designator two units share names neither of them for certain.
        return Err(Sense::unreachable_copy_target());
    }
    if cscd.disk_block_length() != lu.block_size {
        return Err(invalid_copy_operation());
    }
    Ok(lu)
}

/// INCORRECT COPY TARGET DEVICE TYPE (0Dh/03h): a block to block segment naming a CSCD
/// descriptor of another peripheral device type.
fn incorrect_copy_target_type() -> Sense {
    Sense::new(SenseKey::COPY_ABORTED, 0x0D, 0x03)
}

/// INVALID OPERATION FOR COPY SOURCE OR DESTINATION (26h/0Ch): the CSCD's DISK BLOCK LENGTH is
/// not the unit's, or source and destination block lengths differ.
fn invalid_copy_operation() -> Sense {
    Sense::new(SenseKey::COPY_ABORTED, 0x26, 0x0C)
}

fn invalid_param(at: u16) -> Sense {
    Sense::invalid_field_in_param_list().at_param(at, None)
}

/// A parameter list offset as a field pointer (the list is far shorter than 64 KiB).
fn field(offset: usize) -> u16 {
    u16::try_from(offset).unwrap_or(u16::MAX)
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b.try_into().unwrap_or_default())
}

fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b.try_into().unwrap_or_default())
}
