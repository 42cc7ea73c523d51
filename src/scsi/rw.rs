//! Medium access: READ/WRITE (6/10/12/16), WRITE AND VERIFY, SYNCHRONIZE CACHE (10/16), and the
//! CDB fields they share with VERIFY and ORWRITE.

use super::cdb::{length_for_opcode, op, Cdb};
use super::sense::Sense;
use super::{done, LuInfo, Plan};

/// SBC-3 READ (6) / WRITE (6): TRANSFER LENGTH of zero means 256 blocks.
const SIX_BYTE_ZERO_MEANS: u32 = 256;
/// SBC-3 READ (6) / WRITE (6) carry a 21-bit LBA in byte 1 bits 4..0 and bytes 2..=3.
const SIX_BYTE_LBA_MASK: u32 = 0x1F_FFFF;

/// The fields shared by every READ/WRITE/VERIFY/ORWRITE form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Transfer {
    pub lba: u64,
    pub blocks: u32,
    /// RDPROTECT / WRPROTECT / VRPROTECT (byte 1 bits 7..5); absent from the 6-byte forms.
    pub protect: u8,
    /// FUA (byte 1 bit 3); absent from the 6-byte forms.
    pub fua: bool,
    /// Where TRANSFER LENGTH starts, for the sense field pointer.
    pub length_at: u16,
}

/// SBC-3 READ, WRITE, VERIFY (6/10/12/16) and ORWRITE (16): the field layout depends only on
/// the CDB size.
pub(super) fn decode(cdb: Cdb) -> Transfer {
    let protect = cdb.u8(1) >> 5;
    let fua = cdb.bit(1, 3);
    match length_for_opcode(cdb.opcode()) {
        Some(6) => Transfer {
            lba: u64::from(cdb.be24(1) & SIX_BYTE_LBA_MASK),
            blocks: match cdb.u8(4) {
                0 => SIX_BYTE_ZERO_MEANS,
                n => u32::from(n),
            },
            protect: 0,
            fua: false,
            length_at: 4,
        },
        Some(10) => Transfer {
            lba: u64::from(cdb.be32(2)),
            blocks: u32::from(cdb.be16(7)),
            protect,
            fua,
            length_at: 7,
        },
        Some(12) => Transfer {
            lba: u64::from(cdb.be32(2)),
            blocks: cdb.be32(6),
            protect,
            fua,
            length_at: 6,
        },
        _ => Transfer {
            lba: cdb.be64(2),
            blocks: cdb.be32(10),
            protect,
            fua,
            length_at: 10,
        },
    }
}

/// No protection information is supported: any non-zero *PROTECT field is refused
/// (SBC-3 RDPROTECT / WRPROTECT / VRPROTECT tables: non-zero needs protection information).
pub(super) fn check_protect(t: &Transfer) -> Result<(), Sense> {
    if t.protect != 0 {
        return Err(Sense::invalid_field_in_cdb().at_cdb(1, Some(7)));
    }
    Ok(())
}

/// SBC-3 Block Limits VPD page: a TRANSFER LENGTH above MAXIMUM TRANSFER LENGTH is refused
/// (zero there means no limit).
pub(super) fn check_max_transfer(lu: &LuInfo, t: &Transfer) -> Result<(), Sense> {
    if lu.max_transfer_blocks != 0 && t.blocks > lu.max_transfer_blocks {
        return Err(Sense::invalid_field_in_cdb().at_cdb(t.length_at, None));
    }
    Ok(())
}

/// SBC-3: LBA plus length beyond the capacity is LBA OUT OF RANGE. With a length of zero this
/// still refuses an LBA past the end (libiscsi Read10.ZeroBlocks expects that).
pub(super) fn check_range(lu: &LuInfo, lba: u64, blocks: u64) -> Result<(), Sense> {
    let end = lba.checked_add(blocks);
    if end.is_none_or(|end| end > lu.num_blocks) {
        return Err(Sense::lba_out_of_range());
    }
    Ok(())
}

pub(super) fn read(lu: &LuInfo, cdb: Cdb) -> Result<Plan, Sense> {
    let t = decode(cdb);
    check_protect(&t)?;
    check_max_transfer(lu, &t)?;
    check_range(lu, t.lba, u64::from(t.blocks))?;
    if t.blocks == 0 {
        return Ok(done());
    }
    Ok(Plan::Read {
        lba: t.lba,
        blocks: t.blocks,
    })
}

