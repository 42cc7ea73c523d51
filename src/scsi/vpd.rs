//! Vital product data pages (SPC-4 and SBC-3 "Vital product data parameters").

use super::compare::max_compare_and_write;
use super::copy::third_party_copy_page;
use super::inquiry::{put_ascii, PERIPHERAL_DISK};
use super::provisioning::{
    max_blocks_per_command, max_write_same_blocks, unmap_granularity, MAX_UNMAP_DESCRIPTORS,
};
use super::rw::max_atomic_blocks;
use super::LuInfo;

/// SPC-4 / SBC-3 VPD page codes: the pages served, in the ascending order the Supported VPD
/// Pages page must list them.
const PAGE_SUPPORTED: u8 = 0x00;
const PAGE_UNIT_SERIAL: u8 = 0x80;
const PAGE_DEVICE_ID: u8 = 0x83;
const PAGE_THIRD_PARTY_COPY: u8 = 0x8F;
const PAGE_BLOCK_LIMITS: u8 = 0xB0;
const PAGE_BLOCK_CHARACTERISTICS: u8 = 0xB1;
const PAGE_LOGICAL_BLOCK_PROVISIONING: u8 = 0xB2;
const SUPPORTED: [u8; 7] = [
    PAGE_SUPPORTED,
    PAGE_UNIT_SERIAL,
    PAGE_DEVICE_ID,
    PAGE_THIRD_PARTY_COPY,
    PAGE_BLOCK_LIMITS,
    PAGE_BLOCK_CHARACTERISTICS,
    PAGE_LOGICAL_BLOCK_PROVISIONING,
];

/// SBC-3 Block Limits / Block Device Characteristics: PAGE LENGTH 3Ch (libiscsi checks it).
const BLOCK_LIMITS_LEN: usize = 0x3C;
const BLOCK_CHARACTERISTICS_LEN: usize = 0x3C;
/// SBC-3 Logical Block Provisioning VPD page, without a provisioning group descriptor.
const PROVISIONING_LEN: usize = 0x04;
/// Logical Block Provisioning page byte 5: LBPU (UNMAP), LBPWS (WRITE SAME (16) with UNMAP),
/// LBPWS10 (WRITE SAME (10) with UNMAP), LBPRZ (bit 2: unmapped blocks read as zeros);
/// ANC_SUP and DP stay clear. Byte 6 PROVISIONING TYPE 010b: thin provisioned.
const LBPU: u8 = 0x80;
const LBPWS: u8 = 0x40;
const LBPWS10: u8 = 0x20;
const LBPRZ: u8 = 0x04;
const PROVISIONING_THIN: u8 = 0b010;
/// Block Limits page UNMAP GRANULARITY ALIGNMENT VALID (bit 31 of page bytes 32..=35).
const UGAVALID: u32 = 0x8000_0000;
/// SBC-3 Block Device Characteristics: MEDIUM ROTATION RATE 0001h = non-rotating medium (solid state).
const ROTATION_NON_ROTATING: u16 = 0x0001;
/// SPC-4 Unit Serial Number VPD page: kept short enough for any initiator's buffer.
const MAX_SERIAL_LEN: usize = 32;

/// SPC-4 designation descriptor PROTOCOL IDENTIFIER (protocol identifier values): iSCSI is 5.
const PROTOCOL_ISCSI: u8 = 0x5;
/// SPC-4 designation descriptor CODE SET.
const CODE_SET_BINARY: u8 = 0x1;
const CODE_SET_ASCII: u8 = 0x2;
const CODE_SET_UTF8: u8 = 0x3;
/// SPC-4 designation descriptor: PIV (protocol identifier valid) and ASSOCIATION (bits 5..4).
const PIV: u8 = 0x80;
const ASSOC_LU: u8 = 0x00;
const ASSOC_TARGET_PORT: u8 = 0x10;
const ASSOC_TARGET_DEVICE: u8 = 0x20;
/// SPC-4 designation descriptor DESIGNATOR TYPE.
const TYPE_T10_VENDOR_ID: u8 = 0x1;
const TYPE_NAA: u8 = 0x3;
const TYPE_RELATIVE_TARGET_PORT: u8 = 0x4;
const TYPE_TARGET_PORT_GROUP: u8 = 0x5;
const TYPE_SCSI_NAME_STRING: u8 = 0x8;
/// SPC-4 SCSI name string designator: at most 256 bytes, NUL terminated, multiple of 4.
const MAX_NAME_STRING: usize = 256;
/// T10 vendor ID based designator: the T10 VENDOR IDENTIFICATION (8 bytes) then a vendor
/// specific identifier, 20 bytes in all so that EXTENDED COPY can name the unit by it too (a
/// CSCD identification descriptor holds designators of at most 20 bytes).
const T10_VENDOR_LEN: usize = 8;
const T10_DESIGNATOR_LEN: usize = 20;

