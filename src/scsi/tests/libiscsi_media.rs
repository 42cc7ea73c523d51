//! The expectations of libiscsi's `iscsi-test-cu` (1.19) suites for the commands added last,
//! replayed against `dispatch` and the in-memory disk: SCSI.Prefetch10/16,
//! ReadDefectData10/12, WriteAtomic16, Sanitize (run with --allow-sanitize), StartStopUnit,
//! PreventAllow, NoMedia, and REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS. Each test names the
//! libiscsi test it mirrors; two-nexus cases use two `NexusState`s over one LUN map.

use super::disk::{sense_of, Disk, OneLu};
use super::dispatch;
use super::*;
use crate::scsi::cdb::op;
use crate::scsi::{LunMap, NexusState};

const BS: usize = 512;
const NUM_BLOCKS: u64 = 2048;
const GOOD: Option<(u8, u8, u8)> = None;
const LBA_OOB: Option<(u8, u8, u8)> = Some((0x05, 0x21, 0x00));
const INVALID_CDB: Option<(u8, u8, u8)> = Some((0x05, 0x24, 0x00));
const INVALID_PARAM: Option<(u8, u8, u8)> = Some((0x05, 0x26, 0x00));
const WRITE_PROTECTED: Option<(u8, u8, u8)> = Some((0x07, 0x27, 0x00));
const NO_MEDIUM: Option<(u8, u8, u8)> = Some((0x02, 0x3A, 0x02));
const REMOVAL_PREVENTED: Option<(u8, u8, u8)> = Some((0x05, 0x53, 0x02));

type T = OneLu;

impl OneLu {
    fn removable() -> Self {
        Self::with(lu_with(|u| u.removable = true))
    }

    fn expect(&mut self, cdb: &[u8], data: &[u8], want: Option<(u8, u8, u8)>) -> Vec<u8> {
        let c = self.run(cdb, data);
        assert_eq!(sense_of(&c), want, "{cdb:02x?}");
        c.data
    }
}

fn prefetch10(lba: u32, blocks: u16, immed: bool, group: u8) -> [u8; 10] {
    let mut c = cdb10(op::PRE_FETCH_10, if immed { 0x02 } else { 0 }, lba, blocks);
    c[6] = group;
    c
}

fn prefetch16(lba: u64, blocks: u32, immed: bool, group: u8) -> [u8; 16] {
    let mut c = cdb16(op::PRE_FETCH_16, if immed { 0x02 } else { 0 }, lba, blocks);
    c[14] = group;
    c
}

#[test]
fn prefetch10_and_16_simple_beyond_eol_zero_blocks_and_flags() {
    let mut t = T::new();
    let n = NUM_BLOCKS;
    for i in 1..=256u64 {
        t.expect(&prefetch10(0, i as u16, false, 0), &[], GOOD);
        t.expect(&prefetch10((n - i) as u32, i as u16, false, 0), &[], GOOD);
        t.expect(&prefetch16(n - i, i as u32, false, 0), &[], GOOD);
        t.expect(
            &prefetch10((n + 1 - i) as u32, i as u16, false, 0),
            &[],
            LBA_OOB,
        );
        t.expect(&prefetch10(0x8000_0000, i as u16, false, 0), &[], LBA_OOB);
        t.expect(&prefetch10(u32::MAX, i as u16, false, 0), &[], LBA_OOB);
        t.expect(&prefetch16(1 << 63, i as u32, false, 0), &[], LBA_OOB);
        t.expect(&prefetch16(u64::MAX, i as u32, false, 0), &[], LBA_OOB);
        if i >= 2 {
            t.expect(&prefetch16(n - 1, i as u32, false, 0), &[], LBA_OOB);
        }
    }
    t.expect(&prefetch10(0, 0, false, 0), &[], GOOD);
    t.expect(&prefetch10(n as u32 + 1, 0, false, 0), &[], LBA_OOB);
    t.expect(&prefetch16(u64::MAX, 0, false, 0), &[], LBA_OOB);
    for (immed, group) in [(true, 0), (false, 3), (true, 3)] {
        t.expect(&prefetch10(0, 1, immed, group), &[], GOOD);
        t.expect(&prefetch16(0, 1, immed, group), &[], GOOD);
    }
}

