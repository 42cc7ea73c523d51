//! Jobs driven through start/resume against an in-memory disk: every WRITE SAME, UNMAP,
//! COMPARE AND WRITE, ORWRITE and VERIFY rule, byte by byte, and the bounds on what a job
//! holds.

use super::disk::{information, sense_of, Disk};
use super::dispatch;
use super::{cdb10, cdb16, lu_with};
use crate::scsi::cdb::op;
use crate::scsi::job::STEP_BYTES;
use crate::scsi::{
    good, Completion, IoOutcome, Job, JobIo, JobOp, LuInfo, LunMap, NexusState, Plan, Sense,
    SenseFormat, Step,
};

const ILLEGAL: u8 = 0x05;
const INVALID_FIELD: (u8, u8, u8) = (ILLEGAL, 0x24, 0x00);
const MISCOMPARE: (u8, u8, u8) = (0x0E, 0x1D, 0x00);
const HARDWARE: (u8, u8, u8) = (0x04, 0x44, 0x00);

/// 512-byte blocks, 4096 of them (2 MiB), write cache on, MAXIMUM TRANSFER LENGTH (and so
/// MAXIMUM WRITE SAME LENGTH) the whole unit.
fn unit() -> LuInfo {
    lu_with(|u| {
        u.num_blocks = 4096;
        u.max_transfer_blocks = 4096;
    })
}

fn job(lu: &LuInfo, cdb: &[u8]) -> Box<Job> {
    match dispatch(
        &LunMap::new(vec![lu.clone()]),
        &mut NexusState::new(),
        0,
        cdb,
    ) {
        Plan::Job(j) => j,
        other => panic!("{cdb:02x?}: expected a job, got {other:?}"),
    }
}

/// Starts a job sent to `lu`, the target's only unit.
fn start(j: &mut Job, nexus: &mut NexusState, lu: &LuInfo, data: &[u8]) -> Step {
    j.start(nexus, &LunMap::new(vec![lu.clone()]), lu, data)
}

fn run(disk: &mut Disk, lu: &LuInfo, cdb: &[u8], data: &[u8]) -> Completion {
    let mut j = job(lu, cdb);
    disk.run_job(&mut j, &mut NexusState::new(), lu, data)
}

fn block(bs: usize, byte: u8) -> Vec<u8> {
    vec![byte; bs]
}

#[test]
fn write_same_10_writes_one_block_over_the_range_only() {
    let lu = unit();
    let mut disk = Disk::new(&lu, 0xEE);
    let mut pattern = block(512, 0);
    pattern[0] = 0xA5;
    pattern[511] = 0x5A;
    let c = run(
        &mut disk,
        &lu,
        &cdb10(op::WRITE_SAME_10, 0, 10, 3),
        &pattern,
    );
    assert_eq!(sense_of(&c), None);
    for lba in 10..13 {
        assert_eq!(disk.blocks(lba, 1), &pattern[..], "lba {lba}");
    }
    assert!(disk.blocks(0, 10).iter().all(|&b| b == 0xEE));
    assert!(disk.blocks(13, 1).iter().all(|&b| b == 0xEE));
    assert_eq!((disk.trace.writes, disk.trace.discards), (1, 0));
    assert_eq!(disk.trace.fua, [false]);
}

#[test]
fn write_same_steps_are_at_most_one_mebibyte() {
    let lu = unit();
    let mut disk = Disk::new(&lu, 0);
    // 4096 blocks of 512 bytes = 2 MiB: two 1 MiB writes.
    let c = run(
        &mut disk,
        &lu,
        &cdb16(op::WRITE_SAME_16, 0, 0, 4096),
        &block(512, 7),
    );
    assert_eq!(sense_of(&c), None);
    assert_eq!(disk.trace.writes, 2);
    assert_eq!(disk.trace.largest_buffer, 1 << 20);
    assert!(disk.bytes.iter().all(|&b| b == 7));
}

#[test]
fn write_same_without_write_cache_writes_durably() {
    let lu = lu_with(|u| {
        u.num_blocks = 4096;
        u.write_cache = false;
    });
    let mut disk = Disk::new(&lu, 0);
    let c = run(
        &mut disk,
        &lu,
        &cdb10(op::WRITE_SAME_10, 0, 0, 1),
        &block(512, 1),
    );
    assert_eq!(sense_of(&c), None);
    assert_eq!(disk.trace.fua, [true]);
}

