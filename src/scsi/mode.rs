//! MODE SENSE (6)/(10) and MODE SELECT (6)/(10) (SPC-4 mode parameters; SBC-3 mode pages).

use super::cdb::{op, Cdb};
use super::nexus::NexusState;
use super::sense::Sense;
use super::{data_in, done, LuInfo, Plan};

/// SPC-4 MODE SENSE: PAGE CONTROL (byte 2 bits 7..6). 11b (saved) is not implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PageControl {
    Current,
    Changeable,
    Default,
}

/// SBC-3 read-write error recovery and caching pages; SPC-4 control and informational
/// exceptions control pages. Served in ascending order for "all pages".
const PAGE_RW_ERROR_RECOVERY: u8 = 0x01;
const PAGE_CACHING: u8 = 0x08;
const PAGE_CONTROL: u8 = 0x0A;
const PAGE_INFORMATIONAL_EXCEPTIONS: u8 = 0x1C;
const PAGES: [u8; 4] = [
    PAGE_RW_ERROR_RECOVERY,
    PAGE_CACHING,
    PAGE_CONTROL,
    PAGE_INFORMATIONAL_EXCEPTIONS,
];
/// SPC-4 MODE SENSE: page code 3Fh = all pages; subpage FFh = all subpages.
const PAGE_ALL: u8 = 0x3F;
const SUBPAGE_ALL: u8 = 0xFF;

/// SBC-3 mode parameter header: device-specific parameter WP (bit 7) and DPOFUA (bit 4).
const DSP_WP: u8 = 0x80;
const DSP_DPOFUA: u8 = 0x10;
/// SPC-4 mode parameter header (10): LONGLBA (byte 4 bit 0 of the MODE SENSE (10) header).
const LONGLBA: u8 = 0x01;
/// SBC-3 block descriptors: short and long LBA block descriptor lengths.
const SHORT_BLOCK_DESCRIPTOR: usize = 8;
const LONG_BLOCK_DESCRIPTOR: usize = 16;

/// SBC-3 caching mode page: WCE is caching page byte 2 bit 2.
const CACHING_WCE: u8 = 0x04;
/// SPC-4 control mode page: byte 2 GLTSD (bit 1), D_SENSE (bit 2); byte 3
/// QUEUE ALGORITHM MODIFIER (bits 7..4) 1h = unrestricted reordering, which is what a
/// multi-queue io_uring backend does.
const CONTROL_GLTSD: u8 = 0x02;
const CONTROL_D_SENSE: u8 = 0x04;
const CONTROL_QAM_UNRESTRICTED: u8 = 0x10;
/// SPC-4 control mode page byte 4 SWP (bit 3): software write protect. Shared by every I_T
/// nexus (it protects the medium), kept in the LU's shared medium state.
const CONTROL_SWP: u8 = 0x08;
/// SPC-4 informational exceptions control page: DEXCPT (byte 2 bit 3): informational exceptions disabled.
const IEC_DEXCPT: u8 = 0x08;

/// MODE SENSE (6): DBD byte 1 bit 3, PC/PAGE CODE byte 2, SUBPAGE byte 3, ALLOCATION LENGTH byte 4.
/// MODE SENSE (10): LLBAA byte 1 bit 4, the same, ALLOCATION LENGTH bytes 7..=8.
pub(super) fn mode_sense(lu: &LuInfo, nexus: &NexusState, cdb: Cdb) -> Result<Plan, Sense> {
    let ten = cdb.opcode() == op::MODE_SENSE_10;
    let pc = page_control(cdb.u8(2) >> 6)?;
    let pages = select_pages(lu, nexus, pc, cdb.u8(2) & 0x3F, cdb.u8(3))?;
    let long_lba = ten && cdb.bit(1, 4);
    let descriptor = if cdb.bit(1, 3) {
        Vec::new()
    } else {
        block_descriptor(lu, pc, long_lba)
    };
    let dsp = device_specific_parameter(lu);
    let (data, alloc) = if ten {
        (
            header10(dsp, long_lba, &descriptor, &pages),
            u32::from(cdb.be16(7)),
        )
    } else {
        (header6(dsp, &descriptor, &pages), u32::from(cdb.u8(4)))
    };
    Ok(data_in(data, alloc))
}