#[test]
fn readdefectdata10_and_12_simple() {
    let mut t = T::new();
    let d = t.expect(
        &[op::READ_DEFECT_DATA_10, 0, 0, 0, 0, 0, 0, 0, 32, 0],
        &[],
        GOOD,
    );
    assert_eq!(d, [0, 0, 0, 0], "empty list, short block format");
    let d = t.expect(
        &[op::READ_DEFECT_DATA_12, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0],
        &[],
        GOOD,
    );
    assert_eq!(d, [0; 8]);
}

fn writeatomic16(lba: u64, blocks: u16, flags: u8) -> [u8; 16] {
    let mut c = cdb16(op::WRITE_ATOMIC_16, flags, lba, 0);
    c[12..14].copy_from_slice(&blocks.to_be_bytes());
    c
}

#[test]
fn writeatomic16_vpd_simple_beyond_eol_zero_blocks_protect_and_dpofua() {
    let mut t = T::new();
    // VPD: MAXIMUM ATOMIC TRANSFER LENGTH non-zero and within MAXIMUM TRANSFER LENGTH,
    // alignment and granularity zero.
    let bl = t.expect(&[op::INQUIRY, 1, 0xB0, 0, 255, 0], &[], GOOD);
    let word = |at: usize| u32::from_be_bytes([bl[at], bl[at + 1], bl[at + 2], bl[at + 3]]);
    assert_eq!(u16::from_be_bytes([bl[2], bl[3]]), 0x3C);
    let (max_xfer, max_atomic) = (word(8), word(44));
    assert!(max_atomic != 0 && max_atomic <= max_xfer);
    assert_eq!((word(48), word(52)), (0, 0));
    for i in 1..=256u16 {
        let data = vec![0xA6; usize::from(i) * BS];
        t.expect(&writeatomic16(0, i, 0), &data, GOOD);
        assert_eq!(t.disk.blocks(0, u64::from(i)), &data[..]);
        t.expect(&writeatomic16(NUM_BLOCKS - u64::from(i), i, 0), &data, GOOD);
        let twice = vec![0xA6; 2 * data.len()];
        t.expect(
            &writeatomic16(NUM_BLOCKS - u64::from(i), 2 * i, 0),
            &twice,
            LBA_OOB,
        );
        t.expect(&writeatomic16(1 << 63, i, 0), &data, LBA_OOB);
        t.expect(&writeatomic16(u64::MAX, i, 0), &data, LBA_OOB);
    }
    t.expect(&writeatomic16(0, 0, 0), &[], GOOD);
    t.expect(&writeatomic16(NUM_BLOCKS + 1, 0, 0), &[], LBA_OOB);
    t.expect(&writeatomic16(1 << 63, 0, 0), &[], LBA_OOB);
    let block = vec![0xA6; BS];
    for p in 1..8u8 {
        t.expect(&writeatomic16(0, 1, p << 5), &block, INVALID_CDB);
    }
    for flags in [0x10, 0x08, 0x18] {
        t.expect(&writeatomic16(0, 1, flags), &block, GOOD);
    }
    let one = t.expect(
        &[
            op::MAINTENANCE_IN,
            0x0C,
            1,
            op::WRITE_ATOMIC_16,
            0,
            0,
            0,
            0,
            1,
            0,
            0,
            0,
        ],
        &[],
        GOOD,
    );
    assert_eq!((one[1] & 0x07, one[5] & 0x18), (0b011, 0x18));
    let ro = &mut T::with(lu_with(|u| u.read_only = true));
    ro.expect(&writeatomic16(0, 1, 0), &block, WRITE_PROTECTED);
}