#[test]
fn write_same_at_maximum_length_never_holds_more_than_a_step() {
    // 2^40 blocks of 4 KiB (4 PiB); MAXIMUM WRITE SAME LENGTH is 1 GiB = 262144 blocks.
    let lu = lu_with(|u| {
        u.num_blocks = 1 << 40;
        u.block_size = 4096;
        u.max_transfer_blocks = 0;
    });
    let max = crate::scsi::provisioning::max_write_same_blocks(&lu);
    assert_eq!(max, 1 << 18);
    let lba = (1 << 40) - max;
    let mut j = job(&lu, &cdb16(op::WRITE_SAME_16, 0, lba, max as u32));
    assert_eq!(j.data_out_len(), 4096);
    let mut nexus = NexusState::new();
    let mut step = start(&mut j, &mut nexus, &lu, &block(4096, 3));
    let (mut next, mut writes) = (lba, 0);
    while let Step::Io(io) = step {
        let JobIo {
            op: JobOp::Write { lba: at, data, fua },
            ..
        } = io
        else {
            panic!("only writes")
        };
        assert_eq!(at, next, "contiguous");
        assert!(data.len() <= STEP_BYTES as usize && data.iter().all(|&b| b == 3));
        assert!(!fua);
        next += data.len() as u64 / 4096;
        writes += 1;
        step = j.resume(&nexus, &lu, Ok(IoOutcome::Done));
    }
    assert_eq!(step, Step::Done(good()));
    assert_eq!((next, writes), (1 << 40, 1024));
    // One block more is refused up front, pointing at NUMBER OF LOGICAL BLOCKS.
    let over = cdb16(op::WRITE_SAME_16, 0, 0, max as u32 + 1);
    let Plan::Complete(c) = dispatch(&LunMap::new(vec![lu]), &mut NexusState::new(), 0, &over)
    else {
        panic!()
    };
    assert_eq!(sense_of(&c), Some(INVALID_FIELD));
    assert_eq!(&c.sense[15..18], &[0xC0, 0, 10]);
}

#[test]
fn write_same_unmap_of_zeros_discards() {
    let lu = unit();
    let mut disk = Disk::new(&lu, 0xFF);
    let c = run(
        &mut disk,
        &lu,
        &cdb10(op::WRITE_SAME_10, 0x08, 4, 8),
        &block(512, 0),
    );
    assert_eq!(sense_of(&c), None);
    assert_eq!((disk.trace.writes, disk.trace.discards), (0, 1));
    assert!(disk.blocks(4, 8).iter().all(|&b| b == 0));
    assert!(disk.blocks(12, 1).iter().all(|&b| b == 0xFF));
}

#[test]
fn write_same_unmap_deallocates_whatever_the_block_holds() {
    // Unmapped blocks read zeros (LBPRZ); libiscsi WriteSame10.UnmapUntilEnd sends a block of
    // 0xFF with UNMAP and reads zeros back.
    let lu = unit();
    let mut disk = Disk::new(&lu, 0x11);
    let c = run(
        &mut disk,
        &lu,
        &cdb16(op::WRITE_SAME_16, 0x08, 1, 7),
        &block(512, 0xA6),
    );
    assert_eq!(sense_of(&c), None);
    assert_eq!((disk.trace.writes, disk.trace.discards), (0, 1));
    assert!(disk.blocks(1, 7).iter().all(|&b| b == 0));
    assert!(disk.blocks(8, 1).iter().all(|&b| b == 0x11));
}

#[test]
fn write_same_16_ndob_needs_no_data() {
    let lu = unit();
    let mut disk = Disk::new(&lu, 0xFF);
    let mut j = job(&lu, &cdb16(op::WRITE_SAME_16, 0x01, 0, 2));
    assert_eq!(j.data_out_len(), 0);
    let c = disk.run_job(&mut j, &mut NexusState::new(), &lu, &[]);
    assert_eq!(sense_of(&c), None);
    assert_eq!(disk.trace.writes, 1, "zeros written");
    assert!(disk.blocks(0, 2).iter().all(|&b| b == 0));
    let c = run(&mut disk, &lu, &cdb16(op::WRITE_SAME_16, 0x09, 2, 2), &[]);
    assert_eq!(sense_of(&c), None);
    assert_eq!((disk.trace.writes, disk.trace.discards), (0, 1));
    // NDOB with Data-Out is a length mismatch.
    let j = job(&lu, &cdb16(op::WRITE_SAME_16, 0x01, 0, 2));
    assert!(j.check_edtl(&NexusState::new(), 512).is_some());
}

