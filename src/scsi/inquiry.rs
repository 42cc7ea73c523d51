//! INQUIRY (SPC-4 §6.6): standard data here, VPD pages in `vpd`.

use super::cdb::Cdb;
use super::lun::LunMap;
use super::sense::Sense;
use super::{data_in, vpd, LuInfo, Plan};

/// SPC-4 §6.6.2: byte 0 is PERIPHERAL QUALIFIER (7..5) | PERIPHERAL DEVICE TYPE (4..0).
/// 000b/00h: a direct-access block device is connected.
pub(super) const PERIPHERAL_DISK: u8 = 0x00;
/// 011b/1Fh: the target cannot support a logical unit at this LUN.
const PERIPHERAL_NO_LU: u8 = 0x7F;
/// SPC-4 §6.6.2: RMB (byte 1 bit 7), the medium is removable.
const RMB: u8 = 0x80;
/// SPC-4 §6.6.2: VERSION 06h claims SPC-4.
const VERSION_SPC4: u8 = 0x06;
/// SPC-4 §6.6.2: HISUP (byte 3 bit 4) and RESPONSE DATA FORMAT 2 (byte 3 bits 3..0).
const HISUP: u8 = 0x10;
/// Byte 5 TPGS = 01b: asymmetric access, changed by the target only (`alua`).
const TPGS_IMPLICIT: u8 = 0x10;
const RESPONSE_DATA_FORMAT: u8 = 0x02;
/// SPC-4 §6.6.2: 3PC (byte 5 bit 3), the unit is a copy manager (EXTENDED COPY, RECEIVE COPY
/// RESULTS, the Third-party Copy VPD page).
const THREE_PC: u8 = 0x08;
/// SPC-4 §6.6.2: CMDQUE (byte 7 bit 1), full task management model.
const CMDQUE: u8 = 0x02;
/// Standard data length with the version descriptors (bytes 58..=73) and reserved tail.
const STANDARD_LEN: usize = 96;
/// SPC-4 version descriptor values: SAM-5, iSCSI, SPC-4, SBC-3, each
/// "no version claimed".
const VERSION_DESCRIPTORS: [u16; 4] = [0x00A0, 0x0960, 0x0460, 0x04C0];
const VERSION_DESCRIPTORS_AT: usize = 58;

/// CDB: EVPD byte 1 bit 0, CMDDT byte 1 bit 1 (obsolete), PAGE CODE byte 2, ALLOCATION LENGTH
/// bytes 3..=4. `lu` is `None` for a LUN no unit answers to.
/// `lu` is the addressed unit with the relative target port the command came through.
pub(super) fn inquiry(lu: Option<(&LuInfo, u16)>, luns: &LunMap, cdb: Cdb) -> Result<Plan, Sense> {
    let evpd = cdb.bit(1, 0);
    let page = cdb.u8(2);
    // SPC-4 §6.6.1: CMDDT is obsolete; a device server that does not support it refuses it.
    if cdb.bit(1, 1) {
        return Err(Sense::invalid_field_in_cdb().at_cdb(1, Some(1)));
    }
    if !evpd && page != 0 {
        return Err(Sense::invalid_field_in_cdb().at_cdb(2, None));
    }
    let data = match (lu, evpd) {
        (Some((lu, _)), false) => standard(Some(lu), PERIPHERAL_DISK),
        // Vendor strings of any unit keep the answer recognisable; the qualifier is what counts.
        (None, false) => standard(luns.iter().next(), PERIPHERAL_NO_LU),
        (Some((lu, port)), true) => vpd::page(lu, port, page)
            .ok_or_else(|| Sense::invalid_field_in_cdb().at_cdb(2, None))?,
        (None, true) => return Err(Sense::lun_not_supported()),
    };
    Ok(data_in(data, u32::from(cdb.be16(3))))
}