fn sanitize(byte1: u8, len: u16) -> [u8; 10] {
    let l = len.to_be_bytes();
    [op::SANITIZE, byte1, 0, 0, 0, 0, 0, l[0], l[1], 0]
}

fn overwrite_params(byte0: u8, pattern_len: u16, pattern: &[u8]) -> Vec<u8> {
    let l = pattern_len.to_be_bytes();
    let mut d = vec![byte0, 0, l[0], l[1]];
    d.extend_from_slice(pattern);
    d
}

fn get_lba_status(lba: u64) -> [u8; 16] {
    cdb16(op::SERVICE_ACTION_IN_16, 0x12, lba, 256)
}

/// The service actions REPORT SUPPORTED OPERATION CODES (all commands) lists for SANITIZE.
fn sanitize_service_actions(t: &mut T) -> Vec<u16> {
    let all = t.expect(
        &[op::MAINTENANCE_IN, 0x0C, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0],
        &[],
        GOOD,
    );
    all[4..]
        .chunks(8)
        .filter(|c| c[0] == op::SANITIZE)
        .inspect(|c| assert_eq!(c[5] & 0x01, 0x01, "SERVACTV"))
        .map(|c| u16::from_be_bytes([c[2], c[3]]))
        .collect()
}

#[test]
fn sanitize_overwrite_and_its_parameter_list_checks() {
    let mut t = T::new();
    assert_eq!(sanitize_service_actions(&mut t), [0x01, 0x02, 0x1F]);
    let a = vec![b'a'; 256 * BS];
    t.expect(&cdb16(op::WRITE_16, 0, 0, 256), &a, GOOD);
    t.expect(&cdb16(op::WRITE_16, 0, NUM_BLOCKS - 256, 256), &a, GOOD);
    let full = overwrite_params(0x01, BS as u16, &[0xAA; BS]);
    t.expect(&sanitize(0x01, full.len() as u16), &full, GOOD);
    assert!(t.disk.bytes.iter().all(|&b| b == 0xAA), "the whole medium");
    let half = overwrite_params(0x01, BS as u16 / 2, &[0x55; BS / 2]);
    t.expect(&sanitize(0x01, half.len() as u16), &half, GOOD);
    assert!(t.disk.bytes.iter().all(|&b| b == 0x55));
    let four = overwrite_params(0x01, 4, &[1, 2, 3, 4]);
    t.expect(&sanitize(0x01, 8), &four, GOOD);
    assert_eq!(
        &t.disk.blocks(NUM_BLOCKS - 1, 1)[..8],
        &[1, 2, 3, 4, 1, 2, 3, 4]
    );
    for len in [0u16, 1, 2, 3, 4, BS as u16 + 5] {
        t.expect(&sanitize(0x01, len), &full, INVALID_CDB);
    }
    let count0 = overwrite_params(0x00, BS as u16, &[0xAA; BS]);
    t.expect(&sanitize(0x01, count0.len() as u16), &count0, INVALID_PARAM);
    let len0 = overwrite_params(0x00, 0, &[0xAA; BS]);
    t.expect(&sanitize(0x01, len0.len() as u16), &len0, INVALID_PARAM);
    let too_long = overwrite_params(0x01, BS as u16 + 4, &[0xAA; BS]);
    t.expect(
        &sanitize(0x01, too_long.len() as u16),
        &too_long,
        INVALID_PARAM,
    );
    assert_eq!(&t.disk.blocks(0, 1)[..4], &[1, 2, 3, 4], "nothing written");
}

