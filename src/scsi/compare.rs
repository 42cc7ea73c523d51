//! Commands that compare or combine Data-Out with the medium (SBC-3): COMPARE AND WRITE,
//! ORWRITE (16) and VERIFY (10/12/16). They become [`Job`]s; see `job.rs` for the steps and
//! for what is (not) atomic.

use super::cdb::Cdb;
use super::job::{ByteCheck, Job};
use super::rw::{check_max_transfer, check_protect, check_range, decode};
use super::sense::Sense;
use super::{done, LuInfo, Plan};

/// SBC-3 COMPARE AND WRITE: NUMBER OF LOGICAL BLOCKS is one byte.
const MAX_COMPARE_AND_WRITE: u32 = 255;
/// Data-Out a job may keep when the LU sets no MAXIMUM TRANSFER LENGTH.
const MAX_JOB_DATA: u64 = 64 << 20;
/// SBC-3 COMPARE AND WRITE CDB: NUMBER OF LOGICAL BLOCKS is byte 13.
const CAW_LENGTH_AT: u16 = 13;
/// SBC-3 VERIFY BYTCHK (byte 1 bits 2..1): 00b no compare, 01b compare the Data-Out with the
/// medium, 10b reserved, 11b compare one block of Data-Out with every block.
const BYTCHK_NONE: u8 = 0b00;
const BYTCHK_ALL: u8 = 0b01;
const BYTCHK_RESERVED: u8 = 0b10;

/// Block Limits VPD MAXIMUM COMPARE AND WRITE LENGTH: 255 blocks, or less so that the Data-Out
/// (twice the blocks) stays within MAXIMUM TRANSFER LENGTH. Never zero (zero would mean the
/// command is not supported).
pub(super) fn max_compare_and_write(lu: &LuInfo) -> u32 {
    match lu.max_transfer_blocks {
        0 => MAX_COMPARE_AND_WRITE,
        max => MAX_COMPARE_AND_WRITE.min(max / 2).max(1),
    }
}

/// Bytes of Data-Out for `blocks` blocks, refused (INVALID FIELD IN CDB at the length field)
/// when above what a job may keep.
fn data_out_bytes(lu: &LuInfo, blocks: u64, length_at: u16) -> Result<u32, Sense> {
    let limit = match lu.max_transfer_blocks {
        0 => MAX_JOB_DATA,
        max => u64::from(max) * u64::from(lu.block_size),
    };
    blocks
        .checked_mul(u64::from(lu.block_size))
        .filter(|&bytes| bytes <= limit)
        .and_then(|bytes| u32::try_from(bytes).ok())
        .ok_or_else(|| Sense::invalid_field_in_cdb().at_cdb(length_at, None))
}

/// SBC-3 COMPARE AND WRITE: WRPROTECT (byte 1 bits 7..5) refused, DPO/FUA (bits 4/3), LBA
/// (bytes 2..=9), NUMBER OF LOGICAL BLOCKS (byte 13). Checked: CDB fields, MAXIMUM COMPARE AND
/// WRITE LENGTH, write protection, range. Zero blocks is not an error and transfers nothing.
pub(super) fn compare_and_write(lu: &LuInfo, cdb: Cdb) -> Result<Plan, Sense> {
    if cdb.u8(1) >> 5 != 0 {
        return Err(Sense::invalid_field_in_cdb().at_cdb(1, Some(7)));
    }
    let lba = cdb.be64(2);
    let blocks = u32::from(cdb.u8(CAW_LENGTH_AT.into()));
    let max = max_compare_and_write(lu);
    if blocks > max {
        return Err(Sense::invalid_field_in_cdb().at_cdb(CAW_LENGTH_AT, None));
    }
    if lu.is_write_protected() {
        return Err(Sense::write_protected());
    }
    check_range(lu, lba, u64::from(blocks))?;
    if blocks == 0 {
        // An EDTL larger than any COMPARE AND WRITE may carry is still refused (libiscsi
        // CompareAndWrite.Simple sends 256 blocks, which wraps to zero in the one-byte field).
        let limit = u32::try_from(2 * u64::from(max) * u64::from(lu.block_size));
        let job = Job::new_empty_compare_and_write(lu, limit.unwrap_or(u32::MAX), CAW_LENGTH_AT);
        return Ok(Plan::Job(Box::new(job)));
    }
    let len = data_out_bytes(lu, 2 * u64::from(blocks), CAW_LENGTH_AT)?;
    let fua = cdb.bit(1, 3);
    Ok(Plan::Job(Box::new(Job::new_compare_and_write(
        lu,
        lba,
        blocks,
        fua,
        len,
        CAW_LENGTH_AT,
    ))))
}