#[test]
fn write_same_10_ndob_bit_is_not_ndob() {
    let lu = unit();
    let j = job(&lu, &cdb10(op::WRITE_SAME_10, 0x01, 0, 2));
    assert_eq!(j.data_out_len(), 512);
}

#[test]
fn write_same_zero_blocks_runs_to_the_end() {
    let lu = unit();
    let mut disk = Disk::new(&lu, 0);
    let c = run(
        &mut disk,
        &lu,
        &cdb10(op::WRITE_SAME_10, 0, 4090, 0),
        &block(512, 9),
    );
    assert_eq!(sense_of(&c), None);
    assert!(disk.blocks(4090, 6).iter().all(|&b| b == 9));
    assert!(disk.blocks(4089, 1).iter().all(|&b| b == 0));
}

#[test]
fn write_same_data_out_of_the_wrong_size_is_refused() {
    // libiscsi WriteSame10/16.InvalidDataOutSize: half a block and two blocks.
    let lu = unit();
    let mut nexus = NexusState::new();
    for cdb in [
        cdb10(op::WRITE_SAME_10, 0x08, 0, 1).to_vec(),
        cdb16(op::WRITE_SAME_16, 0x08, 0, 1).to_vec(),
    ] {
        let j = job(&lu, &cdb);
        let at = if cdb.len() == 10 { 7 } else { 10 };
        for edtl in [256, 1024, 0] {
            let c = j.check_edtl(&nexus, edtl).expect("refused");
            assert_eq!(sense_of(&c), Some(INVALID_FIELD));
            assert_eq!(&c.sense[15..18], &[0xC0, 0, at]);
        }
        assert_eq!(j.check_edtl(&nexus, 512), None);
        // A transport that skips check_edtl gets the same answer from start.
        let mut j = job(&lu, &cdb);
        let Step::Done(c) = start(&mut j, &mut nexus, &lu, &[0; 256]) else {
            panic!()
        };
        assert_eq!(sense_of(&c), Some(INVALID_FIELD));
    }
}

#[test]
fn write_same_write_error_reports_the_failing_step() {
    let lu = unit();
    let mut disk = Disk::new(&lu, 0);
    disk.fail_io = Some(1);
    let c = run(
        &mut disk,
        &lu,
        &cdb16(op::WRITE_SAME_16, 0, 0, 4096),
        &block(512, 1),
    );
    assert_eq!(sense_of(&c), Some((0x03, 0x0C, 0x00)));
    assert_eq!(
        information(&c),
        Some(2048),
        "second 1 MiB step starts at LBA 2048"
    );
    let mut disk = Disk::new(&lu, 0);
    disk.fail_io = Some(0);
    let c = run(
        &mut disk,
        &lu,
        &cdb10(op::WRITE_SAME_10, 0x08, 5, 1),
        &block(512, 0),
    );
    assert_eq!(sense_of(&c), Some((0x03, 0x0C, 0x00)), "failed discard");
    assert_eq!(information(&c), Some(5));
}

fn unmap_params(list: &[(u64, u32)]) -> Vec<u8> {
    let len = 8 + 16 * list.len();
    let mut d = vec![0u8; len];
    d[0..2].copy_from_slice(&((len - 2) as u16).to_be_bytes());
    d[2..4].copy_from_slice(&((len - 8) as u16).to_be_bytes());
    for (i, (lba, n)) in list.iter().enumerate() {
        d[8 + 16 * i..16 + 16 * i].copy_from_slice(&lba.to_be_bytes());
        d[16 + 16 * i..20 + 16 * i].copy_from_slice(&n.to_be_bytes());
    }
    d
}

fn unmap_cdb(len: usize) -> [u8; 10] {
    cdb10(op::UNMAP, 0, 0, len as u16)
}

