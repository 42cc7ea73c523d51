//! READ CAPACITY (10) and (16) (SBC-3).

use super::cdb::Cdb;
use super::provisioning::lbppbe;
use super::sense::Sense;
use super::{data_in, LuInfo, Plan};

/// SBC-3 READ CAPACITY (10) parameter data: a RETURNED LOGICAL BLOCK ADDRESS above FFFFFFFEh is reported as FFFFFFFFh,
/// telling the initiator to use READ CAPACITY (16).
const RC10_LBA_TOO_LARGE: u32 = 0xFFFF_FFFF;
/// SBC-3 READ CAPACITY (16) parameter data length.
const RC16_DATA_LEN: usize = 32;
/// SBC-3 READ CAPACITY (16) byte 14: LBPME (bit 7, logical block provisioning management
/// enabled) and LBPRZ (bit 6, unmapped blocks read as zeros).
const LBPME: u8 = 0x80;
const LBPRZ: u8 = 0x40;

fn last_lba(lu: &LuInfo) -> u64 {
    lu.num_blocks.saturating_sub(1)
}

/// SBC-3 READ CAPACITY (10): with PMI (byte 8 bit 0) clear the LOGICAL BLOCK ADDRESS (bytes 2..=5) must
/// be zero. With PMI set we have no "substantial delay" point, so the last LBA is returned.
pub(super) fn read_capacity_10(lu: &LuInfo, cdb: Cdb) -> Result<Plan, Sense> {
    if !cdb.bit(8, 0) && cdb.be32(2) != 0 {
        return Err(Sense::invalid_field_in_cdb().at_cdb(2, None));
    }
    let lba = u32::try_from(last_lba(lu))
        .ok()
        .filter(|&l| l != RC10_LBA_TOO_LARGE)
        .unwrap_or(RC10_LBA_TOO_LARGE);
    let mut d = Vec::with_capacity(8);
    d.extend_from_slice(&lba.to_be_bytes());
    d.extend_from_slice(&lu.block_size.to_be_bytes());
    Ok(data_in(d, 8))
}

/// SBC-3 READ CAPACITY (16) (SERVICE ACTION IN (16) service action 10h): LBA bytes 2..=9,
/// ALLOCATION LENGTH bytes 10..=13, PMI byte 14 bit 0. No protection information (PROT_EN,
/// P_TYPE, P_I_EXPONENT zero); LBPPBE from the 4 KiB physical block; thin provisioned with
/// LBPME and LBPRZ set; LOWEST ALIGNED LBA zero.
pub(super) fn read_capacity_16(lu: &LuInfo, cdb: Cdb) -> Result<Plan, Sense> {
    if !cdb.bit(14, 0) && cdb.be64(2) != 0 {
        return Err(Sense::invalid_field_in_cdb().at_cdb(2, None));
    }
    let mut d = vec![0u8; RC16_DATA_LEN];
    d[0..8].copy_from_slice(&last_lba(lu).to_be_bytes());
    d[8..12].copy_from_slice(&lu.block_size.to_be_bytes());
    d[13] = lbppbe(lu) & 0x0F;
    if lu.geometry.thin {
        d[14] = LBPME | LBPRZ;
    }
    Ok(data_in(d, cdb.be32(10)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::tests::{lu_with, ok_data};

    fn rc10(pmi: bool, lba: u32) -> [u8; 10] {
        let l = lba.to_be_bytes();
        [0x25, 0, l[0], l[1], l[2], l[3], 0, 0, u8::from(pmi), 0]
    }

    fn rc16(alloc: u32, pmi: bool, lba: u64) -> [u8; 16] {
        let mut c = [0u8; 16];
        c[0] = 0x9E;
        c[1] = 0x10;
        c[2..10].copy_from_slice(&lba.to_be_bytes());
        c[10..14].copy_from_slice(&alloc.to_be_bytes());
        c[14] = u8::from(pmi);
        c
    }

    #[test]
    fn rc10_returns_last_lba_and_block_size() {
        let lu = lu_with(|u| {
            u.num_blocks = 2048;
            u.block_size = 4096;
        });
        let d = ok_data(read_capacity_10(&lu, Cdb::new(&rc10(false, 0))));
        assert_eq!(d, [0, 0, 0x07, 0xFF, 0, 0, 0x10, 0]);
    }

    #[test]
    fn rc10_saturates_above_32_bits() {
        for n in [1u64 << 32, (1 << 32) + 1, u64::MAX] {
            let lu = lu_with(|u| u.num_blocks = n);
            let d = ok_data(read_capacity_10(&lu, Cdb::new(&rc10(false, 0))));
            assert_eq!(&d[0..4], &[0xFF; 4], "num_blocks {n:#x}");
        }
        let lu = lu_with(|u| u.num_blocks = 0xFFFF_FFFF);
        let d = ok_data(read_capacity_10(&lu, Cdb::new(&rc10(false, 0))));
        assert_eq!(&d[0..4], &[0xFF, 0xFF, 0xFF, 0xFE]);
    }

    #[test]
    fn rc10_lba_without_pmi_is_invalid_field() {
        let lu = lu_with(|_| {});
        let err = read_capacity_10(&lu, Cdb::new(&rc10(false, 5))).unwrap_err();
        assert_eq!(err, Sense::invalid_field_in_cdb().at_cdb(2, None));
        assert!(read_capacity_10(&lu, Cdb::new(&rc10(true, 5))).is_ok());
    }

    #[test]
    fn rc16_layout() {
        let lu = lu_with(|u| {
            u.num_blocks = 0x1_0000_0001;
            u.block_size = 512;
        });
        let d = ok_data(read_capacity_16(&lu, Cdb::new(&rc16(32, false, 0))));
        assert_eq!(d.len(), 32);
        assert_eq!(&d[0..8], &[0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(&d[8..12], &[0, 0, 2, 0]);
        assert_eq!(d[12], 0, "no PI");
        assert_eq!(d[13], 0x03, "LBPPBE: eight 512-byte blocks per 4 KiB");
        assert_eq!(d[14], 0xC0, "LBPME and LBPRZ, lowest aligned LBA 0");
        assert!(d[15..].iter().all(|&b| b == 0));
        let lu = lu_with(|u| u.block_size = 4096);
        let d = ok_data(read_capacity_16(&lu, Cdb::new(&rc16(32, false, 0))));
        assert_eq!(
            (d[13], d[14]),
            (0x00, 0xC0),
            "4Kn: one block per physical block"
        );
        let lu = lu_with(|u| u.geometry.thin = false);
        let d = ok_data(read_capacity_16(&lu, Cdb::new(&rc16(32, false, 0))));
        assert_eq!(d[14], 0, "fully provisioned: LBPME and LBPRZ clear");
    }

    #[test]
    fn rc16_allocation_lengths_0_to_15_are_good_and_truncate() {
        // libiscsi ReadCapacity16.Alloclen: 0..=15 must not be an error.
        let lu = lu_with(|_| {});
        for alloc in 0..16u32 {
            let d = ok_data(read_capacity_16(&lu, Cdb::new(&rc16(alloc, false, 0))));
            assert_eq!(d.len(), alloc as usize);
        }
        let d = ok_data(read_capacity_16(&lu, Cdb::new(&rc16(96, false, 0))));
        assert_eq!(d.len(), 32);
    }

    #[test]
    fn rc16_lba_without_pmi_is_invalid_field() {
        let lu = lu_with(|_| {});
        assert!(read_capacity_16(&lu, Cdb::new(&rc16(32, false, 1))).is_err());
        assert!(read_capacity_16(&lu, Cdb::new(&rc16(32, true, 1))).is_ok());
    }
}