/// The VPD page `code` for `lu` seen through relative target port `port`, or `None` when that
/// page is not supported.
pub(super) fn page(lu: &LuInfo, port: u16, code: u8) -> Option<Vec<u8>> {
    let body = match code {
        PAGE_SUPPORTED => SUPPORTED.to_vec(),
        PAGE_UNIT_SERIAL => unit_serial(lu),
        PAGE_DEVICE_ID => device_identification(lu, port),
        PAGE_THIRD_PARTY_COPY => third_party_copy_page(lu),
        PAGE_BLOCK_LIMITS => block_limits(lu),
        PAGE_BLOCK_CHARACTERISTICS => block_characteristics(lu),
        PAGE_LOGICAL_BLOCK_PROVISIONING => logical_block_provisioning(lu),
        _ => return None,
    };
    Some(with_header(code, body))
}

/// SPC-4 VPD page header: PERIPHERAL byte, PAGE CODE, 2-byte PAGE LENGTH.
fn with_header(code: u8, body: Vec<u8>) -> Vec<u8> {
    // Bodies here are at most a few hundred bytes (two 256-byte name strings at most).
    let len = u16::try_from(body.len()).unwrap_or(u16::MAX);
    let mut d = Vec::with_capacity(4 + body.len());
    d.extend_from_slice(&[PERIPHERAL_DISK, code]);
    d.extend_from_slice(&len.to_be_bytes());
    d.extend_from_slice(&body);
    d
}

/// SPC-4 Unit Serial Number VPD page: PRODUCT SERIAL NUMBER in ASCII.
fn unit_serial(lu: &LuInfo) -> Vec<u8> {
    let mut d = vec![0u8; lu.serial.len().min(MAX_SERIAL_LEN)];
    put_ascii(&mut d, &lu.serial);
    d
}

/// SPC-4 Device Identification VPD page: the LU's NAA and T10 vendor ID designators, relative
/// target port, target port group, and SCSI name strings of the target port and the target
/// device. The port designators are those of `port`, the one the command came through: its
/// group has the same identifier (`alua`), as has the iSCSI target portal group it is.
fn device_identification(lu: &LuInfo, port: u16) -> Vec<u8> {
    let port_name = format!("{},t,0x{port:04x}", lu.target_name);
    let mut d = lu_designators(lu).concat();
    let port_flags = PIV | ASSOC_TARGET_PORT;
    let rel_port = two_byte_designator(port);
    designator(
        &mut d,
        iscsi(CODE_SET_BINARY),
        port_flags | TYPE_RELATIVE_TARGET_PORT,
        &rel_port,
    );
    let group = two_byte_designator(port);
    designator(
        &mut d,
        iscsi(CODE_SET_BINARY),
        port_flags | TYPE_TARGET_PORT_GROUP,
        &group,
    );
    let port = name_string(&port_name);
    designator(
        &mut d,
        iscsi(CODE_SET_UTF8),
        port_flags | TYPE_SCSI_NAME_STRING,
        &port,
    );
    let device_flags = PIV | ASSOC_TARGET_DEVICE | TYPE_SCSI_NAME_STRING;
    designator(
        &mut d,
        iscsi(CODE_SET_UTF8),
        device_flags,
        &name_string(&lu.target_name),
    );
    d
}

/// The designation descriptors that name the logical unit itself (association 0h), as the
/// Device Identification page reports them: EXTENDED COPY's CSCD descriptors name a unit by
/// any of these. The T10 vendor ID designator's vendor specific part is the hexadecimal end of
/// the NAA designator, the part that differs between units.
pub(super) fn lu_designators(lu: &LuInfo) -> [Vec<u8>; 2] {
    let mut naa = Vec::new();
    designator(&mut naa, CODE_SET_BINARY, ASSOC_LU | TYPE_NAA, &lu.naa_id);
    let mut t10 = vec![b' '; T10_DESIGNATOR_LEN];
    put_ascii(&mut t10[..T10_VENDOR_LEN], &lu.vendor);
    let hex_len = (T10_DESIGNATOR_LEN - T10_VENDOR_LEN) / 2;
    let tail = &lu.naa_id[lu.naa_id.len() - hex_len..];
    let hex: String = tail.iter().map(|b| format!("{b:02X}")).collect();
    put_ascii(&mut t10[T10_VENDOR_LEN..], &hex);
    let mut desc = Vec::new();
    designator(
        &mut desc,
        CODE_SET_ASCII,
        ASSOC_LU | TYPE_T10_VENDOR_ID,
        &t10,
    );
    [naa, desc]
}

