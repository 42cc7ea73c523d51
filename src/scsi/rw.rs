//! Medium access: READ/WRITE (6/10/12/16), WRITE AND VERIFY, WRITE ATOMIC (16), SYNCHRONIZE
//! CACHE (10/16), PRE-FETCH (10/16), and the CDB fields they share with VERIFY and ORWRITE.

use super::cdb::{length_for_opcode, op, Cdb};
use super::job::STEP_BYTES;
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
    if lu.is_write_protected() {
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

/// SBC-4 Block Limits VPD MAXIMUM ATOMIC TRANSFER LENGTH. A WRITE ATOMIC is one `Plan::Write`,
/// which the stores perform as one write of at most one step's buffer ([`STEP_BYTES`], 1 MiB):
/// so at most that, and never more than MAXIMUM TRANSFER LENGTH (libiscsi WriteAtomic16.VPD).
pub(super) fn max_atomic_blocks(lu: &LuInfo) -> u32 {
    let step = (STEP_BYTES / lu.block_size.max(1)).max(1);
    match lu.max_transfer_blocks {
        0 => step,
        max => step.min(max),
    }
}

/// SBC-4 WRITE ATOMIC (16): WRPROTECT, DPO and FUA in byte 1, LBA in bytes 2..=9, ATOMIC
/// BOUNDARY in bytes 10..=11 (refused unless zero: MAXIMUM ATOMIC BOUNDARY SIZE is zero),
/// TRANSFER LENGTH in bytes 12..=13, GROUP NUMBER ignored. No alignment or granularity
/// constraint (ATOMIC ALIGNMENT and ATOMIC TRANSFER LENGTH GRANULARITY are zero). Checked in
/// the order WRITE does (protection field, write protection, range), then the atomic length.
pub(super) fn write_atomic(lu: &LuInfo, cdb: Cdb) -> Result<Plan, Sense> {
    if cdb.u8(1) >> 5 != 0 {
        return Err(Sense::invalid_field_in_cdb().at_cdb(1, Some(7)));
    }
    if cdb.be16(10) != 0 {
        return Err(Sense::invalid_field_in_cdb().at_cdb(10, None));
    }
    if lu.is_write_protected() {
        return Err(Sense::write_protected());
    }
    let (lba, blocks) = (cdb.be64(2), u32::from(cdb.be16(12)));
    check_range(lu, lba, u64::from(blocks))?;
    if blocks > max_atomic_blocks(lu) {
        return Err(Sense::invalid_field_in_cdb().at_cdb(12, None));
    }
    if blocks == 0 {
        return Ok(done());
    }
    Ok(Plan::Write {
        lba,
        blocks,
        fua: cdb.bit(1, 3),
    })
}

/// SBC-3 PRE-FETCH (10)/(16): IMMED (byte 1 bit 1) and GROUP NUMBER are accepted; a PREFETCH
/// LENGTH of zero means to the last block. Nothing is read: the LU keeps no cache of its own
/// that the command could fill (the stores go through the host page cache or straight to the
/// device), so SBC-3 asks for GOOD (the blocks did not all fit in the cache), not CONDITION MET.
/// libiscsi Prefetch10/16 also expect GOOD.
pub(super) fn prefetch(lu: &LuInfo, cdb: Cdb) -> Result<Plan, Sense> {
    let (lba, blocks) = if cdb.opcode() == op::PRE_FETCH_10 {
        (u64::from(cdb.be32(2)), u64::from(cdb.be16(7)))
    } else {
        (cdb.be64(2), u64::from(cdb.be32(10)))
    };
    if blocks == 0 && lba >= lu.num_blocks {
        return Err(Sense::lba_out_of_range());
    }
    check_range(lu, lba, blocks)?;
    Ok(done())
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

    fn wa16(flags: u8, lba: u64, blocks: u16) -> [u8; 16] {
        let mut c = cdb16(op::WRITE_ATOMIC_16, flags, lba, 0);
        c[12..14].copy_from_slice(&blocks.to_be_bytes());
        c
    }

    #[test]
    fn write_atomic_is_one_write_of_at_most_the_atomic_maximum() {
        let lu = lu();
        assert_eq!(max_atomic_blocks(&lu), 1024);
        assert_eq!(
            max_atomic_blocks(&lu_with(|u| u.max_transfer_blocks = 0)),
            2048
        );
        assert_eq!(
            max_atomic_blocks(&lu_with(|u| {
                u.block_size = 4096;
                u.max_transfer_blocks = 0
            })),
            256
        );
        assert_eq!(
            write_atomic(&lu, Cdb::new(&wa16(0x18, 5, 3))),
            Ok(Plan::Write {
                lba: 5,
                blocks: 3,
                fua: true
            })
        );
        assert_eq!(write_atomic(&lu, Cdb::new(&wa16(0, 0, 0))), Ok(done()));
        let big = lu_with(|u| {
            u.num_blocks = 1 << 20;
            u.max_transfer_blocks = 0;
        });
        assert_eq!(
            write_atomic(&big, Cdb::new(&wa16(0, 0, 2049))),
            Err(Sense::invalid_field_in_cdb().at_cdb(12, None))
        );
        assert!(matches!(
            write_atomic(&big, Cdb::new(&wa16(0, 0, 2048))),
            Ok(Plan::Write { blocks: 2048, .. })
        ));
    }

    #[test]
    fn write_atomic_fields_protection_and_range() {
        let lu = lu();
        for p in 1..8u8 {
            assert_eq!(
                write_atomic(&lu, Cdb::new(&wa16(p << 5, 0, 1))),
                Err(Sense::invalid_field_in_cdb().at_cdb(1, Some(7)))
            );
        }
        let mut boundary = wa16(0, 0, 1);
        boundary[11] = 1;
        assert_eq!(
            write_atomic(&lu, Cdb::new(&boundary)),
            Err(Sense::invalid_field_in_cdb().at_cdb(10, None))
        );
        let oob = Err(Sense::lba_out_of_range());
        assert_eq!(write_atomic(&lu, Cdb::new(&wa16(0, N - 1, 2))), oob);
        assert_eq!(write_atomic(&lu, Cdb::new(&wa16(0, N + 1, 0))), oob);
        assert_eq!(write_atomic(&lu, Cdb::new(&wa16(0, 1 << 63, 1))), oob);
        assert_eq!(write_atomic(&lu, Cdb::new(&wa16(0, u64::MAX, 0))), oob);
        let ro = lu_with(|u| u.read_only = true);
        assert_eq!(
            write_atomic(&ro, Cdb::new(&wa16(0, u64::MAX, 1))),
            Err(Sense::write_protected())
        );
    }

    #[test]
    fn prefetch_checks_the_range_and_answers_good() {
        let lu = lu();
        let p10 = |flags: u8, lba: u32, n: u16| {
            let mut c = cdb10(op::PRE_FETCH_10, flags, lba, n);
            c[6] = 3; // GROUP NUMBER
            c
        };
        let p16 = |lba: u64, n: u32| cdb16(op::PRE_FETCH_16, 0x02, lba, n);
        for c in [
            p10(0, 0, 1),
            p10(0x02, 0, 256),
            p10(0, N as u32 - 1, 1),
            p10(0, 0, 0),
        ] {
            assert_eq!(prefetch(&lu, Cdb::new(&c)), Ok(done()), "{c:02x?}");
        }
        assert_eq!(prefetch(&lu, Cdb::new(&p16(N - 256, 256))), Ok(done()));
        let oob = Err(Sense::lba_out_of_range());
        assert_eq!(prefetch(&lu, Cdb::new(&p10(0, N as u32 - 1, 2))), oob);
        assert_eq!(prefetch(&lu, Cdb::new(&p10(0, N as u32 + 1, 0))), oob);
        assert_eq!(prefetch(&lu, Cdb::new(&p10(0, N as u32, 0))), oob);
        assert_eq!(prefetch(&lu, Cdb::new(&p10(0, u32::MAX, 1))), oob);
        assert_eq!(prefetch(&lu, Cdb::new(&p16(1 << 63, 1))), oob);
        assert_eq!(prefetch(&lu, Cdb::new(&p16(u64::MAX, 0))), oob);
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