#[test]
fn sanitize_block_erase_deallocates_everything_until_written() {
    let mut t = T::new();
    let a = vec![b'a'; 256 * BS];
    t.expect(&cdb16(op::WRITE_16, 0, 0, 256), &a, GOOD);
    t.expect(&cdb16(op::WRITE_16, 0, NUM_BLOCKS - 256, 256), &a, GOOD);
    let before = t.expect(&get_lba_status(0), &[], GOOD);
    assert_eq!(before[20] & 0x0F, 0, "mapped or unknown");
    t.expect(&sanitize(0x02, 0), &[], GOOD);
    assert!(t.disk.bytes.iter().all(|&b| b == 0), "reads zeros (LBPRZ)");
    assert!(t.disk.trace.discards >= 1 && t.disk.trace.writes == 0);
    // Sanitize.BlockErase check_unmap: descriptors cover the LU and none is mapped.
    let d = t.expect(&get_lba_status(0), &[], GOOD);
    assert_eq!(u64::from_be_bytes(d[8..16].try_into().unwrap()), 0);
    assert_eq!(u32::from_be_bytes(d[16..20].try_into().unwrap()), 2048);
    assert_eq!(d[20] & 0x0F, 1, "deallocated");
    t.expect(&sanitize(0x02, 8), &[0; 8], INVALID_CDB);
    t.expect(&cdb10(op::READ_10, 0, 0, 1), &[], GOOD);
    t.expect(&cdb10(op::WRITE_10, 0, 7, 1), &[1; BS], GOOD);
    // Now the store answers: blocks 0..=6 are still holes, block 7 is mapped again.
    let after = t.expect(&get_lba_status(0), &[], GOOD);
    assert_eq!(u32::from_be_bytes(after[16..20].try_into().unwrap()), 7);
    assert_eq!(after[20] & 0x0F, 1);
    assert_eq!(u64::from_be_bytes(after[24..32].try_into().unwrap()), 7);
    assert_eq!(after[36] & 0x0F, 0, "a write maps blocks again");
}

#[test]
fn sanitize_block_erase_of_a_large_unit_is_bounded_steps() {
    // 2.5 GiB: no disk behind it, the job's steps are driven by hand.
    let lu = lu_with(|u| u.num_blocks = (5 << 20) + 3);
    let luns = LunMap::new(vec![lu.clone()]);
    let nexus = &mut NexusState::new();
    let plan = dispatch(&luns, nexus, 0, &sanitize(0x02, 0));
    let Plan::Job(mut job) = plan else {
        panic!("{plan:?}")
    };
    let mut step = job.start(nexus, &luns, &lu, &[]);
    let mut covered = 0;
    while let crate::scsi::Step::Io(io) = step {
        let crate::scsi::JobOp::Discard { lba, blocks } = io.op else {
            panic!("{io:?}")
        };
        assert_eq!(lba, covered);
        assert!(blocks <= 1 << 20);
        covered += blocks;
        step = job.resume(nexus, &lu, Ok(crate::scsi::IoOutcome::Done));
    }
    assert_eq!(covered, (5 << 20) + 3);
    assert!(lu.shared.medium.is_deallocated());
}

#[test]
fn sanitize_exit_failure_mode_invalid_service_actions_reserved_fields_and_readonly() {
    let mut t = T::new();
    t.expect(&sanitize(0x1F, 0), &[], GOOD);
    t.expect(&sanitize(0x1F, 8), &[0; 8], INVALID_CDB);
    for sa in (0..=0x1Eu8).filter(|sa| !(1..=2).contains(sa)) {
        t.expect(&sanitize(sa, 0), &[], INVALID_CDB);
    }
    let full = overwrite_params(0x01, BS as u16, &[0xAA; BS]);
    for (sa, data) in [(0x01u8, &full[..]), (0x02, &[][..])] {
        let len = data.len() as u16;
        t.expect(&sanitize(sa | 0x40, len), data, INVALID_CDB);
        for byte in 2..=6 {
            let mut c = sanitize(sa, len);
            c[byte] = byte as u8;
            t.expect(&c, data, INVALID_CDB);
        }
    }
    let mut ro = T::with(lu_with(|u| u.read_only = true));
    ro.expect(&sanitize(0x01, full.len() as u16), &full, WRITE_PROTECTED);
    ro.expect(&sanitize(0x02, 0), &[], WRITE_PROTECTED);
    ro.expect(&sanitize(0x03, 0), &[], INVALID_CDB);
}