#[test]
fn unmap_discards_each_nonempty_descriptor() {
    let lu = unit();
    let mut disk = Disk::new(&lu, 0x61);
    let params = unmap_params(&[(0, 2), (10, 0), (4095, 1), (100, 50)]);
    let c = run(&mut disk, &lu, &unmap_cdb(params.len()), &params);
    assert_eq!(sense_of(&c), None);
    assert_eq!(disk.trace.discards, 3, "zero-length descriptor skipped");
    assert!(disk.blocks(0, 2).iter().all(|&b| b == 0));
    assert!(disk.blocks(2, 98).iter().all(|&b| b == 0x61));
    assert!(disk.blocks(100, 50).iter().all(|&b| b == 0));
    assert!(disk.blocks(4095, 1).iter().all(|&b| b == 0));
}

#[test]
fn unmap_of_nothing_is_good() {
    // libiscsi Unmap.ZeroBlocks: no descriptors, zero-length descriptors, even at the end.
    let lu = unit();
    let mut disk = Disk::new(&lu, 1);
    for list in [vec![], vec![(4096, 0)], vec![(7, 0); 256]] {
        let params = unmap_params(&list);
        let c = run(&mut disk, &lu, &unmap_cdb(params.len()), &params);
        assert_eq!(sense_of(&c), None);
        assert_eq!(disk.trace.discards, 0);
    }
    assert!(disk.bytes.iter().all(|&b| b == 1));
}

#[test]
fn unmap_checks_every_descriptor_before_discarding_any() {
    let lu = unit();
    let mut disk = Disk::new(&lu, 1);
    let params = unmap_params(&[(0, 1), (4095, 2)]);
    let c = run(&mut disk, &lu, &unmap_cdb(params.len()), &params);
    assert_eq!(sense_of(&c), Some((ILLEGAL, 0x21, 0x00)));
    assert_eq!(disk.trace.discards, 0);
    let params = unmap_params(&[(u64::MAX, 1)]);
    let c = run(&mut disk, &lu, &unmap_cdb(params.len()), &params);
    assert_eq!(sense_of(&c), Some((ILLEGAL, 0x21, 0x00)));
    assert!(disk.bytes.iter().all(|&b| b == 1));
}

#[test]
fn unmap_above_maximum_lba_count_is_invalid_field_in_parameter_list() {
    let lu = lu_with(|u| u.num_blocks = 1 << 22);
    let max = crate::scsi::provisioning::max_blocks_per_command(&lu) as u32;
    let mut disk = Disk {
        bytes: Vec::new(),
        block_size: 512,
        lun: 0,
        mapped: Vec::new(),
        others: Vec::new(),
        fail_io: None,
        compare_write_error: None,
        change_after_miscompare: None,
        trace: Default::default(),
    };
    let params = unmap_params(&[(0, max), (max as u64, 1)]);
    let c = run(&mut disk, &lu, &unmap_cdb(params.len()), &params);
    assert_eq!(sense_of(&c), Some((ILLEGAL, 0x26, 0x00)));
    assert_eq!(
        &c.sense[15..18],
        &[0x80, 0, 8 + 16 + 8],
        "NUMBER OF LOGICAL BLOCKS of the second descriptor"
    );
}

#[test]
fn unmap_parameter_list_truncation() {
    let lu = unit();
    let mut nexus = NexusState::new();
    let mut disk = Disk::new(&lu, 1);
    let params = unmap_params(&[(0, 1), (1, 1)]);
    // EDTL shorter than the list: only complete descriptors count.
    let mut j = job(&lu, &unmap_cdb(params.len()));
    assert_eq!(
        j.check_edtl(&nexus, 30),
        None,
        "a short list is judged by its contents"
    );
    let c = disk.run_job(&mut j, &mut nexus, &lu, &params[..30]);
    assert_eq!(sense_of(&c), None);
    assert_eq!(disk.trace.discards, 1);
    // Shorter than the header.
    let mut j = job(&lu, &unmap_cdb(params.len()));
    let c = disk.run_job(&mut j, &mut nexus, &lu, &params[..7]);
    assert_eq!(sense_of(&c), Some((ILLEGAL, 0x1A, 0x00)));
    // BLOCK DESCRIPTOR DATA LENGTH not a multiple of 16: the partial one is ignored.
    let mut odd = params.clone();
    odd[2..4].copy_from_slice(&20u16.to_be_bytes());
    let mut j = job(&lu, &unmap_cdb(odd.len()));
    let c = disk.run_job(&mut j, &mut nexus, &lu, &odd);
    assert_eq!(sense_of(&c), None);
    assert_eq!(disk.trace.discards, 1);
    // Longer Data-Out than PARAMETER LIST LENGTH: the excess is not parameter data.
    let mut j = job(&lu, &unmap_cdb(24));
    assert_eq!(j.check_edtl(&nexus, 100), None);
    let c = disk.run_job(&mut j, &mut nexus, &lu, &params);
    assert_eq!(sense_of(&c), None);
    assert_eq!(disk.trace.discards, 1);
}