/// Write protection is checked after the CDB fields are known valid and before the range
/// (SBC-3 write protection: DATA PROTECT, WRITE PROTECTED), whatever the transfer length.
pub(super) fn write(lu: &LuInfo, cdb: Cdb) -> Result<Plan, Sense> {
    let t = decode(cdb);
    check_protect(&t)?;
    check_max_transfer(lu, &t)?;
    if lu.read_only {
        return Err(Sense::write_protected());
    }
    check_range(lu, t.lba, u64::from(t.blocks))?;
    if t.blocks == 0 {
        return Ok(done());
    }
    Ok(Plan::Write {
        lba: t.lba,
        blocks: t.blocks,
        fua: t.fua,
    })
}

/// SBC-3 WRITE AND VERIFY (10/12/16): the data is written durably (as with FUA) before status.
/// BYTCHK (byte 1 bit 1) asks to compare the medium with the data just sent; since the write
/// came from exactly that buffer and reached the medium, the comparison cannot miscompare, so
/// both settings complete like a durable write. Byte 1 bit 2 is reserved (SBC-4 BYTCHK 1xb).
pub(super) fn write_and_verify(lu: &LuInfo, cdb: Cdb) -> Result<Plan, Sense> {
    if cdb.bit(1, 2) {
        return Err(Sense::invalid_field_in_cdb().at_cdb(1, Some(2)));
    }
    match write(lu, cdb)? {
        Plan::Write { lba, blocks, .. } => Ok(Plan::Write {
            lba,
            blocks,
            fua: true,
        }),
        other => Ok(other),
    }
}

