//! REPORT LUNS (SPC-4).

use super::cdb::Cdb;
use super::lun::{encode_lun, LunMap};
use super::sense::Sense;
use super::{data_in, Plan};

/// SPC-4 REPORT LUNS SELECT REPORT values.
const SELECT_ALL_BUT_WELL_KNOWN: u8 = 0x00;
const SELECT_WELL_KNOWN_ONLY: u8 = 0x01;
const SELECT_ALL: u8 = 0x02;
const SELECT_ADMINISTRATIVE: u8 = 0x10;
const SELECT_ADMINISTRATIVE_AND_SUBSIDIARY: u8 = 0x11;
const SELECT_SUBSIDIARY_OF_ADDRESSED: u8 = 0x12;
/// SPC-4 REPORT LUNS: an allocation length below 16 is INVALID FIELD IN CDB.
const MIN_ALLOCATION_LENGTH: u32 = 16;

/// Byte 2 SELECT REPORT, bytes 6..=9 ALLOCATION LENGTH. This target has no well-known and no
/// administrative (conglomerate) logical units, so those selections report an empty list.
pub(super) fn report_luns(luns: &LunMap, cdb: Cdb) -> Result<Plan, Sense> {
    let allocation_length = cdb.be32(6);
    if allocation_length < MIN_ALLOCATION_LENGTH {
        return Err(Sense::invalid_field_in_cdb().at_cdb(6, None));
    }
    let listed: Vec<u16> = match cdb.u8(2) {
        SELECT_ALL_BUT_WELL_KNOWN | SELECT_ALL => luns.iter().map(|u| u.lun).collect(),
        SELECT_WELL_KNOWN_ONLY
        | SELECT_ADMINISTRATIVE
        | SELECT_ADMINISTRATIVE_AND_SUBSIDIARY
        | SELECT_SUBSIDIARY_OF_ADDRESSED => Vec::new(),
        _ => return Err(Sense::invalid_field_in_cdb().at_cdb(2, None)),
    };
    Ok(data_in(lun_list(&listed), allocation_length))
}

/// 8-byte header (LUN LIST LENGTH, reserved) then one 8-byte LUN per unit.
fn lun_list(luns: &[u16]) -> Vec<u8> {
    let list_len = u32::try_from(luns.len() * 8).unwrap_or(u32::MAX);
    let mut d = Vec::with_capacity(8 + luns.len() * 8);
    d.extend_from_slice(&list_len.to_be_bytes());
    d.extend_from_slice(&[0; 4]);
    for &lun in luns {
        d.extend_from_slice(&encode_lun(lun).to_be_bytes());
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::tests::{lu, ok_data};

    fn cdb(select: u8, alloc: u32) -> [u8; 12] {
        let a = alloc.to_be_bytes();
        [0xA0, 0, select, 0, 0, 0, a[0], a[1], a[2], a[3], 0, 0]
    }

    fn map() -> LunMap {
        LunMap::new(vec![lu(300), lu(0), lu(1)])
    }

    #[test]
    fn select_0_lists_every_lun_in_order() {
        let d = ok_data(report_luns(&map(), Cdb::new(&cdb(0, 4096))));
        assert_eq!(&d[0..8], &[0, 0, 0, 24, 0, 0, 0, 0]);
        assert_eq!(&d[8..16], &[0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&d[16..24], &[0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&d[24..32], &[0x41, 0x2C, 0, 0, 0, 0, 0, 0]);
        assert_eq!(d.len(), 32);
    }

    #[test]
    fn select_2_equals_select_0_without_well_known_lus() {
        let all = ok_data(report_luns(&map(), Cdb::new(&cdb(2, 4096))));
        assert_eq!(all, ok_data(report_luns(&map(), Cdb::new(&cdb(0, 4096)))));
    }

    #[test]
    fn well_known_and_administrative_selections_are_empty() {
        for select in [0x01, 0x10, 0x11, 0x12] {
            let d = ok_data(report_luns(&map(), Cdb::new(&cdb(select, 16))));
            assert_eq!(d, [0, 0, 0, 0, 0, 0, 0, 0], "select {select:#x}");
        }
    }

    #[test]
    fn other_selections_are_invalid_field_at_byte_2() {
        for select in [0x03, 0x0F, 0x13, 0xFF] {
            let err = report_luns(&map(), Cdb::new(&cdb(select, 16))).unwrap_err();
            assert_eq!(err, Sense::invalid_field_in_cdb().at_cdb(2, None));
        }
    }

    #[test]
    fn allocation_length_below_16_is_invalid_field() {
        for alloc in [0, 8, 15] {
            let err = report_luns(&map(), Cdb::new(&cdb(0, alloc))).unwrap_err();
            assert_eq!(err, Sense::invalid_field_in_cdb().at_cdb(6, None));
        }
    }

    #[test]
    fn allocation_length_truncates_but_keeps_full_list_length() {
        let d = ok_data(report_luns(&map(), Cdb::new(&cdb(0, 16))));
        assert_eq!(d.len(), 16);
        assert_eq!(&d[0..4], &[0, 0, 0, 24]);
    }
}