/// SPC-4 §6.6.2 standard INQUIRY data.
fn standard(lu: Option<&LuInfo>, peripheral: u8) -> Vec<u8> {
    let mut d = vec![0u8; STANDARD_LEN];
    d[0] = peripheral;
    if lu.is_some_and(|lu| lu.removable) && peripheral == PERIPHERAL_DISK {
        d[1] = RMB;
    }
    d[2] = VERSION_SPC4;
    d[3] = HISUP | RESPONSE_DATA_FORMAT;
    d[4] = (STANDARD_LEN - 5) as u8; // ADDITIONAL LENGTH
    if peripheral == PERIPHERAL_DISK {
        d[5] = TPGS_IMPLICIT | THREE_PC;
    }
    d[7] = CMDQUE;
    let (vendor, product, revision) = match lu {
        Some(lu) => (
            lu.vendor.as_str(),
            lu.product.as_str(),
            lu.revision.as_str(),
        ),
        None => ("", "", ""),
    };
    put_ascii(&mut d[8..16], vendor);
    put_ascii(&mut d[16..32], product);
    put_ascii(&mut d[32..36], revision);
    for (i, v) in VERSION_DESCRIPTORS.iter().enumerate() {
        let at = VERSION_DESCRIPTORS_AT + 2 * i;
        d[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }
    d
}

/// SPC-4 ASCII data field requirements: only 20h..=7Eh, left aligned, space padded.
pub(super) fn put_ascii(dst: &mut [u8], s: &str) {
    dst.fill(b' ');
    for (d, b) in dst.iter_mut().zip(s.bytes()) {
        *d = if (0x20..=0x7E).contains(&b) { b } else { b' ' };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::tests::{lu, ok_data};

    fn cdb(evpd: bool, page: u8, alloc: u16) -> [u8; 6] {
        let a = alloc.to_be_bytes();
        [0x12, u8::from(evpd), page, a[0], a[1], 0]
    }

    fn std_data(alloc: u16) -> Vec<u8> {
        let unit = lu(0);
        ok_data(inquiry(
            Some((&unit, 1)),
            &LunMap::new(vec![]),
            Cdb::new(&cdb(false, 0, alloc)),
        ))
    }

    #[test]
    fn standard_data_fields() {
        let d = std_data(260);
        assert_eq!(d.len(), 96);
        assert_eq!(d[0], 0x00, "qualifier 0, direct access");
        assert_eq!(d[1], 0x00, "not removable");
        assert_eq!(d[2], 0x06, "SPC-4");
        assert_eq!(d[3], 0x12, "HISUP, response data format 2, no AERC/TRMTSK");
        assert_eq!(usize::from(d[4]), d.len() - 5, "additional length");
        assert_eq!(
            d[5],
            TPGS_IMPLICIT | 0x08,
            "implicit ALUA and 3PC; no PROTECT"
        );
        assert_eq!(d[7] & 0x02, 0x02, "CMDQUE");
        assert_eq!(&d[8..16], b"RINGTGT ");
        assert_eq!(&d[16..32], b"VIRTUAL-DISK    ");
        assert_eq!(&d[32..36], b"0001");
    }

    #[test]
    fn version_descriptors_claim_sam5_iscsi_spc4_sbc3() {
        let d = std_data(255);
        let descs: Vec<u16> = (0..8)
            .map(|i| u16::from_be_bytes([d[58 + 2 * i], d[59 + 2 * i]]))
            .collect();
        assert_eq!(descs, [0x00A0, 0x0960, 0x0460, 0x04C0, 0, 0, 0, 0]);
    }

    #[test]
    fn identification_strings_are_printable_and_padded() {
        let mut unit = lu(0);
        unit.vendor = "ab\u{7f}\ncd-too-long".into();
        unit.product = String::new();
        unit.revision = "é".into();
        let d = ok_data(inquiry(
            Some((&unit, 1)),
            &LunMap::default(),
            Cdb::new(&cdb(false, 0, 96)),
        ));
        assert_eq!(&d[8..16], b"ab  cd-t");
        assert_eq!(&d[16..32], &[b' '; 16]);
        assert_eq!(&d[32..36], b"    ");
    }

    #[test]
    fn every_allocation_length_is_good_and_truncates() {
        // libiscsi Inquiry.AllocLength: 0..=255 all succeed; 255 and 256 give the same data.
        let full = std_data(0xFFFF);
        for alloc in 0..=300u16 {
            let d = std_data(alloc);
            assert_eq!(d, full[..usize::from(alloc).min(96)], "alloc {alloc}");
        }
    }

    #[test]
    fn page_code_without_evpd_is_invalid_field() {
        // libiscsi Inquiry.EVPD.
        let unit = lu(0);
        let r = inquiry(
            Some((&unit, 1)),
            &LunMap::default(),
            Cdb::new(&cdb(false, 1, 256)),
        );
        assert_eq!(r, Err(Sense::invalid_field_in_cdb().at_cdb(2, None)));
    }

    #[test]
    fn cmddt_is_invalid_field() {
        let unit = lu(0);
        let c = [0x12, 0x02, 0, 0, 255, 0];
        let r = inquiry(Some((&unit, 1)), &LunMap::default(), Cdb::new(&c));
        assert_eq!(r, Err(Sense::invalid_field_in_cdb().at_cdb(1, Some(1))));
    }

    #[test]
    fn unknown_vpd_page_is_invalid_field() {
        let unit = lu(0);
        for page in [0x01, 0x81, 0x86, 0xB3, 0xFF] {
            let r = inquiry(
                Some((&unit, 1)),
                &LunMap::default(),
                Cdb::new(&cdb(true, page, 255)),
            );
            assert_eq!(
                r,
                Err(Sense::invalid_field_in_cdb().at_cdb(2, None)),
                "page {page:#x}"
            );
        }
    }

    #[test]
    fn unknown_lun_reports_qualifier_3_type_1f() {
        let map = LunMap::new(vec![lu(0)]);
        let d = ok_data(inquiry(None, &map, Cdb::new(&cdb(false, 0, 255))));
        assert_eq!(d[0], 0x7F);
        assert_eq!(d.len(), 96);
        let r = inquiry(None, &map, Cdb::new(&cdb(true, 0x00, 255)));
        assert_eq!(r, Err(Sense::lun_not_supported()));
    }
}
