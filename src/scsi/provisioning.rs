//! Logical block provisioning (SBC-3): the limits every LU reports, WRITE SAME (10)/(16) and
//! UNMAP (GET LBA STATUS, which reports what the store holds, is `lba_status`).
//!
//! Every LU is thin provisioned with LBPRZ=1: the stores deallocate by punching holes (files,
//! RAM) or hold nothing at all (null), and unmapped blocks read as zeros.

use super::cdb::{op, Cdb};
use super::job::Job;
use super::rw::check_range;
use super::sense::Sense;
use super::{done, LuInfo, Plan};

/// Bytes one WRITE SAME or UNMAP may cover; with [`MAX_BLOCKS_PER_COMMAND`] this gives
/// MAXIMUM UNMAP LBA COUNT and bounds MAXIMUM WRITE SAME LENGTH (Block Limits VPD page).
const MAX_BYTES_PER_COMMAND: u64 = 1 << 30;
/// libiscsi (Inquiry.BlockLimits) calls an explicit MAXIMUM UNMAP LBA COUNT above 2^20 insane.
const MAX_BLOCKS_PER_COMMAND: u64 = 1 << 20;
/// MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT: as many as a 16-bit PARAMETER LIST LENGTH can carry,
/// so no UNMAP can exceed it.
pub(super) const MAX_UNMAP_DESCRIPTORS: u32 = (u16::MAX as u32 - UNMAP_HEADER as u32) / 16;

/// SBC-3 UNMAP parameter list: 8-byte header, 16-byte block descriptors.
const UNMAP_HEADER: usize = 8;
const UNMAP_DESCRIPTOR: usize = 16;
/// SBC-3 WRITE SAME byte 1: WRPROTECT (7..5), ANCHOR (4), UNMAP (3), obsolete PBDATA/LBDATA
/// (2..1), NDOB (0, WRITE SAME (16) only, SBC-4).
const WS_ANCHOR: u8 = 0x10;
const WS_UNMAP: u8 = 0x08;
const WS_OBSOLETE: u8 = 0x06;
const WS_NDOB: u8 = 0x01;

/// MAXIMUM UNMAP LBA COUNT, in blocks.
pub(super) fn max_blocks_per_command(lu: &LuInfo) -> u64 {
    (MAX_BYTES_PER_COMMAND / u64::from(lu.block_size.max(1))).clamp(1, MAX_BLOCKS_PER_COMMAND)
}

/// MAXIMUM WRITE SAME LENGTH: as for UNMAP, and never more than one WRITE may carry (MAXIMUM
/// TRANSFER LENGTH). libiscsi WriteSame16.Unmap writes and reads back MAXIMUM WRITE SAME
/// LENGTH blocks (up to 65536) with single WRITE (16) and READ (16) commands.
pub(super) fn max_write_same_blocks(lu: &LuInfo) -> u64 {
    let max = max_blocks_per_command(lu);
    match lu.max_transfer_blocks {
        0 => max,
        transfer => max.min(u64::from(transfer)),
    }
}

/// READ CAPACITY (16) LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT, from the store's physical
/// block (the page, 4 KiB, for files and RAM): 3 for 512-byte blocks on 4 KiB, 0 for 4096.
pub(super) fn lbppbe(lu: &LuInfo) -> u8 {
    let bs = lu.block_size;
    let physical = lu.geometry.physical_block_size;
    if bs == 0 || physical <= bs || !physical.is_multiple_of(bs) {
        return 0;
    }
    // log2 of the quotient, rounded down: 4096 / 512 = 8 = 1 << 3.
    (physical / bs).ilog2() as u8
}

/// OPTIMAL UNMAP GRANULARITY: one physical block, or the store's deallocation granularity
/// when that is coarser.
pub(super) fn unmap_granularity(lu: &LuInfo) -> u32 {
    let store = lu.geometry.unmap_granularity_bytes / lu.block_size.max(1);
    store.max(1 << lbppbe(lu))
}