#[test]
fn report_supported_task_management_functions() {
    let mut t = T::new();
    let d = t.expect(
        &[op::MAINTENANCE_IN, 0x0D, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0],
        &[],
        GOOD,
    );
    assert_eq!(d, [0xDE, 0x07, 0, 0]);
    let d = t.expect(
        &[op::MAINTENANCE_IN, 0x0D, 0x80, 0, 0, 0, 0, 0, 0, 16, 0, 0],
        &[],
        GOOD,
    );
    assert_eq!(d.len(), 16);
    assert_eq!(d[3], 0x0C);
}

const TUR: [u8; 6] = [0; 6];

fn ssu(immed: bool, loej: bool, start: bool) -> [u8; 6] {
    let byte4 = u8::from(loej) << 1 | u8::from(start);
    [op::START_STOP_UNIT, u8::from(immed), 0, 0, byte4, 0]
}

fn pamr(prevent: u8) -> [u8; 6] {
    [op::PREVENT_ALLOW_MEDIUM_REMOVAL, 0, 0, 0, prevent, 0]
}

#[test]
fn inquiry_reports_rmb_for_removable_units_only() {
    let inquiry = [op::INQUIRY, 0, 0, 0, 96, 0];
    assert_eq!(T::new().expect(&inquiry, &[], GOOD)[1], 0x00);
    assert_eq!(T::removable().expect(&inquiry, &[], GOOD)[1], 0x80);
}

#[test]
fn startstopunit_simple_ejects_and_loads() {
    let mut fixed = T::new();
    fixed.expect(&ssu(true, true, false), &[], INVALID_CDB);
    fixed.expect(&TUR, &[], GOOD);
    let mut t = T::removable();
    for immed in [true, false] {
        t.expect(&ssu(immed, true, false), &[], GOOD);
        t.expect(&TUR, &[], NO_MEDIUM);
        t.expect(&ssu(immed, true, true), &[], GOOD);
        t.expect(&TUR, &[], GOOD);
    }
    // PwrCnd: a power condition ignores LOEJ and START.
    for pc in 1..16u8 {
        let mut c = ssu(true, true, false);
        c[4] |= pc << 4;
        t.expect(&c, &[], GOOD);
        t.expect(&TUR, &[], GOOD);
    }
    // NoLoej: START/STOP without LOEJ leaves the medium where it is.
    for start in [false, true] {
        t.expect(&ssu(false, false, start), &[], GOOD);
        t.expect(&TUR, &[], GOOD);
    }
}