#[test]
fn every_list_a_parameter_list_length_can_carry_is_within_the_descriptor_limit() {
    let most = (usize::from(u16::MAX) - 8) / 16;
    assert_eq!(
        crate::scsi::provisioning::MAX_UNMAP_DESCRIPTORS as usize,
        most
    );
}

fn caw_cdb(flags: u8, lba: u64, blocks: u8) -> [u8; 16] {
    cdb16(op::COMPARE_AND_WRITE, flags, lba, u32::from(blocks))
}

#[test]
fn compare_and_write_writes_when_the_medium_matches() {
    let lu = unit();
    let mut disk = Disk::new(&lu, b'A');
    // Three blocks of Data-Out for two blocks: refused before anything happens.
    let c = run(&mut disk, &lu, &caw_cdb(0x08, 7, 2), &[b'A'; 3 * 512]);
    assert_eq!(sense_of(&c), Some(INVALID_FIELD));
    assert_eq!(disk.trace, Default::default());
    let mut data = vec![b'A'; 4 * 512];
    data[1024..].fill(b'B');
    let c = run(&mut disk, &lu, &caw_cdb(0x08, 7, 2), &data);
    assert_eq!(sense_of(&c), None);
    assert!(disk.blocks(7, 2).iter().all(|&b| b == b'B'));
    assert!(disk.blocks(9, 1).iter().all(|&b| b == b'A'));
    assert_eq!((disk.trace.reads, disk.trace.writes), (1, 1));
    assert_eq!(disk.trace.fua, [true], "FUA from the CDB");
    let c = run(
        &mut disk,
        &lu,
        &caw_cdb(0, 0, 1),
        &[vec![b'A'; 512], block(512, 1)].concat(),
    );
    assert_eq!(sense_of(&c), None);
    assert_eq!(disk.trace.fua, [false]);
}