fn page_control(pc: u8) -> Result<PageControl, Sense> {
    match pc {
        0 => Ok(PageControl::Current),
        1 => Ok(PageControl::Changeable),
        2 => Ok(PageControl::Default),
        // SPC-4 MODE SENSE: saved values not implemented.
        _ => Err(Sense::saving_params_unsupported().at_cdb(2, Some(7))),
    }
}

fn select_pages(
    lu: &LuInfo,
    nexus: &NexusState,
    pc: PageControl,
    code: u8,
    subpage: u8,
) -> Result<Vec<u8>, Sense> {
    // No page here has subpages, so only subpage 0 and "all subpages" name anything.
    if subpage != 0 && subpage != SUBPAGE_ALL {
        return Err(Sense::invalid_field_in_cdb().at_cdb(3, None));
    }
    let d_sense = nexus.descriptor_sense();
    if code == PAGE_ALL {
        return Ok(PAGES
            .iter()
            .filter_map(|&c| page(lu, d_sense, pc, c))
            .flatten()
            .collect());
    }
    page(lu, d_sense, pc, code).ok_or_else(|| Sense::invalid_field_in_cdb().at_cdb(2, Some(5)))
}

/// One mode page (PS = 0: nothing can be saved, SPF = 0: page_0 format).
fn page(lu: &LuInfo, d_sense: bool, pc: PageControl, code: u8) -> Option<Vec<u8>> {
    let current = pc == PageControl::Current;
    let changeable = pc == PageControl::Changeable;
    let mut p = match code {
        PAGE_RW_ERROR_RECOVERY => vec![0u8; 12],
        PAGE_CACHING => vec![0u8; 20],
        PAGE_CONTROL => vec![0u8; 12],
        PAGE_INFORMATIONAL_EXCEPTIONS => vec![0u8; 12],
        _ => return None,
    };
    p[0] = code;
    p[1] = (p.len() - 2) as u8; // PAGE LENGTH
    match code {
        PAGE_CACHING if !changeable && lu.write_cache => p[2] = CACHING_WCE,
        PAGE_CONTROL if changeable => {
            p[2] = CONTROL_D_SENSE;
            p[4] = CONTROL_SWP;
        }
        PAGE_CONTROL => {
            p[2] = CONTROL_GLTSD
                | if current && d_sense {
                    CONTROL_D_SENSE
                } else {
                    0
                };
            p[3] = CONTROL_QAM_UNRESTRICTED;
            if current && lu.shared.medium.is_software_write_protected() {
                p[4] = CONTROL_SWP;
            }
        }
        PAGE_INFORMATIONAL_EXCEPTIONS if !changeable => p[2] = IEC_DEXCPT,
        _ => {}
    }
    Some(p)
}

fn device_specific_parameter(lu: &LuInfo) -> u8 {
    DSP_DPOFUA | if lu.is_write_protected() { DSP_WP } else { 0 }
}

/// SBC-3 block descriptors: nothing in them is changeable, so that mask is all zero.
fn block_descriptor(lu: &LuInfo, pc: PageControl, long_lba: bool) -> Vec<u8> {
    if pc == PageControl::Changeable {
        let len = if long_lba {
            LONG_BLOCK_DESCRIPTOR
        } else {
            SHORT_BLOCK_DESCRIPTOR
        };
        return vec![0; len];
    }
    let mut d = Vec::with_capacity(LONG_BLOCK_DESCRIPTOR);
    if long_lba {
        d.extend_from_slice(&lu.num_blocks.to_be_bytes());
        d.extend_from_slice(&[0; 4]);
        d.extend_from_slice(&lu.block_size.to_be_bytes());
    } else {
        // SBC-3 short LBA block descriptor: more blocks than fit in 32 bits is reported as FFFFFFFFh.
        let blocks = u32::try_from(lu.num_blocks).unwrap_or(u32::MAX);
        d.extend_from_slice(&blocks.to_be_bytes());
        d.extend_from_slice(&(lu.block_size & 0x00FF_FFFF).to_be_bytes()); // byte 4 reserved
    }
    d
}