#[test]
fn nomedia_refuses_media_access_and_answers_the_rest() {
    let mut t = T::removable();
    t.expect(&ssu(true, true, false), &[], GOOD);
    let block = vec![0u8; BS];
    let media_access: Vec<(Vec<u8>, &[u8])> = vec![
        (TUR.to_vec(), &[]),
        (cdb10(op::SYNCHRONIZE_CACHE_10, 0x06, 0, 1).to_vec(), &[]),
        (cdb16(op::SYNCHRONIZE_CACHE_16, 0x06, 0, 1).to_vec(), &[]),
        (cdb10(op::READ_10, 0, 0, 1).to_vec(), &[]),
        (cdb12(op::READ_12, 0, 0, 1).to_vec(), &[]),
        (cdb16(op::READ_16, 0, 0, 1).to_vec(), &[]),
        (cdb10(op::READ_CAPACITY_10, 0, 0, 0).to_vec(), &[]),
        (cdb16(op::SERVICE_ACTION_IN_16, 0x10, 0, 15).to_vec(), &[]),
        (get_lba_status(0).to_vec(), &[]),
        (prefetch10(0, 1, true, 0).to_vec(), &[]),
        (prefetch16(0, 1, true, 0).to_vec(), &[]),
        (cdb10(op::VERIFY_10, 0x02, 0, 1).to_vec(), &block),
        (cdb12(op::VERIFY_12, 0x02, 0, 1).to_vec(), &block),
        (cdb16(op::VERIFY_16, 0x02, 0, 1).to_vec(), &block),
        (cdb10(op::WRITE_10, 0, 0, 1).to_vec(), &block),
        (cdb12(op::WRITE_12, 0, 0, 1).to_vec(), &block),
        (cdb16(op::WRITE_16, 0, 0, 1).to_vec(), &block),
        (cdb10(op::WRITE_AND_VERIFY_10, 0, 0, 1).to_vec(), &block),
        (cdb16(op::ORWRITE_16, 0, 0, 1).to_vec(), &block),
        (cdb10(op::WRITE_SAME_10, 0, 0, 1).to_vec(), &block),
        (cdb16(op::WRITE_SAME_16, 0, 0, 1).to_vec(), &block),
        (writeatomic16(0, 1, 0).to_vec(), &block),
        (sanitize(0x02, 0).to_vec(), &[]),
    ];
    for (cdb, data) in &media_access {
        t.expect(cdb, data, NO_MEDIUM);
    }
    let (unmap_cdb, params) = {
        let mut d = vec![0u8; 24];
        d[1] = 22;
        d[3] = 16;
        d[16..20].copy_from_slice(&8u32.to_be_bytes());
        (cdb10(op::UNMAP, 0, 0, 24), d)
    };
    t.expect(&unmap_cdb, &params, NO_MEDIUM);
    t.expect(&[op::INQUIRY, 0, 0, 0, 96, 0], &[], GOOD);
    t.expect(&[op::MODE_SENSE_6, 0, 0x3F, 0, 255, 0], &[], GOOD);
    t.expect(&[op::REQUEST_SENSE, 0, 0, 0, 18, 0], &[], GOOD);
    t.expect(&pamr(0), &[], GOOD);
    t.expect(&ssu(true, true, true), &[], GOOD);
    for (cdb, data) in &media_access[..11] {
        assert_ne!(sense_of(&t.run(cdb, data)), NO_MEDIUM, "{cdb:02x?}");
    }
}

#[test]
fn preventallow_simple_and_eject() {
    let mut t = T::removable();
    t.expect(&pamr(1), &[], GOOD);
    t.expect(&pamr(0), &[], GOOD);
    t.expect(&pamr(1), &[], GOOD);
    t.expect(&ssu(false, true, false), &[], REMOVAL_PREVENTED);
    t.expect(&TUR, &[], GOOD);
    t.expect(&pamr(0), &[], GOOD);
    t.expect(&ssu(false, true, false), &[], GOOD);
    t.expect(&TUR, &[], NO_MEDIUM);
    t.expect(&pamr(1), &[], GOOD);
    t.expect(&ssu(false, true, true), &[], REMOVAL_PREVENTED);
    t.expect(&pamr(0), &[], GOOD);
    t.expect(&ssu(false, true, true), &[], GOOD);
    t.expect(&TUR, &[], GOOD);
}

#[test]
fn preventallow_2_itnexuses_each_nexus_keeps_its_own_prevention() {
    let mut t = T::removable();
    let mut other = NexusState::new();
    t.expect(&pamr(1), &[], GOOD);
    let c = t.run_on(&mut other, &ssu(false, true, false), &[]);
    assert_eq!(sense_of(&c), REMOVAL_PREVENTED, "seen on the other nexus");
    // ALLOW from a nexus that never prevented does not lift the first one's lock.
    let c = t.run_on(&mut other, &pamr(0), &[]);
    assert_eq!(sense_of(&c), GOOD);
    t.expect(&ssu(false, true, false), &[], REMOVAL_PREVENTED);
    // Both prevent: removal stays prevented until both allow.
    t.run_on(&mut other, &pamr(1), &[]);
    t.expect(&pamr(0), &[], GOOD);
    t.expect(&ssu(false, true, false), &[], REMOVAL_PREVENTED);
    assert!(other.is_preventing(0) && !t.nexus.is_preventing(0));
    // Logout of the second nexus (its state is dropped) gives its prevention back.
    drop(other);
    t.expect(&ssu(false, true, false), &[], GOOD);
    t.expect(&ssu(false, true, true), &[], GOOD);
}