#[test]
fn compare_and_write_miscompare_reports_the_offset_and_writes_nothing() {
    let lu = unit();
    let mut disk = Disk::new(&lu, b'A');
    for blocks in [1u8, 3] {
        let n = usize::from(blocks) * 512;
        let mut data = vec![b'A'; 2 * n];
        data[n..].fill(b'B');
        data[n - 27] = b'C'; // libiscsi CompareAndWrite.Miscompare
        let c = run(&mut disk, &lu, &caw_cdb(0, 100, blocks), &data);
        assert_eq!(sense_of(&c), Some(MISCOMPARE));
        assert_eq!(information(&c), Some(n as u32 - 27));
        assert_eq!(c.sense[0], 0xF0, "VALID");
        assert_eq!(disk.trace.writes, 0);
        assert!(disk.bytes.iter().all(|&b| b == b'A'));
    }
    // Descriptor format carries the offset in the information descriptor.
    let mut nexus = NexusState::new();
    nexus.set_descriptor_sense(true);
    let mut j = job(&lu, &caw_cdb(0, 0, 1));
    let c = disk.run_job(
        &mut j,
        &mut nexus,
        &lu,
        &[vec![b'%'; 512], block(512, 1)].concat(),
    );
    assert_eq!(&c.sense[..4], &[0x72, 0x0E, 0x1D, 0x00]);
    assert_eq!(&c.sense[8..20], &[0, 0x0A, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
}

fn rbd_unit() -> LuInfo {
    let mut lu = unit();
    lu.store_compare_and_write = true;
    lu
}

#[test]
fn compare_and_write_on_a_store_that_can_is_one_atomic_store_operation() {
    let lu = rbd_unit();
    let mut disk = Disk::new(&lu, b'A');
    let data = [vec![b'A'; 1024], vec![b'B'; 1024]].concat();
    let c = run(&mut disk, &lu, &caw_cdb(0x08, 7, 2), &data);
    assert_eq!(sense_of(&c), None);
    assert!(disk.blocks(7, 2).iter().all(|&b| b == b'B'));
    assert_eq!(
        (
            disk.trace.compare_writes,
            disk.trace.reads,
            disk.trace.writes
        ),
        (1, 0, 0)
    );
}

#[test]
fn store_miscompare_is_located_by_a_read_and_writes_nothing() {
    let lu = rbd_unit();
    let mut disk = Disk::new(&lu, b'A');
    let mut data = [vec![b'A'; 1024], vec![b'B'; 1024]].concat();
    data[700] = b'C';
    let c = run(&mut disk, &lu, &caw_cdb(0, 7, 2), &data);
    assert_eq!(sense_of(&c), Some(MISCOMPARE));
    assert_eq!(information(&c), Some(700));
    assert_eq!((disk.trace.compare_writes, disk.trace.reads), (1, 1));
    assert!(disk.bytes.iter().all(|&b| b == b'A'));
}

#[test]
fn store_miscompare_that_is_gone_when_read_is_tried_again_atomically() {
    let lu = rbd_unit();
    let mut disk = Disk::new(&lu, b'A');
    disk.fill(7, &[b'X'; 512]);
    // Another writer puts back what the command expects before the job reads.
    disk.change_after_miscompare = Some((7, vec![b'A'; 512]));
    let data = [vec![b'A'; 512], vec![b'B'; 512]].concat();
    let c = run(&mut disk, &lu, &caw_cdb(0, 7, 1), &data);
    assert_eq!(sense_of(&c), None);
    assert_eq!((disk.trace.compare_writes, disk.trace.reads), (2, 1));
    assert_eq!(
        disk.trace.writes, 0,
        "never written outside the atomic operation"
    );
    assert!(disk.blocks(7, 1).iter().all(|&b| b == b'B'));
}

#[test]
fn store_that_cannot_compare_and_write_a_range_falls_back_to_steps() {
    for errno in [libc::EINVAL, libc::EOPNOTSUPP] {
        let lu = rbd_unit();
        let mut disk = Disk::new(&lu, b'A');
        disk.compare_write_error = Some(errno);
        let data = [vec![b'A'; 512], vec![b'B'; 512]].concat();
        let c = run(&mut disk, &lu, &caw_cdb(0, 7, 1), &data);
        assert_eq!(sense_of(&c), None);
        assert_eq!(
            (
                disk.trace.compare_writes,
                disk.trace.reads,
                disk.trace.writes
            ),
            (1, 1, 1)
        );
        assert!(disk.blocks(7, 1).iter().all(|&b| b == b'B'));
    }
}

#[test]
fn store_compare_and_write_errors_name_the_lba() {
    let lu = rbd_unit();
    let data = [vec![0u8; 512], block(512, 1)].concat();
    let mut disk = Disk::new(&lu, 0);
    disk.fail_io = Some(0);
    let c = run(&mut disk, &lu, &caw_cdb(0, 9, 1), &data);
    assert_eq!(sense_of(&c), Some((0x03, 0x0C, 0x00)));
    assert_eq!(information(&c), Some(9));
    disk.compare_write_error = Some(libc::ETIMEDOUT);
    disk.fail_io = None;
    let c = run(&mut disk, &lu, &caw_cdb(0, 9, 1), &data);
    assert_eq!(sense_of(&c), Some((0x02, 0x04, 0x01)));
}

#[test]
fn compare_and_write_io_errors() {
    let lu = unit();
    let data = [vec![0u8; 512], block(512, 1)].concat();
    let mut disk = Disk::new(&lu, 0);
    disk.fail_io = Some(0);
    let c = run(&mut disk, &lu, &caw_cdb(0, 9, 1), &data);
    assert_eq!(sense_of(&c), Some((0x03, 0x11, 0x00)));
    assert_eq!(information(&c), Some(9));
    disk.fail_io = Some(1);
    let c = run(&mut disk, &lu, &caw_cdb(0, 9, 1), &data);
    assert_eq!(sense_of(&c), Some((0x03, 0x0C, 0x00)));
    assert_eq!(information(&c), Some(9));
}

#[test]
fn compare_and_write_of_zero_blocks() {
    // libiscsi CompareAndWrite.DpoFua sends NUMBER OF LOGICAL BLOCKS 0 with one block of
    // Data-Out and wants GOOD; CompareAndWrite.Simple sends 256 blocks (the byte wraps to
    // 0) with 512 blocks of Data-Out and wants INVALID FIELD IN CDB.
    let lu = unit();
    let mut nexus = NexusState::new();
    let mut disk = Disk::new(&lu, 5);
    let mut j = job(&lu, &caw_cdb(0x18, 0, 0));
    assert_eq!(j.data_out_len(), 0);
    assert_eq!(j.check_edtl(&nexus, 512), None);
    assert_eq!(j.check_edtl(&nexus, 2 * 255 * 512), None);
    let c = j.check_edtl(&nexus, 512 * 512).expect("refused");
    assert_eq!(sense_of(&c), Some(INVALID_FIELD));
    assert_eq!(&c.sense[15..18], &[0xC0, 0, 13]);
    let c = disk.run_job(&mut j, &mut nexus, &lu, &[]);
    assert_eq!(sense_of(&c), None);
    assert_eq!(disk.trace, Default::default());
}

#[test]
fn compare_and_write_data_out_size_must_match() {
    // libiscsi CompareAndWrite.InvalidDataOutSize: four blocks of Data-Out, TL 1 and 3.
    let lu = unit();
    let nexus = NexusState::new();
    for blocks in [1, 3] {
        let j = job(&lu, &caw_cdb(0, 0, blocks));
        let c = j.check_edtl(&nexus, 4 * 512).expect("refused");
        assert_eq!(sense_of(&c), Some(INVALID_FIELD));
    }
}

#[test]
fn orwrite_ors_data_into_the_medium() {
    let lu = unit();
    let mut disk = Disk::new(&lu, 0);
    let c = run(
        &mut disk,
        &lu,
        &cdb16(op::ORWRITE_16, 0, 3, 2),
        &block(1024, 0xA5),
    );
    assert_eq!(sense_of(&c), None);
    assert!(disk.blocks(3, 2).iter().all(|&b| b == 0xA5));
    let c = run(
        &mut disk,
        &lu,
        &cdb16(op::ORWRITE_16, 0x08, 3, 2),
        &block(1024, 0x5A),
    );
    assert_eq!(sense_of(&c), None);
    assert!(disk.blocks(3, 2).iter().all(|&b| b == 0xFF));
    assert!(disk.blocks(2, 1).iter().all(|&b| b == 0) && disk.blocks(5, 1)[0] == 0);
    assert_eq!(disk.trace.fua, [true]);
}

#[test]
fn orwrite_works_in_bounded_chunks() {
    let lu = lu_with(|u| {
        u.num_blocks = 1024;
        u.block_size = 4096;
        u.max_transfer_blocks = 0;
    });
    let mut disk = Disk::new(&lu, 0x0F);
    let mut data = vec![0xF0; 300 * 4096];
    data[299 * 4096] = 0x01;
    let c = run(&mut disk, &lu, &cdb16(op::ORWRITE_16, 0, 10, 300), &data);
    assert_eq!(sense_of(&c), None);
    assert_eq!((disk.trace.reads, disk.trace.writes), (2, 2));
    assert_eq!(disk.trace.largest_buffer, 1 << 20);
    assert!(disk.blocks(10, 299).iter().all(|&b| b == 0xFF));
    assert_eq!(disk.blocks(309, 1)[0], 0x0F);
    assert_eq!(disk.blocks(309, 1)[1], 0xFF);
    assert!(disk.blocks(0, 10).iter().all(|&b| b == 0x0F));
}

#[test]
fn verify_bytchk_1_compares_the_data_out() {
    let lu = unit();
    let mut disk = Disk::new(&lu, 0);
    disk.fill(20, &block(512 * 4, 0x33));
    let mut data = disk.blocks(20, 4).to_vec();
    let c = run(&mut disk, &lu, &cdb10(op::VERIFY_10, 0x02, 20, 4), &data);
    assert_eq!(sense_of(&c), None);
    data[1500] ^= b'X';
    let c = run(&mut disk, &lu, &cdb16(op::VERIFY_16, 0x12, 20, 4), &data);
    assert_eq!(sense_of(&c), Some(MISCOMPARE));
    assert_eq!(information(&c), Some(1500));
    assert_eq!(disk.trace.writes, 0);
}

#[test]
fn verify_bytchk_3_compares_one_block_with_every_block() {
    let lu = lu_with(|u| {
        u.num_blocks = 4096;
        u.max_transfer_blocks = 0;
    });
    let mut disk = Disk::new(&lu, 0x44);
    let c = run(
        &mut disk,
        &lu,
        &cdb10(op::VERIFY_10, 0x06, 0, 4096),
        &block(512, 0x44),
    );
    assert_eq!(sense_of(&c), None);
    assert_eq!(disk.trace.reads, 2, "2 MiB in 1 MiB reads");
    assert_eq!(disk.trace.largest_buffer, 1 << 20);
    disk.bytes[3000 * 512 + 7] = 0;
    let c = run(
        &mut disk,
        &lu,
        &cdb16(op::VERIFY_16, 0x06, 1000, 3000),
        &block(512, 0x44),
    );
    assert_eq!(sense_of(&c), Some(MISCOMPARE));
    assert_eq!(
        information(&c),
        Some(2000 * 512 + 7),
        "offset into the verified range"
    );
}

#[test]
fn verify_read_error_is_medium_error() {
    let lu = unit();
    let mut disk = Disk::new(&lu, 0);
    disk.fail_io = Some(0);
    let c = run(
        &mut disk,
        &lu,
        &cdb10(op::VERIFY_10, 0x02, 8, 1),
        &block(512, 0),
    );
    assert_eq!(sense_of(&c), Some((0x03, 0x11, 0x00)));
    assert_eq!(information(&c), Some(8));
}

#[test]
fn driving_a_job_out_of_order_is_an_internal_failure_not_a_panic() {
    let lu = unit();
    let mut nexus = NexusState::new();
    let mut j = job(&lu, &caw_cdb(0, 0, 1));
    let Step::Done(c) = j.resume(&nexus, &lu, Ok(IoOutcome::Done)) else {
        panic!()
    };
    assert_eq!(sense_of(&c), Some(HARDWARE));
    // A Read that completes without data, or with the wrong amount.
    let data = [vec![0u8; 512], block(512, 1)].concat();
    for result in [None, Some(&[0u8; 100][..])] {
        let mut j = job(&lu, &caw_cdb(0, 0, 1));
        assert!(matches!(
            start(&mut j, &mut nexus, &lu, &data),
            Step::Io(JobIo {
                op: JobOp::Read { .. },
                ..
            })
        ));
        let Step::Done(c) = j.resume(
            &nexus,
            &lu,
            Ok(result.map_or(IoOutcome::Done, IoOutcome::Data)),
        ) else {
            panic!()
        };
        assert_eq!(sense_of(&c), Some(HARDWARE));
    }
    // Started twice, resumed after the end.
    let mut j = job(&lu, &cdb10(op::WRITE_SAME_10, 0x08, 0, 1));
    assert!(matches!(
        start(&mut j, &mut nexus, &lu, &[0; 512]),
        Step::Io(JobIo {
            op: JobOp::Discard { .. },
            ..
        })
    ));
    let Step::Done(c) = start(&mut j, &mut nexus, &lu, &[0; 512]) else {
        panic!()
    };
    assert_eq!(sense_of(&c), Some(HARDWARE));
    let Step::Done(c) = j.resume(&nexus, &lu, Ok(IoOutcome::Done)) else {
        panic!()
    };
    assert_eq!(sense_of(&c), Some(HARDWARE));
}

#[test]
fn sense_follows_the_nexus_format() {
    let lu = unit();
    let mut nexus = NexusState::new();
    nexus.set_descriptor_sense(true);
    let j = job(&lu, &cdb10(op::WRITE_SAME_10, 0, 0, 1));
    let c = j.check_edtl(&nexus, 1).expect("refused");
    assert_eq!(
        c.sense,
        Sense::invalid_field_in_cdb()
            .at_cdb(7, None)
            .encode(SenseFormat::Descriptor)
    );
}
