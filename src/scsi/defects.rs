//! READ DEFECT DATA (10)/(12) (SBC-3): a virtual medium has no defects, so every list is empty.

use super::cdb::{op, Cdb};
use super::sense::Sense;
use super::{data_in, Plan};

/// CDB flags (byte 2 of the 10-byte form, byte 1 of the 12-byte form) and parameter data byte 1:
/// REQ_PLIST / PLISTV (bit 4), REQ_GLIST / GLISTV (bit 3), DEFECT LIST FORMAT (bits 2..0).
const LISTS: u8 = 0x18;
const FORMAT_MASK: u8 = 0x07;
/// SBC-3 DEFECT LIST FORMAT 111b is reserved; every other format (short and long block,
/// bytes from index, physical sector and their extended forms, vendor specific) describes an
/// empty list with no descriptor at all, so each is returned as asked.
const FORMAT_RESERVED: u8 = 0b111;

/// SBC-3 READ DEFECT DATA (10): ALLOCATION LENGTH bytes 7..=8; parameter data is a 4-byte
/// header (DEFECT LIST LENGTH bytes 2..=3). READ DEFECT DATA (12): flags in byte 1 (libiscsi
/// writes them to byte 2, the ADDRESS DESCRIPTOR INDEX, which is then ignored), ALLOCATION
/// LENGTH bytes 6..=9; an 8-byte header (GENERATION CODE bytes 2..=3, DEFECT LIST LENGTH
/// bytes 4..=7). The lists asked for are reported valid and empty.
pub(super) fn read_defect_data(cdb: Cdb) -> Result<Plan, Sense> {
    let ten = cdb.opcode() == op::READ_DEFECT_DATA_10;
    let flags_at = if ten { 2 } else { 1 };
    let flags = cdb.u8(flags_at);
    if flags & FORMAT_MASK == FORMAT_RESERVED {
        return Err(Sense::invalid_field_in_cdb().at_cdb(flags_at as u16, Some(2)));
    }
    let header = flags & (LISTS | FORMAT_MASK);
    let (data, alloc) = if ten {
        (vec![0, header, 0, 0], u32::from(cdb.be16(7)))
    } else {
        (vec![0, header, 0, 0, 0, 0, 0, 0], cdb.be32(6))
    };
    Ok(data_in(data, alloc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::tests::ok_data;

    fn rdd10(flags: u8, alloc: u16) -> [u8; 10] {
        let a = alloc.to_be_bytes();
        [op::READ_DEFECT_DATA_10, 0, flags, 0, 0, 0, 0, a[0], a[1], 0]
    }

    fn rdd12(flags: u8, alloc: u32) -> [u8; 12] {
        let a = alloc.to_be_bytes();
        [
            op::READ_DEFECT_DATA_12,
            flags,
            0,
            0,
            0,
            0,
            a[0],
            a[1],
            a[2],
            a[3],
            0,
            0,
        ]
    }

    #[test]
    fn empty_lists_in_the_requested_format() {
        // libiscsi ReadDefectData10/12.Simple: no list, format 0, allocation length 32.
        assert_eq!(ok_data(read_defect_data(Cdb::new(&rdd10(0, 32)))), [0; 4]);
        assert_eq!(ok_data(read_defect_data(Cdb::new(&rdd12(0, 32)))), [0; 8]);
        assert_eq!(
            ok_data(read_defect_data(Cdb::new(&rdd10(0x1D, 32)))),
            [0, 0x1D, 0, 0],
            "PLISTV, GLISTV, long block format"
        );
        assert_eq!(
            ok_data(read_defect_data(Cdb::new(&rdd12(0x0C, 32)))),
            [0, 0x0C, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn allocation_length_truncates_and_reserved_format_is_refused() {
        for alloc in 0..6u16 {
            let d = ok_data(read_defect_data(Cdb::new(&rdd10(0x18, alloc))));
            assert_eq!(d.len(), usize::from(alloc).min(4));
        }
        assert_eq!(ok_data(read_defect_data(Cdb::new(&rdd12(0, 5)))).len(), 5);
        assert_eq!(
            read_defect_data(Cdb::new(&rdd10(0x07, 32))),
            Err(Sense::invalid_field_in_cdb().at_cdb(2, Some(2)))
        );
        assert_eq!(
            read_defect_data(Cdb::new(&rdd12(0x1F, 32))),
            Err(Sense::invalid_field_in_cdb().at_cdb(1, Some(2)))
        );
    }
}
