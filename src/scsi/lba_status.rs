//! GET LBA STATUS (SBC-3): which blocks the backing store holds, as LBA status descriptors.
//!
//! The answer comes from the store, one extent at a time: a job step asks where the store's
//! allocation changes after an LBA (files and RAM: `SEEK_DATA`/`SEEK_HOLE`; block devices
//! report everything allocated; the null store nothing) and each answer becomes a descriptor,
//! mapped or deallocated. Right after a SANITIZE BLOCK ERASE with no write since, the whole
//! medium is known to be deallocated without asking.
//!
//! The first descriptor starts at the STARTING LOGICAL BLOCK ADDRESS and each next one where
//! the previous ends (SBC-3 / SBC-4 "LBA status descriptor relationships"), at logical block
//! granularity whatever the LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT: a block the store holds
//! any byte of is mapped. libiscsi GetLBAStatus.UnmapSingle asks for LBA i + 1 and expects a
//! first descriptor at i + LBPPB, which no answer obeying that rule gives unless LBPPB is 1; a
//! unit with 512-byte blocks reports LBPPB 8 (4 KiB pages, see `provisioning::lbppbe`), so that
//! test passes on 4096-byte units only.

use super::cdb::Cdb;
use super::job::Job;
use super::sense::Sense;
use super::{data_in, LuInfo, Plan};

/// SBC-3 PROVISIONING STATUS 0h: mapped (SBC-4: or unknown); 1h: deallocated.
const PROVISIONING_MAPPED: u8 = 0x0;
const PROVISIONING_DEALLOCATED: u8 = 0x1;
/// Parameter data header (PARAMETER DATA LENGTH, reserved) and descriptor lengths.
const HEADER_LEN: usize = 8;
const DESCRIPTOR_LEN: usize = 16;
/// Most descriptors one command returns: each costs one store query (at most two `lseek`s),
/// so a fragmented store is reported in bounded pieces; the initiator asks again from where
/// the last descriptor ends.
pub(super) const MAX_DESCRIPTORS: usize = 64;
/// GET LBA STATUS byte 10: ALLOCATION LENGTH (4 bytes).
const ALLOCATION_LENGTH_AT: u16 = 10;

/// SBC-3 GET LBA STATUS: STARTING LOGICAL BLOCK ADDRESS (bytes 2..=9), ALLOCATION LENGTH
/// (10..=13).
pub(super) fn get_lba_status(lu: &LuInfo, cdb: Cdb) -> Result<Plan, Sense> {
    let start = cdb.be64(2);
    if start >= lu.num_blocks {
        return Err(Sense::lba_out_of_range());
    }
    let allocation_length = cdb.be32(usize::from(ALLOCATION_LENGTH_AT));
    let mut scan = Scan::new(start, lu.num_blocks, allocation_length);
    if lu.shared.medium.is_deallocated() {
        // SANITIZE BLOCK ERASE left nothing, and nothing was written since: libiscsi
        // Sanitize.BlockErase checks this on every store, block devices included.
        while let Some((_, blocks)) = scan.next_query() {
            scan.record(false, blocks);
        }
        return Ok(data_in(scan.finish(), allocation_length));
    }
    Ok(Plan::Job(Box::new(Job::new_lba_status(
        lu,
        scan,
        ALLOCATION_LENGTH_AT,
    ))))
}

/// The descriptors of one GET LBA STATUS, collected extent by extent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Scan {
    /// The next LBA to describe.
    next: u64,
    /// One past the last LBA of the unit.
    end: u64,
    /// Descriptors that fit the allocation length (at least one, at most [`MAX_DESCRIPTORS`]).
    limit: usize,
    /// (first LBA, blocks, provisioning status) per descriptor.
    descriptors: Vec<(u64, u32, u8)>,
    allocation_length: u32,
}

impl Scan {
    pub fn new(start: u64, end: u64, allocation_length: u32) -> Self {
        let room = (allocation_length as usize).saturating_sub(HEADER_LEN) / DESCRIPTOR_LEN;
        Self {
            next: start,
            end,
            limit: room.clamp(1, MAX_DESCRIPTORS),
            descriptors: Vec::new(),
            allocation_length,
        }
    }

    /// The blocks still to describe, from which LBA: `None` once the unit's end is reached or
    /// no further descriptor fits.
    pub fn next_query(&self) -> Option<(u64, u64)> {
        let room = self.descriptors.len() < self.limit;
        (self.next < self.end && room).then(|| (self.next, self.end - self.next))
    }

    /// The store's answer for the query at `next`: `blocks` blocks (at least one) are mapped
    /// or deallocated. Extends the last descriptor when it has the same status; always moves
    /// `next` on while a descriptor fits, so a scan ends.
    pub fn record(&mut self, mapped: bool, blocks: u64) {
        let status = if mapped {
            PROVISIONING_MAPPED
        } else {
            PROVISIONING_DEALLOCATED
        };
        let mut left = blocks.clamp(1, self.end - self.next);
        if let Some(last) = self.descriptors.last_mut().filter(|d| d.2 == status) {
            let add = left.min(u64::from(u32::MAX - last.1));
            last.1 += add as u32;
            self.next += add;
            left -= add;
        }
        if left > 0 && self.descriptors.len() < self.limit {
            // NUMBER OF LOGICAL BLOCKS is 32 bits: a longer extent continues in the next one.
            let n = u32::try_from(left).unwrap_or(u32::MAX);
            self.descriptors.push((self.next, n, status));
            self.next += u64::from(n);
        }
    }