fn iscsi(code_set: u8) -> u8 {
    (PROTOCOL_ISCSI << 4) | code_set
}

/// SPC-4 designation descriptor: 4-byte header then the designator.
fn designator(d: &mut Vec<u8>, protocol_code_set: u8, piv_assoc_type: u8, value: &[u8]) {
    let len = u8::try_from(value.len()).unwrap_or(u8::MAX);
    d.extend_from_slice(&[protocol_code_set, piv_assoc_type, 0, len]);
    d.extend_from_slice(value.get(..usize::from(len)).unwrap_or(value));
}

/// SPC-4 relative target port / target port group designators: two reserved bytes then the 16-bit identifier.
fn two_byte_designator(id: u16) -> [u8; 4] {
    let [hi, lo] = id.to_be_bytes();
    [0, 0, hi, lo]
}

/// SPC-4 SCSI name string designator: UTF-8, NUL terminated, NUL padded to a multiple of 4, at most 256 bytes.
fn name_string(s: &str) -> Vec<u8> {
    let mut end = s.len().min(MAX_NAME_STRING - 4);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut v = s.as_bytes().get(..end).unwrap_or_default().to_vec();
    v.push(0);
    v.resize(v.len().next_multiple_of(4), 0);
    v
}

/// SBC-3 Block Limits VPD page (body offsets are page offsets minus 4).
fn block_limits(lu: &LuInfo) -> Vec<u8> {
    let mut d = vec![0u8; BLOCK_LIMITS_LEN];
    // Page byte 4: WSNZ clear (WRITE SAME of zero blocks means "to the end").
    // Page byte 5: MAXIMUM COMPARE AND WRITE LENGTH.
    d[1] = u8::try_from(max_compare_and_write(lu)).unwrap_or(u8::MAX);
    // Page bytes 6..=7: OPTIMAL TRANSFER LENGTH GRANULARITY, one block.
    d[2..4].copy_from_slice(&1u16.to_be_bytes());
    // Page bytes 8..=11: MAXIMUM TRANSFER LENGTH; 12..=15: OPTIMAL TRANSFER LENGTH.
    d[4..8].copy_from_slice(&lu.max_transfer_blocks.to_be_bytes());
    d[8..12].copy_from_slice(&lu.optimal_transfer_blocks.to_be_bytes());
    // Page bytes 16..=19: MAXIMUM PREFETCH LENGTH zero: no limit (PRE-FETCH reads nothing).
    let max = u32::try_from(max_blocks_per_command(lu)).unwrap_or(u32::MAX);
    // Page bytes 20..=23: MAXIMUM UNMAP LBA COUNT; 24..=27: MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT.
    // Page bytes 28..=31: OPTIMAL UNMAP GRANULARITY; 32..=35: UGAVALID, alignment 0. All zero
    // when the store cannot deallocate (UNMAP not supported).
    if lu.geometry.thin {
        d[16..20].copy_from_slice(&max.to_be_bytes());
        d[20..24].copy_from_slice(&MAX_UNMAP_DESCRIPTORS.to_be_bytes());
        d[24..28].copy_from_slice(&unmap_granularity(lu).to_be_bytes());
        d[28..32].copy_from_slice(&UGAVALID.to_be_bytes());
    }
    // Page bytes 36..=43: MAXIMUM WRITE SAME LENGTH.
    d[32..40].copy_from_slice(&max_write_same_blocks(lu).to_be_bytes());
    // SBC-4 page bytes 44..=47: MAXIMUM ATOMIC TRANSFER LENGTH; ATOMIC ALIGNMENT (48..=51),
    // ATOMIC TRANSFER LENGTH GRANULARITY (52..=55), MAXIMUM ATOMIC TRANSFER LENGTH WITH ATOMIC
    // BOUNDARY (56..=59) and MAXIMUM ATOMIC BOUNDARY SIZE (60..=63) stay zero: no alignment
    // or granularity constraint, no atomic boundaries. The page length 3Ch covers them all.
    d[40..44].copy_from_slice(&max_atomic_blocks(lu).to_be_bytes());
    d
}