#[test]
fn preventallow_itnexus_loss_and_logout_release_the_lock() {
    let mut t = T::removable();
    t.expect(&pamr(1), &[], GOOD);
    t.nexus.nexus_loss();
    t.expect(&ssu(false, true, false), &[], GOOD);
    t.expect(&ssu(false, true, true), &[], GOOD);
    t.expect(&pamr(1), &[], GOOD);
    t.nexus = NexusState::new(); // reconnect: the old state is dropped
    t.expect(&ssu(false, true, false), &[], GOOD);
    t.expect(&TUR, &[], NO_MEDIUM);
    t.expect(&ssu(false, true, true), &[], GOOD);
}

#[test]
fn preventallow_lun_reset_and_target_resets_clear_every_nexus_lock() {
    for target_reset in [false, true] {
        let mut t = T::removable();
        let mut other = NexusState::new();
        t.expect(&pamr(1), &[], GOOD);
        t.run_on(&mut other, &pamr(1), &[]);
        t.expect(&ssu(false, true, false), &[], REMOVAL_PREVENTED);
        let lu = t.lu().clone();
        // What the control thread does for a LUN RESET, or for each LU on a target reset.
        if target_reset {
            t.luns
                .iter()
                .for_each(|l| l.shared.medium.reset_prevention());
        } else {
            lu.shared.medium.reset_prevention();
        }
        assert!(!t.nexus.is_preventing(0) && !other.is_preventing(0));
        t.expect(&ssu(false, true, false), &[], GOOD);
        t.expect(&TUR, &[], NO_MEDIUM);
        // The voided locks give nothing back when their nexus goes, and a new one counts.
        drop(other);
        t.expect(&pamr(1), &[], GOOD);
        assert_eq!(lu.shared.medium.preventing_nexuses(), 1);
        t.expect(&ssu(false, true, true), &[], REMOVAL_PREVENTED);
        t.expect(&pamr(0), &[], GOOD);
        t.expect(&ssu(false, true, true), &[], GOOD);
    }
}

#[test]
fn medium_state_is_shared_by_every_copy_of_the_lu() {
    let t = T::removable();
    let per_core = t.luns.clone();
    let mut nexus = NexusState::new();
    let mut disk = Disk::new(t.lu(), 0);
    let c = disk.exec(&per_core, &mut nexus, &ssu(false, true, false), &[]);
    assert_eq!(sense_of(&c), GOOD);
    assert!(
        !t.lu().shared.medium.is_present(),
        "ejected through the other core's map"
    );
}

#[test]
fn sanitize_readonly_through_software_write_protect_set_on_another_nexus() {
    let mut t = T::new();
    let mut second = NexusState::new();
    let current = [op::MODE_SENSE_6, 0x08, 0x0A, 0, 255, 0];
    let page = t.run_on(&mut second, &current, &[]).data[4..].to_vec();
    let mut set = page.clone();
    set[4] |= 0x08;
    for (control, want) in [(set, WRITE_PROTECTED), (page, GOOD)] {
        let mut params = vec![0, 0, 0, 0];
        params.extend_from_slice(&control);
        let select = [op::MODE_SELECT_6, 0x10, 0, 0, params.len() as u8, 0];
        assert_eq!(sense_of(&t.run_on(&mut second, &select, &params)), GOOD);
        let full = overwrite_params(0x01, BS as u16, &[0xAA; BS]);
        t.expect(&sanitize(0x01, full.len() as u16), &full, want);
        t.expect(&sanitize(0x02, 0), &[], want);
        t.expect(&cdb10(op::WRITE_10, 0, 0, 1), &[0; BS], want);
    }
}