/// SBC-3 WRITE SAME (10)/(16). Checked in this order: CDB fields, MAXIMUM WRITE SAME LENGTH,
/// write protection, range. NUMBER OF LOGICAL BLOCKS zero (WSNZ=0) means to the last block.
/// With UNMAP set the range is deallocated whatever the data block holds (unmapped blocks then
/// read as zeros, LBPRZ), as LIO does and libiscsi WriteSame10.UnmapUntilEnd expects.
pub(super) fn write_same(lu: &LuInfo, cdb: Cdb) -> Result<Plan, Sense> {
    let sixteen = cdb.opcode() == op::WRITE_SAME_16;
    let flags = cdb.u8(1);
    if flags >> 5 != 0 {
        // No protection information.
        return Err(Sense::invalid_field_in_cdb().at_cdb(1, Some(7)));
    }
    if flags & WS_ANCHOR != 0 {
        // ANC_SUP=0 in the Logical Block Provisioning VPD page.
        return Err(Sense::invalid_field_in_cdb().at_cdb(1, Some(4)));
    }
    if flags & WS_OBSOLETE != 0 {
        return Err(Sense::invalid_field_in_cdb().at_cdb(1, Some(2)));
    }
    let (lba, count, count_at) = if sixteen {
        (cdb.be64(2), u64::from(cdb.be32(10)), 10)
    } else {
        (u64::from(cdb.be32(2)), u64::from(cdb.be16(7)), 7)
    };
    let blocks = match count {
        0 => lu.num_blocks.saturating_sub(lba),
        n => n,
    };
    if blocks > max_write_same_blocks(lu) {
        return Err(Sense::invalid_field_in_cdb().at_cdb(count_at, None));
    }
    if lu.is_write_protected() {
        return Err(Sense::write_protected());
    }
    // To the end from past the end is out of range too.
    if blocks == 0 {
        return Err(Sense::lba_out_of_range());
    }
    check_range(lu, lba, blocks)?;
    // SBC-3: without logical block provisioning management the UNMAP bit is ignored.
    let unmap = flags & WS_UNMAP != 0 && lu.geometry.thin;
    let ndob = sixteen && flags & WS_NDOB != 0;
    Ok(Plan::Job(Box::new(Job::new_write_same(
        lu, lba, blocks, unmap, ndob, count_at,
    ))))
}

/// SBC-3 UNMAP: ANCHOR (byte 1 bit 0) is not supported; PARAMETER LIST LENGTH (bytes 7..=8)
/// zero is GOOD without a transfer, 1..=7 is PARAMETER LIST LENGTH ERROR.
pub(super) fn unmap(lu: &LuInfo, cdb: Cdb) -> Result<Plan, Sense> {
    if !lu.geometry.thin {
        // LBPU clear: the store cannot deallocate.
        return Err(Sense::invalid_opcode());
    }
    if cdb.bit(1, 0) {
        return Err(Sense::invalid_field_in_cdb().at_cdb(1, Some(0)));
    }
    let len = cdb.be16(7);
    if len > 0 && usize::from(len) < UNMAP_HEADER {
        return Err(Sense::parameter_list_length_error());
    }
    if lu.is_write_protected() {
        return Err(Sense::write_protected());
    }
    if len == 0 {
        return Ok(done());
    }
    Ok(Plan::Job(Box::new(Job::new_unmap(lu, len, 7))))
}