/// SPC-4 mode parameter header (6): MODE DATA LENGTH excludes itself.
fn header6(dsp: u8, descriptor: &[u8], pages: &[u8]) -> Vec<u8> {
    let total = 4 + descriptor.len() + pages.len();
    let mut d = Vec::with_capacity(total);
    d.push(u8::try_from(total - 1).unwrap_or(u8::MAX));
    d.extend_from_slice(&[0, dsp, descriptor.len() as u8]);
    d.extend_from_slice(descriptor);
    d.extend_from_slice(pages);
    d
}

/// SPC-4 mode parameter header (10).
fn header10(dsp: u8, long_lba: bool, descriptor: &[u8], pages: &[u8]) -> Vec<u8> {
    let total = 8 + descriptor.len() + pages.len();
    let mut d = Vec::with_capacity(total);
    d.extend_from_slice(&u16::try_from(total - 2).unwrap_or(u16::MAX).to_be_bytes());
    d.extend_from_slice(&[0, dsp, if long_lba { LONGLBA } else { 0 }, 0]);
    d.extend_from_slice(&(descriptor.len() as u16).to_be_bytes());
    d.extend_from_slice(descriptor);
    d.extend_from_slice(pages);
    d
}

/// MODE SELECT (6)/(10) CDB: SP byte 1 bit 0, PARAMETER LIST LENGTH byte 4 or bytes 7..=8.
/// PF (byte 1 bit 4) is not checked: the only page format understood is SPC's anyway.
pub(super) fn mode_select(cdb: Cdb) -> Result<Plan, Sense> {
    // SPC-4 MODE SELECT: no saved pages, so SP=1 is INVALID FIELD IN CDB.
    if cdb.bit(1, 0) {
        return Err(Sense::invalid_field_in_cdb().at_cdb(1, Some(0)));
    }
    match param_list_length(cdb) {
        0 => Ok(done()),
        len => Ok(Plan::ReceiveParams { len }),
    }
}

fn param_list_length(cdb: Cdb) -> u32 {
    if cdb.opcode() == op::MODE_SELECT_10 {
        u32::from(cdb.be16(7))
    } else {
        u32::from(cdb.u8(4))
    }
}

/// Validate the whole parameter list before changing anything, then apply it.
pub(super) fn apply_mode_select(
    lu: &LuInfo,
    nexus: &mut NexusState,
    cdb: Cdb,
    params: &[u8],
) -> Result<(), Sense> {
    mode_select(cdb)?;
    let declared = usize::try_from(param_list_length(cdb)).unwrap_or(usize::MAX);
    let list = params.get(..declared).unwrap_or(params);
    let ten = cdb.opcode() == op::MODE_SELECT_10;
    let pages_at = check_header(lu, list, ten)?;
    let control = check_pages(lu, nexus.descriptor_sense(), list, pages_at)?;
    if let Some(control) = control {
        nexus.set_descriptor_sense(control[2] & CONTROL_D_SENSE != 0);
        lu.shared
            .medium
            .set_software_write_protect(control[4] & CONTROL_SWP != 0);
    }
    Ok(())
}