/// SBC-3 ORWRITE (16): ORPROTECT refused, DPO/FUA, LBA, TRANSFER LENGTH (same layout as
/// WRITE (16)). Checked like WRITE: fields, MAXIMUM TRANSFER LENGTH, write protection, range.
pub(super) fn orwrite(lu: &LuInfo, cdb: Cdb) -> Result<Plan, Sense> {
    let t = decode(cdb);
    check_protect(&t)?;
    check_max_transfer(lu, &t)?;
    let len = data_out_bytes(lu, u64::from(t.blocks), t.length_at)?;
    if lu.is_write_protected() {
        return Err(Sense::write_protected());
    }
    check_range(lu, t.lba, u64::from(t.blocks))?;
    if t.blocks == 0 {
        return Ok(done());
    }
    Ok(Plan::Job(Box::new(Job::new_orwrite(
        lu,
        t.lba,
        t.blocks,
        t.fua,
        len,
        t.length_at,
    ))))
}

/// SBC-3 VERIFY (10/12/16): VRPROTECT refused; BYTCHK 00b checks the range only (the stores
/// cannot fail a medium verification short of an I/O error), 01b compares the Data-Out with
/// the medium, 11b compares one block of Data-Out with every block, 10b is reserved. A
/// VERIFICATION LENGTH of zero verifies nothing and is not an error.
pub(super) fn verify(lu: &LuInfo, cdb: Cdb) -> Result<Plan, Sense> {
    let t = decode(cdb);
    check_protect(&t)?;
    let bytchk = (cdb.u8(1) >> 1) & 0b11;
    if bytchk == BYTCHK_RESERVED {
        return Err(Sense::invalid_field_in_cdb().at_cdb(1, Some(2)));
    }
    check_max_transfer(lu, &t)?;
    let check = if bytchk == BYTCHK_ALL {
        ByteCheck::All
    } else {
        ByteCheck::OneBlock
    };
    let compared = match check {
        ByteCheck::All => u64::from(t.blocks),
        ByteCheck::OneBlock => 1,
    };
    let len = data_out_bytes(lu, compared, t.length_at)?;
    check_range(lu, t.lba, u64::from(t.blocks))?;
    if bytchk == BYTCHK_NONE || t.blocks == 0 {
        return Ok(done());
    }
    Ok(Plan::Job(Box::new(Job::new_verify(
        lu,
        t.lba,
        t.blocks,
        check,
        len,
        t.length_at,
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::cdb::op;
    use crate::scsi::tests::{cdb10, cdb12, cdb16, lu_with};

    fn unit() -> LuInfo {
        lu_with(|u| u.num_blocks = 1000)
    }

    fn data_out(plan: Result<Plan, Sense>) -> u32 {
        match plan {
            Ok(Plan::Job(j)) => j.data_out_len(),
            other => panic!("expected a job, got {other:?}"),
        }
    }

    fn invalid(byte: u16, bit: Option<u8>) -> Result<Plan, Sense> {
        Err(Sense::invalid_field_in_cdb().at_cdb(byte, bit))
    }

    #[test]
    fn maximum_compare_and_write_length() {
        for (max_transfer, caw) in [(0, 255), (1024, 255), (510, 255), (100, 50), (3, 1), (1, 1)] {
            let lu = lu_with(|u| u.max_transfer_blocks = max_transfer);
            assert_eq!(max_compare_and_write(&lu), caw, "{max_transfer}");
        }
    }

    #[test]
    fn compare_and_write_cdb() {
        let lu = unit();
        let caw =
            |flags: u8, lba: u64, blocks: u32| cdb16(op::COMPARE_AND_WRITE, flags, lba, blocks);
        assert_eq!(
            data_out(compare_and_write(&lu, Cdb::new(&caw(0x18, 0, 3)))),
            3072
        );
        for p in 1..8u8 {
            assert_eq!(
                compare_and_write(&lu, Cdb::new(&caw(p << 5, 0, 1))),
                invalid(1, Some(7))
            );
        }
        let small = lu_with(|u| u.max_transfer_blocks = 8);
        assert_eq!(
            compare_and_write(&small, Cdb::new(&caw(0, 0, 5))),
            invalid(13, None)
        );
        assert_eq!(
            data_out(compare_and_write(&small, Cdb::new(&caw(0, 0, 4)))),
            4096
        );
        // Only byte 13 counts: bytes 10..=12 are reserved.
        assert_eq!(
            data_out(compare_and_write(&lu, Cdb::new(&caw(0, 0, 0x0100_0001)))),
            1024
        );
        let oob = Err(Sense::lba_out_of_range());
        assert_eq!(compare_and_write(&lu, Cdb::new(&caw(0, 999, 2))), oob);
        assert_eq!(compare_and_write(&lu, Cdb::new(&caw(0, 1001, 0))), oob);
        assert_eq!(
            data_out(compare_and_write(&lu, Cdb::new(&caw(0, 1000, 0)))),
            0
        );
        let ro = lu_with(|u| u.read_only = true);
        let wp = Err(Sense::write_protected());
        assert_eq!(compare_and_write(&ro, Cdb::new(&caw(0, u64::MAX, 1))), wp);
        assert_eq!(
            compare_and_write(&ro, Cdb::new(&caw(0x20, 0, 1))),
            invalid(1, Some(7))
        );
    }

    #[test]
    fn orwrite_cdb() {
        let lu = unit();
        let orw = |flags: u8, lba: u64, blocks: u32| cdb16(op::ORWRITE_16, flags, lba, blocks);
        assert_eq!(data_out(orwrite(&lu, Cdb::new(&orw(0x08, 10, 4)))), 2048);
        assert_eq!(
            orwrite(&lu, Cdb::new(&orw(0x40, 0, 1))),
            invalid(1, Some(7))
        );
        assert_eq!(orwrite(&lu, Cdb::new(&orw(0, 0, 1025))), invalid(10, None));
        assert_eq!(orwrite(&lu, Cdb::new(&orw(0, 0, 0))), Ok(done()));
        assert_eq!(
            orwrite(&lu, Cdb::new(&orw(0, 1001, 0))),
            Err(Sense::lba_out_of_range())
        );
        let ro = lu_with(|u| u.read_only = true);
        assert_eq!(
            orwrite(&ro, Cdb::new(&orw(0, 0, 1))),
            Err(Sense::write_protected())
        );
        // No MAXIMUM TRANSFER LENGTH: a job still keeps at most 64 MiB of Data-Out.
        let open = lu_with(|u| {
            u.num_blocks = 1 << 30;
            u.max_transfer_blocks = 0;
        });
        assert_eq!(
            data_out(orwrite(&open, Cdb::new(&orw(0, 0, 1 << 17)))),
            64 << 20
        );
        assert_eq!(
            orwrite(&open, Cdb::new(&orw(0, 0, (1 << 17) + 1))),
            invalid(10, None)
        );
    }

    #[test]
    fn verify_bytchk_forms() {
        let lu = unit();
        assert_eq!(
            verify(&lu, Cdb::new(&cdb10(op::VERIFY_10, 0x10, 0, 8))),
            Ok(done())
        );
        assert_eq!(
            verify(&lu, Cdb::new(&cdb12(op::VERIFY_12, 0x02, 0, 8))).map(|_| ()),
            Ok(())
        );
        assert_eq!(
            data_out(verify(&lu, Cdb::new(&cdb12(op::VERIFY_12, 0x02, 0, 8)))),
            4096
        );
        assert_eq!(
            data_out(verify(&lu, Cdb::new(&cdb16(op::VERIFY_16, 0x06, 0, 8)))),
            512
        );
        assert_eq!(
            verify(&lu, Cdb::new(&cdb10(op::VERIFY_10, 0x04, 0, 1))),
            invalid(1, Some(2))
        );
        assert_eq!(
            verify(&lu, Cdb::new(&cdb10(op::VERIFY_10, 0x02, 0, 0))),
            Ok(done())
        );
        for p in 1..8u8 {
            let c = cdb10(op::VERIFY_10, (p << 5) | 0x02, 0, 1);
            assert_eq!(verify(&lu, Cdb::new(&c)), invalid(1, Some(7)));
        }
    }

    #[test]
    fn verify_ranges_and_transfer_limit() {
        let lu = unit();
        let oob = Err(Sense::lba_out_of_range());
        assert_eq!(
            verify(&lu, Cdb::new(&cdb16(op::VERIFY_16, 0, 992, 8))),
            Ok(done())
        );
        assert_eq!(verify(&lu, Cdb::new(&cdb16(op::VERIFY_16, 0, 992, 9))), oob);
        assert_eq!(
            verify(&lu, Cdb::new(&cdb16(op::VERIFY_16, 0x02, 992, 9))),
            oob
        );
        assert_eq!(
            verify(&lu, Cdb::new(&cdb10(op::VERIFY_10, 0, 1001, 0))),
            oob
        );
        let big = lu_with(|u| u.num_blocks = 1 << 20);
        let c = cdb16(op::VERIFY_16, 0x06, 0, 1025);
        assert_eq!(verify(&big, Cdb::new(&c)), invalid(10, None));
    }
}