/// The ranges an UNMAP parameter list asks to deallocate, checked before any is touched.
///
/// `data` is what arrived (cut to `parameter_list_length`). SBC-3: a BLOCK DESCRIPTOR DATA
/// LENGTH beyond the data received, or not a multiple of 16, only loses the incomplete
/// descriptor; more blocks than MAXIMUM UNMAP LBA COUNT is INVALID FIELD IN PARAMETER LIST; a
/// range past the last block is LBA OUT OF RANGE. Descriptors of zero blocks are no-ops. (More
/// descriptors than MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT cannot arrive, see there.)
pub(super) fn unmap_ranges(
    lu: &LuInfo,
    data: &[u8],
    parameter_list_length: u32,
) -> Result<Vec<(u64, u64)>, Sense> {
    let data = data.get(..parameter_list_length as usize).unwrap_or(data);
    let Some(body) = data.get(UNMAP_HEADER..) else {
        return Err(Sense::parameter_list_length_error());
    };
    let declared = usize::from(u16::from_be_bytes([data[2], data[3]]));
    let descriptors = body.get(..declared).unwrap_or(body);
    let count = descriptors.len() / UNMAP_DESCRIPTOR;
    let max = max_blocks_per_command(lu);
    let mut total = 0u64;
    let mut ranges = Vec::with_capacity(count);
    for (i, d) in descriptors.chunks_exact(UNMAP_DESCRIPTOR).enumerate() {
        let lba = u64::from_be_bytes(d[0..8].try_into().unwrap_or_default());
        let blocks = u64::from(u32::from_be_bytes(d[8..12].try_into().unwrap_or_default()));
        check_range(lu, lba, blocks)?;
        total = total.saturating_add(blocks);
        if total > max {
            let at = UNMAP_HEADER + i * UNMAP_DESCRIPTOR + 8;
            let at = u16::try_from(at).unwrap_or(u16::MAX);
            return Err(Sense::invalid_field_in_param_list().at_param(at, None));
        }
        if blocks > 0 {
            ranges.push((lba, blocks));
        }
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::tests::{cdb10, cdb16, lu_with};

    fn ws10(flags: u8, lba: u32, blocks: u16) -> [u8; 10] {
        cdb10(op::WRITE_SAME_10, flags, lba, blocks)
    }

    fn ws16(flags: u8, lba: u64, blocks: u32) -> [u8; 16] {
        cdb16(op::WRITE_SAME_16, flags, lba, blocks)
    }

    fn unit() -> LuInfo {
        lu_with(|u| u.num_blocks = 1000)
    }

    #[test]
    fn physical_block_exponent_and_granularity() {
        for (bs, exp) in [
            (512, 3),
            (1024, 2),
            (2048, 1),
            (4096, 0),
            (8192, 0),
            (520, 0),
            (0, 0),
        ] {
            let lu = lu_with(|u| u.block_size = bs);
            assert_eq!(lbppbe(&lu), exp, "{bs}");
            assert_eq!(unmap_granularity(&lu), 1 << exp);
        }
    }

    #[test]
    fn physical_block_and_granularity_follow_the_store() {
        let lu = lu_with(|u| {
            u.block_size = 512;
            u.geometry.physical_block_size = 512;
        });
        assert_eq!((lbppbe(&lu), unmap_granularity(&lu)), (0, 1));
        let lu = lu_with(|u| {
            u.block_size = 4096;
            u.geometry.physical_block_size = 16384;
            u.geometry.unmap_granularity_bytes = 1 << 20;
        });
        assert_eq!((lbppbe(&lu), unmap_granularity(&lu)), (2, 256));
    }

    #[test]
    fn without_thin_provisioning_unmap_is_unsupported_and_write_same_writes() {
        let lu = lu_with(|u| {
            u.num_blocks = 1000;
            u.geometry.thin = false;
        });
        let unmap_cdb = [op::UNMAP, 0, 0, 0, 0, 0, 0, 0, 24, 0];
        assert_eq!(
            unmap(&lu, Cdb::new(&unmap_cdb)).unwrap_err(),
            Sense::invalid_opcode()
        );
        let Ok(Plan::Job(job)) = write_same(&lu, Cdb::new(&ws16(WS_UNMAP, 0, 8))) else {
            panic!("WRITE SAME is a job");
        };
        let thin = lu_with(|u| u.num_blocks = 1000);
        let Ok(Plan::Job(unmapping)) = write_same(&thin, Cdb::new(&ws16(WS_UNMAP, 0, 8))) else {
            panic!("WRITE SAME is a job");
        };
        assert_ne!(format!("{job:?}"), format!("{unmapping:?}"));
    }

    #[test]
    fn per_command_limit_is_a_gibibyte_capped_at_2_to_the_20_blocks() {
        for (bs, max) in [(512, 1 << 20), (4096, 1 << 18), (1, 1 << 20), (0, 1 << 20)] {
            assert_eq!(max_blocks_per_command(&lu_with(|u| u.block_size = bs)), max);
        }
    }

    #[test]
    fn write_same_length_stays_within_one_transfer() {
        let lu = lu_with(|u| u.max_transfer_blocks = 16384);
        assert_eq!(max_write_same_blocks(&lu), 16384);
        assert_eq!(max_blocks_per_command(&lu), 1 << 20);
        let open = lu_with(|u| u.max_transfer_blocks = 0);
        assert_eq!(max_write_same_blocks(&open), 1 << 20);
        let big = lu_with(|u| {
            u.num_blocks = 1 << 20;
            u.max_transfer_blocks = 16384;
        });
        let over = Err(Sense::invalid_field_in_cdb().at_cdb(10, None));
        assert_eq!(write_same(&big, Cdb::new(&ws16(0x08, 0, 65536))), over);
        assert!(matches!(
            write_same(&big, Cdb::new(&ws16(0x08, 0, 16384))),
            Ok(Plan::Job(_))
        ));
    }

    #[test]
    fn write_same_cdb_fields() {
        let lu = unit();
        let invalid = |byte, bit| Err(Sense::invalid_field_in_cdb().at_cdb(byte, bit));
        for p in 1..8u8 {
            assert_eq!(
                write_same(&lu, Cdb::new(&ws10(p << 5, 0, 1))),
                invalid(1, Some(7))
            );
        }
        assert_eq!(
            write_same(&lu, Cdb::new(&ws16(0x10, 0, 1))),
            invalid(1, Some(4))
        );
        assert_eq!(
            write_same(&lu, Cdb::new(&ws16(0x18, 0, 1))),
            invalid(1, Some(4))
        );
        assert_eq!(
            write_same(&lu, Cdb::new(&ws10(0x04, 0, 1))),
            invalid(1, Some(2))
        );
        assert_eq!(
            write_same(&lu, Cdb::new(&ws10(0x02, 0, 1))),
            invalid(1, Some(2))
        );
        assert!(matches!(
            write_same(&lu, Cdb::new(&ws16(0x09, 0, 1))),
            Ok(Plan::Job(_))
        ));
    }

    #[test]
    fn write_same_ranges() {
        let lu = unit();
        let oob = Err(Sense::lba_out_of_range());
        assert!(matches!(
            write_same(&lu, Cdb::new(&ws10(0, 999, 1))),
            Ok(Plan::Job(_))
        ));
        assert_eq!(write_same(&lu, Cdb::new(&ws10(0, 999, 2))), oob);
        assert_eq!(write_same(&lu, Cdb::new(&ws16(0, u64::MAX, 1))), oob);
        // Zero blocks: to the end, so out of range only from past the end.
        assert!(matches!(
            write_same(&lu, Cdb::new(&ws10(0, 999, 0))),
            Ok(Plan::Job(_))
        ));
        assert_eq!(write_same(&lu, Cdb::new(&ws10(0, 1000, 0))), oob);
        assert_eq!(write_same(&lu, Cdb::new(&ws16(0, u64::MAX, 0))), oob);
    }

    #[test]
    fn write_same_checks_length_then_protection_then_range() {
        let ro = lu_with(|u| {
            u.num_blocks = 3 << 20;
            u.read_only = true;
            u.max_transfer_blocks = 0;
        });
        let too_long = Err(Sense::invalid_field_in_cdb().at_cdb(10, None));
        assert_eq!(
            write_same(&ro, Cdb::new(&ws16(0, 0, (1 << 20) + 1))),
            too_long
        );
        assert_eq!(
            write_same(&ro, Cdb::new(&ws16(0, 0, 0))),
            too_long,
            "to the end is too long"
        );
        let wp = Err(Sense::write_protected());
        assert_eq!(write_same(&ro, Cdb::new(&ws16(0, u64::MAX, 1))), wp);
        assert_eq!(write_same(&ro, Cdb::new(&ws10(0x08, 0, 1))), wp);
        assert_eq!(write_same(&ro, Cdb::new(&ws16(0x01, 0, 1))), wp);
    }

    #[test]
    fn unmap_cdb_fields_and_order() {
        let lu = unit();
        let unmap_cdb = |anchor: u8, len: u16| cdb10(op::UNMAP, anchor, 0, len);
        assert_eq!(
            unmap(&lu, Cdb::new(&unmap_cdb(1, 24))),
            Err(Sense::invalid_field_in_cdb().at_cdb(1, Some(0)))
        );
        for len in 1..8 {
            assert_eq!(
                unmap(&lu, Cdb::new(&unmap_cdb(0, len))),
                Err(Sense::parameter_list_length_error())
            );
        }
        assert_eq!(unmap(&lu, Cdb::new(&unmap_cdb(0, 0))), Ok(done()));
        match unmap(&lu, Cdb::new(&unmap_cdb(0, 8))) {
            Ok(Plan::Job(j)) => assert_eq!(j.data_out_len(), 8),
            other => panic!("{other:?}"),
        }
        let ro = lu_with(|u| u.read_only = true);
        let wp = Err(Sense::write_protected());
        assert_eq!(unmap(&ro, Cdb::new(&unmap_cdb(0, 24))), wp);
        assert_eq!(unmap(&ro, Cdb::new(&unmap_cdb(0, 0))), wp);
        assert_eq!(
            unmap(&ro, Cdb::new(&unmap_cdb(0, 4))),
            Err(Sense::parameter_list_length_error())
        );
    }

    #[test]
    fn unmap_ranges_skips_empty_descriptors_and_keeps_order() {
        let lu = unit();
        let mut d = vec![0u8; 8 + 48];
        d[0..2].copy_from_slice(&54u16.to_be_bytes());
        d[2..4].copy_from_slice(&48u16.to_be_bytes());
        for (i, (lba, n)) in [(5u64, 2u32), (9, 0), (1, 1)].iter().enumerate() {
            d[8 + 16 * i..16 + 16 * i].copy_from_slice(&lba.to_be_bytes());
            d[16 + 16 * i..20 + 16 * i].copy_from_slice(&n.to_be_bytes());
        }
        assert_eq!(unmap_ranges(&lu, &d, 56), Ok(vec![(5, 2), (1, 1)]));
        assert_eq!(
            unmap_ranges(&lu, &d, 55),
            Ok(vec![(5, 2)]),
            "last one incomplete"
        );
        assert_eq!(unmap_ranges(&lu, &d, 24), Ok(vec![(5, 2)]));
        assert_eq!(unmap_ranges(&lu, &d, 23), Ok(vec![]));
        assert_eq!(unmap_ranges(&lu, &d, 8), Ok(vec![]));
        assert_eq!(
            unmap_ranges(&lu, &d[..5], 56),
            Err(Sense::parameter_list_length_error())
        );
    }
}