/// Returns where the mode pages start. The header's MODE DATA LENGTH, MEDIUM TYPE and
/// device-specific parameter are reserved or ignored in MODE SELECT (SPC-4 mode parameter header).
fn check_header(lu: &LuInfo, list: &[u8], ten: bool) -> Result<usize, Sense> {
    let header_len = if ten { 8 } else { 4 };
    let at = |i: usize| list.get(i).copied().unwrap_or(0);
    if list.len() < header_len {
        return Err(Sense::parameter_list_length_error());
    }
    let (bd_len, bd_len_at, long_lba) = if ten {
        let len = usize::from(u16::from_be_bytes([at(6), at(7)]));
        (len, 6u16, at(4) & LONGLBA != 0)
    } else {
        (usize::from(at(3)), 3u16, false)
    };
    let expected = if long_lba {
        LONG_BLOCK_DESCRIPTOR
    } else {
        SHORT_BLOCK_DESCRIPTOR
    };
    if bd_len != 0 && bd_len != expected {
        return Err(Sense::invalid_field_in_param_list().at_param(bd_len_at, None));
    }
    let pages_at = header_len + bd_len;
    let descriptor = list
        .get(header_len..pages_at)
        .ok_or_else(Sense::parameter_list_length_error)?;
    if !descriptor.is_empty() {
        check_block_descriptor(lu, descriptor, header_len, long_lba)?;
    }
    Ok(pages_at)
}

/// The capacity and block size cannot be changed: a descriptor must restate them (a zero
/// block count meaning "unchanged", SBC-3 short LBA block descriptor).
fn check_block_descriptor(lu: &LuInfo, d: &[u8], at: usize, long_lba: bool) -> Result<(), Sense> {
    let current = block_descriptor(lu, PageControl::Current, long_lba);
    let count_len = if long_lba { 8 } else { 4 };
    let count_is_zero = d.iter().take(count_len).all(|&b| b == 0);
    for (i, (&got, &want)) in d.iter().zip(&current).enumerate() {
        let in_count = i < count_len;
        if got != want && !(in_count && count_is_zero) {
            return Err(Sense::invalid_field_in_param_list().at_param(param_offset(at + i), None));
        }
    }
    Ok(())
}

/// Walk the mode pages; every bit that differs from the current value must be changeable.
/// Returns the last control mode page sent (its D_SENSE and SWP are the changeable bits).
fn check_pages(
    lu: &LuInfo,
    d_sense: bool,
    list: &[u8],
    mut at: usize,
) -> Result<Option<Vec<u8>>, Sense> {
    let mut control = None;
    while at < list.len() {
        let head = list
            .get(at..at + 2)
            .ok_or_else(Sense::parameter_list_length_error)?;
        let (b0, len) = (head[0], usize::from(head[1]));
        // SPC-4 mode page format: PS is reserved in MODE SELECT; no page here uses the sub_page format.
        if b0 & 0xC0 != 0 {
            let bit = if b0 & 0x80 != 0 { 7 } else { 6 };
            return Err(Sense::invalid_field_in_param_list().at_param(param_offset(at), Some(bit)));
        }
        let sent = list
            .get(at..at + 2 + len)
            .ok_or_else(Sense::parameter_list_length_error)?;
        check_page(lu, d_sense, sent, at)?;
        if b0 == PAGE_CONTROL {
            control = Some(sent.to_vec());
        }
        at += 2 + len;
    }
    Ok(control)
}

fn check_page(lu: &LuInfo, d_sense: bool, sent: &[u8], at: usize) -> Result<(), Sense> {
    let code = sent.first().copied().unwrap_or(0);
    let invalid = |off: usize, bit: Option<u8>| {
        Sense::invalid_field_in_param_list().at_param(param_offset(at + off), bit)
    };
    let current =
        page(lu, d_sense, PageControl::Current, code).ok_or_else(|| invalid(0, Some(5)))?;
    let mask =
        page(lu, d_sense, PageControl::Changeable, code).ok_or_else(|| invalid(0, Some(5)))?;
    if sent.len() != current.len() {
        return Err(invalid(1, None));
    }
    let fields = sent.iter().zip(&current).zip(&mask).enumerate().skip(2);
    for (i, ((&got, &cur), &changeable)) in fields {
        let bad = (got ^ cur) & !changeable;
        if bad != 0 {
            // Point at the most significant offending bit.
            return Err(invalid(i, Some(7 - bad.leading_zeros() as u8)));
        }
    }
    Ok(())
}

fn param_offset(at: usize) -> u16 {
    u16::try_from(at).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests;