/// SBC-3 SYNCHRONIZE CACHE (10)/(16): LBA and NUMBER OF LOGICAL BLOCKS (zero = to the end of the medium).
/// IMMED is accepted; completing after the flush satisfies both settings.
pub(super) fn synchronize_cache(lu: &LuInfo, cdb: Cdb) -> Result<Plan, Sense> {
    let (lba, blocks) = if cdb.opcode() == op::SYNCHRONIZE_CACHE_10 {
        (u64::from(cdb.be32(2)), u32::from(cdb.be16(7)))
    } else {
        (cdb.be64(2), cdb.be32(10))
    };
    check_range(lu, lba, u64::from(blocks))?;
    Ok(Plan::Flush { lba, blocks })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::tests::{cdb10, cdb12, cdb16, cdb6, lu_with};

    const N: u64 = 1000;

    fn lu() -> LuInfo {
        lu_with(|u| {
            u.num_blocks = N;
            u.max_transfer_blocks = 1024;
        })
    }

    #[test]
    fn every_read_form_decodes_lba_and_length() {
        let lu = lu_with(|u| u.num_blocks = 1 << 20);
        let cases = [
            (cdb6(op::READ_6, 0x1_0203, 7).to_vec(), 0x1_0203, 7),
            (cdb10(op::READ_10, 0, 900, 9).to_vec(), 900, 9),
            (cdb12(op::READ_12, 0, 10, 11).to_vec(), 10, 11),
            (cdb16(op::READ_16, 0, 20, 21).to_vec(), 20, 21),
        ];
        for (c, lba, blocks) in cases {
            assert_eq!(
                read(&lu, Cdb::new(&c)),
                Ok(Plan::Read { lba, blocks }),
                "{c:02x?}"
            );
        }
    }

    #[test]
    fn read6_uses_21_bit_lba_and_zero_means_256() {
        let lu = lu_with(|u| u.num_blocks = 0x20_0000);
        let c = [op::READ_6, 0xFF, 0xFF, 0xFF, 0, 0];
        let t = decode(Cdb::new(&c));
        assert_eq!((t.lba, t.blocks), (0x1F_FFFF, 256));
        assert_eq!(read(&lu, Cdb::new(&c)), Err(Sense::lba_out_of_range()));
        assert_eq!(
            read(&lu, Cdb::new(&cdb6(op::READ_6, 0, 0))),
            Ok(Plan::Read {
                lba: 0,
                blocks: 256
            })
        );
    }

    #[test]
    fn write_and_verify_is_a_durable_write_and_refuses_reserved_bytchk() {
        let lu = lu();
        let c = cdb10(op::WRITE_AND_VERIFY_10, 0, 7, 2);
        assert_eq!(
            write_and_verify(&lu, Cdb::new(&c)),
            Ok(Plan::Write {
                lba: 7,
                blocks: 2,
                fua: true
            })
        );
        let c = cdb16(op::WRITE_AND_VERIFY_16, 0, 1, 1);
        assert_eq!(
            write_and_verify(&lu, Cdb::new(&c)),
            Ok(Plan::Write {
                lba: 1,
                blocks: 1,
                fua: true
            })
        );
        let c = cdb12(op::WRITE_AND_VERIFY_12, 0x02, 1, 1);
        assert_eq!(
            write_and_verify(&lu, Cdb::new(&c)),
            Ok(Plan::Write {
                lba: 1,
                blocks: 1,
                fua: true
            })
        );
        let c = cdb12(op::WRITE_AND_VERIFY_12, 0x04, 1, 1);
        assert!(write_and_verify(&lu, Cdb::new(&c)).is_err());
        let ro = lu_with(|u| u.read_only = true);
        let c = cdb10(op::WRITE_AND_VERIFY_10, 0, 0, 1);
        assert_eq!(
            write_and_verify(&ro, Cdb::new(&c)),
            Err(Sense::write_protected())
        );
    }

    #[test]
    fn write6_zero_means_256() {
        assert_eq!(
            write(&lu(), Cdb::new(&cdb6(op::WRITE_6, 5, 0))),
            Ok(Plan::Write {
                lba: 5,
                blocks: 256,
                fua: false
            })
        );
    }

    #[test]
    fn every_write_form_decodes_and_carries_fua() {
        let lu = lu();
        let cases = [
            (cdb10(op::WRITE_10, 0x08, 1, 2).to_vec(), 1, 2, true),
            (cdb12(op::WRITE_12, 0x00, 3, 4).to_vec(), 3, 4, false),
            (cdb16(op::WRITE_16, 0x18, 5, 6).to_vec(), 5, 6, true),
            (cdb16(op::WRITE_16, 0x02, 5, 6).to_vec(), 5, 6, false), // FUA_NV ignored
        ];
        for (c, lba, blocks, fua) in cases {
            assert_eq!(
                write(&lu, Cdb::new(&c)),
                Ok(Plan::Write { lba, blocks, fua })
            );
        }
    }

    #[test]
    fn zero_length_other_than_six_byte_is_good_without_io() {
        let lu = lu();
        assert_eq!(
            read(&lu, Cdb::new(&cdb10(op::READ_10, 0, 0, 0))),
            Ok(done())
        );
        assert_eq!(
            read(&lu, Cdb::new(&cdb16(op::READ_16, 0, N, 0))),
            Ok(done())
        );
        assert_eq!(
            write(&lu, Cdb::new(&cdb12(op::WRITE_12, 0, 0, 0))),
            Ok(done())
        );
    }

    #[test]
    fn zero_length_past_the_end_is_out_of_range() {
        let lu = lu();
        let oob = Err(Sense::lba_out_of_range());
        assert_eq!(
            read(&lu, Cdb::new(&cdb10(op::READ_10, 0, N as u32 + 1, 0))),
            oob
        );
        assert_eq!(
            write(&lu, Cdb::new(&cdb10(op::WRITE_10, 0, 0x8000_0000, 0))),
            oob
        );
        assert_eq!(
            read(&lu, Cdb::new(&cdb10(op::READ_10, 0, u32::MAX, 0))),
            oob
        );
    }

    #[test]
    fn range_edges() {
        let lu = lu();
        let last = cdb16(op::READ_16, 0, N - 1, 1);
        assert_eq!(
            read(&lu, Cdb::new(&last)),
            Ok(Plan::Read {
                lba: N - 1,
                blocks: 1
            })
        );
        let over = cdb16(op::READ_16, 0, N - 1, 2);
        assert_eq!(read(&lu, Cdb::new(&over)), Err(Sense::lba_out_of_range()));
        let wrap = cdb16(op::READ_16, 0, u64::MAX, 1);
        assert_eq!(read(&lu, Cdb::new(&wrap)), Err(Sense::lba_out_of_range()));
    }

    #[test]
    fn protect_fields_are_invalid_field_at_byte_1_bit_7() {
        let lu = lu();
        for p in 1..8u8 {
            let flags = p << 5;
            let err = Err(Sense::invalid_field_in_cdb().at_cdb(1, Some(7)));
            assert_eq!(read(&lu, Cdb::new(&cdb10(op::READ_10, flags, 0, 1))), err);
            assert_eq!(read(&lu, Cdb::new(&cdb12(op::READ_12, flags, 0, 1))), err);
            assert_eq!(write(&lu, Cdb::new(&cdb16(op::WRITE_16, flags, 0, 1))), err);
        }
    }

    #[test]
    fn dpo_and_fua_are_accepted_on_reads() {
        let lu = lu();
        for flags in [0x10, 0x08, 0x18] {
            let c = cdb10(op::READ_10, flags, 0, 1);
            assert_eq!(
                read(&lu, Cdb::new(&c)),
                Ok(Plan::Read { lba: 0, blocks: 1 })
            );
        }
    }

    #[test]
    fn transfer_above_maximum_points_at_transfer_length() {
        let lu = lu_with(|u| {
            u.num_blocks = 1 << 20;
            u.max_transfer_blocks = 128;
        });
        let cases = [
            (cdb10(op::READ_10, 0, 0, 129).to_vec(), 7),
            (cdb12(op::WRITE_12, 0, 0, 129).to_vec(), 6),
            (cdb16(op::READ_16, 0, 0, 129).to_vec(), 10),
            (cdb6(op::READ_6, 0, 0).to_vec(), 4),
        ];
        for (c, at) in cases {
            let plan = if c[0] & 0x02 != 0 {
                write(&lu, Cdb::new(&c))
            } else {
                read(&lu, Cdb::new(&c))
            };
            assert_eq!(
                plan,
                Err(Sense::invalid_field_in_cdb().at_cdb(at, None)),
                "{c:02x?}"
            );
        }
        let at_max = cdb10(op::READ_10, 0, 0, 128);
        assert!(matches!(
            read(&lu, Cdb::new(&at_max)),
            Ok(Plan::Read { .. })
        ));
    }

    #[test]
    fn zero_maximum_means_unlimited() {
        let lu = lu_with(|u| {
            u.num_blocks = 1 << 20;
            u.max_transfer_blocks = 0;
        });
        let c = cdb16(op::READ_16, 0, 0, 0x10000);
        assert!(matches!(read(&lu, Cdb::new(&c)), Ok(Plan::Read { .. })));
    }

    #[test]
    fn read_only_refuses_writes_before_range_checks() {
        let lu = lu_with(|u| {
            u.num_blocks = N;
            u.read_only = true;
        });
        let wp = Err(Sense::write_protected());
        assert_eq!(write(&lu, Cdb::new(&cdb10(op::WRITE_10, 0, 0, 1))), wp);
        assert_eq!(
            write(&lu, Cdb::new(&cdb16(op::WRITE_16, 0, u64::MAX, 1))),
            wp
        );
        assert_eq!(write(&lu, Cdb::new(&cdb10(op::WRITE_10, 0, 0, 0))), wp);
        assert_eq!(write(&lu, Cdb::new(&cdb6(op::WRITE_6, 0, 1))), wp);
        assert!(matches!(
            read(&lu, Cdb::new(&cdb10(op::READ_10, 0, 0, 1))),
            Ok(Plan::Read { .. })
        ));
    }

    #[test]
    fn synchronize_cache_decodes_range() {
        let lu = lu();
        let c10 = cdb10(op::SYNCHRONIZE_CACHE_10, 0x02, 10, 20);
        assert_eq!(
            synchronize_cache(&lu, Cdb::new(&c10)),
            Ok(Plan::Flush {
                lba: 10,
                blocks: 20
            })
        );
        let c16 = cdb16(op::SYNCHRONIZE_CACHE_16, 0, 0, 0);
        assert_eq!(
            synchronize_cache(&lu, Cdb::new(&c16)),
            Ok(Plan::Flush { lba: 0, blocks: 0 })
        );
        let oob = cdb16(op::SYNCHRONIZE_CACHE_16, 0, N, 1);
        assert_eq!(
            synchronize_cache(&lu, Cdb::new(&oob)),
            Err(Sense::lba_out_of_range())
        );
        let past = cdb10(op::SYNCHRONIZE_CACHE_10, 0, N as u32 + 1, 0);
        assert_eq!(
            synchronize_cache(&lu, Cdb::new(&past)),
            Err(Sense::lba_out_of_range())
        );
    }
}