    /// The store answered in bytes from `next`: a hole shorter than a block leaves that block
    /// mapped (the store holds some of it), data is rounded up to whole blocks.
    pub fn record_bytes(&mut self, allocated: bool, bytes: u64, block_size: u32) {
        let bs = u64::from(block_size.max(1));
        match (allocated, bytes / bs) {
            (true, _) => self.record(true, bytes.div_ceil(bs)),
            (false, 0) => self.record(true, 1),
            (false, blocks) => self.record(false, blocks),
        }
    }

    /// The parameter data, cut to the allocation length.
    pub fn finish(&self) -> Vec<u8> {
        let len = 4 + DESCRIPTOR_LEN * self.descriptors.len();
        let mut d = Vec::with_capacity(HEADER_LEN + DESCRIPTOR_LEN * self.descriptors.len());
        // PARAMETER DATA LENGTH: the bytes after it (4 reserved, then the descriptors).
        d.extend_from_slice(&(len as u32).to_be_bytes());
        d.extend_from_slice(&[0; 4]);
        for &(lba, blocks, status) in &self.descriptors {
            d.extend_from_slice(&lba.to_be_bytes());
            d.extend_from_slice(&blocks.to_be_bytes());
            d.extend_from_slice(&[status, 0, 0, 0]);
        }
        d.truncate(self.allocation_length as usize);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::cdb::op;
    use crate::scsi::tests::{cdb16, lu_with, ok_data};

    fn gls(lba: u64, alloc: u32) -> [u8; 16] {
        cdb16(op::SERVICE_ACTION_IN_16, 0x12, lba, alloc)
    }

    fn descriptors(d: &[u8]) -> Vec<(u64, u32, u8)> {
        d[8..]
            .chunks(16)
            .map(|c| {
                let lba = u64::from_be_bytes(c[0..8].try_into().unwrap());
                let n = u32::from_be_bytes(c[8..12].try_into().unwrap());
                (lba, n, c[12])
            })
            .collect()
    }

    #[test]
    fn beyond_the_last_block_is_out_of_range() {
        let lu = lu_with(|u| u.num_blocks = 1000);
        for start in [1000, u64::MAX] {
            assert_eq!(
                get_lba_status(&lu, Cdb::new(&gls(start, 24))),
                Err(Sense::lba_out_of_range())
            );
        }
        assert!(matches!(
            get_lba_status(&lu, Cdb::new(&gls(999, 24))),
            Ok(Plan::Job(_))
        ));
    }

    #[test]
    fn extents_become_descriptors_from_the_starting_lba() {
        let mut s = Scan::new(10, 1000, 8 + 3 * 16);
        assert_eq!(s.next_query(), Some((10, 990)));
        s.record_bytes(true, 5 * 512, 512);
        s.record_bytes(false, 100 * 512, 512);
        s.record_bytes(false, 20 * 512, 512);
        assert_eq!(s.next_query(), Some((135, 865)));
        s.record_bytes(true, 4096 * 512, 512);
        assert_eq!(s.next_query(), None, "the end");
        let d = s.finish();
        assert_eq!(&d[..4], &52u32.to_be_bytes());
        assert_eq!(
            descriptors(&d),
            [(10, 5, 0), (15, 120, 1), (135, 865, 0)],
            "same-status extents merge, the last is cut at the end"
        );
    }

    #[test]
    fn partial_blocks_count_as_mapped() {
        let mut s = Scan::new(0, 100, 1024);
        s.record_bytes(false, 100, 512);
        s.record_bytes(true, 513, 512);
        s.record_bytes(false, 1024, 512);
        assert_eq!(descriptors(&s.finish()), [(0, 3, 0), (3, 2, 1)]);
    }

    #[test]
    fn descriptors_are_bounded_by_the_allocation_length_and_the_maximum() {
        let mut s = Scan::new(0, 1 << 20, 24);
        s.record(true, 1);
        s.record(false, 1);
        assert_eq!(s.next_query(), None, "one descriptor fits, it is full");
        assert_eq!(descriptors(&s.finish()), [(0, 1, 0)]);
        let mut s = Scan::new(0, 1 << 20, 8);
        s.record(false, 7);
        assert_eq!(s.finish(), [0, 0, 0, 20, 0, 0, 0, 0], "one descriptor, cut");
        let mut s = Scan::new(0, 1 << 20, u32::MAX);
        for i in 0.. {
            let Some((lba, _)) = s.next_query() else {
                assert_eq!(i, MAX_DESCRIPTORS);
                break;
            };
            assert_eq!(lba, i as u64);
            s.record(i % 2 == 0, 1);
        }
    }

    #[test]
    fn a_descriptor_holds_at_most_2_to_the_32_minus_1_blocks() {
        let mut s = Scan::new(0, u64::MAX, 1024);
        s.record(true, u64::MAX);
        assert_eq!(
            s.next_query(),
            Some((u64::from(u32::MAX), u64::MAX - 0xFFFF_FFFF))
        );
        s.record(true, u64::MAX);
        let d = descriptors(&s.finish());
        assert_eq!(d[0], (0, u32::MAX, 0));
        assert_eq!(d[1], (u64::from(u32::MAX), u32::MAX, 0));
    }

    #[test]
    fn after_block_erase_the_medium_is_deallocated_without_asking_the_store() {
        let lu = lu_with(|u| u.num_blocks = 1000);
        lu.shared.medium.set_deallocated();
        let d = ok_data(get_lba_status(&lu, Cdb::new(&gls(990, 24))));
        assert_eq!(descriptors(&d), [(990, 10, 1)]);
    }
}