/// SBC-3 Logical Block Provisioning VPD page: THRESHOLD EXPONENT 0 (no thresholds), the
/// provisioning commands, LBPRZ, thin provisioning, no provisioning group descriptor; all
/// clear (fully provisioned) when the store cannot deallocate.
fn logical_block_provisioning(lu: &LuInfo) -> Vec<u8> {
    let mut d = vec![0u8; PROVISIONING_LEN];
    if lu.geometry.thin {
        d[1] = LBPU | LBPWS | LBPWS10 | LBPRZ;
        d[2] = PROVISIONING_THIN;
    }
    d
}

/// SBC-4 Block Device Characteristics VPD page byte 7: WABEREQ (bits 7..6) 01b, a read after
/// SANITIZE BLOCK ERASE completes GOOD with the deallocated blocks' data (zeros, LBPRZ);
/// WACEREQ (bits 5..4) stays 00b: no CRYPTO ERASE. libiscsi Sanitize.BlockErase wants WABEREQ
/// non-zero when BLOCK ERASE is reported.
const WABEREQ_READS_SUCCEED: u8 = 0x40;

/// SBC-3 Block Device Characteristics VPD page: MEDIUM ROTATION RATE (page bytes 4..=5) and the
/// SBC-4 WABEREQ (page byte 7) of a unit that supports SANITIZE.
fn block_characteristics(lu: &LuInfo) -> Vec<u8> {
    let mut d = vec![0u8; BLOCK_CHARACTERISTICS_LEN];
    if lu.non_rotational {
        d[0..2].copy_from_slice(&ROTATION_NON_ROTATING.to_be_bytes());
    }
    // 00b (not specified) where SANITIZE is not supported at all.
    if lu.sanitizable {
        d[3] = WABEREQ_READS_SUCCEED;
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::tests::lu;

    fn get(code: u8) -> Vec<u8> {
        page(&lu(0), 1, code).expect("supported page")
    }

    fn page_length(d: &[u8]) -> usize {
        usize::from(u16::from_be_bytes([d[2], d[3]]))
    }

    #[test]
    fn supported_pages_list_is_ascending_and_each_is_served() {
        let d = get(0x00);
        assert_eq!(d, [0, 0, 0, 7, 0x00, 0x80, 0x83, 0x8F, 0xB0, 0xB1, 0xB2]);
        for &code in &d[4..] {
            let p = get(code);
            assert_eq!(p[1], code);
            assert_eq!(page_length(&p), p.len() - 4);
        }
    }

    #[test]
    fn unit_serial_is_ascii() {
        let d = get(0x80);
        assert_eq!(&d[..4], &[0, 0x80, 0, 8]);
        assert_eq!(&d[4..], b"SN000000");
        let mut long = lu(0);
        long.serial = "x".repeat(40);
        assert_eq!(page(&long, 1, 0x80).map(|p| p.len()), Some(4 + 32));
    }

    #[test]
    fn device_identification_layout() {
        let unit = lu(0);
        let d = get(0x83);
        assert_eq!(page_length(&d), d.len() - 4);
        let mut at = 4;
        let mut next = || {
            let len = usize::from(d[at + 3]);
            let desc = d[at..at + 4 + len].to_vec();
            at += 4 + len;
            desc
        };
        let naa = next();
        assert_eq!(&naa[..4], &[0x01, 0x03, 0, 16]);
        assert_eq!(&naa[4..], &unit.naa_id);
        let t10 = next();
        assert_eq!(&t10[..4], &[0x02, 0x01, 0, 20], "T10 vendor ID, ASCII, LU");
        assert_eq!(&t10[4..12], b"RINGTGT ");
        let tail: String = unit.naa_id[10..]
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        assert_eq!(&t10[12..], tail.as_bytes());
        assert_eq!(next(), [0x51, 0x94, 0, 4, 0, 0, 0, 1]);
        assert_eq!(next(), [0x51, 0x95, 0, 4, 0, 0, 0, 1]);
        let port = next();
        assert_eq!(&port[..2], &[0x53, 0x98]);
        let port_name = b"iqn.2024-01.org.ringtgt:disk,t,0x0001";
        assert_eq!(&port[4..4 + port_name.len()], port_name);
        assert_eq!(port.len() % 4, 0);
        assert!(port[4 + port_name.len()..].iter().all(|&b| b == 0));
        let device = next();
        assert_eq!(&device[..2], &[0x53, 0xA8]);
        assert_eq!(&device[4..32], b"iqn.2024-01.org.ringtgt:disk");
        assert_eq!(device[32], 0);
        assert_eq!(at, d.len());
    }

    #[test]
    fn name_string_is_nul_terminated_padded_and_bounded() {
        assert_eq!(name_string("abc"), b"abc\0");
        assert_eq!(name_string("abcd"), b"abcd\0\0\0\0");
        assert_eq!(name_string(""), [0, 0, 0, 0]);
        let long = name_string(&"é".repeat(300));
        assert!(long.len() <= MAX_NAME_STRING && long.len().is_multiple_of(4));
        assert_eq!(long.last(), Some(&0));
    }

    #[test]
    fn block_limits_is_sbc3_length_with_transfer_limits() {
        let d = get(0xB0);
        assert_eq!(d.len(), 64);
        assert_eq!(d[3], 0x3C);
        assert_eq!(&d[6..8], &[0, 1], "granularity");
        assert_eq!(&d[8..12], &1024u32.to_be_bytes(), "maximum transfer length");
        assert_eq!(&d[12..16], &128u32.to_be_bytes(), "optimal transfer length");
    }

    #[test]
    fn block_limits_reports_unmap_write_same_and_compare_and_write_limits() {
        let d = get(0xB0);
        assert_eq!(d[4] & 0x01, 0, "WSNZ clear");
        assert_eq!(d[5], 255, "MAXIMUM COMPARE AND WRITE LENGTH");
        assert_eq!(&d[16..20], &[0; 4], "no PRE-FETCH limit");
        assert_eq!(
            &d[44..48],
            &1024u32.to_be_bytes(),
            "MAXIMUM ATOMIC TRANSFER LENGTH"
        );
        assert_eq!(
            &d[48..64],
            &[0; 16],
            "no atomic alignment, granularity, boundary"
        );
        // 512-byte blocks: 2^20 blocks (512 MiB) per UNMAP or WRITE SAME.
        assert_eq!(
            &d[20..24],
            &0x0010_0000u32.to_be_bytes(),
            "MAXIMUM UNMAP LBA COUNT"
        );
        assert_eq!(
            &d[24..28],
            &4095u32.to_be_bytes(),
            "MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT"
        );
        assert_eq!(
            &d[28..32],
            &8u32.to_be_bytes(),
            "OPTIMAL UNMAP GRANULARITY: 4 KiB"
        );
        assert_eq!(&d[32..36], &[0x80, 0, 0, 0], "UGAVALID, alignment 0");
        assert_eq!(
            &d[36..44],
            &1024u64.to_be_bytes(),
            "MAXIMUM WRITE SAME LENGTH: what one WRITE may carry"
        );
        let mut big = lu(0);
        big.block_size = 4096;
        big.max_transfer_blocks = 100;
        let d = page(&big, 1, 0xB0).expect("served");
        assert_eq!(
            d[5], 50,
            "COMPARE AND WRITE Data-Out within MAXIMUM TRANSFER LENGTH"
        );
        assert_eq!(
            &d[20..24],
            &0x0004_0000u32.to_be_bytes(),
            "1 GiB of 4 KiB blocks"
        );
        assert_eq!(&d[28..32], &1u32.to_be_bytes());
        assert_eq!(&d[36..44], &100u64.to_be_bytes());
        big.max_transfer_blocks = 0;
        let d = page(&big, 1, 0xB0).expect("served");
        assert_eq!(
            &d[36..44],
            &0x0004_0000u64.to_be_bytes(),
            "no transfer limit: 1 GiB"
        );
    }

    #[test]
    fn block_characteristics_reports_rotation_rate() {
        let d = get(0xB1);
        assert_eq!((d.len(), d[3]), (64, 0x3C));
        assert_eq!(&d[4..6], &[0, 1]);
        assert_eq!(d[7], 0x40, "WABEREQ 01b, WACEREQ 00b");
        let gateway = crate::scsi::tests::lu_with(|l| l.sanitizable = false);
        assert_eq!(
            page(&gateway, 1, 0xB1).map(|p| p[7]),
            Some(0),
            "no SANITIZE"
        );
        let mut spinning = lu(0);
        spinning.non_rotational = false;
        assert_eq!(page(&spinning, 1, 0xB1).map(|p| [p[4], p[5]]), Some([0, 0]));
    }

    #[test]
    fn logical_block_provisioning_is_thin_with_unmap_write_same_and_lbprz() {
        // LBPU, LBPWS, LBPWS10, LBPRZ; ANC_SUP and DP clear; PROVISIONING TYPE thin.
        assert_eq!(get(0xB2), [0, 0xB2, 0, 4, 0, 0xE4, 0x02, 0]);
    }
}
